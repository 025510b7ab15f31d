-- 0001: the catalog, stored as whole documents (see crates/kbgap-store/src/lib.rs).
-- Applied by kbgap-store's migration runner inside one transaction; never edit once released,
-- add 0002_*.sql instead.

-- One row per CVRF document: head facts as columns, source and parsed model as zstd blobs.
CREATE TABLE documents (
    id              TEXT PRIMARY KEY NOT NULL,
    title           TEXT NOT NULL,
    alias           TEXT,
    -- RFC 3339 UTC with nanoseconds and `Z` (fixed width, so text order is time order).
    initial_release TEXT NOT NULL,
    current_release TEXT NOT NULL,
    revision        TEXT NOT NULL,
    -- 'xml' | 'json'
    format          TEXT NOT NULL,
    origin          TEXT NOT NULL,
    imported_at     TEXT NOT NULL,
    -- kbgap_catalog::MODEL_VERSION of the parser that produced `body`.
    model_version   INTEGER NOT NULL,
    -- Hex SHA-256 of the uncompressed source bytes.
    source_sha256   TEXT NOT NULL,
    -- zstd-compressed source bytes, kept so documents can be re-parsed when the model changes.
    source          BLOB NOT NULL,
    -- zstd-compressed serialized kbgap_catalog::Document (codec: see src/sqlite/codec.rs).
    body            BLOB NOT NULL
);

CREATE INDEX documents_initial_release ON documents (initial_release, id);

-- Every KB a document names: as a remediation ('fix') or in a Supercedence field ('supersedes').
CREATE TABLE document_kbs (
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    kb          INTEGER NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('fix', 'supersedes')),
    PRIMARY KEY (document_id, kb, role)
) WITHOUT ROWID;

CREATE INDEX document_kbs_kb ON document_kbs (kb);

-- Parse issues recorded when the document was imported, in the parser's order (`seq`).
CREATE TABLE parse_issues (
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    cve         TEXT,
    field       TEXT NOT NULL,
    message     TEXT NOT NULL,
    skipped     INTEGER NOT NULL,
    line        INTEGER,
    PRIMARY KEY (document_id, seq)
) WITHOUT ROWID;

-- Small key/value facts about the catalog. `generation` is bumped by every import that changes
-- anything; replicas poll it.
CREATE TABLE catalog_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value
);

INSERT INTO catalog_meta (key, value) VALUES ('generation', 0);
