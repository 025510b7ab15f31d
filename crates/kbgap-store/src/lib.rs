//! Persistence: the [`CatalogStore`] trait and its backends, picked from the database URL.
//!
//! The catalog is stored as documents: each imported CVRF document keeps its source bytes
//! (compressed) and its parsed model, replaced whole when a newer revision arrives. The engine's
//! indexes are derived in memory from the documents, so every backend stores the same few tables.

pub mod sqlite;

use chrono::{DateTime, Utc};
use kbgap_catalog::{Document, DocumentHead, ParseIssue, ParsedDocument, SourceFormat};
use kbgap_core::{DocumentId, KbId};

/// Errors from any backend, without driver types.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend we have, or is malformed.
    #[error("unsupported database URL {0:?} (expected sqlite://PATH or a file path)")]
    UnsupportedUrl(String),
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
    fn import(&mut self, items: Vec<ImportItem>) -> Result<Vec<(DocumentId, ImportAction)>, StoreError>;
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
}
