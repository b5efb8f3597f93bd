//! `sluice search`: queries the index a `store` sink writes.

use std::io::Write as _;
use std::path::PathBuf;

use sluice_core::event::Timestamp;
use sluice_store::{SearchOptions, StoreError, StoreReader};

use super::{EXIT_CONFIG, EXIT_FAILED, EXIT_OK};

/// The options of `sluice search`.
#[derive(clap::Args)]
pub struct Args {
    /// The store's directory (the `path` of a `store` sink).
    path: PathBuf,
    /// The query: words, "a phrase", field:value, AND/OR/NOT, +must -not,
    /// ranges such as status:[500 TO 599] or size:>1000; `*` matches everything.
    query: String,
    /// Only events at or after this time (RFC 3339, a date, `now`, or a duration ago such as 15m).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only events before this time (same forms as --from).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// How many events to print at most, newest first.
    #[arg(long, default_value_t = 100, value_name = "N")]
    limit: usize,
    /// Print JSON: one object per event (timestamp, message, fields), per bucket, or the total.
    #[arg(long)]
    json: bool,
    /// Print only the number of matching events.
    #[arg(long, conflicts_with = "count_by")]
    count: bool,
    /// Print the number of matching events per time bucket of this length (1m, 1h, 1d).
    #[arg(long, value_name = "INTERVAL")]
    count_by: Option<String>,
}

/// Runs `sluice search`; returns the exit code.
pub fn run(args: &Args) -> i32 {
    match search(args) {
        Ok(()) => EXIT_OK,
        Err((code, e)) => {
            eprintln!("error: {e}");
            code
        }
    }
}

fn search(args: &Args) -> Result<(), (i32, String)> {
    let usage = |e: String| (EXIT_CONFIG, e);
    let opts = SearchOptions::from_text(
        args.from.as_deref(),
        args.to.as_deref(),
        args.count_by.as_deref(),
        if args.count { 0 } else { args.limit },
        Timestamp::now(),
    )
    .map_err(|e| usage(format!("--{}: {}", e.option.replace('_', "-"), e.message)))?;
    let reader = StoreReader::open(&args.path).map_err(|e| (EXIT_FAILED, e.to_string()))?;
    let result = reader.search(&args.query, &opts).map_err(|e| match e {
        StoreError::Query(_) => (EXIT_CONFIG, e.to_string()),
        _ => (EXIT_FAILED, e.to_string()),
    })?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = (|| -> std::io::Result<()> {
        if args.count {
            if args.json {
                writeln!(out, "{{\"total\":{}}}", result.total)?;
            } else {
                writeln!(out, "{}", result.total)?;
            }
        } else if opts.count_by.is_some() {
            for b in &result.buckets {
                if args.json {
                    serde_json::to_writer(&mut out, b)?;
                    writeln!(out)?;
                } else {
                    writeln!(out, "{} {}", b.start, b.count)?;
                }
            }
        } else {
            for h in &result.hits {
                if args.json {
                    serde_json::to_writer(&mut out, h)?;
                    writeln!(out)?;
                } else {
                    writeln!(out, "{} {}", h.timestamp, h.message)?;
                }
            }
        }
        out.flush()
    })();
    match written {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err((EXIT_FAILED, e.to_string())),
    }
}
