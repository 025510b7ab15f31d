-- 0003: device setups (see crates/kbgap-inventory/src/setup.rs). Never edit once released.

-- Each distinct setup (OS facts, build, installed KBs) once, keyed by its digest: a fleet of a
-- million devices has a few thousand. Rows no device references any more are harmless.
CREATE TABLE device_setups (
    -- Hex SHA-256 (kbgap_inventory::setup::digest_of_encoded).
    digest TEXT PRIMARY KEY NOT NULL,
    -- JSON of a kbgap_inventory::DeviceSetup.
    setup  BLOB NOT NULL
);

-- NULL until derived from `report` (done by the store on open, for rows stored before 0003).
ALTER TABLE devices ADD COLUMN setup_digest TEXT;

-- Finds the rows still to derive without scanning the table on every open.
CREATE INDEX devices_without_setup ON devices (machine_id) WHERE setup_digest IS NULL;
