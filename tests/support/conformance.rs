//! The conformance kit: the same checks run against every plugin, through the connector
//! trait alone, so that a native plugin and a WebAssembly one are held to one standard.
//!
//! Each engine describes a [`Target`]: how to reach a fresh database, and the fixture in
//! its dialect. The fixture is one logical schema everywhere: `kit_customers` and
//! `kit_orders` (several types, primary keys, a foreign key, an index), the view
//! `kit_big_orders`, a table comment where the engine has comments, and a few rows with
//! NULLs and non-ASCII text. The kit creates it through the plugin's own `query`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plugboard_connector::{
    CommonType, ConnectionConfig, Error, IntrospectOptions, Plugin, QueryRequest, SchemaInfo,
    Session, TableKind, Value,
};

/// An engine's dialect of the fixture and of the queries the kit runs.
pub struct Fixture {
    /// Statements that create the fixture, in order.
    pub setup: Vec<String>,
    /// The schema the fixture lives in.
    pub schema: String,
    /// The database the connection names, as `list_databases` reports it.
    pub database: String,
    /// `SELECT name FROM kit_customers WHERE id = <first parameter>`.
    pub param_query: String,
    /// A query that runs for well over ten seconds unless stopped; contains `kit_slow`.
    pub slow_query: String,
    /// A statement with a syntax error in the engine's dialect (`SELEC 1`, mostly).
    pub syntax_error: String,
    /// The engine's code for it.
    pub syntax_error_code: String,
    /// Whether the engine keeps comments on tables.
    pub comments: bool,
    /// Whether the engine has foreign keys and secondary indexes (the fixture then has
    /// `kit_orders`' foreign key and `kit_orders_customer_idx`; ClickHouse has neither).
    pub constraints: bool,
    /// Whether the engine has a boolean type (`active` is one; ClickHouse 18.16 uses UInt8).
    pub booleans: bool,
}

/// Counts statements containing a marker still running on the target, seen from outside
/// the plugin's session; `None` where the engine runs in-process.
pub type RunningProbe = Box<dyn Fn(&str) -> usize + Send + Sync>;

/// One plugin, reachable, with its fixture's dialect.
pub struct Target {
    pub plugin: Arc<dyn Plugin>,
    /// A working configuration for a fresh, empty database.
    pub config: ConnectionConfig,
    /// The same with a wrong password, where the engine has passwords.
    pub wrong_password: Option<ConnectionConfig>,
    /// The same towards a port where nothing listens, where the engine is reached by network.
    pub unreachable: Option<ConnectionConfig>,
    pub fixture: Fixture,
    pub running: Option<RunningProbe>,
}

async fn open(target: &Target, config: &ConnectionConfig) -> Box<dyn Session> {
    target
        .plugin
        .open(config.clone())
        .await
        .expect("the configuration opens a session")
}

/// Runs a statement to its end and returns every row.
pub async fn run(
    session: &dyn Session,
    sql: &str,
    params: Vec<Value>,
    timeout_ms: Option<u32>,
) -> Result<Vec<Vec<Value>>, Error> {
    let mut stream = session
        .query(QueryRequest {
            sql: sql.to_owned(),
            params,
            timeout_ms,
        })
        .await?;
    let mut rows = Vec::new();
    while let Some(batch) = stream.next_batch(100).await? {
        rows.extend(batch);
    }
    Ok(rows)
}

/// A session on the target with the fixture created.
async fn with_fixture(target: &Target) -> Box<dyn Session> {
    let session = open(target, &target.config).await;
    for statement in &target.fixture.setup {
        run(session.as_ref(), statement, Vec::new(), Some(30_000))
            .await
            .unwrap_or_else(|e| panic!("fixture statement failed: {e}\n{statement}"));
    }
    session
}

/// `test` answers with a version and a latency.
pub async fn test_reports_the_server(target: &Target) {
    let session = open(target, &target.config).await;
    let info = session.test().await.expect("test passes");
    assert!(!info.version.is_empty());
    assert!(
        info.latency_ms > 0.0 && info.latency_ms < 5_000.0,
        "{}",
        info.latency_ms
    );
    session.close().await;
}

/// `list_databases` includes the connection's database.
pub async fn databases_include_the_connections(target: &Target) {
    let session = open(target, &target.config).await;
    let names = session
        .list_databases()
        .await
        .expect("databases are listed");
    assert!(names.contains(&target.fixture.database), "{names:?}");
    session.close().await;
}

fn find<'a>(
    schemas: &'a [SchemaInfo],
    schema: &str,
    table: &str,
) -> &'a plugboard_connector::TableInfo {
    schemas
        .iter()
        .find(|s| s.name == schema)
        .unwrap_or_else(|| panic!("schema {schema} not found"))
        .tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("table {schema}.{table} not found"))
}

/// Introspection finds every fixture object, with types, keys and indexes right.
pub async fn introspection_finds_the_fixture(target: &Target) {
    let session = with_fixture(target).await;
    let schemas = session
        .introspect(&IntrospectOptions::default())
        .await
        .expect("introspection");
    let schema = &target.fixture.schema;

    let customers = find(&schemas, schema, "kit_customers");
    assert_eq!(customers.kind, TableKind::Table);
    if target.fixture.comments {
        assert_eq!(customers.comment.as_deref(), Some("People who buy"));
    }
    let column = |name: &str| {
        customers
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    let id = column("id");
    assert!(
        matches!(
            id.common_type,
            CommonType::Int16 | CommonType::Int32 | CommonType::Int64
        ),
        "{id:?}"
    );
    assert!(id.primary_key && !id.nullable, "{id:?}");
    let mut expected_types = vec![
        ("name", CommonType::Text),
        ("balance", CommonType::Decimal),
        ("joined", CommonType::Date),
    ];
    if target.fixture.booleans {
        expected_types.push(("active", CommonType::Boolean));
    }
    for (name, expected) in expected_types {
        assert_eq!(
            column(name).common_type,
            expected,
            "{name}: {:?}",
            column(name)
        );
    }
    assert!(!column("name").nullable);
    assert!(column("note").nullable);
    let positions: Vec<u32> = customers.columns.iter().map(|c| c.position).collect();
    assert_eq!(positions, (1..=positions.len() as u32).collect::<Vec<_>>());

    let orders = find(&schemas, schema, "kit_orders");
    if target.fixture.constraints {
        constraints_are_found(orders);
    }
    assert_eq!(
        find(&schemas, schema, "kit_big_orders").kind,
        TableKind::View
    );

    // A table filter leaves everything else out.
    let only = IntrospectOptions {
        tables: vec!["kit_orders".into()],
        ..Default::default()
    };
    let filtered = session
        .introspect(&only)
        .await
        .expect("filtered introspection");
    let names: Vec<&str> = filtered
        .iter()
        .flat_map(|s| s.tables.iter().map(|t| t.name.as_str()))
        .collect();
    assert_eq!(names, ["kit_orders"]);
    session.close().await;
}

/// `kit_orders`' foreign key and secondary index, where the engine has them.
fn constraints_are_found(orders: &plugboard_connector::TableInfo) {
    let fk = orders
        .foreign_keys
        .first()
        .expect("kit_orders has a foreign key");
    assert_eq!(fk.columns, ["customer_id"]);
    assert_eq!(fk.referenced_table, "kit_customers");
    assert_eq!(fk.referenced_columns, ["id"]);
    let index = orders
        .indexes
        .iter()
        .find(|i| i.name == "kit_orders_customer_idx")
        .expect("kit_orders_customer_idx");
    assert_eq!(index.columns, ["customer_id"]);
    assert!(!index.unique);
}

/// Parameters bind, NULLs and non-ASCII text come back as they went in, and rows arrive in
/// batches no larger than asked.
pub async fn queries_bind_parameters_and_keep_values(target: &Target) {
    let session = with_fixture(target).await;
    let rows = run(
        session.as_ref(),
        &target.fixture.param_query,
        vec![Value::Int(1)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(rows, [[Value::Text("Zoë".into())]]);
    let rows = run(
        session.as_ref(),
        "SELECT note FROM kit_customers ORDER BY id",
        Vec::new(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            [Value::Null],
            [Value::Text("日本語 ✓".into())],
            [Value::Null]
        ]
    );

    let mut stream = session
        .query(QueryRequest {
            sql: "SELECT id FROM kit_customers ORDER BY id".into(),
            params: Vec::new(),
            timeout_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(stream.columns().len(), 1);
    assert_eq!(stream.columns()[0].name, "id");
    let mut sizes = Vec::new();
    while let Some(batch) = stream.next_batch(2).await.unwrap() {
        sizes.push(batch.len());
    }
    assert_eq!(sizes, [2, 1]);
    session.close().await;
}

/// A query past its deadline fails with a timeout and stops on the target; the session
/// stays usable.
pub async fn timeouts_stop_the_query(target: &Target) {
    let session = open(target, &target.config).await;
    let started = Instant::now();
    let result = run(
        session.as_ref(),
        &target.fixture.slow_query,
        Vec::new(),
        Some(500),
    )
    .await;
    assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    if let Some(running) = &target.running {
        let deadline = Instant::now() + Duration::from_secs(5);
        while running("kit_slow") > 0 {
            assert!(
                Instant::now() < deadline,
                "the query still runs on the target"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let started = Instant::now();
    let rows = run(session.as_ref(), "SELECT 1", Vec::new(), Some(5_000))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the session was still busy"
    );
    session.close().await;
}

/// A syntax error is a query error carrying the engine's own code.
pub async fn syntax_errors_carry_the_engine_code(target: &Target) {
    let session = open(target, &target.config).await;
    match run(
        session.as_ref(),
        &target.fixture.syntax_error,
        Vec::new(),
        None,
    )
    .await
    {
        Err(Error::Query(q)) => assert_eq!(
            q.code.as_deref(),
            Some(target.fixture.syntax_error_code.as_str()),
            "{q:?}"
        ),
        other => panic!("expected a query error, got {other:?}"),
    }
    session.close().await;
}

/// A wrong password is an authentication error; an unreachable port a connection error.
pub async fn failures_are_classified(target: &Target) {
    if let Some(config) = &target.wrong_password {
        let session = open(target, config).await;
        let result = session.test().await;
        assert!(
            matches!(result, Err(Error::Authentication(_))),
            "{result:?}"
        );
    }
    if let Some(config) = &target.unreachable {
        let session = open(target, config).await;
        let result = session.test().await;
        assert!(matches!(result, Err(Error::Connection(_))), "{result:?}");
    }
}

/// One module named after the engine, with one test per named kit case; each builds its
/// target with `super::$engine()` and returns early when that gives `None`.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($engine:ident; $($case:ident),+ $(,)?) => {
        mod $engine {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(target) = super::$engine().await {
                        $crate::conformance::$case(&target).await
                    }
                }
            )+
        }
    };
}

/// Generates one test per kit case for each named target constructor (an `async fn() ->
/// Option<Target>` in scope; `None` when the engine is not available here, which the
/// constructor reports on stderr), in a module of that name.
#[macro_export]
macro_rules! conformance {
    ($($engine:ident),+ $(,)?) => {
        $(
            $crate::conformance_cases!($engine;
                test_reports_the_server,
                databases_include_the_connections,
                introspection_finds_the_fixture,
                queries_bind_parameters_and_keep_values,
                timeouts_stop_the_query,
                syntax_errors_carry_the_engine_code,
                failures_are_classified,
            );
        )+
    };
}

/// For document stores: the fixture's `kit_customers` collection is sampled into fields
/// with their presence and type shares, mixed types reported as such, and its indexes
/// found.
pub async fn documents_are_sampled_with_their_types(target: &Target) {
    let session = open(target, &target.config).await;
    let schemas = session
        .introspect(&IntrospectOptions::default())
        .await
        .expect("introspection");
    let customers = find(&schemas, &target.fixture.schema, "kit_customers");
    assert_eq!(customers.kind, TableKind::Collection);
    assert_eq!(customers.row_estimate, Some(3));
    let field = |name: &str| {
        customers
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("field {name}"))
    };
    assert!(field("_id").primary_key);
    assert_eq!(field("name").common_type, CommonType::Text);
    assert_eq!(field("active").common_type, CommonType::Boolean);
    let note = field("note");
    let stats = note.stats.as_ref().expect("sampled fields have stats");
    assert!((stats.presence - 1.0 / 3.0).abs() < 1e-9, "{note:?}");
    let balance = field("balance");
    assert!(balance.data_type.starts_with("mixed("), "{balance:?}");
    assert!(field("address.city").stats.as_ref().unwrap().presence > 0.0);
    assert!(
        customers
            .indexes
            .iter()
            .any(|i| i.columns == ["email"] && i.unique),
        "{:?}",
        customers.indexes
    );
    session.close().await;
}

/// For document stores: a command (the fixture's `param_query`, which selects `Zoë`)
/// returns documents, non-ASCII text intact, in batches no larger than asked.
pub async fn commands_return_documents(target: &Target) {
    let session = open(target, &target.config).await;
    let rows = run(
        session.as_ref(),
        &target.fixture.param_query,
        Vec::new(),
        Some(10_000),
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    match &rows[0][0] {
        Value::Json(doc) => assert_eq!(doc["name"], "Zoë", "{doc}"),
        other => panic!("expected a document, got {other:?}"),
    }
    let mut stream = session
        .query(QueryRequest {
            sql: r#"{"find": "kit_customers", "sort": {"_id": 1}}"#.into(),
            params: Vec::new(),
            timeout_ms: None,
        })
        .await
        .unwrap();
    let mut sizes = Vec::new();
    while let Some(batch) = stream.next_batch(2).await.unwrap() {
        sizes.push(batch.len());
    }
    assert_eq!(sizes, [2, 1]);
    let bad = run(
        session.as_ref(),
        &target.fixture.syntax_error,
        Vec::new(),
        None,
    )
    .await;
    assert!(
        matches!(
            bad,
            Err(Error::InvalidInput(_) | Error::Unsupported(_) | Error::Query(_))
        ),
        "{bad:?}"
    );
    session.close().await;
}

/// The kit's cases for document stores: the engine-neutral ones, and two of their own.
#[macro_export]
macro_rules! conformance_documents {
    ($($engine:ident),+ $(,)?) => {
        $(
            $crate::conformance_cases!($engine;
                test_reports_the_server,
                databases_include_the_connections,
                documents_are_sampled_with_their_types,
                commands_return_documents,
                failures_are_classified,
            );
        )+
    };
}
