//! Why a job stopped short, or waits to try again, as a class: the card turns it into a plain
//! sentence for everyone (the technical detail stays in `JobView::error`).
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "ssr",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "snake_case")
)]
pub enum Failure {
    /// The model server could not be reached (down, elsewhere, or a wrong address).
    Unreachable,
    /// The model server does not have the post's model.
    ModelMissing,
    /// The model server was busy or had a passing problem (HTTP 5xx, 429, 408).
    Busy,
    /// The model server turned the request down (another HTTP 4xx).
    Refused,
    /// The answer broke off partway: an error in the middle of the stream, a dropped
    /// connection, or something that was not the model server's format.
    BrokeOff,
    /// Nothing arrived for the stall timeout.
    Stalled,
    /// The answer took longer than the deadline.
    TooSlow,
    /// The server stopped during the generation too many times.
    Interrupted,
    /// Its author stopped it: a choice, not a fault.
    Stopped,
    /// A class this build does not know (a newer server's).
    #[serde(other)]
    Other,
}

impl Failure {
    /// Every class, spelled as the wire and the database spell them.
    pub const ALL: [Failure; 10] = [
        Failure::Unreachable,
        Failure::ModelMissing,
        Failure::Busy,
        Failure::Refused,
        Failure::BrokeOff,
        Failure::Stalled,
        Failure::TooSlow,
        Failure::Interrupted,
        Failure::Stopped,
        Failure::Other,
    ];
}
