//! `#fake:key=value` directives: per-request overrides written into the prompt itself.

use percent_encoding::percent_decode_str;

use crate::config::{parse_status, Failure, FakeConfig};

/// The directive syntax, shown by `fake-ollama --help` and in the crate documentation.
pub const DIRECTIVES_HELP: &str = "\
Per-request directives: write `#fake:key=value` anywhere in the last user message (chat) or
the prompt (generate); they override the configuration for that request only and are never
echoed. Values end at whitespace, except `output` and `message`, which take the rest of the
line (percent-decoded, so %0A is a newline and %23 a '#').

  #fake:tokens=N          reply length in tokens (like --length)
  #fake:rate=F            tokens per second, 0 = unpaced (like --tokens-per-second)
  #fake:load-ms=N         model load delay before the first chunk
  #fake:prompt-eval-ms=N  prompt evaluation delay before the first chunk
  #fake:think=N           thinking tokens before the content (Ollama: only when the
                          request's `think` is on; OpenAI: always)
  #fake:error-after=N     end the stream with an {\"error\"} line after N chunks
  #fake:stall-after=N     go silent after N chunks, keeping the connection open
  #fake:status=CODE       answer with this HTTP error status at once
  #fake:message=TEXT      the error text for `status`
  #fake:failure=SPEC      any --failure value, e.g. none
  #fake:fail-first=N      the first N requests with this prompt get 503, then it succeeds
  #fake:output=TEXT       the text to emit
  #fake:split-bytes=N     write lines (or SSE events) in N-byte pieces (0 = whole)
  #fake:coalesce[=BOOL]   three lines (or SSE events) per body frame
  #fake:stamp[=BOOL]      tokens are ` t<unix microseconds>` stamps
  #fake:ignore-num-predict[=BOOL]  stream the whole reply whatever num_predict says
  #fake:token-bytes=N     every content token at least N bytes (giant chunks)
  #fake:retry-after=N     a `Retry-After: N` header on the `status` answer
  #fake:flavor=NAME       /v1/chat/completions dialect: llamacpp or vllm
  #fake:reasoning-field=F reasoning delta field: reasoning_content or reasoning

Example prompt: \"Tell a story #fake:tokens=20 #fake:rate=50 #fake:error-after=5\"";

const PREFIX: &str = "#fake:";
const REST_OF_LINE_KEYS: [&str; 2] = ["output", "message"];

/// Removes the directives from `text`, applies them to `config` and returns what is left.
/// An unknown key or a bad value is an error the fake answers with HTTP 400.
pub(crate) fn apply_directives(text: &str, config: &mut FakeConfig) -> Result<String, String> {
    let mut remaining = String::with_capacity(text.len());
    let mut message = None;
    for line in text.split_inclusive('\n') {
        let (content, newline) = match line.strip_suffix('\n') {
            Some(content) => (content, "\n"),
            None => (line, ""),
        };
        let mut rest = content;
        while let Some(at) = rest.find(PREFIX) {
            remaining.push_str(&rest[..at]);
            let directive = &rest[at + PREFIX.len()..];
            let key_end = directive
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(directive.len());
            let key = &directive[..key_end];
            let (value, consumed) = if directive[key_end..].starts_with('=') {
                let value = &directive[key_end + 1..];
                let len = if REST_OF_LINE_KEYS.contains(&key) {
                    value.len()
                } else {
                    value.find(char::is_whitespace).unwrap_or(value.len())
                };
                (Some(&value[..len]), key_end + 1 + len)
            } else {
                (None, key_end)
            };
            if key == "message" {
                message = Some(decode(value.unwrap_or_default()));
            } else {
                apply(key, value, config)?;
            }
            rest = &directive[consumed..];
        }
        remaining.push_str(rest);
        remaining.push_str(newline);
    }
    if let Some(text) = message {
        match &mut config.failure {
            Failure::HttpStatus { message, .. } => *message = text,
            _ => return Err("#fake:message needs #fake:status=CODE".to_string()),
        }
    }
    Ok(remaining)
}

fn apply(key: &str, value: Option<&str>, config: &mut FakeConfig) -> Result<(), String> {
    let required = || value.ok_or_else(|| format!("#fake:{key} needs a value (#fake:{key}=...)"));
    let number = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("#fake:{key} needs a whole number, got {v:?}"))
    };
    let count = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("#fake:{key} needs a whole number, got {v:?}"))
    };
    let flag = |v: Option<&str>| match v {
        None | Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(v) => Err(format!("#fake:{key} needs true or false, got {v:?}")),
    };
    match key {
        "tokens" => config.length = count(required()?)?,
        "rate" => {
            let v = required()?;
            config.tokens_per_second = v
                .parse::<f64>()
                .ok()
                .filter(|rate| *rate >= 0.0)
                .ok_or_else(|| {
                    format!("#fake:rate needs a number of tokens per second, got {v:?}")
                })?;
        }
        "load-ms" => config.load_delay_ms = number(required()?)?,
        "prompt-eval-ms" => config.prompt_eval_ms = number(required()?)?,
        "think" => config.thinking_tokens = count(required()?)?,
        "error-after" => {
            config.failure = Failure::ErrorAfter {
                tokens: count(required()?)?,
            }
        }
        "stall-after" => {
            config.failure = Failure::StallAfter {
                tokens: count(required()?)?,
            }
        }
        "status" => config.failure = Failure::http(parse_status(required()?)?),
        "failure" => config.failure = required()?.parse()?,
        "fail-first" => config.fail_first = count(required()?)?,
        "output" => config.output = Some(decode(required()?)),
        "split-bytes" => {
            let bytes = number(required()?)? as usize;
            config.split_bytes = (bytes > 0).then_some(bytes);
        }
        "coalesce" => config.coalesce_lines = flag(value)?,
        "stamp" => config.stamp_tokens = flag(value)?,
        "ignore-num-predict" => config.ignore_num_predict = flag(value)?,
        "token-bytes" => {
            let bytes = number(required()?)? as usize;
            config.token_bytes = (bytes > 0).then_some(bytes);
        }
        "retry-after" => config.retry_after = Some(number(required()?)?),
        "flavor" => config.openai_flavor = required()?.parse()?,
        "reasoning-field" => config.reasoning_field = Some(required()?.parse()?),
        _ => return Err(format!("unknown directive #fake:{key}")),
    }
    Ok(())
}

fn decode(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(String, FakeConfig), String> {
        let mut config = FakeConfig::default();
        let remaining = apply_directives(text, &mut config)?;
        Ok((remaining, config))
    }

    #[test]
    fn directives_override_and_disappear_from_the_text() {
        let (text, config) =
            parse("Tell a story #fake:tokens=20 #fake:rate=50\n#fake:error-after=5 please")
                .unwrap();
        assert_eq!(text, "Tell a story  \n please");
        assert_eq!(config.length, 20);
        assert_eq!(config.tokens_per_second, 50.0);
        assert_eq!(config.failure, Failure::ErrorAfter { tokens: 5 });
    }

    #[test]
    fn output_takes_the_rest_of_the_line_percent_decoded() {
        let (text, config) = parse("Hi\n#fake:output=Hello world%0A%23tag #fake:x\nBye").unwrap();
        assert_eq!(text, "Hi\n\nBye");
        assert_eq!(config.output.as_deref(), Some("Hello world\n#tag #fake:x"));
    }

    #[test]
    fn status_takes_an_optional_message() {
        let (_, config) = parse("#fake:message=model is on fire\n#fake:status=500").unwrap();
        assert_eq!(
            config.failure,
            Failure::HttpStatus {
                status: 500,
                message: "model is on fire".into()
            }
        );
        let (_, config) = parse("#fake:status=503").unwrap();
        assert_eq!(config.failure, Failure::http(503));
    }

    #[test]
    fn flags_default_to_true() {
        let (_, config) = parse("#fake:stamp #fake:coalesce=false #fake:split-bytes=3").unwrap();
        assert!(config.stamp_tokens);
        assert!(!config.coalesce_lines);
        assert_eq!(config.split_bytes, Some(3));
        let (_, config) = parse("#fake:ignore-num-predict #fake:token-bytes=1000").unwrap();
        assert!(config.ignore_num_predict);
        assert_eq!(config.token_bytes, Some(1000));
        assert!(config.tokens().iter().all(|t| t.len() >= 1000));
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(parse("#fake:tokens=many").is_err());
        assert!(parse("#fake:tokens").is_err());
        assert!(parse("#fake:explode=1").is_err());
        assert!(parse("#fake:status=200").is_err());
        assert!(parse("#fake:message=orphan").is_err());
        assert!(parse("#fake:flavor=tgi").is_err());
        assert!(parse("#fake:reasoning-field=thoughts").is_err());
    }

    #[test]
    fn openai_directives_set_the_dialect() {
        use crate::config::{Flavor, ReasoningField};
        let (_, config) = parse("#fake:flavor=vllm #fake:retry-after=3").unwrap();
        assert_eq!(config.openai_flavor, Flavor::Vllm);
        assert_eq!(config.reasoning_field(), ReasoningField::Reasoning);
        assert_eq!(config.retry_after, Some(3));
        let (_, config) =
            parse("#fake:flavor=vllm #fake:reasoning-field=reasoning_content").unwrap();
        assert_eq!(config.reasoning_field(), ReasoningField::ReasoningContent);
    }
}
