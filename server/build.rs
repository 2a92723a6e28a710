//! Embeds the built site (cargo-leptos's `target/site`) and notices new migrations.
// A build script reports failure by panicking.
#![allow(clippy::expect_used)]
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site");
    if !site.exists() {
        // A plain `cargo build`/`cargo test` before any `cargo leptos build`: serve no assets.
        std::fs::create_dir_all(&site).expect("create target/site");
    }
    // One line per asset in every build's output is noise.
    std::env::set_var("MEMORY_SERVE_QUIET", "1");
    memory_serve::load_directory(site);
}
