//! Reading hop frames without trusting their declared length.
//!
//! A frame's payload buffer grows as its bytes arrive (doubling from 64 KiB
//! up to the declared length), so a peer that declares 64 MiB and sends ten
//! bytes costs ten bytes plus the first step, not 64 MiB. On the receiving
//! side every growth step is first taken from a [`Budget`] shared by all
//! connections of one `sluice` source; the bytes go back to it once the
//! frame's batch was delivered (or the frame abandoned). A frame that gets
//! neither new bytes nor budget for `frame_timeout` ends its connection.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

pub use crate::budget::{Budget, Held};

/// The first step of a payload buffer.
const FIRST_STEP: usize = 64 << 10;

/// One frame read from a connection.
#[derive(Debug)]
pub struct Frame {
    /// The frame's kind byte.
    pub kind: u8,
    /// The payload after the kind.
    pub payload: Bytes,
    /// The budget the payload holds: drop it once the payload's events are
    /// delivered.
    pub held: Held,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or ended inside a frame.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The length prefix is 0: every frame has at least its kind byte.
    #[error("hop frame with a length of 0 (a frame holds at least its kind byte)")]
    Empty,
    /// The declared payload is larger than the limit.
    #[error("hop frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// The declared payload length (after the kind byte).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No frame began within the idle timeout (between frames).
    #[error("no hop frame for {0:?} (idle_timeout)")]
    Idle(Duration),
    /// No new byte of a started frame arrived in time.
    #[error("no byte of a started hop frame for {0:?}; {1} of its {2} bytes received")]
    Stalled(Duration, usize, usize),
    /// The shared budget had no room for the frame in time.
    #[error(
        "no memory for a hop frame within {0:?}: other unfinished frames hold the \
         max_buffered_bytes budget of {1} bytes; {2} of its {3} bytes received"
    )]
    NoBudget(Duration, usize, usize, usize),
}

impl From<FrameError> for std::io::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// Reads one small frame (hello, acknowledgements): its kind and payload.
/// `Ok(None)` at a clean end of stream; an error for frames larger than
/// `max`. Not budgeted: keep `max` small.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<(u8, Bytes)>> {
    Ok(read(r, max, None, None)
        .await?
        .map(|f: Frame| (f.kind, f.payload)))
}

/// Reads one frame, taking its memory from `budget` as its bytes arrive.
/// `Ok(None)` at a clean end of stream (between frames). The frame's first
/// byte may take up to `idle`; once a frame has begun, each read and each
/// wait for budget may last at most `timeout`.
///
/// # Cancel safety
///
/// Not cancel safe: a cancelled read loses the partial frame (and gives its
/// budget back). Cancel only to drop the connection.
pub async fn read_budgeted<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    budget: &Budget,
    timeout: Duration,
    idle: Duration,
) -> Result<Option<Frame>, FrameError> {
    read(r, max, Some((budget, timeout)), Some(idle)).await
}

async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    budget: Option<(&Budget, Duration)>,
    idle: Option<Duration>,
) -> Result<Option<Frame>, FrameError> {
    let mut head = [0u8; 5];
    let first = r.read_exact(&mut head[..1]);
    let first = match idle {
        None => first.await,
        Some(idle) => tokio::time::timeout(idle, first)
            .await
            .map_err(|_| FrameError::Idle(idle))?,
    };
    match first {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut filled = 1;
    while filled < head.len() {
        filled += read_some(r, &mut head[filled..], budget, (filled, 5)).await?;
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let Some(n) = len.checked_sub(1) else {
        return Err(FrameError::Empty);
    };
    if n > max {
        return Err(FrameError::TooLarge { len: n, max });
    }
    let mut held = Held::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut filled = 0;
    while filled < n {
        if filled == buf.len() {
            let step = buf.len().max(FIRST_STEP).min(n - buf.len());
            if let Some((budget, timeout)) = budget {
                if budget.reserve(&mut held, step, timeout).await.is_err() {
                    return Err(FrameError::NoBudget(timeout, budget.total(), filled, n));
                }
            }
            buf.reserve_exact(step);
            buf.resize(buf.len() + step, 0);
        }
        filled += read_some(r, &mut buf[filled..], budget, (filled, n)).await?;
    }
    Ok(Some(Frame {
        kind: head[4],
        payload: Bytes::from(buf),
        held,
    }))
}

/// One read inside a started frame: at least one byte, within the timeout.
async fn read_some<R: AsyncRead + Unpin>(
    r: &mut R,
    into: &mut [u8],
    budget: Option<(&Budget, Duration)>,
    (got, of): (usize, usize),
) -> Result<usize, FrameError> {
    let n = match budget {
        None => r.read(into).await?,
        Some((_, timeout)) => tokio::time::timeout(timeout, r.read(into))
            .await
            .map_err(|_| FrameError::Stalled(timeout, got, of))??,
    };
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("connection closed inside a hop frame ({got} of {of} bytes received)"),
        )
        .into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        out.push(kind);
        out.extend_from_slice(payload);
        out
    }

    /// `idle` bounds the wait for a frame's first byte only; a frame that
    /// has begun is bounded by `timeout` per read instead.
    #[tokio::test(start_paused = true)]
    async fn idle_bounds_the_wait_between_frames_not_a_started_frame() {
        let budget = Budget::new(1 << 20);
        let (mut tx, mut rx) = tokio::io::duplex(1 << 16);
        let idle = Duration::from_secs(5);
        let e = read_budgeted(&mut rx, 1 << 20, &budget, Duration::from_secs(60), idle)
            .await
            .expect_err("no byte for idle");
        assert!(matches!(e, FrameError::Idle(d) if d == idle), "{e}");
        use tokio::io::AsyncWriteExt;
        let bytes = frame(16, &[7; 10]);
        tx.write_all(&bytes[..3]).await.expect("write");
        let reading = tokio::spawn(async move {
            read_budgeted(&mut rx, 1 << 20, &budget, Duration::from_secs(60), idle).await
        });
        // Longer than `idle` inside the frame: still read.
        tokio::time::sleep(Duration::from_secs(20)).await;
        tx.write_all(&bytes[3..]).await.expect("write");
        let f = reading
            .await
            .expect("join")
            .expect("read")
            .expect("a frame");
        assert_eq!((f.kind, &f.payload[..]), (16, &[7u8; 10][..]));
    }

    #[tokio::test]
    async fn frames_read_back_and_give_their_budget_back() {
        let budget = Budget::new(1 << 20);
        let payload = vec![7u8; 300_000];
        let mut wire = frame(16, &payload);
        wire.extend(frame(17, b""));
        let mut r = &wire[..];
        let t = Duration::from_secs(5);
        let f = read_budgeted(&mut r, 1 << 20, &budget, t, Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((f.kind, &f.payload[..]), (16, &payload[..]));
        // 64 KiB, then doubling: 64 + 64 + 128 + 44 KiB.
        assert_eq!(f.held.bytes(), 300_000);
        assert_eq!(budget.available(), (1 << 20) - 300_000);
        drop(f);
        assert_eq!(budget.available(), 1 << 20);
        let f = read_budgeted(&mut r, 1 << 20, &budget, t, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(f.is_some_and(|f| f.kind == 17 && f.payload.is_empty()));
        assert!(
            read_budgeted(&mut r, 1 << 20, &budget, t, Duration::from_secs(60))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_empty_frame_and_an_oversized_one_say_what_is_wrong() {
        let mut r = &[0u8, 0, 0, 0, 9][..];
        let e = read_frame(&mut r, 10).await.unwrap_err().to_string();
        assert_eq!(
            e,
            "hop frame with a length of 0 (a frame holds at least its kind byte)"
        );
        let mut r = &[0u8, 0, 0, 12, 9][..];
        let e = read_frame(&mut r, 10).await.unwrap_err().to_string();
        assert_eq!(
            e,
            "hop frame of 11 bytes is larger than the limit of 10 bytes"
        );
        let mut r = &[0u8, 0, 0, 11, 9][..];
        let e = read_frame(&mut r, 10).await.unwrap_err().to_string();
        assert!(e.contains("closed inside a hop frame (0 of 10"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_declared_length_reserves_nothing_until_bytes_come() {
        let budget = Budget::new(256 << 10);
        let (mut tx, mut rx) = tokio::io::duplex(1 << 20);
        // Declares 64 MiB, sends 100 bytes, stalls.
        tx.write_all(&((64u32 << 20) + 1).to_be_bytes())
            .await
            .unwrap();
        tx.write_all(&[16]).await.unwrap();
        tx.write_all(&[1; 100]).await.unwrap();
        let t = Duration::from_secs(3);
        let reading = read_budgeted(&mut rx, 64 << 20, &budget, t, Duration::from_secs(60));
        tokio::pin!(reading);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), reading.as_mut())
                .await
                .is_err()
        );
        assert_eq!(budget.available(), (256 << 10) - FIRST_STEP);
        let e = reading.await.unwrap_err();
        assert!(matches!(e, FrameError::Stalled(_, 100, _)), "{e}");
        assert_eq!(budget.available(), 256 << 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_without_budget_gives_up_after_the_timeout() {
        let budget = Budget::new(FIRST_STEP);
        let mut hold = Held::default();
        budget
            .reserve(&mut hold, FIRST_STEP, Duration::ZERO)
            .await
            .unwrap();
        let mut wire = &frame(16, &[0; 10])[..];
        let e = read_budgeted(
            &mut wire,
            1 << 20,
            &budget,
            Duration::from_secs(2),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, FrameError::NoBudget(..)), "{e}");
        assert!(
            e.to_string()
                .contains("max_buffered_bytes budget of 65536 bytes; 0 of its 10 bytes"),
            "{e}"
        );
        drop(hold);
        let mut wire = &frame(16, &[0; 10])[..];
        let f = read_budgeted(
            &mut wire,
            1 << 20,
            &budget,
            Duration::from_secs(2),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(f.held.bytes(), 10);
    }
}
