//! Blob codecs: zstd for source bytes, and the serialized-and-compressed `Document` body.
//!
//! A body is zstd( tag byte ++ payload ). The tag names the serialization so a later kbgap can
//! change it without guessing: `P` = postcard, `J` = serde_json. Bodies are written with
//! [`BODY_CODEC`]; both tags decode.

use crate::StoreError;
use kbgap_catalog::Document;

/// Serialization of document bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCodec {
    /// postcard (compact binary serde); the default: fastest to decode.
    Postcard,
    /// serde_json; self-describing, slower.
    Json,
}

impl BodyCodec {
    fn tag(self) -> u8 {
        match self {
            Self::Postcard => b'P',
            Self::Json => b'J',
        }
    }
}

/// The codec new bodies are written with.
pub const BODY_CODEC: BodyCodec = BodyCodec::Postcard;

/// zstd level for document bodies.
const BODY_LEVEL: i32 = 3;
/// zstd level for source bytes (XML compresses ~15x at this level, at several hundred MB/s).
const SOURCE_LEVEL: i32 = 3;

/// Serializes and compresses a document body with `codec`.
pub fn encode_body_with(doc: &Document, codec: BodyCodec) -> Result<Vec<u8>, StoreError> {
    let mut raw = vec![codec.tag()];
    let fail = |e: String| StoreError::Corrupt {
        id: doc.id.to_string(),
        message: format!("cannot serialize document: {e}"),
    };
    match codec {
        BodyCodec::Postcard => {
            raw = postcard::to_extend(doc, raw).map_err(|e| fail(e.to_string()))?;
        }
        BodyCodec::Json => serde_json::to_writer(&mut raw, doc).map_err(|e| fail(e.to_string()))?,
    }
    zstd::bulk::compress(&raw, BODY_LEVEL).map_err(|e| fail(format!("zstd: {e}")))
}

/// Serializes and compresses a document body with [`BODY_CODEC`].
pub fn encode_body(doc: &Document) -> Result<Vec<u8>, StoreError> {
    encode_body_with(doc, BODY_CODEC)
}

/// Decompresses and deserializes a body stored for document `id`.
pub fn decode_body(id: &str, blob: &[u8]) -> Result<Document, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        id: id.to_owned(),
        message,
    };
    let raw = decompress(blob).map_err(|e| corrupt(format!("body: {e}")))?;
    let (tag, payload) = raw
        .split_first()
        .ok_or_else(|| corrupt("empty body".into()))?;
    match tag {
        b'P' => postcard::from_bytes(payload).map_err(|e| corrupt(format!("body (postcard): {e}"))),
        b'J' => serde_json::from_slice(payload).map_err(|e| corrupt(format!("body (json): {e}"))),
        other => Err(corrupt(format!("unknown body codec tag {other:#04x}"))),
    }
}

/// Compresses source bytes.
pub fn compress_source(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(bytes, SOURCE_LEVEL)
}

/// Decompresses a zstd blob of unknown size (streaming, so no size guess is needed).
pub fn decompress(blob: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::stream::decode_all(blob)
}
