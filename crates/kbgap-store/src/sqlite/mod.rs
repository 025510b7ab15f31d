//! The SQLite backend: the embedded default store.
//!
//! One file in WAL mode. Each document is one `documents` row holding its head facts as columns
//! and its source and parsed model as zstd blobs; `document_kbs` indexes the KBs each document
//! names so single-KB lookups decode only a few bodies. Imports run in one immediate transaction,
//! so a crash or kill mid-import leaves the previous catalog untouched.

mod devices;

/// The body and source codecs (now backend-neutral, kept here for existing paths).
pub use crate::codec;
pub(crate) use crate::rows::{text_to_time, time_to_text};
pub mod migrate;

use crate::rows::{
    decide, encode, format_to_text, parse_id, text_to_format, writes, Encoded, StoredHead,
};
use crate::{
    CatalogStore, ImportAction, ImportItem, StaleDocument, StoreError, StoredDocumentInfo,
};
use chrono::{DateTime, Utc};
use kbgap_catalog::{Document, DocumentHead, ParseIssue, SourceFormat, MODEL_VERSION};
use kbgap_core::{DocumentId, KbId};
use rayon::prelude::*;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// A callback run inside the import transaction after each item is handled, with the item's id
/// and batch index; an error aborts (rolls back) the whole import. Exists so tests can force a
/// failure or a kill at a known point mid-transaction; production code never sets one.
pub type ImportHook = Box<dyn FnMut(&DocumentId, usize) -> Result<(), StoreError> + Send>;

/// The SQLite catalog store.
pub struct SqliteStore {
    conn: Connection,
    /// The path (or `:memory:`), for messages.
    location: String,
    import_hook: Option<ImportHook>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed, with parent directories) the database file at `path`, in WAL
    /// mode with `synchronous=NORMAL`, a busy timeout and foreign keys on, and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let location = path.display().to_string();
        let open_err = |message: String| StoreError::Open {
            url: location.clone(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                open_err(format!("cannot create directory {}: {e}", parent.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_err(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%location, %mode, "could not switch the database to WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(|e| open_err(e.to_string()))?;
        Self::finish_open(conn, location)
    }

    /// A private in-memory database (tests, one-shot runs).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| StoreError::Open {
            url: ":memory:".into(),
            message: e.to_string(),
        })?;
        Self::finish_open(conn, ":memory:".into())
    }

    fn finish_open(mut conn: Connection, location: String) -> Result<Self, StoreError> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            url: location.clone(),
            message: e.to_string(),
        };
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(open_err)?;
        conn.execute_batch("PRAGMA foreign_keys=ON;")
            .map_err(open_err)?;
        migrate::migrate(&mut conn)?;
        let mut store = Self {
            conn,
            location,
            import_hook: None,
        };
        store.backfill_setups()?;
        Ok(store)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(db)
    }

    /// Runs `PRAGMA integrity_check`; an empty list means the file is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").map_err(db)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    /// The stored source bytes and form of one document, if stored.
    pub fn document_source(
        &self,
        id: &DocumentId,
    ) -> Result<Option<(Vec<u8>, SourceFormat)>, StoreError> {
        let row: Option<(Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT source, format FROM documents WHERE id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        row.map(|(blob, format)| {
            let bytes = codec::decompress(&blob).map_err(|e| StoreError::Corrupt {
                id: id.to_string(),
                message: format!("source: {e}"),
            })?;
            Ok((bytes, text_to_format(id.as_str(), &format)?))
        })
        .transpose()
    }

    /// Test support: installs a hook run inside the import transaction after each item.
    #[doc(hidden)]
    pub fn set_import_hook(&mut self, hook: Option<ImportHook>) {
        self.import_hook = hook;
    }

    fn stored_heads(&self) -> Result<HashMap<DocumentId, StoredHead>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, revision, current_release, model_version FROM documents")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(db)?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, revision, current, model_version) = row.map_err(db)?;
            let current_release = text_to_time(&id, "current_release", &current)?;
            let id = parse_id(&id)?;
            out.insert(
                id.clone(),
                StoredHead {
                    head: DocumentHead {
                        id,
                        revision,
                        current_release,
                    },
                    model_version,
                },
            );
        }
        Ok(out)
    }

    /// Runs `sql` (selecting `id, model_version, body`) and decodes the bodies in parallel,
    /// keeping the query's order. Any stale body fails the whole load with [`StoreError::Stale`].
    fn load_bodies(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Document>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        if let Some((id, stored, _)) = rows.iter().find(|(_, v, _)| *v != i64::from(MODEL_VERSION))
        {
            return Err(StoreError::Stale {
                id: parse_id(id)?,
                stored: *stored,
                current: i64::from(MODEL_VERSION),
            });
        }
        rows.par_iter()
            .map(|(id, _, body)| codec::decode_body(id, body))
            .collect()
    }
}

impl CatalogStore for SqliteStore {
    fn document_heads(&self) -> Result<Vec<DocumentHead>, StoreError> {
        let mut heads: Vec<DocumentHead> =
            self.stored_heads()?.into_values().map(|s| s.head).collect();
        heads.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(heads)
    }

    fn import(
        &mut self,
        items: Vec<ImportItem>,
    ) -> Result<Vec<(DocumentId, ImportAction)>, StoreError> {
        // Outside the transaction: decide which items will probably be written and do the
        // expensive serialization/compression for those in parallel. The decision is re-made
        // inside the transaction (authoritative); a miss there is encoded inline.
        let started = std::time::Instant::now();
        let before = self.stored_heads()?;
        let mut encoded: Vec<Option<Encoded>> = items
            .par_iter()
            .map(|item| {
                let doc = &item.parsed.document;
                writes(&decide(before.get(&doc.id), &doc.head()))
                    .then(|| encode(item))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;

        let encode_time = started.elapsed();
        let Self {
            conn, import_hook, ..
        } = self;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let imported_at = time_to_text(Utc::now());
        let mut actions = Vec::with_capacity(items.len());
        {
            let mut select_head = tx
                .prepare_cached(
                    "SELECT revision, current_release, model_version FROM documents WHERE id = ?1",
                )
                .map_err(db)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM documents WHERE id = ?1")
                .map_err(db)?;
            let mut insert_doc = tx
                .prepare_cached(
                    "INSERT INTO documents (id, title, alias, initial_release, current_release,
                         revision, format, origin, imported_at, model_version, source_sha256,
                         source, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(db)?;
            let mut insert_kb = tx
                .prepare_cached(
                    "INSERT INTO document_kbs (document_id, kb, role) VALUES (?1, ?2, ?3)",
                )
                .map_err(db)?;
            let mut insert_issue = tx
                .prepare_cached(
                    "INSERT INTO parse_issues (document_id, seq, cve, field, message, skipped, line)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db)?;
            for (index, item) in items.iter().enumerate() {
                let doc = &item.parsed.document;
                let id = doc.id.as_str();
                let stored = select_head
                    .query_row([id], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })
                    .optional()
                    .map_err(db)?
                    .map(|(revision, current, model_version)| {
                        Ok::<_, StoreError>(StoredHead {
                            head: DocumentHead {
                                id: doc.id.clone(),
                                revision,
                                current_release: text_to_time(id, "current_release", &current)?,
                            },
                            model_version,
                        })
                    })
                    .transpose()?;
                let action = decide(stored.as_ref(), &doc.head());
                if writes(&action) {
                    let enc = match encoded[index].take() {
                        Some(enc) => enc,
                        None => encode(item)?,
                    };
                    delete.execute([id]).map_err(db)?;
                    insert_doc
                        .execute(params![
                            id,
                            doc.title,
                            doc.alias,
                            time_to_text(doc.initial_release),
                            time_to_text(doc.current_release),
                            doc.revision,
                            format_to_text(item.format),
                            item.origin,
                            imported_at,
                            i64::from(MODEL_VERSION),
                            enc.source_sha256,
                            enc.source,
                            enc.body,
                        ])
                        .map_err(db)?;
                    for (kb, role) in &enc.kbs {
                        insert_kb.execute(params![id, kb, role]).map_err(db)?;
                    }
                    for (seq, issue) in item.parsed.issues.iter().enumerate() {
                        insert_issue
                            .execute(params![
                                id,
                                seq as i64,
                                issue.cve,
                                issue.field,
                                issue.message,
                                issue.skipped,
                                issue.line.map(|l| l as i64),
                            ])
                            .map_err(db)?;
                    }
                }
                if let Some(hook) = import_hook.as_mut() {
                    hook(&doc.id, index)?;
                }
                actions.push((doc.id.clone(), action));
            }
        }
        if actions.iter().any(|(_, a)| writes(a)) {
            tx.execute(
                "UPDATE catalog_meta SET value = value + 1 WHERE key = 'generation'",
                [],
            )
            .map_err(db)?;
        }
        let write_time = started.elapsed() - encode_time;
        tx.commit().map_err(db)?;
        tracing::debug!(
            items = actions.len(),
            ?encode_time,
            ?write_time,
            commit_time = ?(started.elapsed() - encode_time - write_time),
            "import finished"
        );
        Ok(actions)
    }

    fn load_documents(&self, as_of: Option<DateTime<Utc>>) -> Result<Vec<Document>, StoreError> {
        match as_of {
            None => self.load_bodies(
                "SELECT id, model_version, body FROM documents ORDER BY initial_release, id",
                [],
            ),
            Some(t) => self.load_bodies(
                "SELECT id, model_version, body FROM documents WHERE initial_release <= ?1
                 ORDER BY initial_release, id",
                [time_to_text(t)],
            ),
        }
    }

    fn documents_mentioning(&self, kb: KbId) -> Result<Vec<Document>, StoreError> {
        self.load_bodies(
            "SELECT id, model_version, body FROM documents
             WHERE id IN (SELECT document_id FROM document_kbs WHERE kb = ?1)
             ORDER BY initial_release, id",
            [i64::from(kb.get())],
        )
    }

    fn document_infos(&self) -> Result<Vec<StoredDocumentInfo>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.id, d.revision, d.current_release, d.title, d.initial_release,
                        d.imported_at, d.origin,
                        (SELECT COUNT(*) FROM parse_issues p WHERE p.document_id = d.id)
                 FROM documents d ORDER BY d.initial_release, d.id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, revision, current, title, initial, imported, origin, issues) =
                row.map_err(db)?;
            out.push(StoredDocumentInfo {
                head: DocumentHead {
                    id: parse_id(&id)?,
                    revision,
                    current_release: text_to_time(&id, "current_release", &current)?,
                },
                title,
                initial_release: text_to_time(&id, "initial_release", &initial)?,
                imported_at: text_to_time(&id, "imported_at", &imported)?,
                origin,
                issue_count: u64::try_from(issues).unwrap_or(0),
            });
        }
        Ok(out)
    }

    fn parse_issues(&self) -> Result<Vec<ParseIssue>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.document_id, p.cve, p.field, p.message, p.skipped, p.line
                 FROM parse_issues p JOIN documents d ON d.id = p.document_id
                 ORDER BY d.initial_release, d.id, p.seq",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, cve, field, message, skipped, line) = row.map_err(db)?;
            out.push(ParseIssue {
                document: Some(parse_id(&id)?),
                cve,
                field,
                message,
                skipped,
                line: line.and_then(|l| u64::try_from(l).ok()),
            });
        }
        Ok(out)
    }

    fn catalog_generation(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM catalog_meta WHERE key = 'generation'",
                [],
                |r| r.get(0),
            )
            .map_err(db)
    }

    fn stale_documents(&self) -> Result<Vec<StaleDocument>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, source, format, origin FROM documents WHERE model_version != ?1
                 ORDER BY initial_release, id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([i64::from(MODEL_VERSION)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        rows.into_par_iter()
            .map(|(id, blob, format, origin)| {
                let source = codec::decompress(&blob).map_err(|e| StoreError::Corrupt {
                    id: id.clone(),
                    message: format!("source: {e}"),
                })?;
                Ok(StaleDocument {
                    format: text_to_format(&id, &format)?,
                    id: parse_id(&id)?,
                    source,
                    origin,
                })
            })
            .collect()
    }
}
