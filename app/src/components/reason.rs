//! Why a job stopped, in words for people: one plain sentence for every viewer, and for the
//! post's author a hint at what would help. The technical detail stays behind a toggle.
use crate::types::{Failure, JobStatus};

/// The sentence every viewer reads for a job that `status` ended (or that waits to retry).
pub fn sentence(status: JobStatus, failure: Option<Failure>) -> &'static str {
    match failure {
        Some(Failure::Unreachable) => "The model server could not be reached.",
        Some(Failure::ModelMissing) => "This model is not available on the model server.",
        Some(Failure::Busy) => "The model server was busy.",
        Some(Failure::Refused) => "The model server turned the request down.",
        Some(Failure::BrokeOff) => "The model hit a problem partway.",
        Some(Failure::Stalled) => "The model stopped responding.",
        Some(Failure::TooSlow) => "The answer took too long and was cut off.",
        Some(Failure::Interrupted) => "The server restarted during this answer too many times.",
        Some(Failure::Stopped) => "Stopped by its author.",
        None if status == JobStatus::Cancelled => "Stopped by its author.",
        Some(Failure::Other) | None => "The answer could not be finished.",
    }
}

/// What the author (only) is told could help, for `model`.
pub fn hint(failure: Option<Failure>, model: &str) -> Option<String> {
    Some(match failure? {
        Failure::ModelMissing => {
            format!("Install it with `ollama pull {model}`, or pick another model.")
        }
        Failure::Unreachable => "Check that the model server runs, then Retry.".into(),
        Failure::TooSlow => "A shorter max length finishes sooner.".into(),
        // Retry, beside the sentence, is all there is to say.
        Failure::Busy
        | Failure::Stalled
        | Failure::BrokeOff
        | Failure::Interrupted
        | Failure::Refused
        | Failure::Stopped
        | Failure::Other => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_plain_sentence_without_jargon() {
        for class in Failure::ALL {
            let s = sentence(JobStatus::Failed, Some(class));
            assert!(s.ends_with('.'), "{s}");
            for jargon in ["Ollama", "HTTP", "EOF", "stream", "`"] {
                assert!(!s.contains(jargon), "{s}");
            }
        }
        assert_eq!(
            sentence(JobStatus::Cancelled, None),
            "Stopped by its author."
        );
        assert!(hint(Some(Failure::ModelMissing), "m:1b")
            .unwrap()
            .contains("ollama pull m:1b"));
        assert_eq!(hint(Some(Failure::Stopped), "m"), None);
    }
}
