//! Where the keyboard focus goes after the page changed under it (a post sent, older posts
//! loaded, a post deleted or restored), so that it never falls back to `<body>`.

/// `article.post[data-post-id="7"]`: one post on the page.
pub fn post(post_id: i64) -> String {
    format!("article.post[data-post-id=\"{post_id}\"]")
}

/// The Delete button of one post.
pub fn delete_button(post_id: i64) -> String {
    format!("{} button[data-action=\"delete\"]", post(post_id))
}

/// Focuses the first element that matches one of `selectors`, once the page shows the change
/// just made (the signals' effects run first: a zero timeout comes after them).
pub fn soon(selectors: Vec<String>) {
    #[cfg(feature = "hydrate")]
    leptos::prelude::set_timeout(move || now(&selectors), std::time::Duration::ZERO);
    #[cfg(not(feature = "hydrate"))]
    let _ = selectors;
}

/// Like [`soon`], but only if by then the focus fell to `<body>`: for a change that may have
/// removed the focused element (the effect that notices the change can run before the page
/// shows it).
pub fn rescue(selectors: Vec<String>) {
    #[cfg(feature = "hydrate")]
    leptos::prelude::set_timeout(
        move || {
            if is_lost() {
                now(&selectors);
            }
        },
        std::time::Duration::ZERO,
    );
    #[cfg(not(feature = "hydrate"))]
    let _ = selectors;
}

/// Focuses the first element that matches one of `selectors`, now.
#[cfg(feature = "hydrate")]
fn now(selectors: &[String]) {
    use wasm_bindgen::JsCast;

    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let found = selectors.iter().find_map(|selector| {
        document
            .query_selector(selector)
            .ok()
            .flatten()
            .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
    });
    if let Some(el) = found {
        let _ = el.focus();
    }
}

/// Whether the focus fell to `<body>` (or nowhere), as when the focused element disappeared.
pub fn is_lost() -> bool {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.active_element())
            .is_none_or(|e| e.tag_name().eq_ignore_ascii_case("body"))
    }
    #[cfg(not(feature = "hydrate"))]
    false
}

/// Whether the focus is inside the element that matches `selector`.
pub fn is_within(selector: &str) -> bool {
    #[cfg(feature = "hydrate")]
    {
        let document = web_sys::window().and_then(|w| w.document());
        let active = document
            .as_ref()
            .and_then(web_sys::Document::active_element);
        let container = document.and_then(|d| d.query_selector(selector).ok().flatten());
        match (active, container) {
            (Some(active), Some(container)) => container.contains(Some(&active)),
            _ => false,
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = selector;
        false
    }
}
