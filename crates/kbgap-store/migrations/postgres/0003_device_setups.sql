-- 0003 (PostgreSQL): device setups; same logical schema as migrations/sqlite/0003_device_setups.sql.
-- Never edit once released.

CREATE TABLE device_setups (
    -- Hex SHA-256 (kbgap_inventory::setup::digest_of_encoded).
    digest TEXT COLLATE "C" PRIMARY KEY,
    -- JSON of a kbgap_inventory::DeviceSetup.
    setup  BYTEA NOT NULL
);

-- NULL until derived from `report` (done by the store on open, for rows stored before 0003).
ALTER TABLE devices ADD COLUMN setup_digest TEXT COLLATE "C";

-- Finds the rows still to derive without scanning the table on every open.
CREATE INDEX devices_without_setup ON devices (machine_id) WHERE setup_digest IS NULL;
