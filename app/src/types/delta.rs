//! `event: delta`, the wall stream's short progress event (`/api/v2/wall/events`): a job's text
//! and numbers moved on and nothing else changed, which is nearly every event while an answer
//! is written. Field names are one letter and the rendered answer travels as the bytes it grew
//! by; any other change goes as a whole `progress` event.
use serde::{Deserialize, Serialize};

use super::event::{BlocksPatch, ProgressEvent};
use super::job::Progress;

/// A job's text and numbers moved on; the seed's progress numbers under short names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgressDelta {
    #[serde(rename = "j")]
    pub job_id: i64,
    #[serde(rename = "i")]
    pub post_id: i64,
    #[serde(rename = "s")]
    pub seq: u64,
    /// The text appended after `text_offset` bytes, as in [`ProgressEvent`].
    #[serde(rename = "o")]
    pub text_offset: usize,
    #[serde(rename = "d", default, skip_serializing_if = "String::is_empty")]
    pub text_delta: String,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub html: Option<HtmlPatch>,
    #[serde(rename = "n")]
    pub current_tokens: u32,
    #[serde(rename = "t")]
    pub tokens_per_second: f64,
    #[serde(rename = "e")]
    pub elapsed_time: u64,
    #[serde(rename = "r", default)]
    pub estimated_time_remaining: Option<u64>,
    #[serde(rename = "rl", default, skip_serializing_if = "Option::is_none")]
    pub estimated_time_remaining_low: Option<u64>,
    #[serde(rename = "rh", default, skip_serializing_if = "Option::is_none")]
    pub estimated_time_remaining_high: Option<u64>,
    #[serde(rename = "p")]
    pub percent: f64,
    #[serde(rename = "u")]
    pub last_update_at: i64,
}

impl ProgressDelta {
    /// `event` in short, when it differs from `before` (the job's state before the change, as
    /// an event with nothing appended) only in its text, blocks, numbers and sequence number.
    pub fn of(
        event: &ProgressEvent,
        before: &ProgressEvent,
        html: Option<HtmlPatch>,
    ) -> Option<Self> {
        if besides_text_and_numbers(event) != besides_text_and_numbers(before) {
            return None;
        }
        let p = &event.progress;
        Some(Self {
            job_id: event.job_id,
            post_id: event.post_id,
            seq: event.seq,
            text_offset: event.text_offset,
            text_delta: event.text_delta.clone(),
            html,
            current_tokens: p.current_tokens,
            tokens_per_second: p.tokens_per_second,
            elapsed_time: p.elapsed_time,
            estimated_time_remaining: p.estimated_time_remaining,
            estimated_time_remaining_low: p.estimated_time_remaining_low,
            estimated_time_remaining_high: p.estimated_time_remaining_high,
            percent: p.percent,
            last_update_at: p.last_update_at,
        })
    }

    /// The seed's numbers it carries.
    pub fn progress(&self) -> Progress {
        Progress {
            current_tokens: self.current_tokens,
            tokens_per_second: self.tokens_per_second,
            elapsed_time: self.elapsed_time,
            estimated_time_remaining: self.estimated_time_remaining,
            estimated_time_remaining_low: self.estimated_time_remaining_low,
            estimated_time_remaining_high: self.estimated_time_remaining_high,
            percent: self.percent,
            last_update_at: self.last_update_at,
        }
    }
}

/// What a delta leaves alone: the event without its text, blocks, numbers and number.
fn besides_text_and_numbers(event: &ProgressEvent) -> ProgressEvent {
    ProgressEvent {
        progress: Progress::default(),
        text_offset: 0,
        text_delta: String::new(),
        html: None,
        seq: 0,
        ..event.clone()
    }
}

/// A change to a live answer's rendered blocks, as [`BlocksPatch`] but sending only what the
/// first changed block grew by: keep `from` blocks and the first `keep` bytes of the next, append
/// the first of `blocks` to it and add the others. A paragraph being written is one block whose
/// rendering grows at its end, so each event carries a few bytes, not the whole paragraph again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HtmlPatch {
    #[serde(rename = "f")]
    pub from: u32,
    #[serde(rename = "k", default)]
    pub keep: u32,
    #[serde(rename = "b")]
    pub blocks: Vec<String>,
}

impl HtmlPatch {
    /// The patch that turns `old` into `new`; `None` when they are the same.
    pub fn between(old: &[String], new: &[String]) -> Option<Self> {
        let BlocksPatch { from, mut blocks } = BlocksPatch::between(old, new)?;
        let keep = match (
            usize::try_from(from).ok().and_then(|f| old.get(f)),
            blocks.first_mut(),
        ) {
            (Some(was), Some(now)) => {
                let keep = shared_prefix(was, now);
                now.drain(..keep);
                keep
            }
            _ => 0,
        };
        Some(Self {
            from,
            keep: u32::try_from(keep).unwrap_or(u32::MAX),
            blocks,
        })
    }

    /// Applies the patch to `blocks`; false (and nothing changed) when it does not fit.
    pub fn apply(&self, blocks: &mut Vec<String>) -> bool {
        let (Ok(from), Ok(keep)) = (usize::try_from(self.from), usize::try_from(self.keep)) else {
            return false;
        };
        if from > blocks.len() {
            return false;
        }
        let mut added = self.blocks.iter();
        if keep > 0 {
            match blocks.get(from) {
                Some(b) if b.is_char_boundary(keep) && !self.blocks.is_empty() => {}
                _ => return false,
            }
            blocks.truncate(from + 1);
            if let (Some(grown), Some(tail)) = (blocks.last_mut(), added.next()) {
                grown.truncate(keep);
                grown.push_str(tail);
            }
        } else {
            blocks.truncate(from);
        }
        blocks.extend(added.cloned());
        true
    }
}

/// The length of the longest common prefix of `a` and `b` that ends on a character boundary.
fn shared_prefix(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_growing_paragraph_sends_what_it_grew_by() {
        let old = strings(&["<h1>A</h1>", "<p>Hello</p>"]);
        let new = strings(&["<h1>A</h1>", "<p>Hello, world</p>"]);
        let patch = HtmlPatch::between(&old, &new).unwrap();
        assert_eq!(
            patch,
            HtmlPatch {
                from: 1,
                keep: 8,
                blocks: strings(&[", world</p>"])
            }
        );
        let mut blocks = old.clone();
        assert!(patch.apply(&mut blocks));
        assert_eq!(blocks, new);
    }

    #[test]
    fn patches_turn_any_blocks_into_any_others() {
        let cases: [(&[&str], &[&str]); 7] = [
            (&[], &["<p>a</p>"]),
            (&["<p>a</p>"], &["<p>a</p>", "<p>b</p>"]),
            (&["<p>a</p>", "<p>b</p>"], &["<p>a</p>"]),
            (&["<p>ab</p>"], &["<h2>ab</h2>"]),
            (&["<p>é</p>"], &["<p>è</p>", "<ul><li>x</li></ul>"]),
            (
                &["<p>x</p>", "<p>é</p>"],
                &["<p>x</p>", "<p>éé</p>", "<p>y</p>"],
            ),
            (&["<p>a</p>"], &[]),
        ];
        for (old, new) in cases {
            let (old, new) = (strings(old), strings(new));
            let patch = HtmlPatch::between(&old, &new).unwrap();
            let mut blocks = old.clone();
            assert!(patch.apply(&mut blocks), "{old:?} -> {new:?}: {patch:?}");
            assert_eq!(blocks, new, "{patch:?}");
        }
        assert_eq!(
            HtmlPatch::between(&strings(&["<p>a</p>"]), &strings(&["<p>a</p>"])),
            None
        );
    }

    #[test]
    fn a_patch_that_does_not_fit_changes_nothing() {
        let patch = HtmlPatch {
            from: 1,
            keep: 3,
            blocks: strings(&["x"]),
        };
        for mut blocks in [strings(&["<p>a</p>"]), strings(&["<p>a</p>", "é"])] {
            let before = blocks.clone();
            assert!(!patch.apply(&mut blocks));
            assert_eq!(blocks, before);
        }
    }
}
