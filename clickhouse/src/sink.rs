//! The `clickhouse` sink: one `INSERT ... FORMAT JSONEachRow` per batch.
//!
//! # How a batch is written
//!
//! Before its first insert (and again after any failure) the sink runs the
//! `create_table` statement when there is one, then `DESCRIBE TABLE`: a
//! mapped column the table lacks is a clear error, retried until the table
//! is fixed, and each column's type says how its values are written
//! ([`encode`](crate::encode)). A batch is encoded into one buffer, gzipped
//! and POSTed as one `INSERT INTO table (columns) FORMAT JSONEachRow`;
//! `write` returns `Ok` on the server's `200`, so the channel's take is
//! committed only once the rows are in. ClickHouse parses a whole insert
//! block (up to `max_insert_block_size`, 1,048,576 rows, which the sink
//! raises for larger batches) before it writes any of it: a refused insert
//! stores nothing.
//!
//! # Errors
//!
//! * The server cannot be reached, goes away, times out, or answers with
//!   any error but a refused value (a missing table, memory or part limits,
//!   authentication): a retry ([`SinkError::Retry`]); the runtime writes
//!   the same batch again after its back-off (100 ms doubling to 30 s).
//! * The server refuses a value (it cannot parse it for its column, or it
//!   is out of range; the codes in [`REFUSED_VALUE`]): the batch is
//!   bisected, each part inserted on its own, down to single rows; rows
//!   refused on their own are rejected ([`SinkError::Rejected`]), with the
//!   server's message, and every other row is inserted once. With `k`
//!   refused rows among `n` this takes about `2k·log2(n)` requests.
//!   ClickHouse has no transaction to hold the parts together: should a
//!   retry interrupt the bisection, the parts already inserted are
//!   remembered ([`Pending`]) and the retry of the same batch resumes after
//!   them, so that nothing is inserted twice.

use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;

use async_trait::async_trait;
use bytes::Bytes;
use sluice_core::prelude::*;

use crate::config::Part;
use crate::encode::{Column, Kind, Rows};
use crate::http::{encode_component, Answer, Client};

/// ClickHouse error codes that mean the server refused a value of a row:
/// what it cannot parse for its column's type, or holds out of range. Only
/// a row refused with one of these on its own is rejected.
///
/// 6 `CANNOT_PARSE_TEXT`, 25 `CANNOT_PARSE_ESCAPE_SEQUENCE`, 26
/// `CANNOT_PARSE_QUOTED_STRING`, 27 `CANNOT_PARSE_INPUT_ASSERTION_FAILED`,
/// 36 `BAD_ARGUMENTS` (a value an `Enum` lacks), 38 `CANNOT_PARSE_DATE`, 41
/// `CANNOT_PARSE_DATETIME`, 53 `TYPE_MISMATCH`, 69 `ARGUMENT_OUT_OF_BOUND`,
/// 70 `CANNOT_CONVERT_TYPE`, 72 `CANNOT_PARSE_NUMBER`, 131
/// `TOO_LARGE_STRING_SIZE`, 321 `VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE`, 349
/// `CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN`, 469 `VIOLATED_CONSTRAINT`.
pub const REFUSED_VALUE: &[u32] = &[
    6, 25, 26, 27, 36, 38, 41, 53, 69, 70, 72, 131, 321, 349, 469,
];

/// The default `max_insert_block_size`: a larger batch raises it, so that
/// the insert stays one block (all or nothing).
const BLOCK_ROWS: usize = 1_048_576;

/// The `clickhouse` sink (see the [module docs](self)).
pub struct ClickHouseSink {
    /// The component id, for logs and errors.
    id: String,
    client: Client,
    /// `name` or `database.name`.
    table: String,
    /// The columns; their kinds are learned by `DESCRIBE TABLE`.
    columns: Vec<Column>,
    /// The `create_table` statement, if any.
    create: Option<String>,
    /// Whether bodies are gzipped.
    gzip: bool,
    /// `&name=value...` of the `settings` option, encoded.
    settings: String,
    /// The insert's query string, without the block size.
    insert: String,
    /// Whether the table was created and described since the last failure.
    ready: bool,
    /// The batch encoded (reused).
    rows: Rows,
    /// The compressed body of a request (reused).
    packed: Vec<u8>,
    /// How far a bisected batch got before a failure.
    pending: Option<Pending>,
}

/// How far the bisection of a batch got before a retry interrupted it, so
/// that the retry of the same batch inserts only the rest.
#[derive(Debug)]
struct Pending {
    /// Identifies the batch (see [`fingerprint`]).
    fingerprint: u64,
    /// Rows before this index are inserted or rejected.
    done: usize,
    /// The rows rejected so far.
    rejected: Vec<(usize, String)>,
}

/// Why a request failed.
enum Failure {
    /// Worth retrying the same batch.
    Retry(String),
    /// A value was refused: find which row.
    Refused(String),
}

/// The error code and first line of a ClickHouse error answer
/// (`Code: 27, e.displayText() = DB::Exception: Cannot parse ...`).
fn server_error(answer: &Answer) -> (Option<u32>, String) {
    let text = answer.body.trim();
    let code = text
        .strip_prefix("Code: ")
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok());
    let first = text.lines().next().unwrap_or("");
    let message = first
        .split_once("DB::Exception: ")
        .map_or(first, |(_, m)| m)
        .trim_end_matches(", e.what() = DB::Exception")
        .trim();
    let message = match code {
        Some(c) => format!("ClickHouse error {c}: {message}"),
        None => format!("HTTP {}: {}", answer.status, message),
    };
    (code, message)
}

fn classify(answer: Answer) -> Result<(), Failure> {
    if answer.status == 200 {
        return Ok(());
    }
    let (code, message) = server_error(&answer);
    match code {
        Some(c) if REFUSED_VALUE.contains(&c) => Err(Failure::Refused(message)),
        _ => Err(Failure::Retry(message)),
    }
}

/// Identifies a batch between a failed write and its retry: the runtime
/// retries the very same batch (same allocation, same events), so its
/// address, its length and a hash of its encoded rows must all match.
fn fingerprint(batch: &Batch, rows: &Rows) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (batch.events.as_ptr() as usize).hash(&mut h);
    batch.len().hash(&mut h);
    rows.body.hash(&mut h);
    h.finish()
}

impl ClickHouseSink {
    /// A sink writing `columns` (kinds unknown until the first write).
    pub(crate) fn new(
        id: String,
        client: Client,
        table: String,
        columns: Vec<(String, Part)>,
        create: Option<String>,
        gzip: bool,
        settings: String,
    ) -> Self {
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let insert = format!(
            "query={}{settings}",
            encode_component(&format!(
                "INSERT INTO {table} ({}) FORMAT JSONEachRow",
                names.join(", ")
            ))
        );
        ClickHouseSink {
            id,
            client,
            table,
            columns: columns
                .into_iter()
                .map(|(name, part)| Column {
                    name,
                    part,
                    kind: Kind::Other,
                })
                .collect(),
            create,
            gzip,
            settings,
            insert,
            ready: false,
            rows: Rows::default(),
            packed: Vec::new(),
            pending: None,
        }
    }

    /// Runs a statement without a body; its answer on success.
    async fn statement(&mut self, sql: &str) -> Result<String, String> {
        let query = format!("query={}{}", encode_component(sql), self.settings);
        let answer = self.client.post(&query, Bytes::new(), false).await?;
        if answer.status == 200 {
            Ok(answer.body)
        } else {
            Err(server_error(&answer).1)
        }
    }

    /// Creates the table when asked to, and learns the columns' types.
    async fn prepare(&mut self) -> Result<(), String> {
        if let Some(ddl) = self.create.clone() {
            self.statement(&ddl)
                .await
                .map_err(|e| format!("cannot create the table: {e}"))?;
        }
        let described = self
            .statement(&format!(
                "DESCRIBE TABLE {} FORMAT TabSeparated",
                self.table
            ))
            .await
            .map_err(|e| format!("cannot describe table `{}`: {e}", self.table))?;
        // `name \t type \t default kind \t default expression ...`
        let types: Vec<(&str, &str)> = described
            .lines()
            .filter_map(|l| {
                let mut cells = l.split('\t');
                Some((cells.next()?, cells.next()?))
            })
            .collect();
        let mut missing = Vec::new();
        for c in &mut self.columns {
            match types.iter().find(|(n, _)| *n == c.name) {
                Some((_, ty)) => c.kind = Kind::of(ty),
                None => missing.push(c.name.clone()),
            }
        }
        if !missing.is_empty() {
            let have: Vec<&str> = types.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "table `{}` has no column {} (it has {})",
                self.table,
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                have.join(", ")
            ));
        }
        self.ready = true;
        Ok(())
    }

    /// Inserts rows `lo..hi` of the encoded batch.
    async fn insert(&mut self, lo: usize, hi: usize) -> Result<(), Failure> {
        let rows = self.rows.slice(lo, hi);
        let body = if self.gzip {
            self.packed.clear();
            let mut gz = flate2::write::GzEncoder::new(
                std::mem::take(&mut self.packed),
                flate2::Compression::fast(),
            );
            // Writing into a `Vec` cannot fail.
            let _ = gz.write_all(rows);
            let packed = gz.finish().unwrap_or_default();
            let body = Bytes::copy_from_slice(&packed);
            self.packed = packed;
            body
        } else {
            Bytes::copy_from_slice(rows)
        };
        let query = if hi - lo > BLOCK_ROWS {
            format!("{}&max_insert_block_size={}", self.insert, hi - lo)
        } else {
            self.insert.clone()
        };
        match self.client.post(&query, body, self.gzip).await {
            Ok(answer) => classify(answer),
            Err(e) => Err(Failure::Retry(e)),
        }
    }

    /// Inserts rows `from..` of the batch, bisecting parts refused for a
    /// value down to single rows, which are added to `rejected`. `failed`
    /// says that `from..` as a whole was just refused.
    async fn bisect(
        &mut self,
        batch: &Batch,
        from: usize,
        mut rejected: Vec<(usize, String)>,
        failed: Option<String>,
    ) -> Result<Vec<(usize, String)>, SinkError> {
        let n = self.rows.len();
        // Parts still to insert, the next on top: they complete in order.
        let mut parts = Vec::new();
        match failed {
            Some(reason) if n - from == 1 => rejected.push((from, reason)),
            Some(_) => {
                let mid = from + (n - from) / 2;
                parts.push((mid, n));
                parts.push((from, mid));
            }
            None => parts.push((from, n)),
        }
        while let Some((lo, hi)) = parts.pop() {
            match self.insert(lo, hi).await {
                Ok(()) => {}
                Err(Failure::Refused(reason)) if hi - lo == 1 => rejected.push((lo, reason)),
                Err(Failure::Refused(_)) => {
                    let mid = lo + (hi - lo) / 2;
                    parts.push((mid, hi));
                    parts.push((lo, mid));
                }
                Err(Failure::Retry(e)) => {
                    self.pending = Some(Pending {
                        fingerprint: fingerprint(batch, &self.rows),
                        done: lo,
                        rejected,
                    });
                    return Err(self.lost(e));
                }
            }
        }
        Ok(rejected)
    }

    fn lost(&mut self, e: String) -> SinkError {
        // Start afresh next time: a new connection, the table described
        // again (it may be what was wrong).
        self.client.close();
        self.ready = false;
        SinkError::Retry(format!("clickhouse sink `{}`: {e}", self.id))
    }
}

#[async_trait]
impl Sink for ClickHouseSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        if !self.ready {
            if let Err(e) = self.prepare().await {
                return Err(self.lost(e));
            }
        }
        self.rows.fill(batch, &self.columns);
        let pending = self
            .pending
            .take()
            .filter(|p| p.fingerprint == fingerprint(batch, &self.rows));
        let rejected = match pending {
            // The retry of a bisection: only the rest.
            Some(p) => self.bisect(batch, p.done, p.rejected, None).await?,
            None => match self.insert(0, self.rows.len()).await {
                Ok(()) => return Ok(()),
                Err(Failure::Retry(e)) => return Err(self.lost(e)),
                Err(Failure::Refused(reason)) => {
                    self.bisect(batch, 0, Vec::new(), Some(reason)).await?
                }
            },
        };
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(SinkError::Rejected(rejected))
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.client.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_string(),
        }
    }

    #[test]
    fn server_errors_are_read_and_sorted() {
        let refused = answer(
            500,
            "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected \" before: abc\"}: (at row 1)\n, e.what() = DB::Exception\n",
        );
        assert_eq!(
            server_error(&refused),
            (
                Some(27),
                "ClickHouse error 27: Cannot parse input: expected \" before: abc\"}: (at row 1)"
                    .to_string()
            )
        );
        assert!(matches!(classify(refused), Err(Failure::Refused(_))));
        let missing = answer(
            500,
            "Code: 60, e.displayText() = DB::Exception: Table default.x doesn't exist., e.what() = DB::Exception",
        );
        assert!(
            matches!(classify(missing), Err(Failure::Retry(m)) if m.contains("60") && m.contains("doesn't exist"))
        );
        // A newer server's shape, and a proxy's.
        let newer = answer(
            400,
            "Code: 72. DB::Exception: Cannot parse number: (at row 1)\n: While executing ParallelParsingBlockInputFormat. (CANNOT_PARSE_NUMBER) (version 23.8.1)",
        );
        assert!(matches!(classify(newer), Err(Failure::Refused(_))));
        assert!(
            matches!(classify(answer(502, "Bad Gateway")), Err(Failure::Retry(m)) if m == "HTTP 502: Bad Gateway")
        );
        assert!(classify(answer(200, "")).is_ok());
    }
}
