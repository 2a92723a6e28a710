//! The server's configuration: one typed struct, from defaults, then `Leptos.toml`, then the
//! environment (`AIWALL_<SECTION>__<KEY>`).
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub ollama: OllamaConfig,
    pub jobs: JobsConfig,
    pub progress: ProgressConfig,
    pub limits: LimitsConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub shutdown_grace_secs: u64,
    /// Open connections at most, live streams included (lowered to fit the file limit).
    pub max_connections: usize,
    /// The most time a client may take to send a request's headers.
    pub header_read_timeout_secs: u64,
    /// The most time a request in progress may go without a byte moving (not live streams).
    pub idle_timeout_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OllamaConfig {
    pub url: String,
    pub default_model: String,
    pub stall_timeout_secs: u64,
    pub deadline_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub concurrency: usize,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProgressConfig {
    pub db_write_interval_ms: u64,
    pub push_interval_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub post_max_chars: usize,
    pub prompt_max_chars: usize,
    pub name_max_chars: usize,
    pub body_max_bytes: usize,
    pub max_tokens_limit: u32,
    pub page_size: u32,
    pub ai_posts_per_minute: u32,
    pub queued_per_author: u32,
    pub queue_max: u32,
    pub sse_per_client: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            shutdown_grace_secs: 10,
            max_connections: 19_000,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 30,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://aiwall.db".into(),
            max_connections: 8,
        }
    }
}

impl Default for OllamaConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:11434".into(),
            default_model: "llama3.2:1b".into(),
            stall_timeout_secs: 300,
            deadline_secs: 1800,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            max_attempts: 3,
            retry_base_ms: 1000,
        }
    }
}

impl Default for ProgressConfig {
    fn default() -> Self {
        Self {
            db_write_interval_ms: 500,
            push_interval_ms: 50,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            post_max_chars: 2000,
            prompt_max_chars: 4000,
            name_max_chars: 40,
            body_max_bytes: 64 * 1024,
            max_tokens_limit: 4096,
            page_size: 20,
            ai_posts_per_minute: 6,
            queued_per_author: 3,
            queue_max: 200,
            sse_per_client: 16,
        }
    }
}

impl Config {
    /// Defaults, then the file named by `AIWALL_CONFIG` (or `Leptos.toml` in the working
    /// directory, when present), then `AIWALL_*` environment variables.
    pub fn load() -> Result<Self, Box<figment::Error>> {
        let file = std::env::var_os("AIWALL_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("Leptos.toml"));
        Self::figment(file).extract().map_err(Box::new)
    }

    fn figment(file: PathBuf) -> Figment {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("AIWALL_").ignore(&["CONFIG"]).split("__"))
    }

    pub fn progress_db_interval(&self) -> Duration {
        Duration::from_millis(self.progress.db_write_interval_ms)
    }

    pub fn push_interval(&self) -> Duration {
        Duration::from_millis(self.progress.push_interval_ms)
    }
}

#[cfg(test)]
// figment's Jail takes closures that return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_leptos_toml_equals_the_defaults() {
        // Inside a Jail: the other tests set AIWALL_* variables, and a Jail runs them one at a time.
        figment::Jail::expect_with(|_| {
            let shipped =
                Config::figment(concat!(env!("CARGO_MANIFEST_DIR"), "/../Leptos.toml").into())
                    .extract::<Config>()
                    .expect("Leptos.toml parses");
            assert_eq!(shipped, Config::default());
            Ok(())
        });
    }

    #[test]
    fn every_earlier_releases_leptos_toml_still_loads() {
        // One file per release that changed Leptos.toml, copied as it shipped; never edited.
        for (release, file) in [("6ca8ea1", "Leptos-6ca8ea1.toml")] {
            figment::Jail::expect_with(|_| {
                let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
                let loaded = Config::figment(path.into()).extract::<Config>();
                assert!(loaded.is_ok(), "{release}'s Leptos.toml: {loaded:?}");
                Ok(())
            });
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("custom.toml", "[jobs]\nconcurrency = 5\n")?;
            jail.set_env("AIWALL_CONFIG", "custom.toml");
            jail.set_env("AIWALL_OLLAMA__URL", "http://gpu:11434");
            let config = Config::load().map_err(|e| *e)?;
            assert_eq!(config.jobs.concurrency, 5);
            assert_eq!(config.ollama.url, "http://gpu:11434");
            assert_eq!(config.limits, LimitsConfig::default());
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_an_error_not_silence() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", "[jobs]\nconcurency = 5\n")?;
            assert!(Config::load().is_err());
            Ok(())
        });
    }
}
