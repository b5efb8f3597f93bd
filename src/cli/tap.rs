//! `sluice tap COMPONENT`: prints a sample of the events leaving a component
//! of a running agent as JSON lines, from the agent's API.

use std::io::Write;

use super::{EXIT_FAILED, EXIT_OK};

#[derive(clap::Args)]
pub(super) struct TapArgs {
    /// The component's id.
    component: String,
    /// The agent's API (its pipeline's `api.address`).
    #[arg(long, value_name = "URL", default_value = sluice_api::client::DEFAULT_URL)]
    api: String,
    /// Stop after this many events (default: until interrupted).
    #[arg(long, short = 'n', value_name = "N")]
    limit: Option<u64>,
}

pub(super) fn main(args: TapArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let mut path = format!("/api/tap/{}", encode(&args.component));
    if let Some(n) = args.limit {
        path.push_str(&format!("?limit={n}"));
    }
    let mut out = std::io::stdout().lock();
    let mut body = Vec::new();
    let token = std::env::var(sluice_api::client::TOKEN_ENV).ok();
    let result = runtime.block_on(sluice_api::client::get_streaming(
        &args.api,
        &path,
        token.as_deref(),
        |status, data| {
            body.extend_from_slice(data);
            // An error's body is kept for the message; a 200's is streamed.
            if status != 200 {
                return true;
            }
            if let Some(i) = body.iter().rposition(|b| *b == b'\n') {
                let rest = body.split_off(i + 1);
                if out.write_all(&body).and_then(|()| out.flush()).is_err() {
                    // stdout closed (e.g. `| head`): stop.
                    return false;
                }
                body = rest;
            }
            true
        },
    ));
    match result {
        Ok(200) => EXIT_OK,
        Ok(status) => {
            eprintln!(
                "error: {} answered {status}: {}",
                args.api,
                String::from_utf8_lossy(&body).trim()
            );
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("{}", super::api::unreachable(&args.api, &e));
            EXIT_FAILED
        }
    }
}

/// Percent-encodes a component id for a URL path.
fn encode(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
