//! `parse_csv`: reads one delimited row (CSV, TSV, ...) into named fields.
//!
//! The column names come from `columns`, or with `header: true` from the
//! first row the processor sees (that row is consumed, as is any later row
//! equal to it: the header of a rotated file). Quoting follows RFC 4180: a
//! quoted value may hold the delimiter, and `""` inside it is one quote.
//! Values are slices of the text's own buffer; only a quoted value holding
//! `""` is copied. One pass over the row.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use sluice_core::prelude::*;

use crate::parse_regex::{convert, Kind};

/// Options of the `parse_csv` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The column names, in order. Required unless `header` is set.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Take the column names from the first row seen (and drop that row and
    /// any later copy of it).
    #[serde(default)]
    pub header: bool,
    /// The character between values.
    #[serde(default = "comma")]
    pub delimiter: char,
    /// The character that quotes a value.
    #[serde(default = "double_quote")]
    pub quote: char,
    /// The field (dotted path) to parse; the body when unset.
    #[serde(default)]
    pub field: Option<String>,
    /// Put the values in a map under this field (dotted path) instead of at
    /// the top level.
    #[serde(default)]
    pub target: Option<String>,
    /// Conversions of columns by name: `integer`, `float` or `bool`; the
    /// others stay strings.
    #[serde(default)]
    pub types: BTreeMap<String, Kind>,
}

fn comma() -> char {
    ','
}

fn double_quote() -> char {
    '"'
}

impl ProcessorConfig for Config {
    /// Each event is handled on its own: batches may be split over threads.
    fn stateless(&self) -> bool {
        true
    }

    fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        match (self.header, self.columns.is_empty()) {
            (false, true) => problems.push(Problem::new(
                "name the columns with `columns: [a, b, ...]`, or set `header: true` to read them from the first row",
            )),
            (true, false) => problems.push(Problem::at(
                "header",
                "`header: true` reads the column names from the first row: remove `columns` or `header`",
            )),
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.columns {
            if c.is_empty() {
                problems.push(Problem::at("columns", "a column name must not be empty"));
            } else if !seen.insert(c) {
                problems.push(Problem::at(
                    "columns",
                    format!("column `{c}` is named twice"),
                ));
            }
        }
        if !self.columns.is_empty() {
            for name in self.types.keys().filter(|k| !self.columns.contains(k)) {
                problems.push(Problem::at(
                    "types",
                    format!("`{name}` is not one of the `columns`"),
                ));
            }
        }
        for (key, c) in [("delimiter", self.delimiter), ("quote", self.quote)] {
            if !c.is_ascii() || c == '\n' || c == '\r' {
                problems.push(Problem::at(
                    key,
                    format!("`{c:?}` must be one ASCII character other than a line break"),
                ));
            }
        }
        if self.delimiter == self.quote {
            problems.push(Problem::at("quote", "must differ from `delimiter`"));
        }
        for (key, path) in [("field", &self.field), ("target", &self.target)] {
            problems.extend(path.as_deref().and_then(|p| crate::check_path(key, p)));
        }
        problems
    }

    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        let byte =
            |c: char| u8::try_from(c).map_err(|_| BuildError::Other(format!("`{c}` is not ASCII")));
        Ok(Box::new(ParseCsv {
            columns: self.columns.iter().map(FieldName::from).collect(),
            header: self.header.then(Bytes::new),
            delimiter: byte(self.delimiter)?,
            quote: byte(self.quote)?,
            types: self.types.clone(),
            field: self.field.clone(),
            target: self.target.clone(),
            values: Vec::new(),
        }))
    }
}

/// The `parse_csv` processor.
struct ParseCsv {
    /// The column names (from `columns`, or the header once read).
    columns: Vec<FieldName>,
    /// With `header: true`: the header row once seen (empty before).
    header: Option<Bytes>,
    delimiter: u8,
    quote: u8,
    types: BTreeMap<String, Kind>,
    field: Option<String>,
    target: Option<String>,
    /// The values of the row being parsed, reused from row to row.
    values: Vec<Bytes>,
}

/// Splits `row` into `out`. Fails on a quote that is never closed or text
/// after a closing quote.
fn split(row: &Bytes, delimiter: u8, quote: u8, out: &mut Vec<Bytes>) -> Result<(), String> {
    out.clear();
    let b = &row[..];
    let mut i = 0;
    loop {
        if b.get(i) == Some(&quote) {
            let start = i + 1;
            let mut j = start;
            let mut doubled = false;
            loop {
                match b.get(j) {
                    None => {
                        return Err(format!(
                            "value {} opens a quote at byte {i} that is never closed",
                            out.len() + 1
                        ))
                    }
                    Some(c) if *c == quote => {
                        if b.get(j + 1) == Some(&quote) {
                            doubled = true;
                            j += 2;
                        } else {
                            break;
                        }
                    }
                    Some(_) => j += 1,
                }
            }
            out.push(if doubled {
                let mut v = Vec::with_capacity(j - start);
                let mut k = start;
                while k < j {
                    v.push(b[k]);
                    k += if b[k] == quote { 2 } else { 1 };
                }
                Bytes::from(v)
            } else {
                row.slice(start..j)
            });
            i = j + 1;
            match b.get(i) {
                None => return Ok(()),
                Some(c) if *c == delimiter => i += 1,
                Some(_) => {
                    return Err(format!(
                        "value {} has text after its closing quote at byte {i}",
                        out.len()
                    ))
                }
            }
        } else {
            let end = b[i..]
                .iter()
                .position(|c| *c == delimiter)
                .map_or(b.len(), |n| i + n);
            out.push(row.slice(i..end));
            if end == b.len() {
                return Ok(());
            }
            i = end + 1;
        }
    }
}

impl ParseCsv {
    /// Parses `e`'s row into fields; `Ok(false)` when it is the header.
    fn parse(&mut self, e: &mut Event) -> Result<bool, String> {
        let row = crate::input_text(e, self.field.as_deref())?;
        let row = match row.last() {
            Some(b'\r') => row.slice(..row.len() - 1),
            _ => row,
        };
        if let Some(header) = &mut self.header {
            if header.is_empty() {
                split(&row, self.delimiter, self.quote, &mut self.values)
                    .map_err(|m| format!("header row: {m}"))?;
                let names: Vec<FieldName> = self
                    .values
                    .iter()
                    .map(|v| FieldName::from(String::from_utf8_lossy(v).trim()))
                    .collect();
                if names.iter().any(FieldName::is_empty) {
                    return Err("header row: a column has no name".into());
                }
                self.columns = names;
                *header = row;
                return Ok(false);
            }
            if *header == row {
                return Ok(false);
            }
        }
        split(&row, self.delimiter, self.quote, &mut self.values)?;
        if self.values.len() != self.columns.len() {
            return Err(format!(
                "the row has {} values, the columns are {}",
                self.values.len(),
                self.columns.len()
            ));
        }
        let mut fields = Fields::with_capacity(self.columns.len());
        for (name, text) in self.columns.iter().zip(self.values.drain(..)) {
            let value = convert(name, &text, self.types.get(name.as_str()).copied())?;
            fields.insert(name.clone(), value);
        }
        match &self.target {
            Some(t) => e.insert(t, Value::Map(fields)),
            None => e.fields.extend(fields),
        }
        Ok(true)
    }
}

impl Processor for ParseCsv {
    fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
        let mut headers = Vec::new();
        for (i, e) in batch.events.iter_mut().enumerate() {
            match self.parse(e) {
                Ok(true) => {}
                Ok(false) => headers.push(i),
                Err(m) => cx.fail(i, m),
            }
        }
        if headers.is_empty() {
            return;
        }
        // Header rows are consumed; failures keep their indexes, so they are
        // re-reported against the batch without the headers.
        let failures = cx.take_failures();
        let mut k = 0;
        let mut i = 0;
        batch.events.retain(|_| {
            let keep = headers.get(k) != Some(&i);
            if !keep {
                k += 1;
            }
            i += 1;
            keep
        });
        for (idx, m) in failures {
            let shift = headers.partition_point(|h| *h < idx);
            cx.fail(idx - shift, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn s(e: &Event, k: &str) -> Option<String> {
        e.get(k).map(|v| v.to_text().into_owned())
    }

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c: Config =
            config("columns: [a, b]\ndelimiter: ';'\nquote: \"'\"\ntypes: {b: integer}");
        assert!(c.validate().is_empty());
        assert!(!examples::<Config>("parse_csv").is_empty());
        let e = unknown_key::<Config>("columns: [a]\nseparator: ';'");
        assert!(e.contains("unknown option `separator`"), "{e}");
        let c: Config = config("{}");
        assert_eq!(c.validate().len(), 1);
        let c: Config =
            config("columns: [a, a, '']\nheader: true\ndelimiter: 'é'\ntypes: {z: float}");
        assert_eq!(c.validate().len(), 5, "{:?}", c.validate());
    }

    #[test]
    fn named_columns_quotes_and_types() {
        let mut p = build::<Config>("columns: [ip, user, msg, status]\ntypes: {status: integer}");
        let mut b = batch(&[
            r#"10.0.0.1,alice,"said ""hi"", then left",200"#,
            "10.0.0.2,,plain,404\r",
            r#"10.0.0.3,bob,"a,b",500"#,
        ]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(
            s(&b.events[0], "msg").as_deref(),
            Some(r#"said "hi", then left"#)
        );
        assert_eq!(b.events[0].get("status"), Some(&Value::Integer(200)));
        assert_eq!(s(&b.events[1], "user").as_deref(), Some(""));
        assert_eq!(b.events[1].get("status"), Some(&Value::Integer(404)));
        assert_eq!(s(&b.events[2], "msg").as_deref(), Some("a,b"));
        let body = b.events[2].body.as_ptr_range();
        let ip = b.events[2]
            .get("ip")
            .and_then(Value::as_bytes)
            .map(<[u8]>::as_ptr);
        assert!(ip.is_some_and(|p| body.contains(&p)), "zero-copy");
    }

    #[test]
    fn header_row_names_the_columns_and_is_consumed() {
        let mut p = build::<Config>("header: true\ndelimiter: \"\\t\"\ntarget: row");
        let mut b = batch(&["host\tcpu", "a\t0.5", "b\t0.7\textra"]);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(b.len(), 2, "the header is consumed");
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].0, 1,
            "the failure's index is in the batch without the header"
        );
        assert!(f[0].1.contains("3 values"), "{f:?}");
        assert_eq!(s(&b.events[0], "row.host").as_deref(), Some("a"));
        assert_eq!(s(&b.events[0], "row.cpu").as_deref(), Some("0.5"));
        // A rotated file's header is consumed again.
        let mut b = batch(&["c\t0.1", "host\tcpu", "d\t0.2"]);
        assert!(run(p.as_mut(), &mut b).is_empty());
        assert_eq!(b.len(), 2);
        assert_eq!(s(&b.events[1], "row.host").as_deref(), Some("d"));
    }

    #[test]
    fn malformed_rows_fail_and_add_nothing() {
        let mut p = build::<Config>("columns: [a, b]\ntypes: {b: float}");
        let mut b = batch(&[r#""open,1"#, r#""x"y,1"#, "only", "a,b,c", "a,zz", "ok,1.5"]);
        let f = run(p.as_mut(), &mut b);
        assert_eq!(
            f.iter().map(|f| f.0).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4],
            "{f:?}"
        );
        assert!(f[0].1.contains("never closed"), "{f:?}");
        assert!(f[1].1.contains("after its closing quote"), "{f:?}");
        assert!(f[4].1.contains("not a float"), "{f:?}");
        assert!(b.events[..5].iter().all(|e| e.fields.is_empty()));
        assert_eq!(b.events[5].get("b"), Some(&Value::Float(1.5)));
    }
}
