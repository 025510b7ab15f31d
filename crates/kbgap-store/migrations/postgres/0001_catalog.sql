-- 0001 (PostgreSQL): the catalog, stored as whole documents (see crates/kbgap-store/src/lib.rs).
-- Same logical schema as migrations/sqlite/0001_catalog.sql. Applied by the migration runner in
-- one transaction under an advisory lock; never edit once released, add 0003_*.sql instead.
--
-- Timestamps are fixed-width RFC 3339 UTC text with nanoseconds (as in SQLite) rather than
-- timestamptz (microseconds), so every value round-trips exactly and both backends return the
-- same heads; `COLLATE "C"` makes text order byte order, hence time order and SQLite's id order.

CREATE TABLE documents (
    id              TEXT COLLATE "C" PRIMARY KEY,
    title           TEXT NOT NULL,
    alias           TEXT,
    initial_release TEXT COLLATE "C" NOT NULL,
    current_release TEXT COLLATE "C" NOT NULL,
    revision        TEXT NOT NULL,
    -- 'xml' | 'json'
    format          TEXT NOT NULL CHECK (format IN ('xml', 'json')),
    origin          TEXT NOT NULL,
    imported_at     TEXT COLLATE "C" NOT NULL,
    -- kbgap_catalog::MODEL_VERSION of the parser that produced `body`.
    model_version   BIGINT NOT NULL,
    -- Hex SHA-256 of the uncompressed source bytes.
    source_sha256   TEXT NOT NULL,
    -- zstd-compressed source bytes.
    source          BYTEA NOT NULL,
    -- zstd-compressed serialized kbgap_catalog::Document (codec: src/codec.rs).
    body            BYTEA NOT NULL
);

CREATE INDEX documents_initial_release ON documents (initial_release, id);

CREATE TABLE document_kbs (
    document_id TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    kb          BIGINT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('fix', 'supersedes')),
    PRIMARY KEY (document_id, kb, role)
);

CREATE INDEX document_kbs_kb ON document_kbs (kb);

CREATE TABLE parse_issues (
    document_id TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    cve         TEXT,
    field       TEXT NOT NULL,
    message     TEXT NOT NULL,
    skipped     BOOLEAN NOT NULL,
    line        BIGINT,
    PRIMARY KEY (document_id, seq)
);

CREATE TABLE catalog_meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO catalog_meta (key, value) VALUES ('generation', 0);
