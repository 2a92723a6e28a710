//! `aiwall`: the whole AI Wall in one binary.
use std::process::ExitCode;

use server::{config::Config, db, edge, identity, logging, startup};

const USAGE: &str = "usage:
  aiwall                          serve the wall (settings: Leptos.toml, AIWALL_* variables)
  aiwall migrate-to POSTGRES_URL  copy the SQLite wall of database.url into an empty
                                  PostgreSQL database (stop the wall first)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("aiwall: bad configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&startup::instance_id(&config.server, config.server.addr));
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
            println!(
                "aiwall: copied {} posts, {} jobs and {} settings from {} into {}.\n\
                 Next: start aiwall with database.url = {} (AIWALL_DATABASE__URL) and {}, \
                 so that authors keep their posts. The SQLite file keeps its data (migrated \
                 to this release's schema, as a start would): keep it as the backup.",
                copied.posts,
                copied.jobs,
                copied.settings,
                db::shown(from),
                db::shown(to),
                db::shown(to),
                key_hint(config),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aiwall: migrate-to failed, and copied nothing: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the key this wall signed its cookies with is, to give every instance on PostgreSQL.
fn key_hint(config: &Config) -> String {
    if !config.server.cookie_key.is_empty() {
        return "the same server.cookie_key (AIWALL_SERVER__COOKIE_KEY) on every instance".into();
    }
    let file = identity::key_file(&config.server, &config.database.url)
        .ok()
        .flatten();
    match file.filter(|f| f.exists()) {
        Some(file) => format!(
            "server.cookie_key_file = {:?} (AIWALL_SERVER__COOKIE_KEY_FILE) on every instance",
            file.display()
        ),
        None => "the cookie key this wall signed its cookies with on every instance (it has no \
                 key file where the configuration says: authors who posted before will be new \
                 authors)"
            .into(),
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
