//! The server's configuration: one typed struct, from defaults, then `Leptos.toml`, then the
//! environment (`AIWALL_<SECTION>__<KEY>`, and `AIWALL_BACKENDS` for the list of backends).
mod backends;
mod legacy;

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use self::backends::BackendsEnv;
pub use self::backends::{BackendConfig, BackendKind};
use crate::allowed_models::AllowedModels;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub generation: GenerationConfig,
    /// The single Ollama of earlier releases, used when `backends` is empty.
    pub ollama: OllamaConfig,
    /// The model servers generations run on; empty: the one in `ollama` (see `backend_list`).
    pub backends: Vec<BackendConfig>,
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
    /// The most time a request in progress may go without a byte moving (a live stream only
    /// when its client takes none of a write).
    pub idle_timeout_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client (see
    /// `client_addr`); requests from anywhere else are counted by their own address.
    pub trusted_proxies: Vec<TrustedProxy>,
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
    /// This instance's name in logs, `/readyz` and `/metrics`; empty: `<host name>:<port>`.
    pub instance_id: String,
    /// Where Prometheus scrapes `/metrics` (`127.0.0.1:9100`); empty: no metrics endpoint.
    pub metrics_addr: String,
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

/// A reverse proxy's address, or a network of them: `10.0.0.0/8`, `::1`, `192.0.2.7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy(IpNet);

impl TrustedProxy {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(|net| TrustedProxy(canonical(net).trunc()))
            .map_err(|_| {
                format!(
                    "{s:?} is not an IP address or network; write one like \"10.0.0.0/8\", \"127.0.0.1\" or \"::1\""
                )
            })
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it is, since peers
/// are compared in their canonical form.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) => v6
            .addr()
            .to_ipv4_mapped()
            .filter(|_| v6.prefix_len() >= 96)
            .and_then(|v4| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        v4 => v4,
    }
}

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TrustedProxy> for String {
    fn from(proxy: TrustedProxy) -> Self {
        proxy.to_string()
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A single address reads as the address, as it was most likely written.
        if self.0.prefix_len() == self.0.max_prefix_len() {
            self.0.addr().fmt(f)
        } else {
            self.0.fmt(f)
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

/// What every generation is asked for and allowed, whichever backend runs it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    pub default_model: String,
    /// The models a post may name; empty means only `default_model`.
    pub allowed_models: Vec<String>,
    /// Give up when the model server sends no byte for this long (model loads are slow).
    pub stall_timeout_secs: u64,
    /// Give up on a generation that runs longer than this in total.
    pub deadline_secs: u64,
}

/// The single Ollama of earlier releases: the one backend when there is no `[[backends]]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OllamaConfig {
    pub url: String,
    // Earlier releases' home of the `[generation]` keys: still loaded, moved there by
    // `legacy::settle`, and readable only here so that nothing reads a stale copy.
    pub(in crate::config) default_model: String,
    pub(in crate::config) allowed_models: Vec<String>,
    pub(in crate::config) stall_timeout_secs: u64,
    pub(in crate::config) deadline_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub concurrency: usize,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    /// How long a job waits for an unreachable (or busy) model server before it fails.
    pub outage_wait_secs: u64,
    /// How long an instance's claim on a running job holds unless renewed: after this long
    /// without word from it (killed, or cut off from the database) another instance runs the
    /// job again. Milliseconds.
    pub lease_ms: u64,
    /// How often an instance renews the leases of the jobs it runs (well under `lease_ms`).
    pub lease_renew_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProgressConfig {
    pub db_write_interval_ms: u64,
    pub push_interval_ms: u64,
    /// The wall's watchers get at most one write of events per this many milliseconds.
    pub wall_batch_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub post_max_chars: usize,
    pub prompt_max_chars: usize,
    pub name_max_chars: usize,
    pub body_max_bytes: usize,
    pub max_tokens_limit: u32,
    /// The max length (`num_predict`) sent for a post that names none: Ollama's own default is
    /// unlimited. At most `max_tokens_limit`.
    pub default_max_tokens: u32,
    /// The most bytes of an answer a post keeps: the generation is ended there, whatever the
    /// model server does with `num_predict`.
    pub answer_max_bytes: usize,
    pub page_size: u32,
    /// Posts a browser keeps on the wall as new ones arrive live; older ones drop off the end
    /// and "Load older posts" brings them back.
    pub live_posts_max: u32,
    pub ai_posts_per_minute: u32,
    /// Text posts per author per minute; per address three times as many.
    pub text_posts_per_minute: u32,
    pub queued_per_author: u32,
    /// AI posts waiting or running from one client address (an IPv4 address or an IPv6 /64),
    /// whoever the authors: an author without a cookie is a new author every time.
    pub queued_per_address: u32,
    pub queue_max: u32,
    pub sse_per_client: u32,
}

impl LimitsConfig {
    /// The max length (`num_predict`) asked for a post that names none: the configured default,
    /// within the largest a post may ask for (a file that lowered only the limit keeps loading).
    pub fn default_num_predict(&self) -> u32 {
        self.default_max_tokens.min(self.max_tokens_limit)
    }
}

impl ServerConfig {
    /// `metrics_addr` as an address; `None` when the endpoint is off.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        let addr = self.metrics_addr.trim();
        if addr.is_empty() {
            return Ok(None);
        }
        addr.parse().map(Some).map_err(|_| {
            format!(
                "server.metrics_addr {addr:?} is not an address to listen on, such as \
                 \"127.0.0.1:9100\"; leave it empty for no metrics endpoint"
            )
        })
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            shutdown_grace_secs: 10,
            max_connections: 19_000,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            cookie_key_file: String::new(),
            cookie_key: Secret::default(),
            public_url: String::new(),
            instance_id: String::new(),
            metrics_addr: String::new(),
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

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            default_model: "llama3.2:1b".into(),
            allowed_models: Vec::new(),
            stall_timeout_secs: 300,
            deadline_secs: 1800,
        }
    }
}

impl Default for OllamaConfig {
    fn default() -> Self {
        let generation = GenerationConfig::default();
        Self {
            url: "http://127.0.0.1:11434".into(),
            default_model: generation.default_model,
            allowed_models: generation.allowed_models,
            stall_timeout_secs: generation.stall_timeout_secs,
            deadline_secs: generation.deadline_secs,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            max_attempts: 3,
            retry_base_ms: 1000,
            outage_wait_secs: 1800,
            lease_ms: 15_000,
            lease_renew_ms: 5_000,
        }
    }
}

impl Default for ProgressConfig {
    fn default() -> Self {
        Self {
            db_write_interval_ms: 500,
            push_interval_ms: 16,
            wall_batch_ms: 16,
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
            default_max_tokens: 1024,
            // A max_tokens_limit answer is about 16 KB (a token is 3-4 bytes of English, a few
            // more of code or accented text): four times that leaves room for any language.
            answer_max_bytes: 64 * 1024,
            page_size: 20,
            live_posts_max: 100,
            ai_posts_per_minute: 6,
            text_posts_per_minute: 10,
            queued_per_author: 3,
            queued_per_address: 10,
            queue_max: 200,
            sse_per_client: 16,
        }
    }
}

/// The smallest answer cap that still keeps a short answer whole.
const MIN_ANSWER_BYTES: usize = 1024;

impl Config {
    /// Defaults, then the file named by `AIWALL_CONFIG` (or `Leptos.toml` in the working
    /// directory, when present), then `AIWALL_*` environment variables, then the list in
    /// `AIWALL_BACKENDS`.
    pub fn load() -> Result<Self, Box<figment::Error>> {
        let file = std::env::var_os("AIWALL_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("Leptos.toml"));
        let backends = match std::env::var(BackendsEnv::VAR) {
            Ok(list) if !list.trim().is_empty() => Some(list),
            Ok(_) | Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Box::new(
                    format!("{} is not valid UTF-8", BackendsEnv::VAR).into(),
                ))
            }
        };
        Self::read(file, backends)
    }

    /// `load`, from this file and this `AIWALL_BACKENDS` (the other variables come from the
    /// environment).
    fn read(file: PathBuf, backends: Option<String>) -> Result<Self, Box<figment::Error>> {
        let defaults = Figment::from(Serialized::defaults(Config::default()));
        let mut config: Config = Self::layers(defaults, &file, backends.clone())
            .extract()
            .map_err(Box::new)?;
        let given = Self::layers(Figment::new(), &file, backends);
        legacy::settle(&mut config, &given).map_err(|e| Box::new(e.into()))?;
        config.check().map_err(|e| Box::new(e.into()))?;
        Ok(config)
    }

    /// The file and the environment over `base`.
    fn layers(base: Figment, file: &std::path::Path, backends: Option<String>) -> Figment {
        let figment = base.merge(Toml::file(file)).merge(
            Env::prefixed("AIWALL_")
                // AIWALL_BACKENDS is a whole TOML list, not one value: merged below.
                .ignore(&["CONFIG", "BACKENDS"])
                .split("__"),
        );
        match backends {
            Some(list) => figment.merge(BackendsEnv(list)),
            None => figment,
        }
    }

    /// The model servers generations run on: the `[[backends]]` when given, else the single
    /// Ollama of earlier releases (`ollama.url`, `jobs.concurrency`), named "ollama".
    pub fn backend_list(&self) -> Vec<BackendConfig> {
        if !self.backends.is_empty() {
            return self.backends.clone();
        }
        vec![BackendConfig {
            name: "ollama".into(),
            kind: BackendKind::Ollama,
            url: self.ollama.url.clone(),
            api_key_env: String::new(),
            api_key_file: String::new(),
            concurrency: self.jobs.concurrency,
            models: Vec::new(),
        }]
    }

    /// Settings that parse but cannot work: a zero that would refuse or cut off every request.
    fn check(&self) -> Result<(), String> {
        let s = &self.server;
        for (key, value) in [
            (
                "server.max_connections",
                u64::try_from(s.max_connections).unwrap_or(u64::MAX),
            ),
            (
                "server.header_read_timeout_secs",
                s.header_read_timeout_secs,
            ),
            ("server.idle_timeout_secs", s.idle_timeout_secs),
        ] {
            if value == 0 {
                return Err(format!(
                    "{key} is 0, which would cut off every request; it must be at least 1"
                ));
            }
        }
        if s.metrics_addr()? == Some(s.addr) && s.addr.port() != 0 {
            return Err(format!(
                "server.metrics_addr is the wall's own address ({}): give /metrics a port of its \
                 own, such as 127.0.0.1:9100",
                s.addr
            ));
        }
        if s.instance_id.chars().any(|c| c.is_control()) || s.instance_id.len() > 200 {
            return Err("server.instance_id must be one line of at most 200 bytes".into());
        }
        let g = &self.generation;
        if !g.allowed_models.is_empty() && !AllowedModels::of(g).allows(&g.default_model) {
            return Err(format!(
                "generation.default_model {:?} is not in generation.allowed_models {:?}: add it to the list, or choose the default from it",
                g.default_model, g.allowed_models
            ));
        }
        backends::check(&self.backends)?;
        let j = &self.jobs;
        if j.lease_renew_ms == 0 || j.lease_renew_ms.saturating_mul(2) > j.lease_ms {
            return Err(format!(
                "jobs.lease_renew_ms is {} and jobs.lease_ms {}: a lease must be renewed at \
                 least twice in its time (renew every 5000 ms with a 15000 ms lease, say)",
                j.lease_renew_ms, j.lease_ms
            ));
        }
        let l = &self.limits;
        if l.default_max_tokens == 0 {
            return Err(
                "limits.default_max_tokens is 0, which would end every answer before it starts; it must be at least 1"
                    .into(),
            );
        }
        if l.answer_max_bytes < MIN_ANSWER_BYTES {
            return Err(format!(
                "limits.answer_max_bytes is {}, which would cut off nearly every answer; it must be at least {MIN_ANSWER_BYTES}",
                l.answer_max_bytes
            ));
        }
        Ok(())
    }

    pub fn progress_db_interval(&self) -> Duration {
        Duration::from_millis(self.progress.db_write_interval_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.jobs.lease_ms)
    }

    pub fn lease_renew(&self) -> Duration {
        Duration::from_millis(self.jobs.lease_renew_ms)
    }

    pub fn outage_wait(&self) -> Duration {
        Duration::from_secs(self.jobs.outage_wait_secs)
    }

    pub fn push_interval(&self) -> Duration {
        Duration::from_millis(self.progress.push_interval_ms)
    }

    pub fn wall_batch_interval(&self) -> Duration {
        Duration::from_millis(self.progress.wall_batch_ms)
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
            let shipped = Config::read(
                concat!(env!("CARGO_MANIFEST_DIR"), "/../Leptos.toml").into(),
                None,
            )
            .expect("Leptos.toml loads");
            assert_eq!(shipped, Config::default());
            Ok(())
        });
    }

    #[test]
    fn the_shipped_backends_example_loads_once_uncommented() {
        let shipped = include_str!("../../Leptos.toml");
        let start = shipped.find("# [[backends]]").expect("an example");
        let end = shipped.find("\n[ollama]").expect("the [ollama] section");
        let example: Vec<&str> = shipped[start..end]
            .lines()
            .map(|line| {
                line.strip_prefix("# ")
                    .or_else(|| line.strip_prefix('#'))
                    .unwrap_or(line)
            })
            .collect();
        let file = format!(
            "{}{}{}",
            &shipped[..start],
            example.join("\n"),
            &shipped[end..]
        );
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", &file)?;
            jail.set_env("GPU2_API_KEY", "sk-example");
            let config = Config::load().map_err(|e| *e)?;
            let kinds: Vec<_> = config
                .backend_list()
                .into_iter()
                .map(|b| (b.name, b.kind))
                .collect();
            assert_eq!(
                kinds,
                [
                    ("gpu-1".to_owned(), BackendKind::Ollama),
                    ("gpu-2".to_owned(), BackendKind::OpenAi)
                ]
            );
            let key = config.backends[1].api_key()?.expect("a key");
            assert_eq!(key.expose(), "sk-example");
            Ok(())
        });
    }

    #[test]
    fn every_earlier_releases_leptos_toml_still_loads() {
        // tests/fixtures/Leptos-<release>.toml: each release's file as it shipped, never edited.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let files: Vec<_> = std::fs::read_dir(dir)
            .expect("the fixtures folder")
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "toml"))
            .collect();
        assert!(!files.is_empty(), "no earlier Leptos.toml in {dir}");
        for file in files {
            figment::Jail::expect_with(|_| {
                let loaded = Config::read(file.clone(), None);
                let config = loaded.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                // Every release so far shipped the defaults: one Ollama on this machine.
                assert_eq!(
                    config.backend_list(),
                    [BackendConfig {
                        name: "ollama".into(),
                        kind: BackendKind::Ollama,
                        url: "http://127.0.0.1:11434".into(),
                        api_key_env: String::new(),
                        api_key_file: String::new(),
                        concurrency: 2,
                        models: Vec::new(),
                    }],
                    "{}",
                    file.display()
                );
                assert_eq!(
                    config.generation,
                    GenerationConfig::default(),
                    "{}",
                    file.display()
                );
                Ok(())
            });
        }
    }

    #[test]
    fn allowed_models_widen_the_default_and_must_include_it() {
        figment::Jail::expect_with(|jail| {
            assert!(Config::load()
                .map_err(|e| *e)?
                .generation
                .allowed_models
                .is_empty());
            jail.set_env(
                "AIWALL_GENERATION__ALLOWED_MODELS",
                r#"["llama3.2:1b","qwen3:4b"]"#,
            );
            let config = Config::load().map_err(|e| *e)?;
            assert_eq!(
                config.generation.allowed_models,
                ["llama3.2:1b", "qwen3:4b"]
            );
            jail.set_env("AIWALL_GENERATION__ALLOWED_MODELS", r#"["qwen3:4b"]"#);
            let refused = Config::load().unwrap_err().to_string();
            assert!(
                refused.contains(
                    "generation.default_model \"llama3.2:1b\" is not in generation.allowed_models"
                ),
                "{refused}"
            );
            Ok(())
        });
        // The earlier name, as the end-to-end tests still set it, is checked the same way.
        figment::Jail::expect_with(|jail| {
            jail.set_env("AIWALL_OLLAMA__ALLOWED_MODELS", r#"["qwen3:4b"]"#);
            let refused = Config::load().unwrap_err().to_string();
            assert!(
                refused.contains("is not in generation.allowed_models"),
                "{refused}"
            );
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_come_from_the_environment_as_a_list() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AIWALL_SERVER__TRUSTED_PROXIES", r#"["10.0.0.0/8","::1"]"#);
            let config = Config::load().map_err(|e| *e)?;
            let proxies = &config.server.trusted_proxies;
            assert_eq!(proxies.len(), 2, "{proxies:?}");
            assert!(proxies[0].contains("10.200.0.1".parse().unwrap()));
            assert!(!proxies[0].contains("11.0.0.1".parse().unwrap()));
            assert!(proxies[1].contains("::1".parse().unwrap()));
            assert!(!proxies[1].contains("::2".parse().unwrap()));
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_come_from_the_file_and_an_address_is_a_single_host() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "Leptos.toml",
                "[server]\ntrusted_proxies = [\"192.0.2.7\", \"2001:db8::/32\"]\n",
            )?;
            let proxies = Config::load().map_err(|e| *e)?.server.trusted_proxies;
            let shown: Vec<String> = proxies.iter().map(ToString::to_string).collect();
            assert_eq!(shown, ["192.0.2.7", "2001:db8::/32"]);
            assert!(proxies[0].contains("192.0.2.7".parse().unwrap()));
            assert!(!proxies[0].contains("192.0.2.8".parse().unwrap()));
            // An IPv4 proxy seen through a dual-stack socket is still that proxy.
            assert!(proxies[0].contains("::ffff:192.0.2.7".parse().unwrap()));
            let mapped: TrustedProxy = "::ffff:10.0.0.0/104".parse().unwrap();
            assert!(mapped.contains("10.1.2.3".parse().unwrap()));
            assert_eq!(mapped.to_string(), "10.0.0.0/8");
            Ok(())
        });
    }

    #[test]
    fn a_trusted_proxy_that_is_not_an_address_stops_the_start_and_says_why() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "AIWALL_SERVER__TRUSTED_PROXIES",
                r#"["10.0.0.0/8","nginx"]"#,
            );
            let error = Config::load().unwrap_err().to_string();
            assert!(error.contains("\"nginx\" is not an IP address"), "{error}");
            assert!(error.to_lowercase().contains("trusted_proxies"), "{error}");
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
    fn a_zero_that_would_cut_off_every_request_is_refused_in_words() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AIWALL_SERVER__IDLE_TIMEOUT_SECS", "0");
            let error = Config::load().unwrap_err().to_string();
            assert!(
                error.contains("server.idle_timeout_secs is 0") && error.contains("at least 1"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_default_max_length_keeps_within_the_limit_and_a_useless_cap_is_refused_in_words() {
        figment::Jail::expect_with(|jail| {
            // Valid before default_max_tokens existed: it must still load, and ask for 512.
            jail.create_file("Leptos.toml", "[limits]\nmax_tokens_limit = 512\n")?;
            assert_eq!(
                Config::load().map_err(|e| *e)?.limits.default_num_predict(),
                512
            );
            jail.create_file("Leptos.toml", "[limits]\ndefault_max_tokens = 0\n")?;
            let error = Config::load().unwrap_err().to_string();
            assert!(error.contains("limits.default_max_tokens is 0"), "{error}");
            jail.create_file("Leptos.toml", "[limits]\nanswer_max_bytes = 10\n")?;
            let error = Config::load().unwrap_err().to_string();
            assert!(error.contains("limits.answer_max_bytes is 10"), "{error}");
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
