//! The `[[backends]]` list: the model servers the wall generates on, what a valid entry is, where
//! each one's API key comes from, and the list given whole in `AIWALL_BACKENDS`.
use std::{collections::HashSet, env::VarError};

use figment::{
    providers::{Format, Toml},
    value::{Dict, Map},
    Metadata, Profile, Provider,
};
use serde::{Deserialize, Serialize};

use super::Secret;

/// One model server the wall sends generations to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Shown publicly (on `/readyz` and in the model picker) instead of the address, which is
    /// never shown: letters, digits, `.`, `_` and `-` only.
    pub name: String,
    pub kind: BackendKind,
    pub url: String,
    /// The environment variable holding the API key; empty: none.
    #[serde(default)]
    pub api_key_env: String,
    /// The file holding the API key; empty: none.
    #[serde(default)]
    pub api_key_file: String,
    /// Generations that run at once on this server.
    #[serde(default = "one")]
    pub concurrency: usize,
    /// The models to use on it; empty: whatever the server lists.
    #[serde(default)]
    pub models: Vec<String>,
}

fn one() -> usize {
    1
}

/// The API a backend speaks: the one typed contract, shared with `/readyz`.
pub use app::types::BackendKind;

impl BackendConfig {
    /// The key sent to this backend, read now from `api_key_env` or `api_key_file` (trimmed).
    /// The error names the backend and where the key should be, never the key.
    pub fn api_key(&self) -> Result<Option<Secret>, String> {
        let name = &self.name;
        let (key, origin) = match (self.api_key_env.trim(), self.api_key_file.trim()) {
            ("", "") => return Ok(None),
            (var, "") => match std::env::var(var) {
                Ok(key) => (key, format!("the environment variable {var} (its api_key_env)")),
                Err(VarError::NotPresent) => {
                    return Err(format!(
                        "backend {name:?}: its api_key_env names the environment variable {var}, which is not set"
                    ))
                }
                Err(VarError::NotUnicode(_)) => {
                    return Err(format!(
                        "backend {name:?}: the environment variable {var} (its api_key_env) is not valid UTF-8"
                    ))
                }
            },
            ("", file) => match std::fs::read_to_string(file) {
                Ok(key) => (key, format!("the file {file} (its api_key_file)")),
                Err(e) => {
                    return Err(format!(
                        "backend {name:?}: cannot read its api_key_file {file}: {e}"
                    ))
                }
            },
            (_, _) => {
                return Err(format!(
                    "backend {name:?} has both api_key_env and api_key_file; give only one"
                ))
            }
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("backend {name:?}: {origin} is empty"));
        }
        // It becomes an `Authorization: Bearer` header: a stray character would fail every request.
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "backend {name:?}: the key in {origin} holds a space or a character an HTTP header cannot carry"
            ));
        }
        Ok(Some(Secret::new(key)))
    }
}

/// Every backend well-formed: a public name of its own, an address, a slot, a readable key.
pub(super) fn check(backends: &[BackendConfig]) -> Result<(), String> {
    let mut names = HashSet::new();
    for backend in backends {
        let name = &backend.name;
        if name.is_empty() {
            return Err(
                "a backend has an empty name; give each of the [[backends]] a name (it is shown publicly instead of its address)"
                    .into(),
            );
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "backend name {name:?} may hold only letters, digits, '.', '_' and '-' (it is shown publicly on /readyz and in the model picker)"
            ));
        }
        if !names.insert(name.to_ascii_lowercase()) {
            return Err(format!(
                "two backends are named {name:?}; each of the [[backends]] needs a name of its own"
            ));
        }
        let scheme = url::Url::parse(&backend.url).map(|url| url.scheme().to_owned());
        if !matches!(scheme.as_deref(), Ok("http" | "https")) {
            return Err(format!(
                "backend {name:?}: url {:?} is not an http:// or https:// address",
                crate::backend::without_credentials(&backend.url)
            ));
        }
        if backend.concurrency == 0 {
            return Err(format!(
                "backend {name:?}: concurrency is 0, which would never run a generation on it; it must be at least 1"
            ));
        }
        backend.api_key()?;
    }
    Ok(())
}

/// `AIWALL_BACKENDS`, the whole list as one TOML string (per-key environment variables cannot
/// index a list): either `[[backends]]` tables or an inline array `[{name = "a", …}, …]`.
/// Merged after the file, it replaces the file's list.
pub(super) struct BackendsEnv(pub(super) String);

impl BackendsEnv {
    pub(super) const VAR: &'static str = "AIWALL_BACKENDS";
}

impl Provider for BackendsEnv {
    fn metadata(&self) -> Metadata {
        // Keys read `backends.0.url`, without figment's profile in front.
        Metadata::named(format!("the {} environment variable", Self::VAR))
            .interpolater(|_: &Profile, keys: &[&str]| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let list = self.0.trim();
        let tables = match Toml::string(list).data() {
            Ok(tables) => tables,
            // Not `[[backends]]` tables: an inline array, or a mistake in either form.
            Err(as_tables) => match Toml::string(&format!("backends = {list}")).data() {
                Ok(tables) => tables,
                // Say what is wrong with the form it was written in.
                Err(_) if list.starts_with("[[") => return Err(as_tables),
                Err(as_array) => return Err(as_array),
            },
        };
        for dict in tables.values() {
            if let Some(key) = dict.keys().find(|key| *key != "backends") {
                return Err(format!(
                    "found {key:?} where only the backends list ([[backends]] tables or an inline array) belongs"
                )
                .into());
            }
        }
        let listed = tables.values().any(|dict| {
            matches!(dict.get("backends"), Some(figment::value::Value::Array(_, list)) if !list.is_empty())
        });
        if !listed {
            return Err(format!(
                "{} lists no backend: leave it unset to use ollama.url, or list at least one",
                Self::VAR
            )
            .into());
        }
        Ok(tables)
    }
}

#[cfg(test)]
// figment's Jail takes closures that return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use crate::config::{BackendConfig, BackendKind, Config};

    const TWO: &str = r#"
[[backends]]
name = "gpu-1"
kind = "ollama"
url = "http://10.0.0.5:11434"
concurrency = 2

[[backends]]
name = "llama.cpp"
kind = "openai"
url = "http://10.0.0.6:8080"
models = ["qwen3:4b"]
"#;

    fn load() -> Result<Config, String> {
        Config::load().map_err(|e| e.to_string())
    }

    fn names(config: &Config) -> Vec<String> {
        config.backend_list().into_iter().map(|b| b.name).collect()
    }

    #[test]
    fn a_file_with_two_backends_lists_both_with_their_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", TWO)?;
            let list = load()?.backend_list();
            assert_eq!(
                list,
                [
                    BackendConfig {
                        name: "gpu-1".into(),
                        kind: BackendKind::Ollama,
                        url: "http://10.0.0.5:11434".into(),
                        api_key_env: String::new(),
                        api_key_file: String::new(),
                        concurrency: 2,
                        models: Vec::new(),
                    },
                    BackendConfig {
                        name: "llama.cpp".into(),
                        kind: BackendKind::OpenAi,
                        url: "http://10.0.0.6:8080".into(),
                        api_key_env: String::new(),
                        api_key_file: String::new(),
                        concurrency: 1,
                        models: vec!["qwen3:4b".into()],
                    },
                ]
            );
            Ok(())
        });
    }

    #[test]
    fn without_backends_the_ollama_keys_are_the_one_backend() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", "[ollama]\nurl = \"http://gpu:11434\"\n")?;
            jail.set_env("AIWALL_JOBS__CONCURRENCY", "4");
            let list = load()?.backend_list();
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!(list[0].name, "ollama");
            assert_eq!(list[0].kind, BackendKind::Ollama);
            assert_eq!(list[0].url, "http://gpu:11434");
            assert_eq!(list[0].concurrency, 4);
            assert!(list[0].models.is_empty());
            assert_eq!(list[0].api_key(), Ok(None));
            Ok(())
        });
    }

    #[test]
    fn aiwall_backends_as_tables_replaces_the_files_list() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", TWO)?;
            jail.set_env(
                "AIWALL_BACKENDS",
                "[[backends]]\nname = \"only\"\nkind = \"openai\"\nurl = \"http://vllm:8000\"\nconcurrency = 8\n",
            );
            let config = load()?;
            assert_eq!(names(&config), ["only"]);
            assert_eq!(config.backends[0].kind, BackendKind::OpenAi);
            assert_eq!(config.backends[0].concurrency, 8);
            Ok(())
        });
    }

    #[test]
    fn aiwall_backends_as_an_inline_array_replaces_the_files_list() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", TWO)?;
            jail.set_env(
                "AIWALL_BACKENDS",
                r#" [{name = "a", kind = "ollama", url = "http://a:11434"}, {name = "b", kind = "openai", url = "http://b:8080", concurrency = 3}] "#,
            );
            let config = load()?;
            assert_eq!(names(&config), ["a", "b"]);
            assert_eq!(config.backends[1].concurrency, 3);
            // Over several lines, with a trailing comma, as the README writes it.
            jail.set_env(
                "AIWALL_BACKENDS",
                "[\n  {name = \"gpu-1\", kind = \"ollama\", url = \"http://gpu-1:11434\", concurrency = 2},\n  {name = \"gpu-2\", kind = \"openai\", url = \"http://gpu-2:8080\", models = [\"qwen3:4b\"]},\n]",
            );
            let config = load()?;
            assert_eq!(names(&config), ["gpu-1", "gpu-2"]);
            assert_eq!(config.backends[1].models, ["qwen3:4b"]);
            Ok(())
        });
    }

    #[test]
    fn a_malformed_aiwall_backends_stops_the_start_and_says_so() {
        figment::Jail::expect_with(|jail| {
            for bad in [
                "[[backends]]\nname = \"a\" kind = \"ollama\"\n",
                "[{name = \"a\", kind = \"ollama\", url = }]",
                "[server]\naddr = \"0.0.0.0:80\"\n",
                // An empty list is a mistake, not a request for the single Ollama of
                // ollama.url (a blank variable counts as unset).
                "[]",
            ] {
                jail.set_env("AIWALL_BACKENDS", bad);
                let error = load().unwrap_err();
                assert!(error.contains("AIWALL_BACKENDS"), "{bad:?}: {error}");
            }
            // Well-formed TOML, but not a backend: the same source is named.
            jail.set_env(
                "AIWALL_BACKENDS",
                r#"[{name = "a", kind = "vllm", url = "http://a"}]"#,
            );
            let error = load().unwrap_err();
            assert!(
                error.contains("AIWALL_BACKENDS")
                    && error.contains("vllm")
                    && error.contains("\"backends.0.kind\""),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn backends_together_with_ollama_url_is_refused_in_words() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", TWO)?;
            jail.set_env("AIWALL_OLLAMA__URL", "http://gpu:11434");
            let error = load().unwrap_err();
            assert!(
                error.contains("ollama.url") && error.contains("[[backends]]"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn backends_together_with_jobs_concurrency_is_refused_in_words() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", &format!("[jobs]\nconcurrency = 3\n{TWO}"))?;
            let error = load().unwrap_err();
            assert!(
                error.contains("jobs.concurrency")
                    && error.contains("with [[backends]], each backend has its own concurrency"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_backend_name_must_be_present_unique_and_plain() {
        figment::Jail::expect_with(|jail| {
            for (list, expected) in [
                (
                    r#"[{name = "", kind = "ollama", url = "http://a"}]"#,
                    "empty name",
                ),
                (
                    r#"[{name = "gpu box", kind = "ollama", url = "http://a"}]"#,
                    "\"gpu box\" may hold only letters",
                ),
                (
                    r#"[{name = "a", kind = "ollama", url = "http://a"}, {name = "A", kind = "openai", url = "http://b"}]"#,
                    "two backends are named \"A\"",
                ),
                (
                    r#"[{name = "a", kind = "ollama", url = ""}]"#,
                    "backend \"a\": url \"\" is not an http",
                ),
                (
                    r#"[{name = "a", kind = "ollama", url = "http://a", concurrency = 0}]"#,
                    "backend \"a\": concurrency is 0",
                ),
                (
                    r#"[{name = "a", kind = "ollama", url = "ftp://me:s3cret@gpu:1/"}]"#,
                    "backend \"a\": url \"ftp://***@gpu:1/\" is not an http",
                ),
            ] {
                jail.set_env("AIWALL_BACKENDS", list);
                let error = load().unwrap_err();
                assert!(error.contains(expected), "{list}: {error}");
            }
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_inside_a_backend_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "Leptos.toml",
                "[[backends]]\nname = \"a\"\nkind = \"ollama\"\nurl = \"http://a\"\napi_key = \"sk-1\"\n",
            )?;
            let error = load().unwrap_err();
            assert!(error.contains("api_key"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_key_variable_stops_the_start_and_names_the_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "AIWALL_BACKENDS",
                r#"[{name = "cpp", kind = "openai", url = "http://a", api_key_env = "CPP_TEST_KEY"}]"#,
            );
            let error = load().unwrap_err();
            assert!(
                error.contains("backend \"cpp\"")
                    && error.contains("CPP_TEST_KEY, which is not set"),
                "{error}"
            );
            jail.set_env("CPP_TEST_KEY", "  sk-from-env\n");
            let config = load()?;
            let key = config.backends[0].api_key()?.expect("a key");
            assert_eq!(key.expose(), "sk-from-env");
            Ok(())
        });
    }

    #[test]
    fn a_key_file_is_read_trimmed_and_the_key_never_shows_in_debug() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cpp.key", "sk-secret-from-file\n")?;
            jail.create_file(
                "Leptos.toml",
                "[[backends]]\nname = \"cpp\"\nkind = \"openai\"\nurl = \"http://a\"\napi_key_file = \"cpp.key\"\n",
            )?;
            let config = load()?;
            let key = config.backends[0].api_key()?.expect("a key");
            assert_eq!(key.expose(), "sk-secret-from-file");
            for shown in [format!("{config:?}"), format!("{key:?}")] {
                assert!(!shown.contains("sk-secret"), "{shown}");
            }
            Ok(())
        });
    }

    #[test]
    fn an_empty_or_missing_key_file_and_two_sources_are_refused_without_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("empty.key", "\n")?;
            jail.set_env("TWO_SOURCES_TEST_KEY", "sk-two-sources");
            for (fields, expected) in [
                (
                    r#"api_key_file = "empty.key""#,
                    "the file empty.key (its api_key_file) is empty",
                ),
                (
                    r#"api_key_file = "gone.key""#,
                    "cannot read its api_key_file gone.key",
                ),
                (
                    r#"api_key_file = "empty.key", api_key_env = "TWO_SOURCES_TEST_KEY""#,
                    "both api_key_env and api_key_file",
                ),
            ] {
                jail.set_env(
                    "AIWALL_BACKENDS",
                    format!(r#"[{{name = "cpp", kind = "openai", url = "http://a", {fields}}}]"#),
                );
                let error = load().unwrap_err();
                assert!(error.contains(expected), "{fields}: {error}");
                assert!(!error.contains("sk-two-sources"), "{error}");
            }
            Ok(())
        });
    }
}
