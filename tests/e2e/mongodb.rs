//! The MongoDB plugin through the HTTP API, against a MongoDB-wire-compatible server
//! (secantusdb) with SCRAM authentication.

use plugboard_tests::mongo::{MongoServer, TEST_PASSWORD, TEST_USER};
use plugboard_tests::server::TestServer;
use serde_json::json;

/// Three people with a field of mixed types, nested documents and arrays, and an index.
const SEED: &str = "
db = c.shop
db.people.insert_many([
    {'_id': 1, 'name': 'Zoë', 'age': 30, 'tags': ['a', 'b'], 'address': {'city': 'Paris', 'zip': '75001'}},
    {'_id': 2, 'name': 'Ann', 'age': 'unknown', 'tags': []},
    {'_id': 3, 'name': 'Łukasz', 'age': 41, 'address': {'city': 'Kraków'}},
])
db.people.create_index('name', unique=True)
db.orders.insert_one({'_id': 10, 'person': 1, 'total': 12.5})
";

/// Enough documents that grouping them takes the server well past a short deadline.
const BIG: &str = "c.shop.big.insert_many([{'i': i, 's': 'x' * 50} for i in range(30000)])";

/// The shared server, with the `shop` database seeded once.
fn server() -> &'static MongoServer {
    static SEEDED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let server = MongoServer::shared();
    SEEDED.get_or_init(|| {
        server.seed(SEED);
        server.seed(BIG);
    });
    server
}

fn body(name: &str) -> serde_json::Value {
    body_for(server(), name)
}

fn body_for(server: &MongoServer, name: &str) -> serde_json::Value {
    json!({
        "name": name, "engine": "mongodb", "host": "127.0.0.1", "port": server.port,
        "username": TEST_USER, "password": TEST_PASSWORD
    })
}

#[tokio::test]
async fn test_databases_and_failures() {
    let server = TestServer::start().await;
    let id = server.create(body("mongo")).await;
    let reply = server
        .post(&format!("/api/v1/connections/{id}/test"), json!({}))
        .await;
    assert_eq!(reply.body["ok"], true, "{}", reply.text);
    assert!(!reply.body["server_version"].as_str().unwrap().is_empty());
    let reply = server
        .get(&format!("/api/v1/connections/{id}/databases"))
        .await;
    assert!(
        reply.body["databases"]
            .as_array()
            .unwrap()
            .contains(&json!("shop")),
        "{}",
        reply.text
    );

    let mut wrong = body("wrong");
    wrong["password"] = json!("not-it");
    let reply = server.post("/api/v1/connections/test", wrong).await;
    assert_eq!(reply.body["ok"], false, "{}", reply.text);
    assert_eq!(
        reply.body["error"]["code"], "authentication",
        "{}",
        reply.text
    );
    let mut closed = body("closed");
    closed["port"] = json!(plugboard_tests::free_port());
    closed["options"] = json!({"connect_timeout_ms": 1000});
    let reply = server.post("/api/v1/connections/test", closed).await;
    assert_eq!(reply.body["error"]["code"], "connection", "{}", reply.text);
    server.stop().await;
}

#[tokio::test]
async fn fields_are_inferred_by_sampling_with_their_type_mix() {
    // A server of its own, whose only database is `shop`: with no database named, the
    // first non-system one with collections is chosen.
    let mongo = MongoServer::start();
    mongo.seed(SEED);
    let server = TestServer::start().await;
    let id = server.create(body_for(&mongo, "infer")).await;
    let reply = server
        .get(&format!("/api/v1/connections/{id}/schema?refresh=true"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let schema = &reply.body["schemas"][0];
    assert_eq!(schema["name"], "shop");
    let people = schema["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "people")
        .unwrap();
    assert_eq!(people["kind"], "collection");
    assert_eq!(people["row_estimate"], 3);
    let field = |name: &str| {
        people["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {}", people["columns"]))
    };
    assert_eq!(field("_id")["primary_key"], true);
    assert_eq!(field("name")["data_type"], "string");
    assert_eq!(field("name")["stats"]["presence"], 1.0);
    let age = field("age");
    assert_eq!(age["data_type"], "mixed(int, string)");
    let shares: Vec<f64> = age["stats"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["share"].as_f64().unwrap())
        .collect();
    assert!((shares[0] - 2.0 / 3.0).abs() < 1e-9, "{age}");
    let city = field("address.city");
    assert!(
        (city["stats"]["presence"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{city}"
    );
    assert_eq!(field("tags")["common_type"], "array");
    assert_eq!(field("tags[]")["data_type"], "string");
    let small = server
        .get(&format!(
            "/api/v1/connections/{id}/schema?refresh=true&sample_size=1&tables=people"
        ))
        .await;
    let sampled = small.body["schemas"][0]["tables"][0]["comment"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(sampled.contains("sample of 1 document"), "{}", small.text);
    server
        .get(&format!("/api/v1/connections/{id}/schema?sample_size=0"))
        .await
        .expect_error(400);
    let index = people["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["columns"] == json!(["name"]))
        .expect("the name index");
    assert_eq!(index["unique"], true);
    server.stop().await;
    mongo.stop();
}

#[tokio::test]
async fn find_and_aggregate_commands_return_documents() {
    let server = TestServer::start().await;
    let mut b = body("query");
    b["database"] = json!("shop");
    let id = server.create(b).await;
    let query = format!("/api/v1/connections/{id}/query");
    let reply = server
        .post(&query, json!({"command": {"find": "people", "filter": {"age": {"$gte": 30}}, "sort": {"_id": 1}, "projection": {"name": 1}}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["columns"][0]["common_type"], "document");
    assert_eq!(
        reply.body["rows"],
        json!([[{"_id": 1, "name": "Zoë"}], [{"_id": 3, "name": "Łukasz"}]])
    );
    let reply = server
        .post(&query, json!({"command": {"aggregate": "people", "pipeline": [{"$group": {"_id": null, "n": {"$sum": 1}}}]}, "limit": 10}))
        .await;
    assert_eq!(reply.body["rows"][0][0]["n"], 3, "{}", reply.text);
    let reply = server
        .post(&query, json!({"command": {"find": "people"}, "limit": 2}))
        .await;
    assert_eq!(
        (
            reply.body["row_count"].as_u64(),
            reply.body["truncated"].as_bool()
        ),
        (Some(2), Some(true))
    );
    for bad in [
        json!({"command": {"drop": "people"}}),
        json!({"command": {"find": ""}}),
        json!({"command": {"find": "people", "fliter": {}}}),
        json!({"sql": "SELECT 1"}),
    ] {
        let reply = server.post(&query, bad.clone()).await;
        assert!(reply.status == 422, "{bad}: {}", reply.text);
    }
    server.stop().await;
}

#[tokio::test]
async fn timeouts_are_enforced_by_the_server() {
    let server = TestServer::start().await;
    let mut b = body("slow");
    b["database"] = json!("shop");
    let id = server.create(b).await;
    let query = format!("/api/v1/connections/{id}/query");
    let slow = json!({"aggregate": "big", "pipeline": [{"$group": {"_id": "$i", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}]});
    let reply = server
        .post(&query, json!({"command": slow, "timeout_ms": 20}))
        .await;
    assert_eq!(reply.expect_error(504), "timeout");
    assert!(reply.text.contains("code 50"), "{}", reply.text);
    // The same session answers the next command.
    let reply = server
        .post(&query, json!({"command": {"find": "orders"}}))
        .await;
    assert_eq!(reply.body["row_count"], 1, "{}", reply.text);
    server.stop().await;
}
