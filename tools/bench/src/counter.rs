//! A wall watcher that only counts: it reads the stream from a plain socket into one buffer and
//! counts its events and the jobs' ends, without an HTTP client, a copy or a decode. Thousands of
//! them share the two cores with the server; the watchers that measure (they decode and fold
//! every event, as a browser does) are the few others.
use memchr::memmem;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// What a counting watcher read.
pub struct Counted {
    pub bytes: u64,
    pub events: u64,
    /// It fell behind and was sent a fresh snapshot, which holds the jobs' ends it missed: it
    /// stopped there.
    pub resynced: bool,
}

/// The longest pattern looked for, less one: kept from one read to the next, so that a pattern
/// split between two reads is still found.
const CARRY: usize = 24;
const EVENT: &[u8] = b"\nevent: ";
const SNAPSHOT: &[u8] = b"\nevent: snapshot\n";
const ENDS: [&[u8]; 2] = [b"\nevent: done\n", b"\nevent: job_error\n"];

/// Reads the wall stream at `url` (`http://HOST:PORT/PATH`) until `jobs` jobs have ended;
/// `connected` is called once: when the stream has begun, or when it could not.
pub async fn count(url: &str, jobs: usize, connected: impl FnOnce()) -> Result<Counted, String> {
    let mut connected = Some(connected);
    let counted = read(url, jobs, &mut connected).await;
    if let Some(connected) = connected.take() {
        connected();
    }
    counted
}

async fn read(
    url: &str,
    jobs: usize,
    connected: &mut Option<impl FnOnce()>,
) -> Result<Counted, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("not an http:// address")?;
    let (host, path) = rest.split_at(rest.find('/').ok_or("no path")?);
    let mut socket = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: {host}\r\naccept: text/event-stream\r\n\r\n");
    socket
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut filled, mut head_done) = (0, false);
    let (mut bytes, mut events, mut ended, mut snapshots) = (0u64, 0u64, 0usize, 0);
    while ended < jobs {
        let n = socket
            .read(&mut buf[filled..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("the stream ended after {ended} of {jobs} jobs"));
        }
        bytes += n as u64;
        // `old` bytes at the start were kept from the last read, and counted then.
        let (mut window, mut old) = (&buf[..filled + n], filled);
        if !head_done {
            let Some(end) = memmem::find(window, b"\r\n\r\n") else {
                filled += n;
                continue;
            };
            if !window.starts_with(b"HTTP/1.1 200") {
                return Err(String::from_utf8_lossy(&window[..end]).into_owned());
            }
            head_done = true;
            if let Some(connected) = connected.take() {
                connected();
            }
            // From the head's last newline: every event follows a newline.
            window = &window[end + 3..];
            old = 0;
        }
        let fresh = |pattern: &[u8]| {
            memmem::find_iter(window, pattern)
                .filter(|&m| m + pattern.len() > old)
                .count()
        };
        events += fresh(EVENT) as u64;
        ended += ENDS.iter().map(|end| fresh(end)).sum::<usize>();
        snapshots += fresh(SNAPSHOT);
        if snapshots > 1 {
            return Ok(Counted {
                bytes,
                events,
                resynced: true,
            });
        }
        let keep = window.len().min(CARRY);
        let start = window.as_ptr() as usize - buf.as_ptr() as usize + window.len() - keep;
        buf.copy_within(start..start + keep, 0);
        filled = keep;
    }
    Ok(Counted {
        bytes,
        events,
        resynced: false,
    })
}
