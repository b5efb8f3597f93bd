//! The sink against a stand-in server that refuses rows holding `bad` and
//! drops one chosen request without an answer: the bisection's bookkeeping
//! across a retry, which a real server cannot be made to show on cue.

use std::sync::{Arc, Mutex};

use sluice_core::prelude::*;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// What the stand-in saw and stored.
#[derive(Default)]
struct Server {
    /// Rows inserted, in order.
    stored: Vec<String>,
    /// Inserts received so far.
    inserts: usize,
    /// The insert (1-based) to drop without an answer.
    drop_insert: usize,
}

async fn serve(listener: TcpListener, state: Arc<Mutex<Server>>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(socket);
            loop {
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push(line);
                }
                let len: usize = head
                    .iter()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                let body = String::from_utf8(body).unwrap();
                let answer = if head[0].contains("DESCRIBE") {
                    (200, "message\tString\n".to_string())
                } else {
                    let mut s = state.lock().unwrap();
                    s.inserts += 1;
                    if s.inserts == s.drop_insert {
                        return; // the connection goes, no answer
                    }
                    if body.contains("bad") {
                        (500, "Code: 27, e.displayText() = DB::Exception: Cannot parse input: bad, e.what() = DB::Exception\n".to_string())
                    } else {
                        s.stored.extend(body.lines().map(String::from));
                        (200, String::new())
                    }
                };
                let reply = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\n\r\n{}",
                    answer.0,
                    answer.1.len(),
                    answer.1
                );
                if r.get_mut().write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::test]
async fn a_retry_in_the_middle_of_a_bisection_resumes_after_what_was_inserted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(Server {
        // 1: the whole batch (refused); 2: rows 0..8 (refused); 3: 0..4
        // (refused); 4: 0..2 (inserted); 5: 2..4 (refused); 6: row 2: dropped.
        drop_insert: 6,
        ..Server::default()
    }));
    tokio::spawn(serve(listener, state.clone()));
    let config: crate::config::Config = sluice_core::config::from_yaml_str(&format!(
        "url: http://127.0.0.1:{port}\ncolumns: {{message: '@message'}}\ncompression: none\ntimeout: 5s\n"
    ))
    .unwrap();
    let mut sink = config
        .build(&sluice_runtime::testing::processor::cx())
        .unwrap();
    let mut batch = Batch::new();
    for i in 0..16 {
        let body = if i == 3 || i == 12 {
            format!("bad {i}")
        } else {
            format!("ok {i}")
        };
        batch.push(Event::new(body, Timestamp(0)));
    }
    match sink.write(&batch).await {
        Err(SinkError::Retry(_)) => {}
        other => panic!("expected a retry, got {other:?}"),
    }
    let inserted_before = state.lock().unwrap().stored.len();
    assert_eq!(inserted_before, 2, "rows 0 and 1");
    // The runtime writes the very same batch again.
    match sink.write(&batch).await {
        Err(SinkError::Rejected(r)) => {
            let indices: Vec<usize> = r.iter().map(|(i, _)| *i).collect();
            assert_eq!(indices, [3, 12]);
            assert!(r[0].1.contains("ClickHouse error 27"), "{}", r[0].1);
        }
        other => panic!("expected two rejected rows, got {other:?}"),
    }
    let stored = state.lock().unwrap().stored.clone();
    let want: Vec<String> = (0..16)
        .filter(|i| *i != 3 && *i != 12)
        .map(|i| format!("{{\"message\":\"ok {i}\"}}"))
        .collect();
    // Every good row once, in order: nothing inserted before the retry
    // was sent again.
    assert_eq!(stored, want);
}
