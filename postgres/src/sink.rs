//! The `postgres` sink: one transaction per batch into a PostgreSQL table.
//!
//! # How a batch is written
//!
//! The sink connects on its first write (and again after any connection
//! error), creates the table when it is missing, then per batch runs
//! `BEGIN`, one multi-row `INSERT ... SELECT * FROM unnest($1, $2, $3)` (three
//! array parameters: timestamps, bodies, fields as JSON) and `COMMIT`.
//! `write` returns `Ok` after the `COMMIT` succeeded, so the channel's take
//! is committed only once the rows are.
//!
//! # Errors
//!
//! * The connection fails or the server goes away (a restart): the
//!   transaction is lost, the client is dropped, and the runtime retries the
//!   batch after its back-off (100 ms doubling to 30 s); the next write
//!   connects again. Nothing is lost. Should the connection break after the
//!   server committed but before its answer arrived, the batch is written
//!   twice (at-least-once).
//! * The database refuses a row for its data (SQLSTATE class 22, data
//!   exception: a NUL character in a body or a field, a value out of range;
//!   23, a constraint of a user-made table; 54, a value too large for an
//!   index): the batch is written again in one transaction, with deferred
//!   constraints checked at once, bisecting under savepoints until the
//!   refused rows are found; those are returned as rejected
//!   ([`SinkError::Rejected`]), so the runtime sends them to the dead-letter
//!   channel or counts and logs them, and the others are committed once.
//!   Any other error (the connection, a missing privilege, a table without
//!   the columns) is transient: retried until fixed.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use serde::Deserialize;
use sluice_core::prelude::*;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// The `postgres` sink's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A connection URL, `postgres://user:password@host:port/database`
    /// (or a `key=value` connection string).
    pub url: String,
    /// The table rows go to: `name` or `schema.name` (letters, digits and
    /// `_`). Created when missing with columns `timestamp timestamptz`,
    /// `message text`, `fields jsonb`.
    #[serde(default = "default_table")]
    pub table: String,
    /// How long connecting may take before the attempt counts as failed.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
}

fn default_table() -> String {
    "logs".to_string()
}

fn default_connect_timeout() -> Duration {
    Duration(StdDuration::from_secs(5))
}

/// Whether `s` is a plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`).
fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

impl SinkConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(e) = tokio_postgres::Config::from_str(&self.url) {
            problems.push(Problem::at("url", format!("not a PostgreSQL URL: {e}")));
        }
        let parts: Vec<&str> = self.table.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|p| identifier(p)) {
            problems.push(Problem::at(
                "table",
                format!(
                    "`{}` is not a table name: use letters, digits and `_`, as `name` or `schema.name`",
                    self.table
                ),
            ));
        }
        problems.extend(self.connect_timeout.zero_problem("connect_timeout", "5s"));
        problems
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| BuildError::Other(format!("url: {e}")))?;
        // Quoted, so that names are taken as written (validated above).
        let table = self
            .table
            .split('.')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".");
        Ok(Box::new(PostgresSink {
            id: cx.id.clone(),
            config,
            connect_timeout: self.connect_timeout.get(),
            insert: format!(
                "INSERT INTO {table} (\"timestamp\", message, fields) \
                 SELECT t::timestamptz, m, f::jsonb \
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS r(t, m, f)"
            ),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 \"timestamp\" timestamptz NOT NULL, \
                 message text NOT NULL, \
                 fields jsonb NOT NULL DEFAULT '{{}}'::jsonb)"
            ),
            client: None,
            rows: Rows::default(),
        }))
    }
}

/// A batch encoded as the three array parameters.
#[derive(Default)]
struct Rows {
    timestamps: Vec<String>,
    messages: Vec<String>,
    fields: Vec<String>,
}

impl Rows {
    fn fill(&mut self, batch: &Batch) {
        self.timestamps.clear();
        self.messages.clear();
        self.fields.clear();
        for e in &batch.events {
            self.timestamps.push(e.timestamp.to_string());
            self.messages
                .push(String::from_utf8_lossy(&e.body).into_owned());
            self.fields
                .push(serde_json::to_string(&e.fields).unwrap_or_else(|_| "{}".to_string()));
        }
    }
}

/// The `postgres` sink (see the [module docs](self)).
pub struct PostgresSink {
    /// The component id, for logs.
    id: String,
    config: tokio_postgres::Config,
    connect_timeout: StdDuration,
    /// The batch insert.
    insert: String,
    /// The `CREATE TABLE IF NOT EXISTS`.
    create: String,
    /// The open connection, if any.
    client: Option<Client>,
    /// Reused parameter buffers.
    rows: Rows,
}

/// Why a batch failed.
enum Failure {
    /// Worth retrying the same batch (connection, server restart).
    Retry(String),
    /// A row's data was refused: find which.
    Data(String),
}

fn classify(e: tokio_postgres::Error) -> Failure {
    let text = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    match e.code().map(SqlState::code) {
        // Class 22 (data exception: a NUL character, bad JSON, a value out
        // of range), 23 (integrity constraint violation) and 54 (program
        // limit exceeded: a value too large for an index of the table): the
        // rows, not the connection.
        Some(code) if ["22", "23", "54"].iter().any(|c| code.starts_with(c)) => Failure::Data(text),
        _ => Failure::Retry(text),
    }
}

impl PostgresSink {
    async fn connect(&mut self) -> Result<(), String> {
        let attempt = tokio::time::timeout(self.connect_timeout, self.config.connect(NoTls)).await;
        let (client, connection) = match attempt {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
            Err(_) => {
                return Err(format!(
                    "cannot connect: no answer within {:?}",
                    self.connect_timeout
                ))
            }
        };
        let id = self.id.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(id = %id, "connection closed: {e}");
            }
        });
        client
            .batch_execute(&self.create)
            .await
            .map_err(|e| format!("cannot create the table: {e}"))?;
        tracing::info!(id = %self.id, "connected");
        self.client = Some(client);
        Ok(())
    }

    async fn insert_batch(&mut self) -> Result<(), Failure> {
        let Some(client) = self.client.as_mut() else {
            return Err(Failure::Retry("not connected".to_string()));
        };
        let tx = client.transaction().await.map_err(classify)?;
        tx.execute(
            &self.insert,
            &[
                &self.rows.timestamps,
                &self.rows.messages,
                &self.rows.fields,
            ],
        )
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// Inserts the batch in one transaction, finding the rows the server
    /// refuses by bisection: each part is inserted under a savepoint; a part
    /// refused for its data is rolled back to the savepoint and split in
    /// two, down to single rows, which are returned as refused. The others
    /// are committed once, in their order. With `k` refused rows among `n`
    /// this takes about `2k·log2(n)` statements instead of `n`.
    async fn insert_finding_refused(&mut self) -> Result<Vec<(usize, String)>, Failure> {
        let Some(client) = self.client.as_mut() else {
            return Err(Failure::Retry("not connected".to_string()));
        };
        let rows = &self.rows;
        let mut rejected = Vec::new();
        let mut tx = client.transaction().await.map_err(classify)?;
        // A deferred constraint would otherwise fail only at COMMIT, for the
        // whole transaction, without saying which row.
        tx.batch_execute("SET CONSTRAINTS ALL IMMEDIATE")
            .await
            .map_err(classify)?;
        let stmt = tx.prepare(&self.insert).await.map_err(classify)?;
        // Parts still to insert, the next on top.
        let mut parts = vec![(0, rows.timestamps.len())];
        while let Some((lo, hi)) = parts.pop() {
            let sp = tx.savepoint("part").await.map_err(classify)?;
            let r = sp
                .execute(
                    &stmt,
                    &[
                        &&rows.timestamps[lo..hi],
                        &&rows.messages[lo..hi],
                        &&rows.fields[lo..hi],
                    ],
                )
                .await;
            match r {
                Ok(_) => sp.commit().await.map_err(classify)?,
                Err(e) => match classify(e) {
                    Failure::Data(reason) => {
                        sp.rollback().await.map_err(classify)?;
                        if hi - lo == 1 {
                            rejected.push((lo, reason));
                        } else {
                            let mid = lo + (hi - lo) / 2;
                            parts.push((mid, hi));
                            parts.push((lo, mid));
                        }
                    }
                    retry => return Err(retry),
                },
            }
        }
        tx.commit().await.map_err(classify)?;
        Ok(rejected)
    }

    fn lost(&mut self, e: String) -> SinkError {
        // The connection may be half dead: start afresh next time.
        self.client = None;
        SinkError::Retry(format!("postgres sink `{}`: {e}", self.id))
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            if let Err(e) = self.connect().await {
                return Err(self.lost(e));
            }
        }
        self.rows.fill(batch);
        match self.insert_batch().await {
            Ok(()) => Ok(()),
            Err(Failure::Retry(e)) => Err(self.lost(e)),
            Err(Failure::Data(_)) => match self.insert_finding_refused().await {
                Ok(rejected) if rejected.is_empty() => Ok(()),
                Ok(rejected) => Err(SinkError::Rejected(rejected)),
                Err(Failure::Retry(e) | Failure::Data(e)) => Err(self.lost(e)),
            },
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.client = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        sluice_core::config::from_yaml_str(yaml).unwrap()
    }

    #[test]
    fn options_are_checked_without_connecting() {
        let c = config("url: postgres://app@db.example:5432/logs\ntable: public.events\n");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let bad = config("url: 'postgres://a@b:notaport/x'\ntable: \"x; drop table y\"\n");
        let problems = bad.validate();
        let keys: Vec<_> = problems.iter().filter_map(|p| p.key.as_deref()).collect();
        assert_eq!(keys, ["url", "table"], "{problems:?}");
        assert!(sluice_core::config::from_yaml_str::<Config>("url: x\ntabel: y\n").is_err());
    }
}
