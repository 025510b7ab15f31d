//! The device half of the store: the [`DeviceStore`] trait, stored-device rows, machine-id
//! derivation and the canonical report form used for idempotent re-sends.
//!
//! A device is stored as its latest report (a [`kbgap_inventory::Device`]), keyed by a
//! [`MachineId`]. Re-sending the same report changes only `last_seen`; a different report for
//! the same machine replaces the stored one (keeping `first_seen`).

use crate::StoreError;
use chrono::{DateTime, Utc};
use kbgap_core::MachineId;
use kbgap_inventory::Device;
use sha2::{Digest, Sha256};

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
}

/// Both halves of the store behind one connection.
pub trait Store: crate::CatalogStore + DeviceStore {}

impl<T: crate::CatalogStore + DeviceStore> Store for T {}
