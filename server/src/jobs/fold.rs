//! Folding a long answer for the wall: a page, its JSON and the live stream's snapshot carry
//! only an answer's beginning, up to [`FOLD_BYTES`], with `folded` set; the card's "Show all"
//! takes the whole answer from `GET /api/v1/posts/{id}`. A wall of the longest answers stays a
//! page of a few hundred kilobytes instead of megabytes. A finished job's reasoning is left
//! out of the wall altogether (its section is folded; opening it fetches the post).
use app::types::Post;

use crate::markdown;

/// The most bytes of an answer's text a wall shows before "Show all": some forty lines, more
/// than a card shows before "Show more".
pub const FOLD_BYTES: usize = 4 * 1024;

/// Folds a finished AI post's answer when it is longer than [`FOLD_BYTES`]. A running answer is
/// left whole: its card patches its blocks as they are written (and the byte cap bounds it).
pub fn fold(post: &mut Post) {
    let Some(job) = post.job.as_mut() else {
        return;
    };
    if !job.status.is_terminal() {
        return;
    }
    // A finished reasoning stays folded on its card: the card fetches it when opened.
    job.thinking.clear();
    if job.text.len() <= FOLD_BYTES {
        return;
    }
    let whole = std::mem::take(&mut job.text);
    job.text = beginning(&whole, FOLD_BYTES).to_owned();
    job.blocks = markdown::blocks(&job.text);
    job.folded = true;
    if post.text == whole {
        post.text.clone_from(&job.text);
        post.html = Some(job.blocks.concat());
    }
}

/// The text up to at most `bound` bytes, ended where a reader would pause: after the last
/// paragraph (or else line) that ends in the second half, else at a character boundary.
fn beginning(text: &str, bound: usize) -> &str {
    let mut end = bound.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let half = bound / 2;
    let at = head
        .rfind("\n\n")
        .filter(|&at| at >= half)
        .or_else(|| head.rfind('\n').filter(|&at| at >= half));
    at.map_or(head, |at| &head[..at])
}

#[cfg(test)]
mod tests {
    use app::types::{JobStatus, JobView, Post, PostKind};

    use super::{beginning, fold, FOLD_BYTES};

    fn ai_post(status: JobStatus, text: &str) -> Post {
        let mut job = JobView::fresh(1, 1, "m");
        job.status = status;
        job.text = text.into();
        Post {
            id: 1,
            author_name: "Ann".into(),
            kind: PostKind::Ai,
            text: text.into(),
            html: Some("whole".into()),
            prompt: Some("p".into()),
            created_at: 0,
            job: Some(job),
            author_tag: "t".into(),
        }
    }

    #[test]
    fn a_long_finished_answer_is_folded_at_a_paragraph_and_says_so() {
        let paragraph = format!("{}\n\n", "word ".repeat(100));
        let text = paragraph.repeat(40);
        let mut post = ai_post(JobStatus::Completed, &text);
        fold(&mut post);
        let job = post.job.as_ref().unwrap();
        assert!(job.folded);
        assert!(job.text.len() <= FOLD_BYTES && job.text.len() > FOLD_BYTES / 2);
        assert!(text.starts_with(&job.text) && job.text.ends_with("word "));
        assert_eq!(post.text, job.text);
        assert_eq!(post.html.as_deref(), Some(job.blocks.concat().as_str()));
        assert_eq!(job.blocks.len(), job.text.matches("\n\n").count() + 1);
    }

    #[test]
    fn a_short_or_running_answer_is_left_whole() {
        let long = "é".repeat(FOLD_BYTES);
        for (status, text) in [
            (JobStatus::Completed, "short"),
            (JobStatus::Generating, long.as_str()),
        ] {
            let mut post = ai_post(status, text);
            fold(&mut post);
            let job = post.job.as_ref().unwrap();
            assert!(!job.folded);
            assert_eq!((job.text.as_str(), post.text.as_str()), (text, text));
        }
    }

    #[test]
    fn text_without_a_line_break_is_cut_at_a_character() {
        let text = "é".repeat(FOLD_BYTES);
        let cut = beginning(&text, 7);
        assert_eq!(cut, "ééé");
    }
}
