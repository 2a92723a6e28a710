//! Model output is untrusted: it is rendered (here, on the server, so the browser bundle needs
//! no Markdown parser) as Markdown with raw HTML shown as text, images shown as text, unsafe
//! link schemes dropped, and every link marked `rel="nofollow noopener noreferrer"`.
//!
//! An answer is rendered as a list of top-level blocks (a paragraph, a list, a code block…), so
//! that a live answer can be sent as patches: while it streams only its last blocks change, and
//! each settled block crosses the wire once. A person's text post is not Markdown: it is escaped,
//! with its web addresses made links ([`text_post_html`]).
use pulldown_cmark::{html, CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};
use pulldown_cmark_escape::{escape_href, escape_html};

const LINK_ATTRS: &str = "rel=\"nofollow noopener noreferrer\" target=\"_blank\"";

/// The whole answer as safe HTML: its blocks, joined.
pub fn to_safe_html(markdown: &str) -> String {
    blocks(markdown).concat()
}

/// The answer as safe HTML, one string per top-level block, in order. An unfinished code fence
/// runs to the end of the text (as CommonMark says), so a streaming answer's code shows as code.
pub fn blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut block: Vec<Event<'_>> = Vec::new();
    let mut depth = 0usize;
    let mut safety = Safety::default();
    let parser = Parser::new_ext(
        markdown,
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
    );
    for event in parser {
        match &event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
        if let Some(safe) = safety.map(event) {
            block.push(safe);
        }
        if depth == 0 && !block.is_empty() {
            blocks.push(to_html(&mut block));
        }
    }
    if !block.is_empty() {
        // The parser always closes what it opened; this is only a guard.
        blocks.push(to_html(&mut block));
    }
    blocks
}

/// The HTML of one block's events, which it takes.
fn to_html(block: &mut Vec<Event<'_>>) -> String {
    let mut out = String::new();
    html::push_html(&mut out, block.drain(..));
    out
}

/// The rules that make one event safe to show, with what they need to remember: whether each
/// open link was kept.
#[derive(Default)]
struct Safety {
    link_open: Vec<bool>,
}

impl Safety {
    fn map<'a>(&mut self, event: Event<'a>) -> Option<Event<'a>> {
        Some(match event {
            // Raw HTML becomes visible text, never markup.
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            // A block of raw HTML reads as a paragraph of text.
            Event::Start(Tag::HtmlBlock) => Event::Start(Tag::Paragraph),
            Event::End(TagEnd::HtmlBlock) => Event::End(TagEnd::Paragraph),
            Event::Start(Tag::Image { dest_url, .. }) => {
                Event::Text(CowStr::from(format!("[image: {dest_url}]")))
            }
            Event::End(TagEnd::Image) => return None,
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                ..
            }) => {
                let safe = is_safe_url(&dest_url);
                self.link_open.push(safe);
                if !safe {
                    return None;
                }
                let mut href = String::new();
                if link_type == LinkType::Email {
                    href.push_str("mailto:");
                }
                // Writing to a String cannot fail.
                let _ = escape_href(&mut href, &dest_url);
                Event::InlineHtml(CowStr::from(format!("<a href=\"{href}\" {LINK_ATTRS}>")))
            }
            Event::End(TagEnd::Link) => {
                if self.link_open.pop().unwrap_or(false) {
                    Event::InlineHtml(CowStr::Borrowed("</a>"))
                } else {
                    return None;
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                Event::Html(CowStr::from(code_head(&info)))
            }
            Event::End(TagEnd::CodeBlock) => Event::Html(CowStr::Borrowed("</code></pre></div>\n")),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)) => {
                Event::Html(CowStr::Borrowed("<div class=\"code-block\"><pre><code>"))
            }
            other => other,
        })
    }
}

/// The opening of a fenced code block: a head with its language (the info string's first word)
/// and a Copy button, which the browser wires up.
fn code_head(info: &str) -> String {
    let lang = info.split_whitespace().next().unwrap_or_default();
    let mut escaped = String::new();
    // Writing to a String cannot fail.
    let _ = escape_html(&mut escaped, lang);
    let (label, class) = if lang.is_empty() {
        (String::new(), String::new())
    } else {
        (
            format!("<span class=\"code-lang\">{escaped}</span>"),
            format!(" class=\"language-{escaped}\""),
        )
    };
    format!(
        "<div class=\"code-block\"><div class=\"code-head\">{label}<button type=\"button\" \
         class=\"copy\" data-copy>Copy</button></div><pre><code{class}>"
    )
}

fn is_safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((scheme, _)) if !scheme.contains('/') => matches!(scheme, "http" | "https" | "mailto"),
        _ => true, // relative
    }
}

/// A person's text post as safe HTML: escaped, line breaks kept as they are (the card shows
/// them), and web addresses (`http`/`https` only) made links.
pub fn text_post_html(text: &str) -> String {
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    let mut out = String::new();
    for span in finder.spans(text) {
        let s = span.as_str();
        let is_web = span.kind().is_some()
            && ["http://", "https://"]
                .iter()
                .any(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)));
        // Writing to a String cannot fail.
        if is_web {
            out.push_str("<a href=\"");
            let _ = escape_href(&mut out, s);
            out.push_str("\" ");
            out.push_str(LINK_ATTRS);
            out.push('>');
            let _ = escape_html(&mut out, s);
            out.push_str("</a>");
        } else {
            let _ = escape_html(&mut out, s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{blocks, text_post_html, to_safe_html};

    #[test]
    fn raw_html_is_shown_as_text() {
        let html = to_safe_html("hi <img src=x onerror=alert(1)> <script>alert(1)</script>");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }

    #[test]
    fn a_block_of_raw_html_is_a_paragraph_of_text() {
        let html = to_safe_html("<div onclick=\"x()\">\n<script>alert(1)</script>\n</div>");
        assert!(
            !html.contains("<div") && !html.contains("<script"),
            "{html}"
        );
        assert!(html.starts_with("<p>&lt;div"), "{html}");
    }

    #[test]
    fn images_are_shown_as_text() {
        let html = to_safe_html("![cat](https://example.com/cat.png)");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("[image: https://example.com/cat.png]"),
            "{html}"
        );
    }

    #[test]
    fn links_are_nofollow_and_javascript_links_are_dropped() {
        let html =
            to_safe_html("[ok](https://example.com/a?b=1&c=\"2\") [bad](javascript:alert(1))");
        assert!(
            html.contains("rel=\"nofollow noopener noreferrer\""),
            "{html}"
        );
        assert!(!html.contains("javascript"), "{html}");
        assert!(html.contains("bad"), "{html}");
        let data = to_safe_html("[x](data:text/html,<script>alert(1)</script>)");
        assert!(!data.contains("href"), "{data}");
    }

    #[test]
    fn email_autolinks_keep_their_scheme() {
        let html = to_safe_html("write to <a@b.example>");
        assert!(html.contains("href=\"mailto:a@b.example\""), "{html}");
    }

    #[test]
    fn markdown_still_renders() {
        let html = to_safe_html("# Title\n\n**bold** and `code`\n\n- a\n- b");
        assert!(
            html.contains("<h1>Title</h1>")
                && html.contains("<strong>bold</strong>")
                && html.contains("<code>code</code>")
                && html.contains("<li>a</li>"),
            "{html}"
        );
    }

    #[test]
    fn each_top_level_block_is_one_string() {
        let b = blocks(
            "## Head\n\nSome **text**\nstill the paragraph\n\n- a\n- b\n\n> quote\n\n---\n\n\
             | x | y |\n|---|---|\n| 1 | 2 |\n",
        );
        assert_eq!(b.len(), 6, "{b:#?}");
        assert_eq!(b[0], "<h2>Head</h2>\n");
        assert!(
            b[1].starts_with("<p>Some <strong>text</strong>"),
            "{}",
            b[1]
        );
        assert!(b[2].starts_with("<ul>") && b[2].trim_end().ends_with("</ul>"));
        assert!(b[3].starts_with("<blockquote>"));
        assert!(b[4].starts_with("<hr"));
        assert!(b[5].starts_with("<table>"));
        assert_eq!(b.concat(), to_safe_html("## Head\n\nSome **text**\nstill the paragraph\n\n- a\n- b\n\n> quote\n\n---\n\n| x | y |\n|---|---|\n| 1 | 2 |\n"));
    }

    #[test]
    fn settled_blocks_stay_the_same_as_text_is_appended() {
        let text = "# T\n\nFirst paragraph.\n\nSecond one grows";
        let before = blocks(text);
        let after = blocks(&format!("{text} longer"));
        assert_eq!(before[..2], after[..2]);
        assert_ne!(before[2], after[2]);
    }

    #[test]
    fn a_fenced_code_block_has_a_head_with_its_language_and_a_copy_button() {
        let b = blocks("```rust\nfn main() {}\n```\n");
        assert_eq!(
            b,
            ["<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">rust</span>\
              <button type=\"button\" class=\"copy\" data-copy>Copy</button></div>\
              <pre><code class=\"language-rust\">fn main() {}\n</code></pre></div>\n"]
        );
    }

    #[test]
    fn a_code_language_is_escaped() {
        let html = to_safe_html("```\"><script>alert(1)</script>\nx\n```");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
        let plain = to_safe_html("```\nx < y\n```");
        assert!(plain.contains("<code>x &lt; y\n</code>"), "{plain}");
        assert!(!plain.contains("code-lang"), "{plain}");
    }

    #[test]
    fn an_unfinished_fence_is_code_to_the_end() {
        let b = blocks("Look:\n\n```python\nprint(1)\n\nprint(2)");
        assert_eq!(b.len(), 2, "{b:#?}");
        assert!(
            b[1].contains("<pre><code class=\"language-python\">print(1)\n\nprint(2)"),
            "{}",
            b[1]
        );
        assert!(b[1].ends_with("</code></pre></div>\n"), "{}", b[1]);
    }

    #[test]
    fn an_unfinished_list_is_a_list_so_far() {
        let b = blocks("Steps:\n\n1. one\n2. tw");
        assert_eq!(b.len(), 2, "{b:#?}");
        assert!(
            b[1].starts_with("<ol>") && b[1].contains("<li>tw</li>"),
            "{}",
            b[1]
        );
        let bullet = blocks("- a\n- ");
        assert_eq!(bullet.len(), 1, "{bullet:#?}");
        assert!(bullet[0].starts_with("<ul>"), "{}", bullet[0]);
    }

    #[test]
    fn no_text_no_blocks() {
        assert!(blocks("").is_empty());
        assert!(blocks("  \n\n").is_empty());
    }

    #[test]
    fn a_text_post_is_escaped_and_its_web_addresses_are_links() {
        let html = text_post_html(
            "see https://example.com/a?b=1&c=2 <script>alert(1)</script>\nand javascript:alert(1) ftp://x.example",
        );
        assert!(
            html.contains(
                "<a href=\"https://example.com/a?b=1&amp;c=2\" rel=\"nofollow noopener noreferrer\" \
                 target=\"_blank\">https://example.com/a?b=1&amp;c=2</a>"
            ),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("\nand"), "line breaks kept: {html}");
        assert_eq!(html.matches("<a ").count(), 1, "{html}");
    }
}
