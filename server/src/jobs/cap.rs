//! The cap on an answer's size: the most bytes a post keeps, reasoning and answer together. A
//! streamed piece is kept up to the cap, cut at a character boundary; what does not fit ends
//! the generation, whatever the model server does with `num_predict` (a bad upstream may
//! stream without end, or in giant chunks; a thinking model may reason without end).
use super::live::Live;
use crate::backend::ReplyStats;

/// Appends `piece` to the answer, keeping at most `max_bytes` in all. False when some of it did
/// not fit: the answer is cut (`live.cut_at_bytes` says so) and the generation must end.
pub(super) fn append(live: &mut Live, piece: &str, max_bytes: usize) -> bool {
    let room = max_bytes.saturating_sub(live.thinking.len());
    keep(&mut live.text, piece, room) || reached(live, max_bytes)
}

/// Appends `piece` to the reasoning, as [`append`] does to the answer: the two share the cap.
pub(super) fn append_thinking(live: &mut Live, piece: &str, max_bytes: usize) -> bool {
    let room = max_bytes.saturating_sub(live.text.len());
    keep(&mut live.thinking, piece, room) || reached(live, max_bytes)
}

fn reached(live: &mut Live, max_bytes: usize) -> bool {
    tracing::info!(
        bytes = live.text.len() + live.thinking.len(),
        "the answer reached its byte cap"
    );
    live.cut_at_bytes = Some(u32::try_from(max_bytes).unwrap_or(u32::MAX));
    false
}

/// Appends what fits of `piece` to `text` below `max_bytes`, cut at a character boundary;
/// false when not all of it fitted. A NUL character becomes U+FFFD: PostgreSQL's text cannot
/// hold it, and the text watchers are sent must be the text that is stored.
fn keep(text: &mut String, piece: &str, max_bytes: usize) -> bool {
    let replaced;
    let piece = if piece.contains('\0') {
        replaced = piece.replace('\0', "\u{FFFD}");
        replaced.as_str()
    } else {
        piece
    };
    let room = max_bytes.saturating_sub(text.len());
    if piece.len() <= room {
        text.push_str(piece);
        return true;
    }
    let mut end = room;
    while !piece.is_char_boundary(end) {
        end -= 1;
    }
    text.push_str(&piece[..end]);
    false
}

/// The final chunk the model server never sent for an answer cut at the cap: a `length` end,
/// with the tokens counted as they streamed.
pub(super) fn cut_stats(live: &Live) -> ReplyStats {
    ReplyStats {
        done_reason: Some("length".into()),
        output_tokens: Some(u64::from(live.estimator.tokens())),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::keep;

    #[test]
    fn a_piece_that_fits_is_kept_whole() {
        let mut text = String::from("ab");
        assert!(keep(&mut text, "cd", 4));
        assert_eq!(text, "abcd");
    }

    #[test]
    fn a_piece_past_the_cap_is_cut_at_a_character_boundary() {
        // "é" is two bytes: the cap falls inside it, so it is left out whole.
        let mut text = String::from("abc");
        assert!(!keep(&mut text, "dé!", 5));
        assert_eq!(text, "abcd");
        let mut full = String::from("abcd");
        assert!(!keep(&mut full, "x", 4));
        assert_eq!(full, "abcd");
        let mut giant = String::new();
        assert!(!keep(&mut giant, &"€".repeat(1000), 10));
        assert_eq!(giant, "€€€");
    }
}
