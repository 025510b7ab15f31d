//! Backend-neutral row helpers shared by the SQLite and PostgreSQL backends: timestamp and
//! format text forms, the per-document encoding done before an import transaction, and the
//! import decision (add / replace / unchanged / older) for one document.

use crate::{codec, compare_heads, ImportAction, ImportItem, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use kbgap_catalog::{Document, DocumentHead, SourceFormat, MODEL_VERSION};
use kbgap_core::DocumentId;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// Fixed-width RFC 3339 UTC text (`2020-03-10T07:00:00.000000000Z`): text order is time order.
pub(crate) fn time_to_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn text_to_time(
    id: &str,
    column: &str,
    text: &str,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            id: id.to_owned(),
            message: format!("column {column}: bad timestamp {text:?}: {e}"),
        })
}

pub(crate) fn parse_id(text: &str) -> Result<DocumentId, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt {
        id: text.to_owned(),
        message: format!("bad document id: {e}"),
    })
}

pub(crate) fn format_to_text(f: SourceFormat) -> &'static str {
    match f {
        SourceFormat::Xml => "xml",
        SourceFormat::Json => "json",
    }
}

pub(crate) fn text_to_format(id: &str, text: &str) -> Result<SourceFormat, StoreError> {
    match text {
        "xml" => Ok(SourceFormat::Xml),
        "json" => Ok(SourceFormat::Json),
        other => Err(StoreError::Corrupt {
            id: id.to_owned(),
            message: format!("column format: unknown source format {other:?}"),
        }),
    }
}

/// The blobs and index rows of one document, computed before the transaction opens.
pub(crate) struct Encoded {
    pub(crate) body: Vec<u8>,
    pub(crate) source: Vec<u8>,
    pub(crate) source_sha256: String,
    pub(crate) kbs: BTreeSet<(u32, &'static str)>,
}

pub(crate) fn encode(item: &ImportItem) -> Result<Encoded, StoreError> {
    let doc = &item.parsed.document;
    let body = codec::encode_body(doc)?;
    let source = codec::compress_source(&item.source).map_err(|e| StoreError::Corrupt {
        id: doc.id.to_string(),
        message: format!("cannot compress source from {}: {e}", item.origin),
    })?;
    let source_sha256 = Sha256::digest(&item.source)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Encoded {
        body,
        source,
        source_sha256,
        kbs: document_kbs(doc),
    })
}

/// Every KB a document names: remediation KBs (any remediation type) as `fix`, parsed
/// Supercedence KBs as `supersedes`.
pub(crate) fn document_kbs(doc: &Document) -> BTreeSet<(u32, &'static str)> {
    let mut kbs = BTreeSet::new();
    for rem in doc.vulnerabilities.iter().flat_map(|v| &v.remediations) {
        if let Some(kb) = rem.kb {
            kbs.insert((kb.get(), "fix"));
        }
        for kb in &rem.supersedes {
            kbs.insert((kb.get(), "supersedes"));
        }
    }
    kbs
}

/// A stored head plus the model version of its body.
pub(crate) struct StoredHead {
    pub(crate) head: DocumentHead,
    pub(crate) model_version: i64,
}

/// What import does with one item given the stored copy (if any).
pub(crate) fn decide(stored: Option<&StoredHead>, new: &DocumentHead) -> ImportAction {
    let Some(stored) = stored else {
        return ImportAction::Added;
    };
    let stale = stored.model_version != i64::from(MODEL_VERSION);
    match compare_heads(new, &stored.head) {
        Some(Ordering::Equal) if !stale => ImportAction::Unchanged,
        Some(Ordering::Less) => ImportAction::OlderThanStored {
            stored_revision: stored.head.revision.clone(),
        },
        // Newer, not comparable (incoming wins), or same head over a stale body (re-parse).
        _ => ImportAction::Replaced {
            previous_revision: stored.head.revision.clone(),
        },
    }
}

pub(crate) fn writes(action: &ImportAction) -> bool {
    matches!(action, ImportAction::Added | ImportAction::Replaced { .. })
}
