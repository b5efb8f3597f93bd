//! The body of `/api/tap/{component}`: sampled events as JSON lines.

use std::fmt::Write;

use futures_util::Stream;
use sluice_core::event::Event;
use sluice_core::metrics::tap::TapSubscription;
use tokio::sync::broadcast::error::RecvError;

/// One event as a JSON line: component, timestamp, message (the body, lossy
/// UTF-8) and fields.
pub(crate) fn event_line(component: &str, e: &Event, out: &mut String) {
    let line = serde_json::json!({
        "component": component,
        "timestamp": e.timestamp.to_string(),
        "message": String::from_utf8_lossy(&e.body),
        "fields": e.fields,
    });
    let _ = writeln!(out, "{line}");
}

/// Streams the samples of `sub` until the client goes away, or until
/// `limit` events were sent.
pub(crate) fn stream(
    component: String,
    sub: TapSubscription,
    limit: Option<u64>,
) -> impl Stream<Item = Result<String, std::io::Error>> + Send + 'static {
    let left = limit.unwrap_or(u64::MAX);
    futures_util::stream::unfold(
        (component, sub, left),
        |(component, mut sub, mut left)| async move {
            if left == 0 {
                return None;
            }
            loop {
                match sub.receiver.recv().await {
                    Ok(sample) => {
                        let mut out = String::new();
                        for e in sample.iter().take(left.min(usize::MAX as u64) as usize) {
                            event_line(&component, e, &mut out);
                            left -= 1;
                        }
                        return Some((Ok(out), (component, sub, left)));
                    }
                    // A slow client misses samples; the component never waits.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    )
}
