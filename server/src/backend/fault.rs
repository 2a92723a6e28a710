//! The one table of what goes wrong with the model server and what the job runner does about
//! it: each [`Fault`] has a [`Handling`] (spends an attempt? retried after a delay? marks the
//! backend down?). The README's "When the model server fails" repeats this table; keep the two
//! alike.

use super::BackendError;

/// A kind of failed request to the model server, as the job runner tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Connection refused or DNS failure: nothing listens (Ollama is down or restarting).
    Unreachable,
    /// No connection within `connect_timeout`. reqwest reports it as a connect error, so the
    /// client says [`BackendError::Unreachable`] for both and this row is handled alike.
    ConnectTimeout,
    /// HTTP 503: the server is full (Ollama's queue, `OLLAMA_MAX_QUEUE`: "server busy"; a
    /// llama-server still loading its model). Its `Retry-After`, when sent, is
    /// [`BackendError::retry_after`].
    Busy,
    /// HTTP 429: too many requests (a proxy or a hosted service limiting us), with its
    /// `Retry-After` as for [`Fault::Busy`].
    RateLimited,
    /// Any other 5xx, and 408: a passing problem on the server's side.
    ServerError,
    /// No byte for the stall timeout (before the first token too).
    Stalled,
    /// The server's own 404 for the model: Ollama has not pulled it, an OpenAI-compatible
    /// server says it does not exist.
    ModelMissing,
    /// Any other 4xx: the request (or the setup) is wrong.
    BadRequest,
    /// An `{"error": ...}` line or event in the middle of a reply: the model runner failed
    /// (crash, out of memory, a broken model file); it tends to repeat for the same model and
    /// prompt.
    MidStream,
    /// The connection failed after it was established (reset, closed early).
    ConnectionBroken,
    /// The whole reply took longer than the deadline: the same reply would take as long again.
    Deadline,
    /// Something that is not the server's wire format (bad JSON, a line or event too long, bad
    /// UTF-8).
    Protocol,
    /// The configured base URL cannot be used: the setup is wrong.
    InvalidUrl,
}

/// What the job runner does after a [`Fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handling {
    /// The request counts against `jobs.max_attempts`.
    pub spends_attempt: bool,
    /// The job tries again after a delay; otherwise it fails at once.
    pub retried: bool,
    /// Marks the model server down: no job goes to it until a probe finds it answering. The
    /// job goes back to the queue at its place, without spending an attempt, and runs on
    /// another server that has its model, or waits (failing only after
    /// `jobs.outage_wait_secs` with no server for it).
    pub marks_down: bool,
}

/// Fails at once; the request was an attempt like any other.
const FAILS: Handling = Handling {
    spends_attempt: true,
    retried: false,
    marks_down: false,
};
/// Tried again after a backoff delay, up to `jobs.max_attempts`.
const RETRIED: Handling = Handling {
    spends_attempt: true,
    retried: true,
    marks_down: false,
};
/// Tried again after a backoff delay, free, for up to `jobs.outage_wait_secs` in a row.
const RETRIED_FREE: Handling = Handling {
    spends_attempt: false,
    retried: true,
    marks_down: false,
};
/// Waits in the queue while the runner probes the server, which is down meanwhile.
const WAITS_FOR_SERVER: Handling = Handling {
    spends_attempt: false,
    retried: true,
    marks_down: true,
};

impl Fault {
    /// Every row of the table, in the README's order.
    pub const ALL: [Fault; 13] = [
        Fault::Unreachable,
        Fault::ConnectTimeout,
        Fault::Busy,
        Fault::RateLimited,
        Fault::ServerError,
        Fault::Stalled,
        Fault::ModelMissing,
        Fault::BadRequest,
        Fault::MidStream,
        Fault::ConnectionBroken,
        Fault::Deadline,
        Fault::Protocol,
        Fault::InvalidUrl,
    ];

    /// The table.
    ///
    /// Busy and rate-limited do not pause claiming: the server is up and answering, only full.
    /// A job that meets them keeps its slot while it waits, so at most `jobs.concurrency`
    /// requests knock at once, and the jobs behind it would be refused all the same; pausing
    /// would add nothing but a second way to wait. In a pool the job first moves to another
    /// server with a free slot for its model, if there is one (the runner does that). A dropped connection or a protocol error
    /// can mean the server just went away: the runner then asks it for its version, and if
    /// that finds nobody the job is handled as [`Fault::Unreachable`] instead.
    pub const fn handling(self) -> Handling {
        match self {
            Fault::Unreachable | Fault::ConnectTimeout => WAITS_FOR_SERVER,
            Fault::Busy | Fault::RateLimited => RETRIED_FREE,
            Fault::ServerError | Fault::Stalled | Fault::ConnectionBroken => RETRIED,
            Fault::ModelMissing
            | Fault::BadRequest
            | Fault::MidStream
            | Fault::Deadline
            | Fault::Protocol
            | Fault::InvalidUrl => FAILS,
        }
    }

    /// Whether the model server may have gone away with this fault: worth a probe before
    /// spending an attempt on it.
    pub const fn may_mean_gone(self) -> bool {
        matches!(
            self,
            Fault::ConnectionBroken | Fault::Protocol | Fault::Stalled | Fault::ServerError
        )
    }
}

impl BackendError {
    /// Which row of the table this error is.
    pub fn fault(&self) -> Fault {
        match self {
            BackendError::InvalidUrl { .. } => Fault::InvalidUrl,
            BackendError::Unreachable { .. } => Fault::Unreachable,
            BackendError::ModelNotInstalled { .. } => Fault::ModelMissing,
            BackendError::Http { status: 503, .. } => Fault::Busy,
            BackendError::Http { status: 429, .. } => Fault::RateLimited,
            BackendError::Http { status, .. } if *status >= 500 || *status == 408 => {
                Fault::ServerError
            }
            BackendError::Http { .. } => Fault::BadRequest,
            BackendError::Stream(_) => Fault::MidStream,
            BackendError::Stalled { .. } => Fault::Stalled,
            BackendError::DeadlineExceeded { .. } => Fault::Deadline,
            BackendError::Protocol(_) => Fault::Protocol,
            BackendError::Transport(_) => Fault::ConnectionBroken,
        }
    }

    /// What the job runner does about this error.
    pub fn handling(&self) -> Handling {
        self.fault().handling()
    }

    /// Whether this error of a call to a model server means nobody is there (a probe or a
    /// check after a broken reply says so).
    pub fn is_gone(&self) -> bool {
        self.handling().marks_down || self.fault() == Fault::ConnectionBroken
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The table, row by row, as the README prints it: (spends an attempt, retried, marks the
    /// backend down).
    #[test]
    fn the_table_says_what_the_readme_says() {
        let row = |f: Fault| {
            let h = f.handling();
            (h.spends_attempt, h.retried, h.marks_down)
        };
        assert_eq!(row(Fault::Unreachable), (false, true, true));
        assert_eq!(row(Fault::ConnectTimeout), (false, true, true));
        assert_eq!(row(Fault::Busy), (false, true, false));
        assert_eq!(row(Fault::RateLimited), (false, true, false));
        assert_eq!(row(Fault::ServerError), (true, true, false));
        assert_eq!(row(Fault::Stalled), (true, true, false));
        assert_eq!(row(Fault::ModelMissing), (true, false, false));
        assert_eq!(row(Fault::BadRequest), (true, false, false));
        assert_eq!(row(Fault::MidStream), (true, false, false));
        assert_eq!(row(Fault::ConnectionBroken), (true, true, false));
        assert_eq!(row(Fault::Deadline), (true, false, false));
        assert_eq!(row(Fault::Protocol), (true, false, false));
        assert_eq!(row(Fault::InvalidUrl), (true, false, false));
    }

    #[test]
    fn only_waiting_for_the_server_marks_down_and_no_free_retry_fails_at_once() {
        for fault in Fault::ALL {
            let h = fault.handling();
            assert!(
                !h.marks_down || !h.spends_attempt,
                "{fault:?}: an outage must not cost attempts"
            );
            assert!(
                h.spends_attempt || h.retried,
                "{fault:?}: a fault that costs nothing must be retried"
            );
        }
    }

    #[test]
    fn each_error_finds_its_row() {
        let http = |status| BackendError::Http {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert_eq!(
            BackendError::Unreachable { url: "x".into() }.fault(),
            Fault::Unreachable
        );
        assert_eq!(http(503).fault(), Fault::Busy);
        assert_eq!(http(429).fault(), Fault::RateLimited);
        assert_eq!(http(500).fault(), Fault::ServerError);
        assert_eq!(http(502).fault(), Fault::ServerError);
        assert_eq!(http(408).fault(), Fault::ServerError);
        assert_eq!(http(400).fault(), Fault::BadRequest);
        assert_eq!(http(499).fault(), Fault::BadRequest);
        assert_eq!(
            BackendError::ModelNotInstalled { model: "m".into() }.fault(),
            Fault::ModelMissing
        );
        assert_eq!(BackendError::Stream("x".into()).fault(), Fault::MidStream);
        assert_eq!(
            BackendError::Transport("x".into()).fault(),
            Fault::ConnectionBroken
        );
        assert_eq!(BackendError::Protocol("x".into()).fault(), Fault::Protocol);
        let after = Duration::from_secs(1);
        assert_eq!(BackendError::Stalled { after }.fault(), Fault::Stalled);
        assert_eq!(
            BackendError::DeadlineExceeded { after }.fault(),
            Fault::Deadline
        );
    }
}
