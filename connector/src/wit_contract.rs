//! Checks that `wit/connector@0.1.0` parses, with its WASI dependencies, and that the names
//! this crate mirrors match it case for case.

use std::path::PathBuf;

use wit_parser::{Resolve, TypeDefKind};

use crate::{CommonType, Error, QueryError, TableKind};

fn resolve() -> (Resolve, wit_parser::PackageId) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../wit/connector@0.1.0");
    let mut resolve = Resolve::new();
    let (package, _files) = resolve.push_dir(&dir).expect("the connector WIT parses");
    (resolve, package)
}

fn cases(resolve: &Resolve, package: wit_parser::PackageId, name: &str) -> Vec<String> {
    let types = resolve.packages[package].interfaces["types"];
    let id = resolve.interfaces[types].types[name];
    match &resolve.types[id].kind {
        TypeDefKind::Enum(e) => e.cases.iter().map(|c| c.name.clone()).collect(),
        TypeDefKind::Variant(v) => v.cases.iter().map(|c| c.name.clone()).collect(),
        TypeDefKind::Flags(f) => f.flags.iter().map(|c| c.name.clone()).collect(),
        other => panic!("{name} is a {other:?}, not an enum, variant or flags"),
    }
}

fn kebab(serde_name: &str) -> String {
    serde_name.replace('_', "-")
}

#[test]
fn package_is_versioned_and_exports_the_connector() {
    let (resolve, package) = resolve();
    let name = &resolve.packages[package].name;
    assert_eq!(name.namespace, "plugboard");
    assert_eq!(name.name, "connector");
    assert_eq!(
        name.version.as_ref().map(|v| v.to_string()).as_deref(),
        Some(crate::CONTRACT_VERSION)
    );
    let world = resolve.packages[package].worlds["plugin"];
    let exports: Vec<String> = resolve.worlds[world]
        .exports
        .keys()
        .map(|k| resolve.name_world_key(k))
        .collect();
    assert_eq!(exports, ["plugboard:connector/connector@0.1.0"]);
    let imports: Vec<String> = resolve.worlds[world]
        .imports
        .keys()
        .map(|k| resolve.name_world_key(k))
        .collect();
    assert!(imports.contains(&"wasi:http/outgoing-handler@0.2.12".to_owned()));
    assert!(imports.contains(&"plugboard:connector/host@0.1.0".to_owned()));
}

#[test]
fn error_variant_matches_the_rust_error() {
    let (resolve, package) = resolve();
    let rust: Vec<String> = [
        Error::Configuration(String::new()),
        Error::Authentication(String::new()),
        Error::Connection(String::new()),
        Error::Timeout(String::new()),
        Error::Cancelled,
        Error::Query(QueryError {
            code: None,
            message: String::new(),
            detail: None,
            position: None,
        }),
        Error::InvalidInput(String::new()),
        Error::Unsupported(String::new()),
    ]
    .iter()
    .map(|e| kebab(e.code()))
    .collect();
    assert_eq!(cases(&resolve, package, "error"), rust);
}

#[test]
fn vocabularies_match_the_rust_enums() {
    let (resolve, package) = resolve();
    let names = |json: serde_json::Value| kebab(json.as_str().unwrap());
    for wit_name in cases(&resolve, package, "common-type") {
        let rust: CommonType =
            serde_json::from_value(serde_json::Value::String(wit_name.replace('-', "_")))
                .unwrap_or_else(|_| panic!("common-type {wit_name} has no CommonType"));
        assert_eq!(names(serde_json::to_value(rust).unwrap()), wit_name);
    }
    for wit_name in cases(&resolve, package, "table-kind") {
        let rust: TableKind =
            serde_json::from_value(serde_json::Value::String(wit_name.replace('-', "_")))
                .unwrap_or_else(|_| panic!("table-kind {wit_name} has no TableKind"));
        assert_eq!(names(serde_json::to_value(rust).unwrap()), wit_name);
    }
    let include = serde_json::to_value(crate::IntrospectInclude::default()).unwrap();
    let rust_flags: Vec<String> = include
        .as_object()
        .unwrap()
        .keys()
        .map(|k| kebab(k))
        .collect();
    let mut wit_flags = cases(&resolve, package, "introspect-include");
    let mut rust_sorted = rust_flags.clone();
    wit_flags.sort();
    rust_sorted.sort();
    assert_eq!(wit_flags, rust_sorted);
}
