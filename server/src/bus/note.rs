//! What travels on the bus: one JSON notification per change, far under PostgreSQL's
//! 8,000-byte limit. A job's progress carries its text as a delta when that is small; a larger
//! one goes as a hint to read the job's row, which the runner has written just before.
use app::types::ProgressEvent;
use serde::{Deserialize, Serialize};

/// The most bytes a notification's payload may have here (PostgreSQL's limit is 8,000).
pub const MAX_PAYLOAD: usize = 7_000;

/// The most bytes of text and reasoning a progress notification carries inline, as JSON
/// spells them ([`inline_len`]); the runner writes its row before publishing a larger delta,
/// so that the hint to read it finds it. With the note's other fields (under 1,000 bytes) a
/// note stays under [`MAX_PAYLOAD`].
pub const MAX_INLINE_DELTA: usize = 5_000;

/// How many bytes `text` takes inside a JSON string: a quote, a backslash or a line break two,
/// another control character six, anything else its UTF-8 length.
pub fn inline_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c < ' ' => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// One notification: who sent it, when (Unix ms, for the lag), and what changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub from: String,
    pub at: i64,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum What {
    /// A running job's progress, as its watchers get it (without the rendered blocks, which
    /// each instance renders itself).
    Progress(Box<ProgressEvent>),
    /// Job `job` changed in its row (numbered `seq` on its instance): read the row.
    Job {
        job: i64,
        run: u32,
        seq: u64,
    },
    Post {
        post: i64,
    },
    PostDeleted {
        post: i64,
        job: Option<i64>,
    },
    Stop {
        job: i64,
    },
}

impl What {
    /// The job a note is about, if any.
    pub fn job(&self) -> Option<i64> {
        match self {
            What::Progress(event) => Some(event.job_id),
            What::Job { job, .. } | What::Stop { job } => Some(*job),
            What::PostDeleted { job, .. } => *job,
            What::Post { .. } => None,
        }
    }
}

impl Note {
    /// The payload to notify: the note as JSON, or for a progress note too large for one
    /// notification, the hint to read the job's row instead.
    pub fn payload(&self) -> Result<String, serde_json::Error> {
        let json = serde_json::to_string(self)?;
        match &self.what {
            What::Progress(event) if json.len() > MAX_PAYLOAD => serde_json::to_string(&Note {
                from: self.from.clone(),
                at: self.at,
                what: What::Job {
                    job: event.job_id,
                    run: event.run,
                    seq: event.seq,
                },
            }),
            _ => Ok(json),
        }
    }
}

/// Merges a job's progress notes that follow on one another (the second starts where the
/// first's text ends) into one: what arrived while the previous batch was being sent goes as
/// one notification per job. Never past [`MAX_INLINE_DELTA`] of text: a larger note would
/// become a hint to read a row the runner has not written yet.
pub fn coalesce(notes: Vec<What>) -> Vec<What> {
    let mut out: Vec<What> = Vec::with_capacity(notes.len());
    // Where each job's last progress note is in `out`, while nothing else about it followed.
    let mut last_progress: std::collections::HashMap<i64, usize> = Default::default();
    for what in notes {
        if let What::Progress(next) = &what {
            if let Some(&at) = last_progress.get(&next.job_id) {
                if let What::Progress(prev) = &mut out[at] {
                    let merged = [
                        &prev.text_delta,
                        &prev.thinking_delta,
                        &next.text_delta,
                        &next.thinking_delta,
                    ]
                    .map(|d| inline_len(d))
                    .iter()
                    .sum::<usize>();
                    if follows(prev, next) && merged <= MAX_INLINE_DELTA {
                        let text = std::mem::take(&mut prev.text_delta) + &next.text_delta;
                        let thinking =
                            std::mem::take(&mut prev.thinking_delta) + &next.thinking_delta;
                        let (offset, thinking_offset) = (prev.text_offset, prev.thinking_offset);
                        **prev = (**next).clone();
                        prev.text_offset = offset;
                        prev.text_delta = text;
                        prev.thinking_offset = thinking_offset;
                        prev.thinking_delta = thinking;
                        continue;
                    }
                }
            }
            last_progress.insert(next.job_id, out.len());
        } else if let Some(job) = what.job() {
            last_progress.remove(&job);
        }
        out.push(what);
    }
    out
}

/// Whether `next` carries on exactly where `prev` ends, in the same run.
fn follows(prev: &ProgressEvent, next: &ProgressEvent) -> bool {
    prev.run == next.run
        && next.text_offset == prev.text_offset + prev.text_delta.len()
        && next.thinking_offset == prev.thinking_offset + prev.thinking_delta.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(job: i64, seq: u64, offset: usize, delta: &str) -> What {
        let event: ProgressEvent =
            serde_json::from_str(include_str!("../../../app/tests/fixtures/progress.json"))
                .unwrap();
        What::Progress(Box::new(ProgressEvent {
            job_id: job,
            seq,
            run: 1,
            text_offset: offset,
            text_delta: delta.into(),
            thinking_offset: 0,
            thinking_delta: String::new(),
            ..event
        }))
    }

    #[test]
    fn progress_that_follows_on_merges_and_anything_else_keeps_its_place() {
        let notes = vec![
            progress(1, 10, 0, "Hel"),
            progress(2, 5, 4, "x"),
            progress(1, 11, 3, "lo"),
            What::Job {
                job: 1,
                run: 1,
                seq: 12,
            },
            progress(1, 13, 5, "!"),
            // Not where the last one ended: kept apart, so the receiver reads the row.
            progress(2, 6, 9, "y"),
        ];
        let out = coalesce(notes);
        assert_eq!(out.len(), 5, "{out:?}");
        let What::Progress(first) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (first.text_offset, first.text_delta.as_str(), first.seq),
            (0, "Hello", 11)
        );
        assert!(matches!(&out[2], What::Job { job: 1, .. }));
        assert!(matches!(&out[3], What::Progress(e) if e.text_delta == "!"));
    }

    #[test]
    fn the_inline_length_is_what_json_makes_of_a_text() {
        for text in [
            "plain",
            "é ü 日本",
            "\"quoted\" \\ back",
            "lines\n\r\ttab",
            "\u{1}\u{1f}\u{7f}",
        ] {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(inline_len(text), json.len() - 2, "{text:?} as {json}");
        }
    }

    #[test]
    fn a_progress_note_too_large_for_one_notification_becomes_a_hint_to_read_the_row() {
        let What::Progress(mut event) = progress(7, 3, 0, "") else {
            unreachable!()
        };
        let small = Note {
            from: "a".into(),
            at: 1,
            what: What::Progress(event.clone()),
        };
        assert!(small.payload().unwrap().contains("\"k\":\"progress\""));
        event.text_delta = "é".repeat(MAX_PAYLOAD);
        let large = Note {
            from: "a".into(),
            at: 1,
            what: What::Progress(event),
        };
        let payload = large.payload().unwrap();
        assert!(payload.len() < 200, "{payload}");
        let back: Note = serde_json::from_str(&payload).unwrap();
        assert_eq!(
            back.what,
            What::Job {
                job: 7,
                run: 1,
                seq: 3
            }
        );
    }
}
