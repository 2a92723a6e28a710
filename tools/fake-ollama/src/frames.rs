//! The response body of a stream: frames from the reply task, optionally cut into small pieces.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

/// Yields the frames the reply task sends. With `split_bytes`, each frame leaves in pieces of
/// that many bytes (cutting lines and UTF-8 characters anywhere), and the body pauses once
/// between pieces: hyper flushes whenever the body is pending, so every piece becomes its own
/// HTTP chunk on the wire. Dropping this body (the client went away) closes the channel, which
/// is how the reply task learns of the disconnect.
pub(crate) struct FrameBody {
    frames: mpsc::Receiver<Bytes>,
    split_bytes: Option<usize>,
    unsent: Bytes,
    pause_next: bool,
}

impl FrameBody {
    pub(crate) fn new(frames: mpsc::Receiver<Bytes>, split_bytes: Option<usize>) -> Self {
        FrameBody {
            frames,
            split_bytes: split_bytes.filter(|n| *n > 0),
            unsent: Bytes::new(),
            pause_next: false,
        }
    }
}

impl Stream for FrameBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.pause_next {
            this.pause_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let Some(piece_len) = this.split_bytes else {
            return this.frames.poll_recv(cx).map(|frame| frame.map(Ok));
        };
        if this.unsent.is_empty() {
            match this.frames.poll_recv(cx) {
                Poll::Ready(Some(frame)) => this.unsent = frame,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        let piece = this.unsent.split_to(piece_len.min(this.unsent.len()));
        this.pause_next = true;
        Poll::Ready(Some(Ok(piece)))
    }
}
