//! AI Wall's user interface, rendered on the server and hydrated in the browser, and the types
//! both sides share.
pub mod api;
pub mod components;
pub mod format;
pub mod live;
pub mod markdown;
pub mod pages;
pub mod types;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Meta, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/aiwall.css" />
        <Title text="AI Wall" />
        <Meta name="description" content="A wall where you watch the AI write." />
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"There is nothing here."</p> }>
                <Route path=StaticSegment("") view=pages::wall::WallPage />
            </Routes>
        </Router>
    }
}

/// The browser's entry point: attaches the app to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        // Browser tests wait for this before they interact.
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
