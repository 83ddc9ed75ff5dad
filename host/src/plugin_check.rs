//! `plugboard plugin check FILE.wasm [--config k=v ...]`: what an author runs before
//! shipping a plugin.
//!
//! Without a configuration it loads the component exactly as the host would (a component,
//! the right contract version, its imports satisfied, `describe()` answering in the
//! sandbox) and prints what it describes. With one, it opens a session and runs the checks
//! of the conformance kit that need no fixture: the target answers `test`, lists the
//! configured database, introspects into well-formed schemas, runs a query whose rows come
//! in batches no larger than asked, classifies a syntax error, a wrong password and an
//! unreachable port. (The fixture-based cases live in `tests/`, where a real server of
//! the engine runs; see `tests/support/conformance.rs`.)

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use plugboard_connector::{
    ConnectionConfig, Error, IntrospectOptions, Plugin, QueryRequest, Secret, Session,
};

use crate::wasm::{EgressRules, Limits, Runtime, WasmPlugin};

/// One check's outcome.
struct Outcome {
    name: &'static str,
    result: Result<String, String>,
}

/// Parses `k=v` pairs into a configuration for `engine`: the connection's own fields by
/// name, anything else as an option (JSON when it parses as JSON, text otherwise).
pub fn config_from_pairs(engine: &str, pairs: &[String]) -> anyhow::Result<ConnectionConfig> {
    let mut config = ConnectionConfig::new(engine);
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            anyhow::bail!("`{pair}` is not key=value");
        };
        match key {
            "host" => config.host = Some(value.to_owned()),
            "port" => {
                config.port = Some(
                    value
                        .parse()
                        .map_err(|_| anyhow::anyhow!("port `{value}` is not a port number"))?,
                )
            }
            "database" => config.database = Some(value.to_owned()),
            "username" => config.username = Some(value.to_owned()),
            "password" => config.password = Some(Secret::new(value)),
            "engine" => config.engine = value.to_owned(),
            option => {
                let json = serde_json::from_str(value)
                    .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
                config.options.insert(option.to_owned(), json);
            }
        }
    }
    Ok(config)
}

/// Loads `file` and, given a configuration, checks it against a live target. Returns the
/// report and whether everything passed.
pub async fn check(file: &Path, config: &[String], query: &str) -> anyhow::Result<(String, bool)> {
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let runtime = Runtime::new(Limits::default(), EgressRules::default(), None)?;
    let compiled = runtime.compile(&bytes)?;
    let plugin = WasmPlugin::load(runtime, &compiled.component).await?;
    let info = plugin.info().clone();
    let mut report = String::new();
    writeln!(
        report,
        "{}: a plugboard:connector@0.1.0 component",
        file.display()
    )?;
    writeln!(report, "  sha256       {}", compiled.sha256)?;
    writeln!(report, "  plugin       {} {}", info.name, info.version)?;
    writeln!(report, "  engines      {}", info.engines.join(", "))?;
    writeln!(
        report,
        "  fields       {}",
        info.config_fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    if config.is_empty() {
        writeln!(
            report,
            "loads: ok (give --config k=v ... to check it against a live target)"
        )?;
        return Ok((report, true));
    }
    let config = config_from_pairs(&info.engines[0], config)?;
    let outcomes = live_checks(&plugin, config, query).await;
    let mut passed = true;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(detail) => writeln!(report, "  ok    {:<24} {detail}", outcome.name)?,
            Err(problem) => {
                passed = false;
                writeln!(report, "  FAIL  {:<24} {problem}", outcome.name)?
            }
        }
    }
    writeln!(
        report,
        "{} of {} checks passed",
        outcomes.iter().filter(|o| o.result.is_ok()).count(),
        outcomes.len()
    )?;
    Ok((report, passed))
}

async fn live_checks(plugin: &WasmPlugin, config: ConnectionConfig, query: &str) -> Vec<Outcome> {
    let mut out = Vec::new();
    let session: Arc<dyn Session> = match plugin.open(config.clone()).await {
        Ok(s) => Arc::from(s),
        Err(e) => {
            out.push(Outcome {
                name: "open",
                result: Err(e.to_string()),
            });
            return out;
        }
    };
    out.push(Outcome {
        name: "test",
        result: match session.test().await {
            Ok(info) if !info.version.is_empty() && info.latency_ms > 0.0 => Ok(format!(
                "version {}, {:.2} ms, tls {}",
                info.version, info.latency_ms, info.tls
            )),
            Ok(info) => Err(format!("an empty version or no latency: {info:?}")),
            Err(e) => Err(e.to_string()),
        },
    });
    out.push(Outcome {
        name: "list_databases",
        result: match session.list_databases().await {
            Ok(names) => match &config.database {
                Some(db) if !names.contains(db) => {
                    Err(format!("{db} is not among {}", names.join(", ")))
                }
                _ => Ok(format!("{} database(s)", names.len())),
            },
            Err(Error::Unsupported(m)) => Ok(format!("unsupported ({m})")),
            Err(e) => Err(e.to_string()),
        },
    });
    out.push(Outcome {
        name: "introspect",
        result: match session.introspect(&IntrospectOptions::default()).await {
            Ok(schemas) => {
                let tables: usize = schemas.iter().map(|s| s.tables.len()).sum();
                let bad = schemas.iter().flat_map(|s| &s.tables).find(|t| {
                    t.name.is_empty()
                        || t.columns
                            .iter()
                            .enumerate()
                            .any(|(i, c)| c.name.is_empty() || c.position != i as u32 + 1)
                });
                match bad {
                    Some(t) => Err(format!(
                        "table `{}` has unnamed or misnumbered columns",
                        t.name
                    )),
                    None => Ok(format!("{} schema(s), {tables} table(s)", schemas.len())),
                }
            }
            Err(e) => Err(e.to_string()),
        },
    });
    out.push(Outcome {
        name: "query in batches",
        result: batches(session.as_ref(), query).await,
    });
    out.push(Outcome {
        name: "syntax error",
        result: match drain(session.as_ref(), "SELEC 1").await {
            Err(Error::Query(q)) => Ok(format!(
                "engine code {}",
                q.code.as_deref().unwrap_or("(none)")
            )),
            Err(e) => Err(format!("expected a query error, got: {e}")),
            Ok(_) => Err("`SELEC 1` succeeded".into()),
        },
    });
    session.close().await;
    if config.password.is_some() {
        let wrong = ConnectionConfig {
            password: Some(Secret::new("plugboard-check-wrong-password")),
            ..config.clone()
        };
        out.push(Outcome {
            name: "wrong password",
            result: classified(plugin, wrong, |e| matches!(e, Error::Authentication(_))).await,
        });
    }
    if config.host.is_some() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let unreachable = ConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(closed),
            ..config
        };
        out.push(Outcome {
            name: "unreachable port",
            result: classified(plugin, unreachable, |e| matches!(e, Error::Connection(_))).await,
        });
    }
    out
}

async fn drain(session: &dyn Session, sql: &str) -> Result<Vec<usize>, Error> {
    let mut stream = session
        .query(QueryRequest {
            sql: sql.to_owned(),
            params: Vec::new(),
            timeout_ms: Some(30_000),
        })
        .await?;
    let mut sizes = Vec::new();
    while let Some(batch) = stream.next_batch(2).await? {
        sizes.push(batch.len());
    }
    Ok(sizes)
}

async fn batches(session: &dyn Session, sql: &str) -> Result<String, String> {
    match drain(session, sql).await {
        Ok(sizes) if sizes.iter().any(|n| *n > 2 || *n == 0) => Err(format!(
            "asked for 2 rows at a time, got batches of {sizes:?}"
        )),
        Ok(sizes) => Ok(format!(
            "{} row(s) in {} batch(es)",
            sizes.iter().sum::<usize>(),
            sizes.len()
        )),
        Err(e) => Err(e.to_string()),
    }
}

async fn classified(
    plugin: &WasmPlugin,
    config: ConnectionConfig,
    expected: impl Fn(&Error) -> bool,
) -> Result<String, String> {
    let result = match plugin.open(config).await {
        Ok(session) => {
            let result = session.test().await;
            session.close().await;
            result
        }
        Err(e) => Err(e),
    };
    match result {
        Err(e) if expected(&e) => Ok(format!("{} error", e.code())),
        Err(e) => Err(format!("wrongly classified: {e}")),
        Ok(_) => Err("the test passed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_become_fields_and_options() {
        let config = config_from_pairs(
            "clickhouse",
            &[
                "host=db".into(),
                "port=8123".into(),
                "secure=true".into(),
                "note=x y".into(),
            ],
        )
        .unwrap();
        assert_eq!(config.host.as_deref(), Some("db"));
        assert_eq!(config.port, Some(8123));
        assert_eq!(config.options["secure"], serde_json::json!(true));
        assert_eq!(config.options["note"], serde_json::json!("x y"));
        assert!(config_from_pairs("x", &["port=huge".into()]).is_err());
        assert!(config_from_pairs("x", &["novalue".into()]).is_err());
    }
}
