//! A template connector for an engine with an HTTP query API: `POST /query` with
//! `{"sql": "...", "params": [...]}` answering `{"columns": [{"name", "type"}], "rows": [[...]]}`,
//! `GET /version` answering its version as text. Replace the HTTP calls with your
//! engine's; keep the shape.

use std::time::Instant;

use plugboard_sdk::http::Client;
use plugboard_sdk::prelude::*;
use plugboard_sdk::{ConfigField, FieldKind, IntrospectOptions, SchemaInfo};
use serde_json::{Value as Json, json};

/// One session: the client for the connection's server. A login token would live here.
struct Template {
    client: Client,
}

impl Connector for Template {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "template",
            env!("CARGO_PKG_VERSION"),
            "A template: an engine with an HTTP query API",
            &["template"],
        )
        .field(ConfigField::new("secure", FieldKind::Boolean, "Use HTTPS").default("false"))
    }

    fn open(config: Config) -> Result<Self> {
        // Check the configuration here, without touching the network.
        config.reject_unknown_options(&["secure"])?;
        let secure = config.bool_option("secure")?.unwrap_or(false);
        let mut client = Client::for_config(&config, if secure { 443 } else { 8080 }, secure)?;
        if let (Some(user), Some(password)) = (&config.username, config.password()) {
            client = client.header(
                "authorization",
                &plugboard_sdk::http::basic_auth(user, password),
            );
        }
        Ok(Template { client })
    }

    fn test(&self) -> Result<ServerInfo> {
        let started = Instant::now();
        let version = self
            .client
            .get("/version")
            .send()?
            .error_for_status()?
            .text()?;
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        Ok(ServerInfo::new(version.trim(), latency, false))
    }

    fn introspect(&self, _options: IntrospectOptions) -> Result<Vec<SchemaInfo>> {
        Err(Error::Unsupported(
            "this template does not introspect yet".into(),
        ))
    }

    fn query(&self, request: QueryRequest) -> Result<Box<dyn Rows>> {
        let params: Vec<Json> = request.params.iter().map(param).collect();
        let response = self
            .client
            .post("/query")
            .json(&json!({ "sql": request.sql, "params": params }))
            .send()?;
        if response.status() == 400 {
            // The engine's own error code and message, never rewritten.
            let body = response.json()?;
            return Err(Error::query(
                body["code"].as_str().map(str::to_owned),
                body["message"].as_str().unwrap_or("query failed"),
            ));
        }
        let body = response.error_for_status()?.json()?;
        let columns: Vec<ColumnMeta> = body["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let data_type = c["type"].as_str().unwrap_or("text");
                ColumnMeta::new(
                    c["name"].as_str().unwrap_or(""),
                    data_type,
                    common_type(data_type),
                )
            })
            .collect();
        let rows: Vec<Row> = body["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| row.as_array().into_iter().flatten().map(value).collect())
            .collect();
        Ok(Box::new(RowSet::new(columns, rows)))
    }
}

export_connector!(Template);

/// The engine's type names in the common vocabulary.
fn common_type(data_type: &str) -> CommonType {
    match data_type {
        "bool" => CommonType::Boolean,
        "int" => CommonType::Int64,
        "float" => CommonType::Float64,
        "decimal" => CommonType::Decimal,
        "date" => CommonType::Date,
        "timestamp" => CommonType::Timestamp,
        _ => CommonType::Text,
    }
}

fn value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.to_string()),
    }
}

fn param(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Uint(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s) => json!(s),
        Value::Json(s) => serde_json::from_str(s).unwrap_or(Json::Null),
        Value::Bytes(b) => json!(b),
        Value::Array(_) => json!(null),
    }
}
