//! The wall's building blocks.
pub mod composer;
pub mod post_card;
pub mod progress_card;
