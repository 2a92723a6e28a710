//! Responses whose body the connection writes itself, straight to the socket, once hyper has let
//! go of it. A live stream a browser holds open for hours then costs no HTTP buffers (hyper keeps
//! 8 KiB to read and 8 KiB to write for every connection); its bytes are framed once for every
//! watcher and go from there to the kernel.
//!
//! A handler returns its response head with a [`Handoff`] in its extensions; the middleware sees
//! and decorates it as any other response. The connection then takes the socket from hyper,
//! writes the head with `connection: close` (the body ends when the connection does, as HTTP/1.1
//! allows), and hands the socket to the writer.
use std::{
    fmt,
    sync::{Arc, Mutex},
};

use axum::{
    http::{header, response::Parts},
    response::Response,
};
use futures::future::BoxFuture;

pub use super::connection::Socket;

/// What writes a handed-off response's body, until the stream ends or the client leaves.
pub type BodyWriter = Box<dyn FnOnce(Socket) -> BoxFuture<'static, ()> + Send>;

/// The writer of a response's body, in its extensions (which must be `Clone`; it is taken once).
#[derive(Clone)]
pub struct Handoff(Arc<Mutex<Option<BodyWriter>>>);

impl fmt::Debug for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handoff")
    }
}

impl Handoff {
    /// `head` (its status and headers; its body is not sent) with a body that `write` writes.
    pub fn response<W>(mut head: Response, write: W) -> Response
    where
        W: FnOnce(Socket) -> BoxFuture<'static, ()> + Send + 'static,
    {
        let writer: BodyWriter = Box::new(write);
        head.extensions_mut()
            .insert(Self(Arc::new(Mutex::new(Some(writer)))));
        head
    }

    /// The writer, the first time.
    pub fn take(&self) -> Option<BodyWriter> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The response head as HTTP/1.1 spells it, for a body delimited by the connection's close.
pub fn head(parts: &Parts) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let status = parts.status;
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in &parts.headers {
        if [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ]
        .contains(name)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        out.extend_from_slice(format!("date: {date}\r\n").as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::StatusCode};

    use super::*;

    #[test]
    fn the_head_is_http_1_1_delimited_by_the_close() {
        let response = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::TRANSFER_ENCODING, "chunked")
            .header("x-accel-buffering", "no")
            .body(Body::empty())
            .unwrap();
        let (parts, _) = response.into_parts();
        let text = String::from_utf8(head(&parts)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("\r\ncontent-type: text/event-stream\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nx-accel-buffering: no\r\n"), "{text}");
        assert!(text.contains("\r\ndate: "), "{text}");
        assert!(!text.contains("chunked"), "{text}");
        assert!(text.ends_with("\r\nconnection: close\r\n\r\n"), "{text}");
    }
}
