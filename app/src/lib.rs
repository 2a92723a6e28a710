//! AI Wall's user interface, rendered on the server and hydrated in the browser, and the types
//! both sides share.
pub mod api;
pub mod components;
pub mod focus;
pub mod format;
pub mod json;
pub mod live;
pub mod pages;
pub mod types;
pub mod when;

use leptos::prelude::*;

/// The HTML document around the app. The wall is the site's one page, so there is no client
/// router and no head manager to ship to the browser: the head is written here once.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <meta name="description" content="A wall where you watch the AI write." />
                <title>"AI Wall"</title>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <link rel="stylesheet" href="/pkg/aiwall.css" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    view! { <pages::wall::WallPage /> }
}

/// The browser's entry point: attaches the app to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        // Browser tests wait for this before they interact.
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
