//! CVRF parsing: detects the form (XML or JSON) and dispatches; shared error type.

mod common;
mod json;
mod xml;

use crate::model::{DocumentHead, ParsedDocument};

/// The form a CVRF document came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SourceFormat {
    /// CVRF 1.1 XML (`Accept: application/xml`).
    Xml,
    /// The MSRC API's JSON form (integer enums).
    Json,
}

/// A document that could not be parsed at all: names the source and position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}{}: {message}", position(.line, .column))]
pub struct CvrfError {
    /// File path or URL.
    pub source_name: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What was wrong.
    pub message: String,
}

fn position(line: &Option<u64>, column: &Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// Parses one CVRF document in either form (sniffed from the first non-blank byte after any BOM).
///
/// Oddities inside the document are returned as [`crate::model::ParseIssue`]s; only input that is
/// not a usable CVRF document at all (malformed or truncated XML/JSON, wrong namespace, missing
/// identity or dates) is an error.
pub fn parse_document(
    bytes: &[u8],
    source_name: &str,
) -> Result<(ParsedDocument, SourceFormat), CvrfError> {
    match sniff(bytes, source_name)? {
        SourceFormat::Xml => xml::parse(bytes, source_name).map(|d| (d, SourceFormat::Xml)),
        SourceFormat::Json => json::parse(bytes, source_name).map(|d| (d, SourceFormat::Json)),
    }
}

/// Reads only the head facts (id, revision, current release date) without parsing the body.
///
/// For XML this stops at the end of `DocumentTracking` (microseconds); JSON is parsed whole.
pub fn read_head(bytes: &[u8], source_name: &str) -> Result<DocumentHead, CvrfError> {
    match sniff(bytes, source_name)? {
        SourceFormat::Xml => xml::head(bytes, source_name),
        SourceFormat::Json => json::head(bytes, source_name),
    }
}

/// Decides XML or JSON from the first non-blank byte after an optional UTF-8 BOM.
fn sniff(bytes: &[u8], source_name: &str) -> Result<SourceFormat, CvrfError> {
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => Ok(SourceFormat::Xml),
        Some(b'{') => Ok(SourceFormat::Json),
        Some(_) => Err(CvrfError {
            source_name: source_name.to_owned(),
            line: Some(1),
            column: Some(1),
            message: "not a CVRF document: neither XML (`<`) nor JSON (`{`)".into(),
        }),
        None => Err(CvrfError {
            source_name: source_name.to_owned(),
            line: Some(1),
            column: Some(1),
            message: "empty document".into(),
        }),
    }
}
