//! Server-Sent Events as bytes: an event's `event:` and `data:` lines, framed once and written
//! as they are to every watcher of the wall.
use std::time::Duration;

use app::types::WallEvent;
use axum::body::Bytes;

/// `event` framed: its name, its payload as one line of JSON (JSON escapes every line break),
/// and the blank line that ends it.
pub fn event(event: &WallEvent) -> Result<Bytes, serde_json::Error> {
    let name = event.name();
    let data = event.data()?;
    let mut frame = String::with_capacity(name.as_str().len() + data.len() + 16);
    frame.push_str("event: ");
    frame.push_str(name.as_str());
    frame.push_str("\ndata: ");
    frame.push_str(&data);
    frame.push_str("\n\n");
    Ok(Bytes::from(frame))
}

/// A stream's first bytes: how soon to reconnect after the server closes it, and a comment.
pub fn hello(reconnect_after: Duration) -> Bytes {
    Bytes::from(format!(
        "retry: {}\n: connected\n\n",
        reconnect_after.as_millis()
    ))
}

/// A comment, which clients ignore, to keep an idle stream open through proxies.
pub const KEEP_ALIVE: Bytes = Bytes::from_static(b":\n\n");

/// Reads a frame back (tests).
#[cfg(test)]
pub fn decode(frame: &[u8]) -> WallEvent {
    let text = std::str::from_utf8(frame).unwrap();
    let rest = text.strip_prefix("event: ").unwrap();
    let (name, rest) = rest.split_once("\ndata: ").unwrap();
    let data = rest.strip_suffix("\n\n").unwrap();
    assert!(!data.contains('\n'), "one data line: {data:?}");
    WallEvent::decode(name, data).unwrap()
}
