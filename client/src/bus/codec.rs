//! Payload codecs: how a typed payload becomes the bytes of a stream entry
//! and back. [`Json`] is the default; implement [`Codec`] for another format.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a payload could not be encoded or decoded.
pub type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// Turns payloads into bytes and back. The bus stores the bytes in the
/// entry's `p` field; publishers and consumers of a topic must agree on the
/// codec.
///
/// # Examples
///
/// ```
/// use baton_client::bus::{Codec, CodecError};
///
/// /// Pretty-printed JSON.
/// #[derive(Debug, Clone, Copy, Default)]
/// struct PrettyJson;
///
/// impl Codec for PrettyJson {
///     fn encode<T: serde::Serialize + ?Sized>(&self, v: &T) -> Result<Vec<u8>, CodecError> {
///         Ok(serde_json::to_vec_pretty(v)?)
///     }
///     fn decode<T: serde::de::DeserializeOwned>(&self, b: &[u8]) -> Result<T, CodecError> {
///         Ok(serde_json::from_slice(b)?)
///     }
/// }
/// ```
pub trait Codec: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Encodes one payload.
    ///
    /// # Errors
    ///
    /// When the value cannot be represented in this format.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Decodes one payload.
    ///
    /// # Errors
    ///
    /// When the bytes are not a valid `T` in this format.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// JSON through `serde_json`: the default codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        Ok(serde_json::to_vec(value)?)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips() {
        let bytes = Json.encode(&(1u32, "two")).unwrap();
        assert_eq!(bytes, br#"[1,"two"]"#);
        let back: (u32, String) = Json.decode(&bytes).unwrap();
        assert_eq!(back, (1, "two".to_owned()));
        assert!(Json.decode::<u32>(b"nope").is_err());
    }
}
