//! The fake's model catalogue: which names are installed and what `/api/tags` says about them.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::wire::{ModelDetails, ModelEntry};

/// The installed name `requested` refers to: the name itself, or `name:latest` for a bare name.
pub(crate) fn resolve(installed: &[String], requested: &str) -> Option<String> {
    let latest = format!("{requested}:latest");
    installed
        .iter()
        .find(|name| *name == requested || (!requested.contains(':') && **name == latest))
        .cloned()
}

/// Whether the installed model `name` is one of the thinking models: named with its tag, or
/// without one (`qwen3` is every `qwen3:*`).
pub(crate) fn can_think(thinking_models: &[String], name: &str) -> bool {
    let base = name.split_once(':').map_or(name, |(base, _)| base);
    thinking_models
        .iter()
        .any(|model| model == name || model == base)
}

/// A `/api/tags` entry that looks like the real model of that name.
pub(crate) fn entry(name: &str, modified_at: &str) -> ModelEntry {
    let (family, parameter_size, quantization_level, size) = describe(name);
    ModelEntry {
        name: name.to_string(),
        model: name.to_string(),
        modified_at: Some(modified_at.to_string()),
        size,
        digest: digest(name),
        details: details(&family, &parameter_size, quantization_level),
        expires_at: None,
        size_vram: None,
    }
}

/// Family, parameter size, quantisation and file size: real values for the default models,
/// guesses from the name (`gemma3:4b` is a 4B gemma) for the others.
fn describe(name: &str) -> (String, String, &'static str, u64) {
    match name {
        "llama3.2:1b" => ("llama".into(), "1.2B".into(), "Q8_0", 1_321_098_329),
        "qwen2.5:0.5b" => ("qwen2".into(), "494.03M".into(), "Q4_K_M", 397_821_319),
        _ => {
            let (base, tag) = name.split_once(':').unwrap_or((name, ""));
            let family = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
            let family = if family.is_empty() { base } else { family };
            let parameter_size = if tag.ends_with('b') {
                tag.to_uppercase()
            } else {
                "7B".to_string()
            };
            (family.to_string(), parameter_size, "Q4_K_M", 1_000_000_000)
        }
    }
}

fn details(family: &str, parameter_size: &str, quantization_level: &str) -> ModelDetails {
    ModelDetails {
        parent_model: String::new(),
        format: "gguf".to_string(),
        family: family.to_string(),
        families: vec![family.to_string()],
        parameter_size: parameter_size.to_string(),
        quantization_level: quantization_level.to_string(),
    }
}

/// A stable 64-hex-digit digest derived from the name (not a real sha256, just its shape).
fn digest(name: &str) -> String {
    (0u64..4)
        .map(|round| {
            let mut hasher = DefaultHasher::new();
            (round, name).hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_mean_latest() {
        let installed = vec!["llama3.2:1b".to_string(), "mistral:latest".to_string()];
        assert_eq!(
            resolve(&installed, "llama3.2:1b").as_deref(),
            Some("llama3.2:1b")
        );
        assert_eq!(
            resolve(&installed, "mistral").as_deref(),
            Some("mistral:latest")
        );
        assert_eq!(resolve(&installed, "llama3.2"), None);
    }

    #[test]
    fn a_bare_thinking_model_name_covers_every_tag() {
        let thinking = vec!["qwen3".to_string(), "deepseek-r1:8b".to_string()];
        assert!(can_think(&thinking, "qwen3:4b"));
        assert!(can_think(&thinking, "qwen3:latest"));
        assert!(can_think(&thinking, "deepseek-r1:8b"));
        assert!(!can_think(&thinking, "deepseek-r1:1.5b"));
        assert!(!can_think(&thinking, "llama3.2:1b"));
    }

    #[test]
    fn unknown_models_get_plausible_details() {
        let entry = entry("gemma3:4b", "2025-01-01T00:00:00.000000000Z");
        assert_eq!(entry.details.family, "gemma");
        assert_eq!(entry.details.parameter_size, "4B");
        assert_eq!(entry.digest.len(), 64);
    }
}
