//! JSON in and out of the shared types. In the browser it goes through the browser's own
//! `JSON.parse` and `JSON.stringify` (serde-wasm-bindgen walks the values), so the bundle carries
//! no JSON parser or printer of its own; on the server and in native tests, through serde_json.
use serde::{de::DeserializeOwned, Serialize};

/// A JSON text that could not be read into the type asked for, or a value that could not be
/// written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

/// Reads `text` as a `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    #[cfg(feature = "hydrate")]
    {
        let value = js_sys::JSON::parse(text).map_err(js_error)?;
        serde_wasm_bindgen::from_value(value).map_err(|e| js_error(e.into()))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        serde_json::from_str(text).map_err(|e| JsonError(e.to_string()))
    }
}

/// Writes `value` as JSON text.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, JsonError> {
    #[cfg(feature = "hydrate")]
    {
        // JSON-compatible: maps become objects and 64-bit integers numbers, as serde_json writes
        // them.
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        let value = value
            .serialize(&serializer)
            .map_err(|e| js_error(e.into()))?;
        let text = js_sys::JSON::stringify(&value).map_err(js_error)?;
        Ok(String::from(text))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        serde_json::to_string(value).map_err(|e| JsonError(e.to_string()))
    }
}

/// A JS exception (`SyntaxError`…, and serde-wasm-bindgen's errors are JS errors too).
#[cfg(feature = "hydrate")]
fn js_error(e: wasm_bindgen::JsValue) -> JsonError {
    use wasm_bindgen::JsCast;
    let text = match e.dyn_ref::<js_sys::Error>() {
        Some(error) => String::from(error.message()),
        None => e.as_string().unwrap_or_default(),
    };
    JsonError(text)
}

#[cfg(test)]
mod tests {
    use super::{from_str, to_string};

    #[test]
    fn a_value_goes_out_and_back() {
        let text = to_string(&vec![Some(1_i64), None]).unwrap();
        assert_eq!(text, "[1,null]");
        assert_eq!(
            from_str::<Vec<Option<i64>>>(&text).unwrap(),
            [Some(1), None]
        );
        assert!(from_str::<u8>("\"x\"").is_err());
    }
}
