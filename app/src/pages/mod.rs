//! The app's pages.
pub mod wall;
