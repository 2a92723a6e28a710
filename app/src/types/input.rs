//! What a person may submit, parsed at the edge: once a value of these types exists it is
//! within its limits. The browser uses the same rules to warn before sending.
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// The limits a composer needs to know; the server sends its configured values with the page.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputLimits {
    pub post_max_chars: usize,
    pub prompt_max_chars: usize,
    pub name_max_chars: usize,
    pub max_tokens_limit: u32,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self {
            post_max_chars: 2000,
            prompt_max_chars: 4000,
            name_max_chars: 40,
            max_tokens_limit: 4096,
        }
    }
}

/// Longer than any model name Ollama or an OpenAI-compatible server uses.
const MODEL_NAME_MAX_BYTES: usize = 200;

/// Where line breaks are part of the text (a post, a prompt) or not (a name).
#[derive(Clone, Copy, PartialEq)]
enum Lines {
    Many,
    One,
}

/// Characters that are refused: control characters (NUL, escape sequences, …; in a name also
/// tabs and line breaks) and the bidirectional overrides, embeddings and isolates, which
/// reorder how the text around them is shown (a name that reads as someone else's, a prompt
/// that hides what it says). Refused with a message rather than stripped: the person sees
/// what was wrong, and nothing they wrote is changed behind their back.
fn unwanted(c: char, lines: Lines) -> bool {
    let allowed_control = lines == Lines::Many && matches!(c, '\n' | '\r' | '\t');
    (c.is_control() && !allowed_control)
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || (lines == Lines::One && matches!(c, '\u{2028}' | '\u{2029}'))
}

/// Trimmed text of at least one and at most `max` characters, without unwanted characters.
fn bounded(what: &str, raw: &str, max: usize, lines: Lines) -> Result<String, ApiError> {
    if let Some(c) = raw.chars().find(|&c| unwanted(c, lines)) {
        let kind = if c.is_control() {
            "a control character"
        } else {
            "a character that reverses the direction of the text"
        };
        return Err(ApiError::validation(format!(
            "The {what} contains {kind} (U+{:04X}), which is not allowed: remove it.",
            u32::from(c)
        )));
    }
    let text = raw.trim();
    if text.is_empty() {
        return Err(ApiError::validation(format!(
            "The {what} is empty: write something first."
        )));
    }
    let len = text.chars().count();
    if len > max {
        return Err(ApiError::validation(format!(
            "The {what} is {len} characters long; the limit is {max}."
        )));
    }
    Ok(text.to_owned())
}

impl InputLimits {
    pub fn post_text(&self, raw: &str) -> Result<String, ApiError> {
        bounded("post", raw, self.post_max_chars, Lines::Many)
    }

    pub fn prompt(&self, raw: &str) -> Result<String, ApiError> {
        bounded("prompt", raw, self.prompt_max_chars, Lines::Many)
    }

    /// A display name; empty means "Anonymous".
    pub fn author_name(&self, raw: &str) -> Result<String, ApiError> {
        if raw.trim().is_empty() {
            return Ok("Anonymous".to_owned());
        }
        bounded("name", raw, self.name_max_chars, Lines::One)
    }

    /// The model to ask; empty or absent means `default`.
    pub fn model(&self, raw: Option<&str>, default: &str) -> Result<String, ApiError> {
        match raw.map(str::trim) {
            Some(name) if !name.is_empty() => {
                if name.len() > MODEL_NAME_MAX_BYTES || name.chars().any(char::is_control) {
                    Err(ApiError::validation("That is not a model name."))
                } else {
                    Ok(name.to_owned())
                }
            }
            _ => Ok(default.to_owned()),
        }
    }

    pub fn max_tokens(&self, raw: Option<u32>) -> Result<Option<u32>, ApiError> {
        match raw {
            Some(0) => Err(ApiError::validation(
                "The max length must be at least 1 token.",
            )),
            Some(n) if n > self.max_tokens_limit => Err(ApiError::validation(format!(
                "The max length is {n} tokens; the limit is {}.",
                self.max_tokens_limit
            ))),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        let limits = InputLimits {
            post_max_chars: 3,
            ..Default::default()
        };
        assert_eq!(limits.post_text("  héé ").unwrap(), "héé");
        assert!(limits
            .post_text("   ")
            .unwrap_err()
            .message
            .contains("empty"));
        assert!(limits
            .post_text("abcd")
            .unwrap_err()
            .message
            .contains("limit is 3"));
    }

    #[test]
    fn control_and_direction_overriding_characters_are_refused_with_a_message() {
        let limits = InputLimits::default();
        let nul = limits.post_text("a\0b").unwrap_err().message;
        assert_eq!(
            nul,
            "The post contains a control character (U+0000), which is not allowed: remove it."
        );
        let rlo = limits.author_name("Ada\u{202E}nimda").unwrap_err().message;
        assert!(
            rlo.contains("reverses the direction") && rlo.contains("U+202E"),
            "{rlo}"
        );
        assert!(limits.prompt("x\u{2066}y").is_err(), "an isolate");
        assert!(
            limits.prompt("say \u{1b}[31mred").is_err(),
            "an escape sequence"
        );
        assert!(
            limits.author_name("Ada\nLovelace").is_err(),
            "a name is one line"
        );
        assert!(limits.author_name("Ada\u{2028}Lovelace").is_err());
        assert!(limits.author_name("A\tB").is_err());
        // What people write is kept: lines, tabs, right-to-left text, emoji with joiners.
        assert_eq!(
            limits.post_text("line\r\nnext\tcol").unwrap(),
            "line\r\nnext\tcol"
        );
        assert_eq!(limits.author_name("שלום").unwrap(), "שלום");
        assert!(limits
            .post_text("\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}")
            .is_ok());
    }

    #[test]
    fn names_default_to_anonymous_and_max_tokens_is_bounded() {
        let limits = InputLimits::default();
        assert_eq!(limits.author_name(" ").unwrap(), "Anonymous");
        assert!(limits.max_tokens(Some(0)).is_err());
        assert!(limits.max_tokens(Some(5000)).is_err());
        assert_eq!(limits.max_tokens(Some(10)).unwrap(), Some(10));
    }

    #[test]
    fn a_model_name_defaults_and_is_bounded() {
        let limits = InputLimits::default();
        assert_eq!(limits.model(None, "d").unwrap(), "d");
        assert_eq!(limits.model(Some("  "), "d").unwrap(), "d");
        assert_eq!(limits.model(Some(" m:1b "), "d").unwrap(), "m:1b");
        assert!(limits.model(Some("a\nb"), "d").is_err());
        assert!(limits.model(Some(&"x".repeat(201)), "d").is_err());
    }
}
