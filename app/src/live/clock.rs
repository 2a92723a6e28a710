//! The page's clock: one signal, ticking every 100 ms in the browser, that makes every card's
//! elapsed time move between server events without any traffic.
use leptos::prelude::*;

/// Milliseconds on this browser's clock; 0 on the server, where nothing ticks.
pub fn now() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

/// A signal with [`now`], updated every `period_ms` once the page is hydrated.
pub fn ticking(period_ms: u32) -> ReadSignal<f64> {
    // Starts at 0 so that the hydrated page first renders exactly what the server did.
    let (time, set_time) = signal(0.0);
    Effect::new(move |_| {
        set_time.set(now());
        if let Ok(handle) = set_interval_with_handle(
            move || set_time.set(now()),
            std::time::Duration::from_millis(period_ms.into()),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    time
}
