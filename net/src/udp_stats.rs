//! What the kernel knows about a UDP socket: its receive buffer
//! (`SO_RCVBUF`) and the datagrams it dropped because that buffer was full.
//!
//! The drop count is read from `/proc/net/udp` and `/proc/net/udp6` (the
//! `drops` column of the socket's row, found by its inode): Linux only; on
//! other systems no count is reported.

use std::io;
use std::os::fd::AsRawFd;

/// The largest receive buffer a source may ask for: `setsockopt` takes an
/// `int`, and Linux doubles the value asked.
pub(crate) const MAX_RECEIVE_BUFFER: u64 = 1 << 30;

/// Asks for a receive buffer of `bytes`; returns what the kernel granted
/// (Linux reports twice the value asked). An agent allowed to
/// (`CAP_NET_ADMIN`, e.g. root) gets it whatever `net.core.rmem_max` says
/// (`SO_RCVBUFFORCE`); any other gets at most `net.core.rmem_max`. Logs a
/// warning when the kernel granted less than asked.
pub(crate) fn set_receive_buffer<S: AsRawFd>(socket: &S, bytes: u64) -> io::Result<u64> {
    let fd = socket.as_raw_fd();
    let want = libc::c_int::try_from(bytes.min(MAX_RECEIVE_BUFFER)).unwrap_or(libc::c_int::MAX);
    let set = |option: libc::c_int| {
        // SAFETY: `fd` is an open socket owned by `socket`; the option
        // value is a live `c_int` of the size given.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    #[cfg(target_os = "linux")]
    let forced = set(libc::SO_RCVBUFFORCE).is_ok();
    #[cfg(not(target_os = "linux"))]
    let forced = false;
    if !forced {
        set(libc::SO_RCVBUF)?;
    }
    let got = receive_buffer(socket)?;
    // Linux books twice the value asked (half for its own overhead).
    if got < bytes {
        tracing::warn!(
            asked = bytes,
            granted = got,
            "the kernel granted a smaller UDP receive buffer than `receive_buffer_bytes` asks; \
             raise the system's limit (Linux: sysctl net.core.rmem_max) or run with CAP_NET_ADMIN"
        );
    }
    Ok(got)
}

/// The receive buffer the socket has now, in bytes.
pub(crate) fn receive_buffer<S: AsRawFd>(socket: &S) -> io::Result<u64> {
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as above; `got` and `len` are live and sized for the option.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(got).unwrap_or(0))
}

/// The socket's inode, which names its row in `/proc/net/udp`.
#[cfg(target_os = "linux")]
pub(crate) fn inode<S: AsRawFd>(socket: &S) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let link = format!("/proc/self/fd/{}", socket.as_raw_fd());
    std::fs::metadata(link).ok().map(|m| m.ino())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn inode<S: AsRawFd>(_socket: &S) -> Option<u64> {
    None
}

/// The datagrams the kernel dropped for the socket of inode `inode` since
/// it was opened; `None` when the tables do not list it (or on a system
/// without them).
pub(crate) fn dropped(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|table| drops_in_table(&table, inode))
}

/// The `drops` column of the row of `inode` in a `/proc/net/udp` table:
/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops`.
fn drops_in_table(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 13 || cols[9].parse::<u64>().ok()? != inode {
            return None;
        }
        cols[12].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_count_is_read_from_the_row_of_the_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          412: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 17113 2 0000000000000000 0\n\
          977: 0100007F:C8D5 00000000:0000 07 00000000:00034000 00:00000000 00000000  1000        0 998877 2 0000000000000000 14052\n";
        assert_eq!(drops_in_table(table, 998877), Some(14052));
        assert_eq!(drops_in_table(table, 17113), Some(0));
        assert_eq!(drops_in_table(table, 5), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_bound_socket_is_found_in_the_table_and_its_buffer_can_grow() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let ino = inode(&s).expect("inode");
        assert_eq!(dropped(ino), Some(0));
        let before = receive_buffer(&s).unwrap();
        let granted = set_receive_buffer(&s, 4096).unwrap();
        assert!(granted >= 4096, "{granted}");
        assert!(before > 0);
    }
}
