//! Schema inference for collections from a sample of their documents.
//!
//! Every field is tracked by its dotted path (`address.city`) down to a depth limit; for
//! each, the kit counts in how many sampled documents it appears and with which BSON types,
//! so that a field that is sometimes a string and sometimes a number is reported as exactly
//! that. Array elements are tracked as `path[]`, with their types, and the arrays' lengths.
//! Memory stays bounded whatever the documents: at most [`MAX_PATHS`] paths are tracked.

use std::collections::BTreeMap;

use mongodb::bson::{Bson, Document};
use plugboard_connector::{ColumnInfo, CommonType, FieldStats, TypeShare};

/// Most distinct field paths tracked per collection; further paths are counted, not kept.
pub const MAX_PATHS: usize = 2_000;

/// What the sample said about one path.
#[derive(Debug, Default, Clone)]
struct PathStats {
    /// Documents (or, for `path[]`, array elements) in which the path was seen.
    seen: u64,
    /// Occurrences by BSON type name.
    types: BTreeMap<&'static str, u64>,
    /// Order of first sighting, for stable column positions.
    first_seen: usize,
    /// For arrays: the shortest and longest seen.
    lengths: Option<(usize, usize)>,
}

/// Accumulates documents of one collection.
#[derive(Debug)]
pub struct Inference {
    max_depth: usize,
    documents: u64,
    paths: BTreeMap<String, PathStats>,
    /// Paths left untracked because [`MAX_PATHS`] was reached.
    pub dropped_paths: u64,
}

/// The BSON type name as MongoDB's `$type` spells it.
pub fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null | Bson::Undefined => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => "javascript",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Symbol(_) => "symbol",
        Bson::Decimal128(_) => "decimal",
        Bson::MaxKey => "maxKey",
        Bson::MinKey => "minKey",
        Bson::DbPointer(_) => "dbPointer",
    }
}

/// The common type of a BSON type name.
pub fn common_type(name: &str) -> CommonType {
    match name {
        "double" => CommonType::Float64,
        "string" | "symbol" | "regex" | "javascript" => CommonType::Text,
        "array" => CommonType::Array,
        "object" => CommonType::Document,
        "bool" => CommonType::Boolean,
        "int" => CommonType::Int32,
        "long" => CommonType::Int64,
        "decimal" => CommonType::Decimal,
        "date" => CommonType::Timestamptz,
        "binData" => CommonType::Binary,
        _ => CommonType::Other,
    }
}

impl Inference {
    /// An empty inference that descends `max_depth` levels into nested documents.
    pub fn new(max_depth: usize) -> Inference {
        Inference {
            max_depth: max_depth.max(1),
            documents: 0,
            paths: BTreeMap::new(),
            dropped_paths: 0,
        }
    }

    /// Adds one sampled document.
    pub fn add(&mut self, document: &Document) {
        self.documents += 1;
        self.walk(document, "", 1);
    }

    fn stats(&mut self, path: String) -> Option<&mut PathStats> {
        if !self.paths.contains_key(&path) {
            if self.paths.len() >= MAX_PATHS {
                self.dropped_paths += 1;
                return None;
            }
            let first_seen = self.paths.len();
            self.paths.insert(
                path.clone(),
                PathStats {
                    first_seen,
                    ..Default::default()
                },
            );
        }
        self.paths.get_mut(&path)
    }

    fn walk(&mut self, document: &Document, prefix: &str, depth: usize) {
        for (key, value) in document {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            self.record(&path, value);
            match value {
                Bson::Document(inner) if depth < self.max_depth => {
                    self.walk(inner, &path, depth + 1)
                }
                Bson::Array(items) => {
                    let element_path = format!("{path}[]");
                    for item in items {
                        self.record(&element_path, item);
                        if let (Bson::Document(inner), true) = (item, depth < self.max_depth) {
                            self.walk(inner, &element_path, depth + 1);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn record(&mut self, path: &str, value: &Bson) {
        let Some(stats) = self.stats(path.to_owned()) else {
            return;
        };
        stats.seen += 1;
        *stats.types.entry(type_name(value)).or_default() += 1;
        if let Bson::Array(items) = value {
            let n = items.len();
            stats.lengths = Some(match stats.lengths {
                None => (n, n),
                Some((lo, hi)) => (lo.min(n), hi.max(n)),
            });
        }
    }

    /// How many documents were added.
    pub fn documents(&self) -> u64 {
        self.documents
    }

    /// One column per tracked path, in order of first sighting.
    pub fn columns(&self) -> Vec<ColumnInfo> {
        let mut paths: Vec<(&String, &PathStats)> = self.paths.iter().collect();
        paths.sort_by_key(|(_, s)| s.first_seen);
        paths
            .into_iter()
            .enumerate()
            .map(|(i, (path, stats))| {
                let mut types: Vec<(&'static str, u64)> =
                    stats.types.iter().map(|(t, n)| (*t, *n)).collect();
                types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                let non_null: Vec<&str> = types
                    .iter()
                    .map(|(t, _)| *t)
                    .filter(|t| *t != "null")
                    .collect();
                let (data_type, common) = match non_null.as_slice() {
                    [] => ("null".to_owned(), CommonType::Other),
                    [one] => (one.to_string(), common_type(one)),
                    many => (format!("mixed({})", many.join(", ")), CommonType::Other),
                };
                let data_type = match stats.lengths {
                    Some((lo, hi)) if data_type == "array" => format!("array(length {lo}..{hi})"),
                    _ => data_type,
                };
                // Element paths are shares of elements, not of documents.
                let denominator = if path.ends_with("[]") {
                    stats.seen
                } else {
                    self.documents.max(1)
                };
                let presence = if path.ends_with("[]") {
                    1.0
                } else {
                    stats.seen as f64 / denominator as f64
                };
                ColumnInfo {
                    name: path.clone(),
                    position: i as u32 + 1,
                    data_type,
                    common_type: common,
                    nullable: presence < 1.0 || stats.types.contains_key("null"),
                    default: None,
                    primary_key: path == "_id",
                    comment: None,
                    stats: Some(FieldStats {
                        presence,
                        types: types
                            .iter()
                            .map(|(t, n)| TypeShare {
                                common_type: common_type(t),
                                data_type: t.to_string(),
                                share: *n as f64 / stats.seen.max(1) as f64,
                            })
                            .collect(),
                    }),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    fn column<'a>(columns: &'a [ColumnInfo], name: &str) -> &'a ColumnInfo {
        columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn presence_and_mixed_types_are_reported_not_collapsed() {
        let mut inference = Inference::new(3);
        inference.add(&doc! {"_id": 1, "name": "Zoë", "age": 30});
        inference.add(&doc! {"_id": 2, "name": "Ann", "age": "old"});
        inference.add(&doc! {"_id": 3, "name": null});
        inference.add(&doc! {"_id": 4, "name": "Bo", "age": 41_i64});
        let columns = inference.columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_id", "name", "age"]);
        let id = column(&columns, "_id");
        assert!(id.primary_key && !id.nullable);
        assert_eq!(id.common_type, CommonType::Int32);
        let name = column(&columns, "name");
        assert_eq!(name.data_type, "string");
        assert!(name.nullable);
        let age = column(&columns, "age");
        assert_eq!(age.data_type, "mixed(int, long, string)");
        assert_eq!(age.common_type, CommonType::Other);
        let stats = age.stats.as_ref().unwrap();
        assert_eq!(stats.presence, 0.75);
        let shares: Vec<(&str, f64)> = stats
            .types
            .iter()
            .map(|t| (t.data_type.as_str(), t.share))
            .collect();
        assert_eq!(shares.len(), 3);
        assert!(shares.iter().all(|(_, s)| (*s - 1.0 / 3.0).abs() < 1e-9));
    }

    #[test]
    fn nested_documents_and_arrays_get_dotted_paths_to_the_depth_limit() {
        let mut inference = Inference::new(2);
        inference.add(&doc! {
            "address": {"city": "Paris", "geo": {"lat": 1.5, "deep": {"x": 1}}},
            "tags": ["a", "b", 3],
            "items": [{"sku": "x", "qty": 1}, {"sku": "y"}],
        });
        inference.add(&doc! {"tags": []});
        let columns = inference.columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"address.city"));
        assert!(names.contains(&"address.geo"));
        assert!(
            !names.contains(&"address.geo.lat"),
            "depth 2 stops there: {names:?}"
        );
        assert_eq!(
            column(&columns, "address").common_type,
            CommonType::Document
        );
        let tags = column(&columns, "tags");
        assert_eq!(tags.data_type, "array(length 0..3)");
        assert_eq!(tags.stats.as_ref().unwrap().presence, 1.0);
        assert_eq!(column(&columns, "tags[]").data_type, "mixed(string, int)");
        let qty = column(&columns, "items[].qty");
        assert_eq!(qty.common_type, CommonType::Int32);
    }

    #[test]
    fn memory_is_bounded_by_the_number_of_paths() {
        let mut inference = Inference::new(3);
        for i in 0..(MAX_PATHS + 500) {
            let mut d = Document::new();
            d.insert(format!("f{i}"), 1);
            inference.add(&d);
        }
        assert_eq!(inference.columns().len(), MAX_PATHS);
        assert_eq!(inference.dropped_paths, 500);
    }
}
