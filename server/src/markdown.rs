//! Model output is untrusted: it is rendered (here, on the server, so the browser bundle needs
//! no Markdown parser) as Markdown with raw HTML shown as text, unsafe link schemes dropped,
//! and every link marked `rel="nofollow noopener"`.
use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

pub fn to_safe_html(markdown: &str) -> String {
    let mut link_open = Vec::new();
    let events = Parser::new_ext(
        markdown,
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
    )
    .filter_map(|event| {
        Some(match event {
            // Raw HTML becomes visible text, never markup.
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
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
                link_open.push(safe);
                if !safe {
                    return None;
                }
                let mut href = String::new();
                if link_type == LinkType::Email {
                    href.push_str("mailto:");
                }
                // Writing to a String cannot fail.
                let _ = pulldown_cmark_escape::escape_href(&mut href, &dest_url);
                Event::InlineHtml(CowStr::from(format!(
                    "<a href=\"{href}\" rel=\"nofollow noopener noreferrer\" target=\"_blank\">"
                )))
            }
            Event::End(TagEnd::Link) => {
                if link_open.pop().unwrap_or(false) {
                    Event::InlineHtml(CowStr::Borrowed("</a>"))
                } else {
                    return None;
                }
            }
            other => other,
        })
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

fn is_safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((scheme, _)) if !scheme.contains('/') => matches!(scheme, "http" | "https" | "mailto"),
        _ => true, // relative
    }
}

#[cfg(test)]
mod tests {
    use super::to_safe_html;

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
    fn links_are_nofollow_and_javascript_links_are_dropped() {
        let html =
            to_safe_html("[ok](https://example.com/a?b=1&c=\"2\") [bad](javascript:alert(1))");
        assert!(
            html.contains("rel=\"nofollow noopener noreferrer\""),
            "{html}"
        );
        assert!(!html.contains("javascript"), "{html}");
        assert!(html.contains("bad"), "{html}");
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
                && html.contains("<li>a</li>"),
            "{html}"
        );
    }
}
