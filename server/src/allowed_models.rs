//! Which models a post may name: `generation.allowed_models`, or only the default model when that
//! list is empty. A visitor must not make the model server load a model nobody chose to offer:
//! loading it would evict the one everyone uses.
use app::types::ApiError;

use crate::config::GenerationConfig;

/// The models this wall offers, in the configured order, the default one among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedModels {
    names: Vec<String>,
}

impl AllowedModels {
    pub fn of(config: &GenerationConfig) -> Self {
        let names = if config.allowed_models.is_empty() {
            vec![config.default_model.clone()]
        } else {
            config.allowed_models.clone()
        };
        Self { names }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether `model` is one of them, named as Ollama names it (`llama3` is `llama3:latest`).
    pub fn allows(&self, model: &str) -> bool {
        self.names.iter().any(|name| same_model(name, model))
    }

    /// `model`, when the wall offers it; else the refusal that says which ones it does.
    pub fn check(&self, model: String) -> Result<String, ApiError> {
        if self.allows(&model) {
            return Ok(model);
        }
        let offered = match self.names.as_slice() {
            [only] => format!("only {only}"),
            names => format!("these models: {}", names.join(", ")),
        };
        Err(ApiError::validation(format!(
            "The model {model} is not offered here. This wall offers {offered}."
        )))
    }
}

/// Whether two model names are the same model: Ollama reads a name without a tag as its
/// `latest` tag.
pub fn same_model(a: &str, b: &str) -> bool {
    let full = |m: &str| {
        if m.contains(':') {
            m.to_owned()
        } else {
            format!("{m}:latest")
        }
    };
    full(a) == full(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(default: &str, allowed: &[&str]) -> GenerationConfig {
        GenerationConfig {
            default_model: default.into(),
            allowed_models: allowed.iter().map(|&m| m.to_owned()).collect(),
            ..GenerationConfig::default()
        }
    }

    #[test]
    fn without_a_list_only_the_default_model_is_offered() {
        let allowed = AllowedModels::of(&config("llama3.2:1b", &[]));
        assert_eq!(allowed.names(), ["llama3.2:1b"]);
        assert_eq!(allowed.check("llama3.2:1b".into()).unwrap(), "llama3.2:1b");
        let refused = allowed.check("qwen3:235b".into()).unwrap_err();
        assert_eq!(
            refused.message,
            "The model qwen3:235b is not offered here. This wall offers only llama3.2:1b."
        );
    }

    #[test]
    fn an_explicit_list_widens_it_and_the_refusal_lists_it() {
        let allowed = AllowedModels::of(&config("a:1b", &["a:1b", "b"]));
        assert!(
            allowed.allows("b:latest"),
            "a name without a tag is :latest"
        );
        assert!(allowed.allows("a:1b"));
        assert!(!allowed.allows("a:7b"));
        assert!(allowed
            .check("c".into())
            .unwrap_err()
            .message
            .ends_with("This wall offers these models: a:1b, b."));
    }

    #[test]
    fn a_model_without_a_tag_is_the_latest_one() {
        assert!(same_model("llama3", "llama3:latest"));
        assert!(same_model("llama3.2:1b", "llama3.2:1b"));
        assert!(!same_model("llama3.2:1b", "llama3.2:3b"));
    }
}
