//! Earlier releases' keys: `ollama.default_model`, `allowed_models`, `stall_timeout_secs` and
//! `deadline_secs` move to `[generation]`, and the single-Ollama keys (`ollama.url`,
//! `jobs.concurrency`) cannot be mixed with `[[backends]]`.
//!
//! What was *given* is read from the file and the environment without the defaults, so that the
//! typed structs keep plain values.
use figment::Figment;

use super::Config;

/// Moves each legacy `ollama.X` that was given into `generation.X`, and refuses a file or an
/// environment that says one thing twice or mixes the single Ollama with `[[backends]]`.
pub(super) fn settle(config: &mut Config, given: &Figment) -> Result<(), String> {
    let moved = |key: &str| -> Result<bool, String> {
        let (old, new) = (format!("ollama.{key}"), format!("generation.{key}"));
        match (given.contains(&old), given.contains(&new)) {
            (true, true) => Err(format!(
                "{old} ({}) and {new} ({}) are both given: {old} is the earlier name of {new}; keep only {new}",
                origin(given, &old),
                origin(given, &new),
            )),
            (moved, _) => Ok(moved),
        }
    };
    let (g, o) = (&mut config.generation, &config.ollama);
    if moved("default_model")? {
        g.default_model.clone_from(&o.default_model);
    }
    if moved("allowed_models")? {
        g.allowed_models.clone_from(&o.allowed_models);
    }
    if moved("stall_timeout_secs")? {
        g.stall_timeout_secs = o.stall_timeout_secs;
    }
    if moved("deadline_secs")? {
        g.deadline_secs = o.deadline_secs;
    }
    if config.backends.is_empty() {
        return Ok(());
    }
    if given.contains("ollama.url") {
        return Err(format!(
            "ollama.url ({}) is given together with [[backends]]: ollama.url is the single Ollama used when there is no [[backends]]; remove it, or list that Ollama among the [[backends]]",
            origin(given, "ollama.url")
        ));
    }
    if given.contains("jobs.concurrency") {
        return Err(format!(
            "jobs.concurrency ({}) is given together with [[backends]]: with [[backends]], each backend has its own concurrency; remove jobs.concurrency and set concurrency on each backend",
            origin(given, "jobs.concurrency")
        ));
    }
    Ok(())
}

/// Where a given key came from: "in Leptos.toml", "from AIWALL_OLLAMA__URL".
fn origin(given: &Figment, key: &str) -> String {
    let Some(metadata) = given.find_metadata(key) else {
        return "given".into();
    };
    match &metadata.source {
        Some(figment::Source::File(path)) => format!("in {}", path.display()),
        _ if metadata.name.contains("environment") => {
            format!(
                "from AIWALL_{}",
                key.replace('.', "__").to_ascii_uppercase()
            )
        }
        _ => format!("in {}", metadata.name),
    }
}

#[cfg(test)]
// figment's Jail takes closures that return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use crate::config::{Config, GenerationConfig};

    #[test]
    fn a_legacy_ollama_key_moves_to_generation() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "Leptos.toml",
                "[ollama]\ndefault_model = \"qwen3:4b\"\nallowed_models = [\"qwen3:4b\", \"llama3.2:1b\"]\ndeadline_secs = 60\n",
            )?;
            jail.set_env("AIWALL_OLLAMA__STALL_TIMEOUT_SECS", "7");
            let config = Config::load().map_err(|e| *e)?;
            assert_eq!(
                config.generation,
                GenerationConfig {
                    default_model: "qwen3:4b".into(),
                    allowed_models: vec!["qwen3:4b".into(), "llama3.2:1b".into()],
                    stall_timeout_secs: 7,
                    deadline_secs: 60,
                }
            );
            Ok(())
        });
    }

    #[test]
    fn a_key_given_under_both_names_is_refused_naming_both() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "Leptos.toml",
                "[generation]\ndefault_model = \"qwen3:4b\"\n",
            )?;
            jail.set_env("AIWALL_OLLAMA__DEFAULT_MODEL", "llama3.2:1b");
            let error = Config::load().unwrap_err().to_string();
            assert!(
                error.contains("ollama.default_model (from AIWALL_OLLAMA__DEFAULT_MODEL)")
                    && error.contains("generation.default_model (in ")
                    && error.contains("Leptos.toml)")
                    && error.contains("keep only generation.default_model"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_generation_section_and_its_environment_keys_are_read() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("Leptos.toml", "[generation]\ndeadline_secs = 90\n")?;
            jail.set_env("AIWALL_GENERATION__DEFAULT_MODEL", "qwen3:4b");
            let generation = Config::load().map_err(|e| *e)?.generation;
            assert_eq!(generation.deadline_secs, 90);
            assert_eq!(generation.default_model, "qwen3:4b");
            assert_eq!(generation.stall_timeout_secs, 300);
            Ok(())
        });
    }
}
