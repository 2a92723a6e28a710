//! A streamed response body as bytes, failing after a bound on silence, and what its failures
//! mean: the part of reading a reply that every kind of model server shares.
use std::{io, time::Duration};

use futures::stream::{BoxStream, StreamExt};
use tokio_util::bytes::Bytes;

use super::{error::describe, BackendError};

/// Why the body stopped, carried through `io::Error` so it survives a decoder.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("no data for the stall timeout")]
    Stalled,
    #[error("{0}")]
    Transport(String),
}

/// The body of `response` (status already checked) as a byte stream that fails after `stall`
/// of silence. Dropping it closes the connection, so the server stops too.
pub(super) fn body_bytes(
    response: reqwest::Response,
    stall: Duration,
) -> BoxStream<'static, io::Result<Bytes>> {
    futures::stream::unfold(Some(response), move |response| async move {
        let mut response = response?;
        match tokio::time::timeout(stall, response.chunk()).await {
            Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(response))),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => {
                let error = BodyError::Transport(describe(&error));
                Some((Err(io::Error::other(error)), None))
            }
            Err(_) => Some((Err(io::Error::other(BodyError::Stalled)), None)),
        }
    })
    .boxed()
}

/// What an I/O error out of [`body_bytes`] (possibly through a decoder) means.
pub(super) fn body_error(error: &io::Error, stall: Duration) -> BackendError {
    match error.get_ref().and_then(|e| e.downcast_ref::<BodyError>()) {
        Some(BodyError::Stalled) => BackendError::Stalled { after: stall },
        Some(BodyError::Transport(message)) => BackendError::Transport(message.clone()),
        None if error.kind() == io::ErrorKind::InvalidData => {
            BackendError::Protocol("the reply was not valid UTF-8".into())
        }
        None => BackendError::Transport(error.to_string()),
    }
}
