-- 0002 (PostgreSQL): devices; same logical schema as migrations/sqlite/0002_devices.sql.
-- Never edit once released; add 0003_*.sql.

CREATE TABLE devices (
    -- 40 lowercase hex characters (kbgap_core::MachineId).
    machine_id    TEXT COLLATE "C" PRIMARY KEY CHECK (length(machine_id) = 40),
    host_name     TEXT,
    -- lower(host_name), for case-insensitive lookups.
    host_key      TEXT,
    -- serde_json of kbgap_inventory::Device (the canonical form, see devices.rs).
    report        BYTEA NOT NULL,
    report_digest TEXT NOT NULL,
    -- RFC 3339 UTC text with nanoseconds (see 0001).
    first_seen    TEXT COLLATE "C" NOT NULL,
    last_seen     TEXT COLLATE "C" NOT NULL,
    updated_at    TEXT COLLATE "C" NOT NULL
);

CREATE INDEX devices_host_key ON devices (host_key);

CREATE TABLE fleet_meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO fleet_meta (key, value) VALUES ('generation', 0);
