//! Persistence: the [`CatalogStore`] trait and its backends, picked from the database URL.
//!
//! The catalog is stored as documents: each imported CVRF document keeps its source bytes
//! (compressed) and its parsed model, replaced whole when a newer revision arrives. The engine's
//! indexes are derived in memory from the documents, so every backend stores the same few tables.

pub mod codec;
pub mod devices;
pub mod postgres;
mod rows;
pub mod sqlite;
mod url;

pub use devices::{
    derive_machine_id, machine_id_for, DeviceIdError, DeviceStore, DeviceUpsert, FleetRow,
    FleetRows, Store, StoredDevice, UpsertAction,
};
pub use url::{default_db_path, redact_url, DbLocation};

use chrono::{DateTime, Utc};
use kbgap_catalog::{Document, DocumentHead, ParseIssue, ParsedDocument, SourceFormat};
use kbgap_core::{DocumentId, KbId};
use std::cmp::Ordering;

/// Errors from any backend, without driver types.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend we have, or is malformed.
    ///
    /// (A struct variant rather than the original tuple so the message can say *why*, e.g.
    /// that PostgreSQL support is not built yet.)
    #[error("unsupported database URL {url:?}: {reason}")]
    UnsupportedUrl {
        /// The URL with any password redacted.
        url: String,
        /// Why it is not supported and what to use instead.
        reason: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open database {url}: {message}")]
    Open {
        /// The URL with any password redacted.
        url: String,
        /// Driver message.
        message: String,
    },
    /// The schema is newer than this kbgap knows.
    #[error("database schema version {found} is newer than this kbgap supports ({supported}); upgrade kbgap")]
    SchemaTooNew {
        /// Version in the database.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A stored document could not be decoded.
    #[error("stored document {id} is corrupt: {message}")]
    Corrupt {
        /// Document id.
        id: String,
        /// What failed.
        message: String,
    },
    /// A stored document was parsed by a kbgap with a different catalog model: it must be
    /// re-parsed from its stored source ([`CatalogStore::stale_documents`]) and re-imported.
    #[error(
        "stored document {id} was parsed with catalog model version {stored}, this kbgap uses \
         {current}: it needs re-parse from its stored source"
    )]
    Stale {
        /// Document id.
        id: DocumentId,
        /// The model version it was stored with.
        stored: i64,
        /// `kbgap_catalog::MODEL_VERSION`.
        current: i64,
    },
    /// The database server cannot be reached right now (connection lost and reconnecting
    /// failed); the operation may succeed later. The server answers 503.
    #[error("database {url} is unavailable: {message}")]
    Unavailable {
        /// The URL with any password redacted.
        url: String,
        /// Driver message.
        message: String,
    },
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(String),
}

/// One document to import: the parsed model plus the bytes it came from.
#[derive(Debug, Clone)]
pub struct ImportItem {
    /// Parsed document and its issues.
    pub parsed: ParsedDocument,
    /// The source bytes, kept so the catalog can be re-derived when the model changes.
    pub source: Vec<u8>,
    /// The source form.
    pub format: SourceFormat,
    /// Where it came from (file path or URL), for `catalog stats` and error messages.
    pub origin: String,
}

/// What happened to one document in an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportAction {
    /// It was new.
    Added,
    /// It replaced an older revision.
    Replaced {
        /// The revision it replaced.
        previous_revision: String,
    },
    /// The stored copy has the same revision and release date: nothing written.
    Unchanged,
    /// The stored copy is newer: nothing written.
    OlderThanStored {
        /// The stored revision.
        stored_revision: String,
    },
}

/// Stored facts about one document, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocumentInfo {
    /// Head facts.
    pub head: DocumentHead,
    /// Title.
    pub title: String,
    /// Initial release.
    pub initial_release: DateTime<Utc>,
    /// When it was imported.
    pub imported_at: DateTime<Utc>,
    /// Where it came from.
    pub origin: String,
    /// Number of parse issues recorded for it.
    pub issue_count: u64,
}

/// The catalog half of the store.
pub trait CatalogStore: Send {
    /// Head facts of every stored document.
    fn document_heads(&self) -> Result<Vec<DocumentHead>, StoreError>;
    /// Imports documents in one transaction: all or nothing. Documents whose stored copy has the
    /// same head are left alone; older revisions are replaced.
    fn import(
        &mut self,
        items: Vec<ImportItem>,
    ) -> Result<Vec<(DocumentId, ImportAction)>, StoreError>;
    /// Every stored document (optionally only those initially released on or before `as_of`).
    fn load_documents(&self, as_of: Option<DateTime<Utc>>) -> Result<Vec<Document>, StoreError>;
    /// The documents in which `kb` is a remediation or is superseded.
    fn documents_mentioning(&self, kb: KbId) -> Result<Vec<Document>, StoreError>;
    /// Summary rows of every stored document.
    fn document_infos(&self) -> Result<Vec<StoredDocumentInfo>, StoreError>;
    /// Parse issues recorded for stored documents.
    fn parse_issues(&self) -> Result<Vec<ParseIssue>, StoreError>;
    /// A number that changes whenever the catalog changes (replicas poll it).
    fn catalog_generation(&self) -> Result<i64, StoreError>;
    /// Stored documents whose body was produced by a different catalog model version
    /// (`kbgap_catalog::MODEL_VERSION`), with their source bytes: the caller re-parses them and
    /// imports the results, which replace the stale rows even though their head is unchanged.
    /// While any remain, [`CatalogStore::load_documents`] fails with [`StoreError::Stale`].
    fn stale_documents(&self) -> Result<Vec<StaleDocument>, StoreError>;
}

/// A stored document that must be re-parsed because the catalog model changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleDocument {
    /// Document id.
    pub id: DocumentId,
    /// The original source bytes (decompressed).
    pub source: Vec<u8>,
    /// The source form.
    pub format: SourceFormat,
    /// Where it originally came from.
    pub origin: String,
}

/// Orders two heads of the same document: later `current_release` wins; on equal dates the
/// revision numbers are compared numerically (dotted, `1` == `1.0`, `1.10` > `1.9`) when both
/// parse. `None` means "not comparable" (same date, different non-numeric revisions).
pub fn compare_heads(a: &DocumentHead, b: &DocumentHead) -> Option<Ordering> {
    match a.current_release.cmp(&b.current_release) {
        Ordering::Equal => {}
        other => return Some(other),
    }
    if a.revision == b.revision {
        return Some(Ordering::Equal);
    }
    let (ra, rb) = (revision_parts(&a.revision)?, revision_parts(&b.revision)?);
    let len = ra.len().max(rb.len());
    let pad = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    Some(
        (0..len)
            .map(|i| pad(&ra, i).cmp(&pad(&rb, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal),
    )
}

fn revision_parts(text: &str) -> Option<Vec<u64>> {
    text.trim()
        .split('.')
        .map(|p| p.parse::<u64>().ok())
        .collect()
}

/// Opens the catalog store named by `url_or_path`: `sqlite://PATH`, `sqlite:PATH`,
/// `sqlite::memory:` or a bare file path select SQLite; `postgres://` / `postgresql://` select
/// PostgreSQL ([`postgres::PgStore`], no TLS). Any other scheme is
/// [`StoreError::UnsupportedUrl`]; an unreachable server is [`StoreError::Open`] (password
/// redacted in both).
pub fn open(url_or_path: &str) -> Result<Box<dyn CatalogStore>, StoreError> {
    match DbLocation::parse(url_or_path)? {
        DbLocation::SqliteFile(path) => Ok(Box::new(sqlite::SqliteStore::open(&path)?)),
        DbLocation::SqliteMemory => Ok(Box::new(sqlite::SqliteStore::open_in_memory()?)),
        DbLocation::Postgres(url) => Ok(Box::new(postgres::PgStore::open(&url)?)),
    }
}

/// Like [`open`], but the returned store serves both the catalog and the devices.
pub fn open_store(url_or_path: &str) -> Result<Box<dyn Store>, StoreError> {
    match DbLocation::parse(url_or_path)? {
        DbLocation::SqliteFile(path) => Ok(Box::new(sqlite::SqliteStore::open(&path)?)),
        DbLocation::SqliteMemory => Ok(Box::new(sqlite::SqliteStore::open_in_memory()?)),
        DbLocation::Postgres(url) => Ok(Box::new(postgres::PgStore::open(&url)?)),
    }
}
