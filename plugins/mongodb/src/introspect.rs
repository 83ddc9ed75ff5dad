//! Introspection: for each collection of the chosen databases, its indexes, its estimated
//! document count, and fields inferred from a `$sample` of its documents (bounded in size
//! and, on the server, in time).

use futures_util::StreamExt as _;
use mongodb::Client;
use mongodb::bson::{Document, doc};
use plugboard_connector::{IndexInfo, IntrospectOptions, Result, SchemaInfo, TableInfo, TableKind};

use crate::connect::Target;
use crate::error;
use crate::infer::Inference;

pub(crate) async fn introspect(
    client: &Client,
    target: &Target,
    database: &str,
    options: &IntrospectOptions,
) -> Result<Vec<SchemaInfo>> {
    let databases: Vec<String> = if options.schemas.is_empty() {
        vec![database.to_owned()]
    } else {
        options.schemas.clone()
    };
    let sample_size = options.sample_size.unwrap_or(target.sample_size).max(1);
    let mut schemas = Vec::new();
    for name in databases {
        let db = client.database(&name);
        let mut collections = db
            .list_collection_names()
            .await
            .map_err(|e| error::map(e, "listing collections"))?;
        collections.retain(|c| {
            !c.starts_with("system.") && (options.tables.is_empty() || options.tables.contains(c))
        });
        collections.sort();
        let mut tables = Vec::with_capacity(collections.len());
        for collection_name in collections {
            let collection = db.collection::<Document>(&collection_name);
            let row_estimate = if options.include.row_estimates {
                collection
                    .estimated_document_count()
                    .await
                    .ok()
                    .map(|n| n as i64)
            } else {
                None
            };
            let mut indexes = Vec::new();
            if options.include.indexes {
                let mut cursor = collection
                    .list_indexes()
                    .await
                    .map_err(|e| error::map(e, "listing indexes"))?;
                while let Some(index) = cursor.next().await {
                    let index = index.map_err(|e| error::map(e, "listing indexes"))?;
                    let name = index
                        .options
                        .as_ref()
                        .and_then(|o| o.name.clone())
                        .unwrap_or_default();
                    indexes.push(IndexInfo {
                        columns: index.keys.keys().cloned().collect(),
                        unique: name == "_id_"
                            || index
                                .options
                                .as_ref()
                                .and_then(|o| o.unique)
                                .unwrap_or(false),
                        primary: name == "_id_",
                        method: Some("btree".into()),
                        definition: Some(index.keys.to_string()),
                        name,
                    });
                }
            }
            let mut inference = Inference::new(target.max_depth);
            if options.include.columns {
                let mut cursor = collection
                    .aggregate(vec![doc! {"$sample": {"size": i64::from(sample_size)}}])
                    .max_time(target.sample_time)
                    .await
                    .map_err(|e| error::map(e, "sampling documents"))?;
                while let Some(document) = cursor.next().await {
                    inference.add(&document.map_err(|e| error::map(e, "sampling documents"))?);
                }
            }
            let comment = (options.include.columns && options.include.comments).then(|| {
                format!(
                    "fields inferred from a sample of {} document(s){}",
                    inference.documents(),
                    if inference.dropped_paths > 0 {
                        format!(
                            "; {} field paths past the limit not shown",
                            inference.dropped_paths
                        )
                    } else {
                        String::new()
                    }
                )
            });
            tables.push(TableInfo {
                name: collection_name,
                kind: TableKind::Collection,
                columns: inference.columns(),
                indexes,
                foreign_keys: Vec::new(),
                row_estimate,
                comment,
            });
        }
        schemas.push(SchemaInfo { name, tables });
    }
    Ok(schemas)
}
