//! `aiwall`: the whole AI Wall in one binary.
use std::process::ExitCode;

use server::{config::Config, edge, startup};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn,memory_serve=warn".into()),
        )
        .init();
    edge::raise_file_limit();
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("aiwall: bad configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match startup::Server::build(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("aiwall: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        instance = server.instance(),
        database = server.engine().name(),
        metrics = ?server.metrics_addr(),
        "AI Wall listening on http://{}",
        server.local_addr()
    );
    match server.run(startup::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aiwall: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
