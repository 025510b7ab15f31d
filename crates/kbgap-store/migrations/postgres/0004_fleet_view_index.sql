-- 0004 (PostgreSQL): a covering index for the fleet view, as in migrations/sqlite/0004.
-- Never edit once released. Reports are TOASTed here, so the heap is already narrow; the index
-- lets a vacuumed table answer DeviceStore::fleet_rows with an index-only scan.
CREATE INDEX devices_fleet_view
    ON devices (machine_id) INCLUDE (host_name, first_seen, last_seen, setup_digest);
