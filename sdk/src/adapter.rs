//! The glue between the generated `Guest*` traits and [`Connector`]/[`Rows`]: the
//! [`export_connector!`](crate::export_connector) macro names these types.

use std::cell::RefCell;

use crate::bindings::exports::plugboard::connector::connector::{
    GuestResultStream, GuestSession, ResultStream, Session,
};
use crate::{
    ColumnMeta, Config, ConnectionConfig, Connector, Error, IntrospectOptions, QueryRequest, Row,
    Rows, SchemaInfo, ServerInfo,
};

/// A [`Connector`] as the contract's `session` resource.
pub struct SessionAdapter<C: Connector>(C);

impl<C: Connector> GuestSession for SessionAdapter<C> {
    fn open(config: ConnectionConfig) -> Result<Session, Error> {
        let config = Config::from_wit(config)?;
        Ok(Session::new(SessionAdapter(C::open(config)?)))
    }

    fn test(&self) -> Result<ServerInfo, Error> {
        self.0.test()
    }

    fn list_databases(&self) -> Result<Vec<String>, Error> {
        self.0.list_databases()
    }

    fn introspect(&self, options: IntrospectOptions) -> Result<Vec<crate::SchemaInfo>, Error> {
        let schemas: Vec<SchemaInfo> = self.0.introspect(options)?;
        Ok(schemas)
    }

    fn query(&self, request: QueryRequest) -> Result<ResultStream, Error> {
        let rows = self.0.query(request)?;
        Ok(ResultStream::new(StreamAdapter(RefCell::new(rows))))
    }
}

/// [`Rows`] as the contract's `result-stream` resource (whose methods take `&self`).
pub struct StreamAdapter(RefCell<Box<dyn Rows>>);

impl GuestResultStream for StreamAdapter {
    fn columns(&self) -> Vec<ColumnMeta> {
        self.0.borrow().columns()
    }

    fn next_batch(&self, max_rows: u32) -> Result<Option<Vec<Row>>, Error> {
        self.0.borrow_mut().next_batch(max_rows.max(1))
    }

    fn rows_affected(&self) -> Option<u64> {
        self.0.borrow().rows_affected()
    }
}
