//! The `clickhouse` sink's options, checked without I/O.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use serde::Deserialize;
use sluice_core::prelude::*;

use crate::http::{Client, Endpoint};
use crate::sink::ClickHouseSink;

/// The `clickhouse` sink's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's HTTP interface, `http://host:port` (port 8123 when
    /// omitted).
    pub url: String,
    /// The table: `name` or `database.name` (letters, digits, `_`).
    #[serde(default = "default_table")]
    pub table: String,
    /// Which part of the event goes to which column: `@timestamp`,
    /// `@message`, `@fields` (every field as one JSON object) or a field
    /// path (`http.status`). Default: `timestamp: "@timestamp"`,
    /// `message: "@message"`, `fields: "@fields"`.
    #[serde(default)]
    pub columns: Option<BTreeMap<String, String>>,
    /// Create the table before the first insert: `true` for the default
    /// columns' table (a `MergeTree` ordered by `timestamp`), or the DDL to
    /// run, such as `CREATE TABLE IF NOT EXISTS ...`.
    #[serde(default)]
    pub create_table: CreateTable,
    /// The user (HTTP basic auth); the server's `default` user when absent.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's password.
    #[serde(default)]
    pub password: Option<String>,
    /// Compression of request bodies.
    #[serde(default)]
    pub compression: Compression,
    /// How long one request (connecting included) may take before it counts
    /// as failed and the batch is retried.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// ClickHouse settings sent with every insert
    /// (`insert_distributed_sync: 1`).
    #[serde(default)]
    pub settings: BTreeMap<String, Setting>,
}

/// `create_table`: a flag or the DDL itself.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(untagged)]
pub enum CreateTable {
    /// `true`: the default columns' table; `false`: none (the default).
    Flag(bool),
    /// A statement run as written.
    Ddl(String),
}

impl Default for CreateTable {
    fn default() -> Self {
        CreateTable::Flag(false)
    }
}

/// Compression of request bodies.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain bodies.
    None,
    /// `Content-Encoding: gzip` at the fastest level: rows of repetitive
    /// logs shrink several times for a fraction of the encoding's cost.
    #[default]
    Gzip,
}

/// A setting's value as written in YAML.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(untagged)]
pub enum Setting {
    /// `1`, `-5`.
    Integer(i64),
    /// `true` (sent as 1) or `false` (0).
    Bool(bool),
    /// Anything else, as written.
    Text(String),
}

impl Setting {
    fn text(&self) -> String {
        match self {
            Setting::Integer(i) => i.to_string(),
            Setting::Bool(b) => u8::from(*b).to_string(),
            Setting::Text(s) => s.clone(),
        }
    }
}

fn default_table() -> String {
    "logs".to_string()
}

fn default_timeout() -> Duration {
    Duration(StdDuration::from_secs(30))
}

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The event's timestamp.
    Timestamp,
    /// The body, as text.
    Message,
    /// Every field, as one JSON object.
    Fields,
    /// A field by path; no value (the column's default) when missing.
    Field(String),
}

impl Part {
    fn parse(s: &str) -> Result<Part, String> {
        match s {
            "@timestamp" => Ok(Part::Timestamp),
            "@message" => Ok(Part::Message),
            "@fields" => Ok(Part::Fields),
            _ if s.starts_with('@') => Err(format!(
                "`{s}` is not a part of the event: use `@timestamp`, `@message`, `@fields` or a field name"
            )),
            "" => Err("an empty field name".to_string()),
            _ => Ok(Part::Field(s.to_string())),
        }
    }
}

/// The columns when `columns` is not given.
pub const DEFAULT_COLUMNS: [(&str, &str); 3] = [
    ("timestamp", "@timestamp"),
    ("message", "@message"),
    ("fields", "@fields"),
];

/// Whether `s` is a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`), as
/// ClickHouse takes it without quotes.
fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A column name: an identifier, or `nested.name` for a column of a
/// `Nested` structure.
fn column_name(s: &str) -> bool {
    s.split('.').count() <= 2 && s.split('.').all(identifier)
}

impl Config {
    /// The columns with where each value comes from, in name order.
    pub fn columns(&self) -> Result<Vec<(String, Part)>, Vec<Problem>> {
        let pairs: Vec<(String, String)> = match &self.columns {
            Some(c) => c.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => DEFAULT_COLUMNS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let mut problems = Vec::new();
        let mut out = Vec::new();
        for (name, from) in pairs {
            if !column_name(&name) {
                problems.push(Problem::at(
                    &format!("columns.{name}"),
                    "not a column name: use letters, digits and `_`",
                ));
            }
            match Part::parse(&from) {
                Ok(p) => out.push((name, p)),
                Err(e) => problems.push(Problem::at(&format!("columns.{name}"), e)),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// The query-string settings sent with every request, encoded.
    fn settings_query(&self) -> String {
        let mut q = String::new();
        for (k, v) in &self.settings {
            q.push('&');
            q.push_str(&crate::http::encode_component(k));
            q.push('=');
            q.push_str(&crate::http::encode_component(&v.text()));
        }
        q
    }
}

impl SinkConfig for Config {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(e) = Endpoint::parse(&self.url) {
            problems.push(Problem::at("url", e));
        }
        let parts: Vec<&str> = self.table.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|p| identifier(p)) {
            problems.push(Problem::at(
                "table",
                format!(
                    "`{}` is not a table name: use letters, digits and `_`, as `name` or `database.name`",
                    self.table
                ),
            ));
        }
        if let Some(c) = &self.columns {
            if c.is_empty() {
                problems.push(Problem::at("columns", "name at least one column"));
            }
        }
        if let Err(p) = self.columns() {
            problems.extend(p);
        }
        match &self.create_table {
            CreateTable::Flag(true) if self.columns.is_some() => problems.push(Problem::at(
                "create_table",
                "`true` creates the default columns' table only: with `columns`, give the `CREATE TABLE` statement",
            )),
            CreateTable::Ddl(ddl) if ddl.trim().is_empty() => {
                problems.push(Problem::at("create_table", "an empty statement"))
            }
            _ => {}
        }
        if self.password.is_some() && self.user.is_none() {
            problems.push(Problem::at("password", "a password needs a `user`"));
        }
        for k in self.settings.keys() {
            if !identifier(k) {
                problems.push(Problem::at(
                    &format!("settings.{k}"),
                    "not a setting name: use letters, digits and `_`",
                ));
            }
            if k == "query" || k == "database" {
                problems.push(Problem::at(
                    &format!("settings.{k}"),
                    "set by the sink: use `table` for the database",
                ));
            }
        }
        problems.extend(self.timeout.zero_problem("timeout", "30s"));
        problems
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let endpoint =
            Endpoint::parse(&self.url).map_err(|e| BuildError::Other(format!("url: {e}")))?;
        let columns = self.columns().map_err(|p| {
            BuildError::Other(
                p.iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let create = match &self.create_table {
            CreateTable::Flag(false) => None,
            CreateTable::Flag(true) => Some(format!(
                "CREATE TABLE IF NOT EXISTS {} (timestamp DateTime, message String, fields String) \
                 ENGINE = MergeTree() ORDER BY timestamp",
                self.table
            )),
            CreateTable::Ddl(ddl) => Some(ddl.clone()),
        };
        let auth = self
            .user
            .as_ref()
            .map(|u| (u.clone(), self.password.clone().unwrap_or_default()));
        let client = Client::new(endpoint, auth, self.timeout.get());
        Ok(Box::new(ClickHouseSink::new(
            cx.id.clone(),
            client,
            self.table.clone(),
            columns,
            create,
            self.compression == Compression::Gzip,
            self.settings_query(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        sluice_core::config::from_yaml_str(yaml).unwrap()
    }

    fn keys(c: &Config) -> Vec<String> {
        c.validate().into_iter().filter_map(|p| p.key).collect()
    }

    #[test]
    fn options_are_checked_without_connecting() {
        let c = config(
            "url: http://ch.internal:8123\ntable: logs.access\ncolumns: {ts: '@timestamp', status: http.status}\n\
             create_table: CREATE TABLE IF NOT EXISTS logs.access (ts DateTime, status UInt16) ENGINE = MergeTree() ORDER BY ts\n\
             user: sluice\npassword: x\nsettings: {insert_distributed_sync: 1}\n",
        );
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(
            c.columns().unwrap(),
            [
                ("status".to_string(), Part::Field("http.status".to_string())),
                ("ts".to_string(), Part::Timestamp)
            ]
        );
        let bad = config(
            "url: https://x:8443\ntable: \"a; drop\"\ncolumns: {'b c': '@time'}\ncreate_table: true\n\
             password: x\nsettings: {query: x}\ntimeout: 0s\n",
        );
        assert_eq!(
            keys(&bad),
            [
                "url",
                "table",
                "columns.b c",
                "columns.b c",
                "create_table",
                "password",
                "settings.query",
                "timeout"
            ]
        );
        assert_eq!(
            config("url: http://c\nsettings: {insert_distributed_sync: 1, insert_quorum: true, x: 'a b'}\n")
                .settings_query(),
            "&insert_distributed_sync=1&insert_quorum=1&x=a%20b"
        );
        assert!(sluice_core::config::from_yaml_str::<Config>("url: x\ntabel: y\n").is_err());
        assert!(
            sluice_core::config::from_yaml_str::<Config>("url: x\ncompression: zstd\n").is_err()
        );
    }

    #[test]
    fn the_default_columns_and_table() {
        let c = config("url: http://127.0.0.1:8123\ncreate_table: true\n");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let cols: Vec<_> = c.columns().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(cols, ["timestamp", "message", "fields"]);
        assert_eq!(c.table, "logs");
        assert_eq!(c.compression, Compression::Gzip);
    }
}
