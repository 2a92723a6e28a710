//! The wall's building blocks.
pub mod answer;
pub mod composer;
pub mod post_card;
pub mod progress_card;
pub mod reason;
pub mod reasoning;
pub mod toast;

use crate::types::ApiError;

/// What to show of an action's last answer: its message if it failed.
pub(crate) fn failure<T>(answer: &Option<Result<T, ApiError>>) -> Option<String> {
    answer.as_ref()?.as_ref().err().map(|e| e.message.clone())
}

/// What a click that calls the API gives back: nothing, or the reason it failed.
pub(crate) type Outcome = Result<(), ApiError>;

/// An [`Action`] for a click that calls the API. Every one has the same future type (boxed),
/// so the browser bundle carries the action machinery once per input type, not once per button.
pub(crate) fn request<I: 'static, F>(
    call: impl Fn(&I) -> F + 'static,
) -> leptos::prelude::Action<I, Outcome>
where
    F: std::future::Future<Output = Outcome> + 'static,
{
    leptos::prelude::Action::new_local(move |input: &I| {
        Box::pin(call(input)) as std::pin::Pin<Box<dyn std::future::Future<Output = Outcome>>>
    })
}
