//! The device half of the store: the [`DeviceStore`] trait, stored-device rows, machine-id
//! derivation and the canonical report form used for idempotent re-sends.
//!
//! A device is stored as its latest report (a [`kbgap_inventory::Device`]), keyed by a
//! [`MachineId`]. Re-sending the same report changes only `last_seen`; a different report for
//! the same machine replaces the stored one (keeping `first_seen`). Beside the report, each
//! device row names its [`DeviceSetup`] by digest; distinct setups are stored once, so the
//! fleet view ([`DeviceStore::fleet_rows`]) reads a few small columns per device and each
//! distinct setup once instead of decoding a million reports.

use crate::StoreError;
use chrono::{DateTime, Utc};
use kbgap_core::MachineId;
use kbgap_inventory::{Device, DeviceSetup};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Domain-separation prefix of derived machine ids.
pub const MACHINE_ID_PREFIX: &str = "kbgap-machine-v1";

/// Derives the machine id of a report that carries none:
/// the first 20 bytes of `SHA-256("kbgap-machine-v1\0" + tenant + "\0" + lowercase(host_name))`,
/// printed as 40 lowercase hex characters.
///
/// SHA-256 truncated to 160 bits is used (rather than SHA-1) so the workspace needs one hash
/// crate; the id only has to be stable and well spread, not secret.
pub fn derive_machine_id(tenant: &str, host_name: &str) -> MachineId {
    let mut h = Sha256::new();
    h.update(MACHINE_ID_PREFIX.as_bytes());
    h.update([0u8]);
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(host_name.trim().to_lowercase().as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 20];
    out.copy_from_slice(&digest[..20]);
    MachineId::from_bytes(out)
}

/// Why a report cannot be stored as a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    /// The report names neither a machine id nor a host name.
    #[error(
        "{source_name}: the report names neither a machine id nor a host name; \
         add `machineId` or `hostName` to the report (or pass a host name)"
    )]
    Anonymous {
        /// The report's source name.
        source_name: String,
    },
}

/// The machine id of a report: its own `machineId` if it carries one, else
/// [`derive_machine_id`] from `tenant` and its host name.
pub fn machine_id_for(device: &Device, tenant: &str) -> Result<MachineId, DeviceIdError> {
    if let Some(id) = device.machine_id {
        return Ok(id);
    }
    match device
        .host_name
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        Some(h) => Ok(derive_machine_id(tenant, h)),
        None => Err(DeviceIdError::Anonymous {
            source_name: device.source_name.clone(),
        }),
    }
}

/// The canonical stored form of a report: the device as JSON with every `source_name` (of the
/// device, its KBs, facts and warnings) blanked, so the same report uploaded under another file
/// name is the same report.
pub fn canonical_report(device: &Device) -> Result<Vec<u8>, StoreError> {
    fn blank(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    if k == "source_name" {
                        *x = serde_json::Value::String(String::new());
                    } else {
                        blank(x);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(blank),
            _ => {}
        }
    }
    let err = |e: serde_json::Error| StoreError::Database(format!("serialising report: {e}"));
    let mut v = serde_json::to_value(device).map_err(err)?;
    blank(&mut v);
    serde_json::to_vec(&v).map_err(err)
}

/// Hex SHA-256 of bytes.
pub fn digest_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stored form and digest of a report's setup.
pub(crate) fn encoded_setup(device: &Device) -> (Vec<u8>, String) {
    let encoded = DeviceSetup::of(device).encode();
    let digest = kbgap_inventory::setup::digest_of_encoded(&encoded);
    (encoded, digest)
}

/// One device as the fleet view needs it: identity, name, times and which setup it has.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetRow {
    /// Id.
    pub machine_id: MachineId,
    /// Host name, as last reported.
    pub host_name: Option<String>,
    /// When the device was first stored.
    pub first_seen: DateTime<Utc>,
    /// When it last reported.
    pub last_seen: DateTime<Utc>,
    /// Index of its setup in [`FleetRows::setups`].
    pub setup: u32,
}

/// Every device and the distinct setups they have, read in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetRows {
    /// The fleet generation the read saw (see [`DeviceStore::fleet_generation`]).
    pub fleet_generation: i64,
    /// Distinct setups, each once.
    pub setups: Vec<DeviceSetup>,
    /// Devices, in no particular order.
    pub devices: Vec<FleetRow>,
    /// Devices left out because their stored report could not be read (id, why); they stay
    /// stored and are logged.
    pub unreadable: Vec<(String, String)>,
}

/// Builds [`FleetRows`] from raw column values, so both backends decode rows the same way.
#[derive(Debug, Default)]
pub(crate) struct FleetRowsBuilder {
    rows: FleetRows,
    index: HashMap<String, u32>,
}

impl FleetRowsBuilder {
    pub(crate) fn new(fleet_generation: i64) -> Self {
        Self {
            rows: FleetRows {
                fleet_generation,
                ..FleetRows::default()
            },
            index: HashMap::new(),
        }
    }

    /// One `device_setups` row.
    pub(crate) fn setup(&mut self, digest: &str, body: &[u8]) -> Result<(), StoreError> {
        let setup = DeviceSetup::decode(body).map_err(|e| StoreError::Corrupt {
            id: format!("device setup {digest}"),
            message: format!("column setup: {e}"),
        })?;
        self.index
            .insert(digest.to_owned(), self.rows.setups.len() as u32);
        self.rows.setups.push(setup);
        Ok(())
    }

    /// One `devices` row (`machine_id, host_name, first_seen, last_seen, setup_digest`).
    pub(crate) fn device(
        &mut self,
        id: &str,
        host_name: Option<&str>,
        first_seen: &str,
        last_seen: &str,
        setup_digest: Option<&str>,
    ) -> Result<(), StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            id: format!("device {id}"),
            message,
        };
        let machine_id: MachineId = id
            .parse()
            .map_err(|e| corrupt(format!("bad machine id: {e}")))?;
        let time = |column: &str, text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| corrupt(format!("column {column}: bad timestamp {text:?}: {e}")))
        };
        let Some(setup) = setup_digest.and_then(|d| self.index.get(d)) else {
            // Only reports that could not be decoded when setups were derived get here.
            self.rows
                .unreadable
                .push((id.to_owned(), "its stored report cannot be decoded".into()));
            return Ok(());
        };
        self.rows.devices.push(FleetRow {
            machine_id,
            host_name: host_name.map(str::to_owned),
            first_seen: time("first_seen", first_seen)?,
            last_seen: time("last_seen", last_seen)?,
            setup: *setup,
        });
        Ok(())
    }

    pub(crate) fn finish(self) -> FleetRows {
        for (id, why) in &self.rows.unreadable {
            tracing::warn!(device = %id, "left out of the fleet view: {why}");
        }
        self.rows
    }
}

/// The setup (encoded, digest) of a stored report, or why it cannot be derived.
pub(crate) fn setup_of_stored_report(report: &[u8]) -> Result<(Vec<u8>, String), String> {
    let device: Device = serde_json::from_slice(report).map_err(|e| e.to_string())?;
    Ok(encoded_setup(&device))
}

/// Rows per transaction when deriving setups of reports stored before schema 0003.
pub(crate) const BACKFILL_CHUNK: usize = 5_000;

/// One report to store.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceUpsert {
    /// The device's id (see [`machine_id_for`]).
    pub machine_id: MachineId,
    /// The report.
    pub device: Device,
}

/// What an upsert did to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UpsertAction {
    /// A new device.
    Added,
    /// A different report replaced the stored one.
    Replaced,
    /// The same report: only `last_seen` moved.
    Unchanged,
}

/// A stored device.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDevice {
    /// Id.
    pub machine_id: MachineId,
    /// Host name, as last reported.
    pub host_name: Option<String>,
    /// The latest report (source names blanked).
    pub device: Device,
    /// Hex SHA-256 of the canonical report.
    pub report_digest: String,
    /// When the device was first stored.
    pub first_seen: DateTime<Utc>,
    /// When it last reported (even an unchanged report).
    pub last_seen: DateTime<Utc>,
    /// When its report last changed.
    pub updated_at: DateTime<Utc>,
}

/// The device half of the store.
pub trait DeviceStore: Send {
    /// Stores reports in one transaction (all or nothing), stamped `now`. Same digest as
    /// stored: `Unchanged` (only `last_seen` updated); different: `Replaced` (`first_seen`
    /// kept). A machine id appearing twice in the batch: the later report wins. The fleet
    /// generation is bumped once when anything was added or replaced.
    fn upsert_devices(
        &mut self,
        batch: Vec<DeviceUpsert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(MachineId, UpsertAction)>, StoreError>;
    /// Every stored device, ordered by id.
    fn devices(&self) -> Result<Vec<StoredDevice>, StoreError>;
    /// One device.
    fn device(&self, id: MachineId) -> Result<Option<StoredDevice>, StoreError>;
    /// Devices whose host name equals `host` case-insensitively.
    fn devices_by_host(&self, host: &str) -> Result<Vec<StoredDevice>, StoreError>;
    /// A number that changes whenever a device report is added or replaced.
    fn fleet_generation(&self) -> Result<i64, StoreError>;
    /// The fleet view: every device's id, host name, times and setup, with the distinct
    /// setups and the fleet generation, all from one consistent read (a device is seen with
    /// its old report or its new one, never a mix).
    fn fleet_rows(&self) -> Result<FleetRows, StoreError>;
    /// (catalog generation, fleet generation) in one round trip: what a server checks on
    /// every request to know whether its snapshot is current.
    fn generations(&self) -> Result<(i64, i64), StoreError>;
}

/// Both halves of the store behind one connection.
pub trait Store: crate::CatalogStore + DeviceStore {}

impl<T: crate::CatalogStore + DeviceStore> Store for T {}
