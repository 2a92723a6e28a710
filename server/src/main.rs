//! `aiwall`: the whole AI Wall in one binary.
use std::process::ExitCode;

use server::{config::Config, db, edge, startup};

const USAGE: &str = "usage:
  aiwall                          serve the wall (settings: Leptos.toml, AIWALL_* variables)
  aiwall migrate-to POSTGRES_URL  copy the SQLite wall of database.url into an empty
                                  PostgreSQL database (stop the wall first)";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn,memory_serve=warn".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("aiwall: bad configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.as_slice() {
        [] => serve(config).await,
        [command, to] if command == "migrate-to" => migrate_to(&config, to).await,
        [help] if help == "--help" || help == "-h" || help == "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Copies the SQLite wall into PostgreSQL and says what to do next.
async fn migrate_to(config: &Config, to: &str) -> ExitCode {
    let from = &config.database.url;
    match db::migrate_to(from, to).await {
        Ok(copied) => {
            let key = match config.server.cookie_key_file.trim() {
                "" => db::database_file(from)
                    .ok()
                    .flatten()
                    .map(|file| file.with_extension("key").display().to_string())
                    .unwrap_or_else(|| "aiwall.key".into()),
                file => file.to_string(),
            };
            println!(
                "aiwall: copied {} posts, {} jobs and {} settings from {} into {}.\n\
                 Next: start aiwall with database.url = {} (AIWALL_DATABASE__URL), and \
                 server.cookie_key_file = {key:?} (AIWALL_SERVER__COOKIE_KEY_FILE) on every \
                 instance, so that authors keep their posts. The SQLite file is left as it was.",
                copied.posts,
                copied.jobs,
                copied.settings,
                db::shown(from),
                db::shown(to),
                db::shown(to),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aiwall: migrate-to failed, and copied nothing: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    edge::raise_file_limit();
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
