//! The PostgreSQL backend, for several `kbgap serve` replicas sharing one database.
//!
//! Same logical schema and semantics as the SQLite backend (`migrations/postgres/`): one
//! `documents` row per CVRF document with zstd blobs (`bytea`), `document_kbs`, `parse_issues`,
//! `catalog_meta`/`fleet_meta` generation counters, `devices`. Imports and device upserts are one
//! transaction each, serialized between processes by transaction-scoped advisory locks (the
//! counterpart of SQLite's `BEGIN IMMEDIATE`); child rows are written with multi-row
//! `unnest(...)` inserts.
//!
//! The connection uses the synchronous `postgres` crate **without TLS** (`NoTls`): run it on a
//! trusted network or over a local socket/tunnel. A connection broken under us (server restart,
//! network cut) is detected on the next call, which reconnects and retries the operation once;
//! if that fails too the call returns [`StoreError::Unavailable`] (HTTP 503 in the server).
//! Driver types never leave this module.

mod devices;
pub mod migrate;

use crate::rows::{
    decide, encode, format_to_text, parse_id, text_to_format, text_to_time, time_to_text, writes,
    Encoded, StoredHead,
};
use crate::{
    codec, redact_url, CatalogStore, ImportAction, ImportItem, StaleDocument, StoreError,
    StoredDocumentInfo,
};
use chrono::{DateTime, Utc};
use kbgap_catalog::{Document, DocumentHead, ParseIssue, MODEL_VERSION};
use kbgap_core::{DocumentId, KbId};
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, SimpleQueryMessage};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Advisory lock keys ("kbgap" + a number): schema migration, catalog import, device upsert.
pub(crate) const ADVISORY_MIGRATE: i64 = 0x6b62_6761_7000_0001;
const ADVISORY_IMPORT: i64 = 0x6b62_6761_7000_0002;
pub(crate) const ADVISORY_DEVICES: i64 = 0x6b62_6761_7000_0003;

/// Connect timeout used when the URL does not set `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL store: one connection, re-established on demand.
pub struct PgStore {
    /// The URL as given (may hold a password: never printed).
    url: String,
    /// The URL with the password redacted, for messages.
    redacted: String,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(client) = self.client.get_mut().ok().and_then(Option::take) {
            discard(client);
        }
    }
}

/// Drops a client on a short-lived thread of its own. The sync client drives its connection
/// with a private tokio runtime, and dropping it blocks on that runtime, which panics when the
/// dropping thread is inside another runtime (the server drops its store inside tokio at
/// shutdown, and may discard a broken connection on a runtime thread).
fn discard(client: Client) {
    let joined = std::thread::Builder::new()
        .name("kbgap-pg-close".into())
        .spawn(move || drop(client))
        .map(|h| h.join());
    if !matches!(joined, Ok(Ok(()))) {
        tracing::warn!("could not close a PostgreSQL connection cleanly");
    }
}

/// The `generation` row of a `*_meta` table (`catalog_meta`, `fleet_meta`), read with the simple
/// query protocol: one round trip. (`query_one` with SQL text costs two: an unnamed prepare,
/// then the execute.) This is the server's hot path: `kbgap serve` reads both generations on
/// every request, so over loopback the round trips, not the queries, are its PostgreSQL cost.
pub(crate) fn meta_generation(c: &mut Client, table: &'static str) -> Result<i64, OpError> {
    let sql = format!("SELECT value FROM {table} WHERE key = 'generation'");
    Ok(simple_numbers(c, &sql, &format!("{table}.generation"))?[0])
}

/// The numeric columns of the one row `sql` returns, read with the simple query protocol (one
/// round trip). A missing row or a NULL / non-numeric value is an error naming `what`.
pub(crate) fn simple_numbers(c: &mut Client, sql: &str, what: &str) -> Result<Vec<i64>, OpError> {
    let bad = |m: String| OpError::Store(StoreError::Database(m));
    let rows: Vec<_> = c
        .simple_query(sql)?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    let [row] = rows.as_slice() else {
        return Err(bad(format!("{what}: {} rows, expected one", rows.len())));
    };
    (0..row.len())
        .map(|i| match row.get(i) {
            Some(text) => text
                .parse()
                .map_err(|e| bad(format!("{what} is not a number ({text:?}): {e}"))),
            None => Err(bad(format!("{what} is missing (NULL)"))),
        })
        .collect()
}

/// An operation's failure: a driver error (maybe a broken connection) or a store error.
pub(crate) enum OpError {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for OpError {
    fn from(e: postgres::Error) -> Self {
        Self::Pg(e)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Whether `e` means the connection is gone (so reconnecting may help): the client closed, an
/// I/O error without a server error, or SQLSTATE class 08 (connection exception) / 57P
/// (operator intervention: admin shutdown, crash shutdown, cannot connect now).
fn is_connection_error(e: &postgres::Error, client: &Client) -> bool {
    if client.is_closed() || e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        None => e.as_db_error().is_none(),
    }
}

fn connect(url: &str, redacted: &str) -> Result<Client, StoreError> {
    let open_err = |message: String| StoreError::Open {
        url: redacted.to_owned(),
        message,
    };
    let mut config: Config = url
        .parse()
        .map_err(|e: postgres::Error| open_err(format!("bad PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("kbgap");
    }
    config
        .connect(NoTls)
        .map_err(|e| open_err(driver_message(&e)))
}

/// The driver's message plus its cause (the bare `Display` of a connect error is just "error
/// connecting to server").
fn driver_message(e: &postgres::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) if !e.to_string().contains(&cause.to_string()) => format!("{e}: {cause}"),
        _ => e.to_string(),
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://` or `postgresql://`, libpq-style parameters accepted,
    /// no TLS) and applies pending migrations under an advisory lock. An unreachable server or
    /// bad URL is one [`StoreError::Open`] naming the redacted URL.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let redacted = redact_url(url);
        let mut client = connect(url, &redacted)?;
        migrate::migrate(&mut client)?;
        let store = Self {
            url: url.to_owned(),
            redacted,
            client: Mutex::new(Some(client)),
        };
        store.backfill_setups()?;
        Ok(store)
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(|c| {
            Ok(c.query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                &[],
            )?
            .get(0))
        })
    }

    /// Runs `op` on the connection, (re)connecting first if needed. If the connection turns
    /// out to be broken, reconnects and runs `op` once more; a second connection failure is
    /// [`StoreError::Unavailable`]. `op` must be safe to repeat: every write here is one
    /// transaction that either committed (a repeat then finds it done) or was rolled back.
    pub(crate) fn run<T>(
        &self,
        mut op: impl FnMut(&mut Client) -> Result<T, OpError>,
    ) -> Result<T, StoreError> {
        let mut guard = self
            .client
            .lock()
            .map_err(|_| StoreError::Database("connection lock poisoned".into()))?;
        for attempt in 0..2 {
            if guard.as_ref().is_none_or(Client::is_closed) {
                if let Some(old) = guard.take() {
                    discard(old);
                }
                let client =
                    connect(&self.url, &self.redacted).map_err(|e| StoreError::Unavailable {
                        url: self.redacted.clone(),
                        message: match e {
                            StoreError::Open { message, .. } => message,
                            other => other.to_string(),
                        },
                    })?;
                if attempt > 0 || guard.is_none() {
                    tracing::info!(url = %self.redacted, "reconnected to PostgreSQL");
                }
                *guard = Some(client);
            }
            let client = guard
                .as_mut()
                .ok_or_else(|| StoreError::Database("no connection".into()))?;
            match op(client) {
                Ok(v) => return Ok(v),
                Err(OpError::Store(e)) => return Err(e),
                Err(OpError::Pg(e)) if is_connection_error(&e, client) => {
                    tracing::warn!(url = %self.redacted, error = %driver_message(&e),
                        "PostgreSQL connection lost");
                    if let Some(old) = guard.take() {
                        discard(old);
                    }
                    if attempt == 1 {
                        return Err(StoreError::Unavailable {
                            url: self.redacted.clone(),
                            message: driver_message(&e),
                        });
                    }
                }
                Err(OpError::Pg(e)) => return Err(StoreError::Database(driver_message(&e))),
            }
        }
        Err(StoreError::Unavailable {
            url: self.redacted.clone(),
            message: "connection lost".into(),
        })
    }

    fn stored_heads(&self) -> Result<HashMap<DocumentId, StoredHead>, StoreError> {
        let rows = self.run(|c| {
            Ok(c.query(
                "SELECT id, revision, current_release, model_version FROM documents",
                &[],
            )?)
        })?;
        let mut out = HashMap::new();
        for r in rows {
            let head = row_head(&r)?;
            out.insert(head.head.id.clone(), head);
        }
        Ok(out)
    }

    /// Runs `sql` (selecting `id, model_version, body`) and decodes bodies in parallel, in the
    /// query's order. Any stale body fails the load with [`StoreError::Stale`].
    fn load_bodies(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Document>, StoreError> {
        let rows: Vec<(String, i64, Vec<u8>)> = self.run(|c| {
            Ok(c.query(sql, params)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })?;
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

/// A `(id, revision, current_release, model_version)` row.
fn row_head(r: &postgres::Row) -> Result<StoredHead, StoreError> {
    let id: String = r.get(0);
    let current: String = r.get(2);
    Ok(StoredHead {
        head: DocumentHead {
            current_release: text_to_time(&id, "current_release", &current)?,
            id: parse_id(&id)?,
            revision: r.get(1),
        },
        model_version: r.get(3),
    })
}

/// Writes one document's rows (replacing any stored copy) inside `tx`.
fn write_document(
    tx: &mut postgres::Transaction<'_>,
    item: &ImportItem,
    enc: &Encoded,
    imported_at: &str,
) -> Result<(), OpError> {
    let doc = &item.parsed.document;
    let id = doc.id.as_str();
    tx.execute("DELETE FROM documents WHERE id = $1", &[&id])?;
    tx.execute(
        "INSERT INTO documents (id, title, alias, initial_release, current_release, revision,
             format, origin, imported_at, model_version, source_sha256, source, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &id,
            &doc.title,
            &doc.alias,
            &time_to_text(doc.initial_release),
            &time_to_text(doc.current_release),
            &doc.revision,
            &format_to_text(item.format),
            &item.origin,
            &imported_at,
            &i64::from(MODEL_VERSION),
            &enc.source_sha256,
            &enc.source,
            &enc.body,
        ],
    )?;
    let (kbs, roles): (Vec<i64>, Vec<&str>) = enc
        .kbs
        .iter()
        .map(|(kb, role)| (i64::from(*kb), *role))
        .unzip();
    tx.execute(
        "INSERT INTO document_kbs (document_id, kb, role)
         SELECT $1, u.kb, u.role FROM unnest($2::BIGINT[], $3::TEXT[]) AS u(kb, role)",
        &[&id, &kbs, &roles],
    )?;
    let issues = &item.parsed.issues;
    if !issues.is_empty() {
        let seq: Vec<i64> = (0..issues.len() as i64).collect();
        let cve: Vec<Option<&str>> = issues.iter().map(|i| i.cve.as_deref()).collect();
        let field: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        let message: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
        let skipped: Vec<bool> = issues.iter().map(|i| i.skipped).collect();
        let line: Vec<Option<i64>> = issues
            .iter()
            .map(|i| i.line.and_then(|l| i64::try_from(l).ok()))
            .collect();
        tx.execute(
            "INSERT INTO parse_issues (document_id, seq, cve, field, message, skipped, line)
             SELECT $1, u.* FROM unnest($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                 $6::BOOLEAN[], $7::BIGINT[]) AS u",
            &[&id, &seq, &cve, &field, &message, &skipped, &line],
        )?;
    }
    Ok(())
}

impl CatalogStore for PgStore {
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
        // As in SQLite: encode what will probably be written in parallel before the
        // transaction; the decision is re-made inside it (authoritative).
        let before = self.stored_heads()?;
        let encoded: Vec<Option<Encoded>> = items
            .par_iter()
            .map(|item| {
                let doc = &item.parsed.document;
                writes(&decide(before.get(&doc.id), &doc.head()))
                    .then(|| encode(item))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        let ids: Vec<&str> = items
            .iter()
            .map(|i| i.parsed.document.id.as_str())
            .collect();
        self.run(|client| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ADVISORY_IMPORT])?;
            let mut heads = HashMap::new();
            for r in tx.query(
                "SELECT id, revision, current_release, model_version FROM documents
                 WHERE id = ANY($1)",
                &[&ids],
            )? {
                let h = row_head(&r)?;
                heads.insert(h.head.id.clone(), h);
            }
            let imported_at = time_to_text(Utc::now());
            let mut actions = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let doc = &item.parsed.document;
                let action = decide(heads.get(&doc.id), &doc.head());
                if writes(&action) {
                    let inline;
                    let enc = match &encoded[index] {
                        Some(enc) => enc,
                        None => {
                            inline = encode(item)?;
                            &inline
                        }
                    };
                    write_document(&mut tx, item, enc, &imported_at)?;
                    heads.insert(
                        doc.id.clone(),
                        StoredHead {
                            head: doc.head(),
                            model_version: i64::from(MODEL_VERSION),
                        },
                    );
                }
                actions.push((doc.id.clone(), action));
            }
            if actions.iter().any(|(_, a)| writes(a)) {
                tx.execute(
                    "UPDATE catalog_meta SET value = value + 1 WHERE key = 'generation'",
                    &[],
                )?;
            }
            tx.commit()?;
            Ok(actions)
        })
    }

    fn load_documents(&self, as_of: Option<DateTime<Utc>>) -> Result<Vec<Document>, StoreError> {
        match as_of {
            None => self.load_bodies(
                "SELECT id, model_version, body FROM documents ORDER BY initial_release, id",
                &[],
            ),
            Some(t) => self.load_bodies(
                "SELECT id, model_version, body FROM documents WHERE initial_release <= $1
                 ORDER BY initial_release, id",
                &[&time_to_text(t)],
            ),
        }
    }

    fn documents_mentioning(&self, kb: KbId) -> Result<Vec<Document>, StoreError> {
        self.load_bodies(
            "SELECT id, model_version, body FROM documents
             WHERE id IN (SELECT document_id FROM document_kbs WHERE kb = $1)
             ORDER BY initial_release, id",
            &[&i64::from(kb.get())],
        )
    }

    fn document_infos(&self) -> Result<Vec<StoredDocumentInfo>, StoreError> {
        let rows = self.run(|c| {
            Ok(c.query(
                "SELECT d.id, d.revision, d.current_release, d.title, d.initial_release,
                        d.imported_at, d.origin,
                        (SELECT COUNT(*) FROM parse_issues p WHERE p.document_id = d.id)
                 FROM documents d ORDER BY d.initial_release, d.id",
                &[],
            )?)
        })?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let current: String = r.get(2);
                let initial: String = r.get(4);
                let imported: String = r.get(5);
                let issues: i64 = r.get(7);
                Ok(StoredDocumentInfo {
                    head: DocumentHead {
                        id: parse_id(&id)?,
                        revision: r.get(1),
                        current_release: text_to_time(&id, "current_release", &current)?,
                    },
                    title: r.get(3),
                    initial_release: text_to_time(&id, "initial_release", &initial)?,
                    imported_at: text_to_time(&id, "imported_at", &imported)?,
                    origin: r.get(6),
                    issue_count: u64::try_from(issues).unwrap_or(0),
                })
            })
            .collect()
    }

    fn parse_issues(&self) -> Result<Vec<ParseIssue>, StoreError> {
        let rows = self.run(|c| {
            Ok(c.query(
                "SELECT p.document_id, p.cve, p.field, p.message, p.skipped, p.line
                 FROM parse_issues p JOIN documents d ON d.id = p.document_id
                 ORDER BY d.initial_release, d.id, p.seq",
                &[],
            )?)
        })?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let line: Option<i64> = r.get(5);
                Ok(ParseIssue {
                    document: Some(parse_id(&id)?),
                    cve: r.get(1),
                    field: r.get(2),
                    message: r.get(3),
                    skipped: r.get(4),
                    line: line.and_then(|l| u64::try_from(l).ok()),
                })
            })
            .collect()
    }

    fn catalog_generation(&self) -> Result<i64, StoreError> {
        self.run(|c| meta_generation(c, "catalog_meta"))
    }

    fn stale_documents(&self) -> Result<Vec<StaleDocument>, StoreError> {
        let rows: Vec<(String, Vec<u8>, String, String)> = self.run(|c| {
            Ok(c.query(
                "SELECT id, source, format, origin FROM documents WHERE model_version != $1
                 ORDER BY initial_release, id",
                &[&i64::from(MODEL_VERSION)],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
        })?;
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
