-- 0002: devices (see crates/kbgap-store/src/devices.rs). Never edit once released; add 0003_*.sql.

-- One row per device: the latest report, as the JSON of a kbgap_inventory::Device.
CREATE TABLE devices (
    -- 40 lowercase hex characters (kbgap_core::MachineId).
    machine_id    TEXT PRIMARY KEY NOT NULL CHECK (length(machine_id) = 40),
    host_name     TEXT,
    -- lower(host_name), for case-insensitive lookups.
    host_key      TEXT,
    -- serde_json of kbgap_inventory::Device (the canonical form, see devices.rs).
    report        BLOB NOT NULL,
    -- Hex SHA-256 of `report`: same digest = same report (idempotent re-sends).
    report_digest TEXT NOT NULL,
    -- RFC 3339 UTC with nanoseconds (fixed width, text order is time order).
    first_seen    TEXT NOT NULL,
    last_seen     TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE INDEX devices_host_key ON devices (host_key);

-- `generation` is bumped by every upsert transaction that added or replaced a report.
CREATE TABLE fleet_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value
);

INSERT INTO fleet_meta (key, value) VALUES ('generation', 0);
