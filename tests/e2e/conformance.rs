//! The conformance kit run against every native plugin whose engine runs here.

use std::sync::Arc;

use plugboard_connector::ConnectionConfig;
use plugboard_tests::conformance::{Fixture, Target};
use plugboard_tests::postgres::{PgServer, TEST_PASSWORD, TEST_USER};

/// The fixture's data, the same in every dialect.
const CUSTOMERS: &str = "INSERT INTO kit_customers (id, name, email, balance, active, joined, note) VALUES \
    (1, 'Zoë', 'zoe@example.com', 10.50, TRUE, '2024-01-15', NULL), \
    (2, 'Łukasz', 'lukasz@example.com', NULL, FALSE, '2023-12-31', '日本語 ✓'), \
    (3, 'Ann', NULL, 0, TRUE, NULL, NULL)";
const ORDERS: &str = "INSERT INTO kit_orders (id, customer_id, total, placed_at) VALUES \
    (1, 1, 99.99, '2024-02-01 10:00:00'), (2, 1, 150.00, '2024-02-02 11:30:00'), (3, 2, NULL, NULL)";

fn standard_setup(customers: &str, orders: &str) -> Vec<String> {
    vec![
        customers.to_owned(),
        orders.to_owned(),
        "CREATE INDEX kit_orders_customer_idx ON kit_orders (customer_id)".to_owned(),
        "CREATE VIEW kit_big_orders AS SELECT * FROM kit_orders WHERE total > 100".to_owned(),
        CUSTOMERS.to_owned(),
        ORDERS.to_owned(),
    ]
}

async fn postgres() -> Option<Target> {
    let pg = PgServer::shared();
    let db = pg.create_database("kit");
    let config = ConnectionConfig {
        engine: "postgres".into(),
        host: Some("127.0.0.1".into()),
        port: Some(pg.port),
        database: Some(db.clone()),
        username: Some(TEST_USER.into()),
        password: Some(plugboard_connector::Secret::new(TEST_PASSWORD)),
        options: serde_json::json!({"sslmode": "disable"})
            .as_object()
            .unwrap()
            .clone(),
    };
    let mut setup = standard_setup(
        "CREATE TABLE kit_customers (id integer PRIMARY KEY, name text NOT NULL, \
         email varchar(100) UNIQUE, balance numeric(10, 2), active boolean, joined date, note text)",
        "CREATE TABLE kit_orders (id integer PRIMARY KEY, \
         customer_id integer REFERENCES kit_customers (id), total numeric(10, 2), placed_at timestamp)",
    );
    setup.push("COMMENT ON TABLE kit_customers IS 'People who buy'".into());
    let probe_db = db.clone();
    Some(Target {
        plugin: Arc::new(plugboard_plugin_postgres::PostgresPlugin::default()),
        wrong_password: Some(ConnectionConfig {
            password: Some(plugboard_connector::Secret::new("wrong")),
            ..config.clone()
        }),
        unreachable: Some(ConnectionConfig {
            port: Some(plugboard_tests::free_port()),
            ..config.clone()
        }),
        config,
        fixture: Fixture {
            setup,
            schema: "public".into(),
            database: db,
            param_query: "SELECT name FROM kit_customers WHERE id = $1".into(),
            slow_query: "SELECT pg_sleep(30) AS kit_slow".into(),
            syntax_error: "SELEC 1".into(),
            syntax_error_code: "42601".into(),
            comments: true,
            constraints: true,
            booleans: true,
        },
        running: Some(Box::new(move |marker| {
            PgServer::shared()
                .admin(&format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{probe_db}' \
                     AND state = 'active' AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
                ))
                .trim()
                .parse()
                .unwrap()
        })),
    })
}

async fn sqlite() -> Option<Target> {
    // The directory lives as long as the test process: the target outlives this function.
    let dir = tempfile::tempdir().unwrap().keep();
    let file = dir.join("kit.db");
    std::fs::write(&file, b"").unwrap();
    let allowed = plugboard_plugin_sqlite::connect::allowed_dirs_from(dir.to_str().unwrap());
    let config = ConnectionConfig {
        engine: "sqlite".into(),
        host: None,
        port: None,
        database: Some(file.display().to_string()),
        username: None,
        password: None,
        // One pooled connection: if an interrupted statement still ran, the next query
        // would wait for it.
        options: serde_json::json!({"writable": true, "pool": {"max_size": 1}})
            .as_object()
            .unwrap()
            .clone(),
    };
    Some(Target {
        plugin: Arc::new(plugboard_plugin_sqlite::SqlitePlugin::new(allowed)),
        config,
        wrong_password: None,
        unreachable: None,
        fixture: Fixture {
            setup: standard_setup(
                "CREATE TABLE kit_customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
                 email VARCHAR(100) UNIQUE, balance NUMERIC(10, 2), active BOOLEAN, joined DATE, note TEXT)",
                "CREATE TABLE kit_orders (id INTEGER PRIMARY KEY, \
                 customer_id INTEGER REFERENCES kit_customers (id), total NUMERIC(10, 2), placed_at DATETIME)",
            ),
            schema: "main".into(),
            database: "main".into(),
            param_query: "SELECT name FROM kit_customers WHERE id = ?1".into(),
            slow_query:
                "WITH RECURSIVE kit_slow(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM kit_slow \
                         WHERE x < 10000000000) SELECT count(*) FROM kit_slow"
                    .into(),
            syntax_error: "SELEC 1".into(),
            syntax_error_code: "1".into(),
            comments: false,
            constraints: true,
            booleans: true,
        },
        running: None,
    })
}

async fn mariadb() -> Option<Target> {
    use plugboard_tests::mariadb::{self, MariaServer};
    let server = MariaServer::shared();
    let db = server.create_database("kit");
    let config = ConnectionConfig {
        engine: "mysql".into(),
        host: Some("127.0.0.1".into()),
        port: Some(server.port),
        database: Some(db.clone()),
        username: Some(mariadb::TEST_USER.into()),
        password: Some(plugboard_connector::Secret::new(mariadb::TEST_PASSWORD)),
        options: serde_json::json!({"ssl_mode": "disabled"})
            .as_object()
            .unwrap()
            .clone(),
    };
    Some(Target {
        plugin: Arc::new(plugboard_plugin_mysql::MysqlPlugin::default()),
        wrong_password: Some(ConnectionConfig {
            password: Some(plugboard_connector::Secret::new("wrong")),
            ..config.clone()
        }),
        unreachable: Some(ConnectionConfig {
            port: Some(plugboard_tests::free_port()),
            ..config.clone()
        }),
        config,
        fixture: Fixture {
            setup: standard_setup(
                "CREATE TABLE kit_customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, \
                 email VARCHAR(100) UNIQUE, balance DECIMAL(10, 2), active BOOLEAN, joined DATE, \
                 note TEXT) COMMENT = 'People who buy'",
                "CREATE TABLE kit_orders (id INT PRIMARY KEY, customer_id INT, total DECIMAL(10, 2), \
                 placed_at DATETIME, FOREIGN KEY (customer_id) REFERENCES kit_customers (id))",
            ),
            schema: db.clone(),
            database: db,
            param_query: "SELECT name FROM kit_customers WHERE id = ?".into(),
            slow_query: "SELECT SLEEP(30) AS kit_slow".into(),
            syntax_error: "SELEC 1".into(),
            syntax_error_code: "1064".into(),
            comments: true,
            constraints: true,
            booleans: true,
        },
        running: Some(Box::new(|marker| {
            MariaServer::shared()
                .admin(&format!(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                     WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()"
                ))
                .trim()
                .parse()
                .unwrap()
        })),
    })
}

/// SQL Server, when `PLUGBOARD_TEST_MSSQL_URL` names one (`mssql://user:password@host:port/
/// database?encrypt=off` or with `trust_server_certificate=true`): no SQL Server can run on
/// our machines. Each target gets a fresh database created through the given one.
async fn mssql() -> Option<Target> {
    let Ok(url) = std::env::var("PLUGBOARD_TEST_MSSQL_URL") else {
        eprintln!("SKIPPED: the SQL Server conformance suite needs PLUGBOARD_TEST_MSSQL_URL");
        return None;
    };
    let input: plugboard::input::ConnectionInput =
        serde_json::from_value(serde_json::json!({"name": "kit", "url": url})).unwrap();
    let valid = input
        .validate(&["mssql"])
        .expect("PLUGBOARD_TEST_MSSQL_URL is a valid mssql:// URL");
    let password = match valid.password {
        plugboard::input::PasswordInput::Set(p) => Some(p),
        _ => None,
    };
    let base = ConnectionConfig {
        engine: "mssql".into(),
        host: valid.fields.host,
        port: valid.fields.port,
        database: valid.fields.database,
        username: valid.fields.username,
        password,
        options: valid.fields.options,
    };
    let plugin: Arc<dyn plugboard_connector::Plugin> =
        Arc::new(plugboard_plugin_mssql::MssqlPlugin::default());
    let db = format!("kit_{}", uuid::Uuid::new_v4().simple());
    let admin = plugin
        .open(base.clone())
        .await
        .expect("the SQL Server configuration opens");
    plugboard_tests::conformance::run(
        admin.as_ref(),
        &format!("CREATE DATABASE {db}"),
        Vec::new(),
        Some(60_000),
    )
    .await
    .expect("creating a database on the SQL Server");
    admin.close().await;
    let config = ConnectionConfig {
        database: Some(db.clone()),
        ..base
    };
    Some(Target {
        plugin,
        wrong_password: Some(ConnectionConfig {
            password: Some(plugboard_connector::Secret::new("wrong-Passw0rd!")),
            ..config.clone()
        }),
        unreachable: Some(ConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(plugboard_tests::free_port()),
            ..config.clone()
        }),
        config,
        fixture: Fixture {
            setup: vec![
                "CREATE TABLE kit_customers (id INT PRIMARY KEY, name NVARCHAR(100) NOT NULL, \
                 email NVARCHAR(100) UNIQUE, balance DECIMAL(10, 2), active BIT, joined DATE, \
                 note NVARCHAR(MAX))"
                    .into(),
                "CREATE TABLE kit_orders (id INT PRIMARY KEY, customer_id INT REFERENCES kit_customers (id), \
                 total DECIMAL(10, 2), placed_at DATETIME2)"
                    .into(),
                "CREATE INDEX kit_orders_customer_idx ON kit_orders (customer_id)".into(),
                "CREATE VIEW kit_big_orders AS SELECT * FROM kit_orders WHERE total > 100".into(),
                "INSERT INTO kit_customers (id, name, email, balance, active, joined, note) VALUES \
                 (1, N'Zoë', 'zoe@example.com', 10.50, 1, '2024-01-15', NULL), \
                 (2, N'Łukasz', 'lukasz@example.com', NULL, 0, '2023-12-31', N'日本語 ✓'), \
                 (3, N'Ann', NULL, 0, 1, NULL, NULL)"
                    .into(),
                "INSERT INTO kit_orders (id, customer_id, total, placed_at) VALUES \
                 (1, 1, 99.99, '2024-02-01 10:00:00'), (2, 1, 150.00, '2024-02-02 11:30:00'), (3, 2, NULL, NULL)"
                    .into(),
                "EXEC sp_addextendedproperty 'MS_Description', 'People who buy', 'SCHEMA', 'dbo', \
                 'TABLE', 'kit_customers'"
                    .into(),
            ],
            schema: "dbo".into(),
            database: db,
            param_query: "SELECT name FROM kit_customers WHERE id = @P1".into(),
            slow_query: "WAITFOR DELAY '00:00:30'; SELECT 1 AS kit_slow".into(),
            syntax_error: "SELECT FROM WHERE".into(),
            syntax_error_code: "156".into(),
            comments: true,
            constraints: true,
            booleans: true,
        },
        running: None,
    })
}

/// The WASM ClickHouse plugin, loaded as the host loads it, against a real ClickHouse.
async fn clickhouse() -> Option<Target> {
    use plugboard_tests::clickhouse::{self, ClickHouseServer};
    let server = ClickHouseServer::shared();
    let db = server.create_database("kit");
    let config = ConnectionConfig {
        engine: "clickhouse".into(),
        host: Some("127.0.0.1".into()),
        port: Some(server.port),
        database: Some(db.clone()),
        username: Some(clickhouse::TEST_USER.into()),
        password: Some(plugboard_connector::Secret::new(clickhouse::TEST_PASSWORD)),
        options: serde_json::Map::new(),
    };
    let setup = vec![
        "CREATE TABLE kit_customers (id Int32, name String, email Nullable(String), \
         balance Nullable(Decimal(10, 2)), active Nullable(UInt8), joined Nullable(Date), \
         note Nullable(String)) ENGINE = MergeTree ORDER BY id"
            .to_owned(),
        "CREATE TABLE kit_orders (id Int32, customer_id Nullable(Int32), \
         total Nullable(Decimal(10, 2)), placed_at Nullable(DateTime)) ENGINE = MergeTree ORDER BY id"
            .to_owned(),
        "CREATE VIEW kit_big_orders AS SELECT * FROM kit_orders WHERE total > 100".to_owned(),
        CUSTOMERS.replace("TRUE", "1").replace("FALSE", "0"),
        ORDERS.to_owned(),
    ];
    Some(Target {
        plugin: plugboard_tests::wasm::load("plugboard-plugin-clickhouse").await,
        wrong_password: Some(ConnectionConfig {
            password: Some(plugboard_connector::Secret::new("wrong")),
            ..config.clone()
        }),
        unreachable: Some(ConnectionConfig {
            port: Some(plugboard_tests::free_port()),
            ..config.clone()
        }),
        config,
        fixture: Fixture {
            setup,
            schema: db.clone(),
            database: db,
            param_query: "SELECT name FROM kit_customers WHERE id = {p1:Int32}".into(),
            slow_query: "SELECT count() AS kit_slow FROM system.numbers".into(),
            syntax_error: "SELEC 1".into(),
            syntax_error_code: "62".into(),
            comments: false,
            constraints: false,
            booleans: false,
        },
        running: Some(Box::new(|marker| {
            ClickHouseServer::shared().running(marker)
        })),
    })
}

plugboard_tests::conformance!(postgres, sqlite, mariadb, mssql, clickhouse);

/// The fixture as documents: the same customers, with a field of mixed types (balance), a
/// nested document, and a unique index.
const MONGO_FIXTURE: &str = "
from decimal import Decimal
from bson.decimal128 import Decimal128
import datetime
db.kit_customers.insert_many([
    {'_id': 1, 'name': 'Zoë', 'email': 'zoe@example.com', 'balance': Decimal128('10.50'), 'active': True,
     'joined': datetime.datetime(2024, 1, 15), 'address': {'city': 'Paris'}},
    {'_id': 2, 'name': 'Łukasz', 'email': 'lukasz@example.com', 'balance': None, 'active': False,
     'joined': datetime.datetime(2023, 12, 31), 'note': '日本語 ✓'},
    {'_id': 3, 'name': 'Ann', 'balance': 0, 'active': True},
])
db.kit_customers.create_index('email', unique=True, sparse=True)
db.kit_orders.insert_one({'_id': 1, 'customer_id': 1, 'total': 99.99})
";

/// MongoDB: the MongoDB-compatible server the test set-up starts, or a real mongod when
/// `PLUGBOARD_TEST_MONGODB_URL` names one (`mongodb://user:password@host:port/?authSource=admin`;
/// each target gets a fresh database on it).
async fn mongodb() -> Option<Target> {
    let db = format!("kit_{}", uuid::Uuid::new_v4().simple());
    let seed = format!("db = c['{db}']\n{MONGO_FIXTURE}");
    let config = match std::env::var("PLUGBOARD_TEST_MONGODB_URL") {
        Ok(url) => {
            plugboard_tests::mongo::python(&url, &seed);
            let input: plugboard::input::ConnectionInput =
                serde_json::from_value(serde_json::json!({"name": "kit", "url": url})).unwrap();
            let valid = input
                .validate(&["mongodb"])
                .expect("PLUGBOARD_TEST_MONGODB_URL is a valid mongodb:// URL");
            ConnectionConfig {
                engine: "mongodb".into(),
                host: valid.fields.host,
                port: valid.fields.port,
                database: Some(db.clone()),
                username: valid.fields.username,
                password: match valid.password {
                    plugboard::input::PasswordInput::Set(p) => Some(p),
                    _ => None,
                },
                options: valid.fields.options,
            }
        }
        Err(_) => {
            use plugboard_tests::mongo::{self, MongoServer};
            let server = MongoServer::shared();
            server.seed(&seed);
            ConnectionConfig {
                engine: "mongodb".into(),
                host: Some("127.0.0.1".into()),
                port: Some(server.port),
                database: Some(db.clone()),
                username: Some(mongo::TEST_USER.into()),
                password: Some(plugboard_connector::Secret::new(mongo::TEST_PASSWORD)),
                options: serde_json::Map::new(),
            }
        }
    };
    Some(Target {
        plugin: Arc::new(plugboard_plugin_mongodb::MongoPlugin::default()),
        wrong_password: Some(ConnectionConfig {
            password: Some(plugboard_connector::Secret::new("wrong")),
            ..config.clone()
        }),
        unreachable: Some(ConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(plugboard_tests::free_port()),
            options: serde_json::json!({"connect_timeout_ms": 1000})
                .as_object()
                .unwrap()
                .clone(),
            ..config.clone()
        }),
        config,
        fixture: Fixture {
            setup: Vec::new(),
            schema: db.clone(),
            database: db,
            param_query: r#"{"find": "kit_customers", "filter": {"email": "zoe@example.com"}}"#
                .into(),
            slow_query: String::new(),
            syntax_error: r#"{"find": "kit_customers", "filter": "not a document"}"#.into(),
            syntax_error_code: String::new(),
            comments: false,
            constraints: true,
            booleans: true,
        },
        running: None,
    })
}

plugboard_tests::conformance_documents!(mongodb);
