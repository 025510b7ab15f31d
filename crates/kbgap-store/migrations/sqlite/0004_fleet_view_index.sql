-- 0004: a covering index for the fleet view (DeviceStore::fleet_rows). Never edit once released.
-- A device row holds its whole report (kilobytes, in overflow pages, before the time columns);
-- reading the five fleet-view columns from the table walks every report. From this index the
-- read touches ~150 bytes per device instead.
CREATE INDEX devices_fleet_view
    ON devices (machine_id, host_name, first_seen, last_seen, setup_digest);
