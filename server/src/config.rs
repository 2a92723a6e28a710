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
    // Secrets and the site's address (issue 10): the cookie key never lives in the database.
    /// The file holding the cookie-signing key; empty: next to the database (`aiwall.key`
    /// beside `aiwall.db`), created 0600 with a fresh key on first start.
    pub cookie_key_file: String,
    /// The cookie-signing key itself (hex, at least 64 bytes), usually from
    /// `AIWALL_SERVER__COOKIE_KEY`; when set, `cookie_key_file` is not read.
    pub cookie_key: Secret,
    /// The address browsers reach the wall at (`https://wall.example`); empty: unknown. An
    /// `https://` address makes the author cookie `Secure`.
    pub public_url: String,
}

/// A configuration value that must never reach a log: its `Debug` is redacted. (The `secrecy`
/// crate's types are neither `Serialize` nor `PartialEq`, which the configuration needs.)
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_empty() {
            "\"\""
        } else {
            "\"[redacted]\""
        })
    }
}

impl ServerConfig {
    /// Whether browsers reach the wall over HTTPS, so cookies may be marked `Secure`.
    pub fn serves_https(&self) -> bool {
        self.public_url
            .trim()
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }
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
            cookie_key_file: String::new(),
            cookie_key: Secret::default(),
            public_url: String::new(),
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
    fn the_cookie_key_comes_from_the_environment_and_never_shows_in_debug() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AIWALL_SERVER__COOKIE_KEY", "00ff00ff");
            let config = Config::load().map_err(|e| *e)?;
            assert_eq!(config.server.cookie_key.expose(), "00ff00ff");
            let shown = format!("{config:?}");
            assert!(!shown.contains("00ff00ff"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn only_an_https_public_url_means_https() {
        let with = |url: &str| ServerConfig {
            public_url: url.into(),
            ..ServerConfig::default()
        };
        assert!(with("https://wall.example").serves_https());
        assert!(with("HTTPS://wall.example/").serves_https());
        assert!(!with("http://wall.example").serves_https());
        assert!(!with("").serves_https());
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
