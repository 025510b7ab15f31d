//! The data-access trait behind the HTTP layer ([`FleetData`]) and an in-memory implementation.
//!
//! The server never computes anything itself: it asks a [`FleetData`] for rows and applies
//! OData filtering, ordering and paging in memory. Methods are synchronous (the store is
//! rusqlite); handlers call them through `tokio::task::spawn_blocking`.
//!
//! Large collections are returned as `Arc<Vec<_>>` snapshots so an implementation can cache
//! them between requests (100k machines are filtered in a few milliseconds; cloning them per
//! request would not be). A `None` from an entity-scoped method means "unknown entity" (404).

use crate::api_model::{
    Machine, MachineReference, PublicAssetVulnerabilityDto, PublicProductFixDto,
    PublicVulnerabilityDto, Software, SoftwareId,
};
use kbgap_core::{CveId, MachineId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Why the data layer could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The store is down or locked: mapped to 503.
    #[error("data store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: mapped to 500.
    #[error("data store error: {0}")]
    Internal(String),
}

/// Result of a data call.
pub type DataResult<T> = Result<T, DataError>;

/// Everything the Defender routes read. Implemented by the store-backed fleet (lead) and
/// by [`InMemoryFleet`] (tests, demo mode).
pub trait FleetData: Send + Sync + 'static {
    /// All machines (any order; the OData layer sorts by id).
    fn machines(&self) -> DataResult<Arc<Vec<Machine>>>;
    /// One machine by id.
    fn machine_by_id(&self, id: MachineId) -> DataResult<Option<Machine>>;
    /// One machine by computer DNS name, compared case-insensitively.
    fn machine_by_name(&self, name: &str) -> DataResult<Option<Machine>>;
    /// The KBs a machine is missing; `None` = unknown machine, `Some(vec![])` = up to date.
    fn missing_kbs_for_machine(
        &self,
        id: MachineId,
    ) -> DataResult<Option<Vec<PublicProductFixDto>>>;
    /// The KBs the fleet is missing for one software; `None` = unknown software.
    fn missing_kbs_for_software(
        &self,
        id: &SoftwareId,
    ) -> DataResult<Option<Vec<PublicProductFixDto>>>;
    /// Software installed on a machine; `None` = unknown machine.
    fn machine_software(&self, id: MachineId) -> DataResult<Option<Vec<Software>>>;
    /// Vulnerabilities of a machine; `None` = unknown machine.
    fn machine_vulnerabilities(
        &self,
        id: MachineId,
    ) -> DataResult<Option<Vec<PublicVulnerabilityDto>>>;
    /// All software in the fleet.
    fn software_list(&self) -> DataResult<Arc<Vec<Software>>>;
    /// One software.
    fn software(&self, id: &SoftwareId) -> DataResult<Option<Software>>;
    /// Machines that have a software installed; `None` = unknown software.
    fn software_machine_refs(&self, id: &SoftwareId) -> DataResult<Option<Vec<MachineReference>>>;
    /// Vulnerabilities of a software; `None` = unknown software.
    fn software_vulnerabilities(
        &self,
        id: &SoftwareId,
    ) -> DataResult<Option<Vec<PublicVulnerabilityDto>>>;
    /// All vulnerabilities known to the fleet.
    fn vulnerabilities(&self) -> DataResult<Arc<Vec<PublicVulnerabilityDto>>>;
    /// One vulnerability.
    fn vulnerability(&self, id: &CveId) -> DataResult<Option<PublicVulnerabilityDto>>;
    /// Machines exposed to a vulnerability; `None` = unknown vulnerability.
    fn vulnerability_machine_refs(&self, id: &CveId) -> DataResult<Option<Vec<MachineReference>>>;
    /// Machine-vulnerability rows. `machine` is a pushdown hint taken from a top-level
    /// `machineId eq '…'` conjunct of `$filter`: when `Some`, the implementation MAY
    /// return only that machine's rows (the full filter is applied afterwards anyway).
    /// Must agree with `missing_kbs_for_machine` (§4 of the contract).
    fn machines_vulnerabilities(
        &self,
        machine: Option<MachineId>,
    ) -> DataResult<Arc<Vec<PublicAssetVulnerabilityDto>>>;
}

/// A fleet held in memory: for tests and the CLI's demo mode.
///
/// Build it with [`InMemoryFleet::new`] and the `with_*`/`add_*` setters. Relations
/// (software per machine, machines per CVE) are plain maps filled by the caller; only
/// [`FleetData::machine_by_name`] and the reference lists are derived.
#[derive(Debug, Default, Clone)]
pub struct InMemoryFleet {
    machines: Arc<Vec<Machine>>,
    software: Arc<Vec<Software>>,
    vulnerabilities: Arc<Vec<PublicVulnerabilityDto>>,
    asset_vulnerabilities: Arc<Vec<PublicAssetVulnerabilityDto>>,
    missing_by_machine: HashMap<MachineId, Vec<PublicProductFixDto>>,
    missing_by_software: BTreeMap<SoftwareId, Vec<PublicProductFixDto>>,
    software_by_machine: HashMap<MachineId, Vec<SoftwareId>>,
    vulns_by_machine: HashMap<MachineId, Vec<CveId>>,
    vulns_by_software: BTreeMap<SoftwareId, Vec<CveId>>,
    /// When set, every call fails with `DataError::Unavailable` (to test 503s).
    pub down: bool,
}

impl InMemoryFleet {
    /// An empty fleet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Replaces the machines.
    pub fn with_machines(mut self, machines: Vec<Machine>) -> Self {
        self.machines = Arc::new(machines);
        self
    }
    /// Replaces the software list.
    pub fn with_software(mut self, software: Vec<Software>) -> Self {
        self.software = Arc::new(software);
        self
    }
    /// Replaces the vulnerabilities.
    pub fn with_vulnerabilities(mut self, v: Vec<PublicVulnerabilityDto>) -> Self {
        self.vulnerabilities = Arc::new(v);
        self
    }
    /// Replaces the machine-vulnerability rows.
    pub fn with_asset_vulnerabilities(mut self, v: Vec<PublicAssetVulnerabilityDto>) -> Self {
        self.asset_vulnerabilities = Arc::new(v);
        self
    }
    /// Sets the missing KBs of a machine (which must be among the machines to be found).
    pub fn with_missing_kbs(mut self, id: MachineId, kbs: Vec<PublicProductFixDto>) -> Self {
        self.missing_by_machine.insert(id, kbs);
        self
    }
    /// Sets the fleet's missing KBs for a software.
    pub fn with_software_missing_kbs(
        mut self,
        id: SoftwareId,
        kbs: Vec<PublicProductFixDto>,
    ) -> Self {
        self.missing_by_software.insert(id, kbs);
        self
    }
    /// Records that a machine has a software installed.
    pub fn with_installed(mut self, machine: MachineId, software: SoftwareId) -> Self {
        self.software_by_machine
            .entry(machine)
            .or_default()
            .push(software);
        self
    }
    /// Records that a machine is exposed to a CVE.
    pub fn with_machine_vulnerability(mut self, machine: MachineId, cve: CveId) -> Self {
        self.vulns_by_machine.entry(machine).or_default().push(cve);
        self
    }
    /// Records that a software has a CVE.
    pub fn with_software_vulnerability(mut self, software: SoftwareId, cve: CveId) -> Self {
        self.vulns_by_software
            .entry(software)
            .or_default()
            .push(cve);
        self
    }

    fn check(&self) -> DataResult<()> {
        if self.down {
            Err(DataError::Unavailable("in-memory fleet marked down".into()))
        } else {
            Ok(())
        }
    }
    fn find_machine(&self, id: MachineId) -> Option<&Machine> {
        self.machines.iter().find(|m| m.id == id)
    }
    fn find_software(&self, id: &SoftwareId) -> Option<&Software> {
        self.software.iter().find(|s| &s.id == id)
    }
    fn find_vuln(&self, id: &CveId) -> Option<&PublicVulnerabilityDto> {
        self.vulnerabilities.iter().find(|v| &v.id == id)
    }
    fn vulns(&self, ids: Option<&Vec<CveId>>) -> Vec<PublicVulnerabilityDto> {
        ids.map(|ids| {
            ids.iter()
                .filter_map(|c| self.find_vuln(c).cloned())
                .collect()
        })
        .unwrap_or_default()
    }
}

impl FleetData for InMemoryFleet {
    fn machines(&self) -> DataResult<Arc<Vec<Machine>>> {
        self.check()?;
        Ok(self.machines.clone())
    }
    fn machine_by_id(&self, id: MachineId) -> DataResult<Option<Machine>> {
        self.check()?;
        Ok(self.find_machine(id).cloned())
    }
    fn machine_by_name(&self, name: &str) -> DataResult<Option<Machine>> {
        self.check()?;
        Ok(self
            .machines
            .iter()
            .find(|m| {
                m.computer_dns_name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .cloned())
    }
    fn missing_kbs_for_machine(
        &self,
        id: MachineId,
    ) -> DataResult<Option<Vec<PublicProductFixDto>>> {
        self.check()?;
        Ok(self.find_machine(id).map(|_| {
            self.missing_by_machine
                .get(&id)
                .cloned()
                .unwrap_or_default()
        }))
    }
    fn missing_kbs_for_software(
        &self,
        id: &SoftwareId,
    ) -> DataResult<Option<Vec<PublicProductFixDto>>> {
        self.check()?;
        Ok(self.find_software(id).map(|_| {
            self.missing_by_software
                .get(id)
                .cloned()
                .unwrap_or_default()
        }))
    }
    fn machine_software(&self, id: MachineId) -> DataResult<Option<Vec<Software>>> {
        self.check()?;
        Ok(self.find_machine(id).map(|_| {
            self.software_by_machine
                .get(&id)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|s| self.find_software(s).cloned())
                        .collect()
                })
                .unwrap_or_default()
        }))
    }
    fn machine_vulnerabilities(
        &self,
        id: MachineId,
    ) -> DataResult<Option<Vec<PublicVulnerabilityDto>>> {
        self.check()?;
        Ok(self
            .find_machine(id)
            .map(|_| self.vulns(self.vulns_by_machine.get(&id))))
    }
    fn software_list(&self) -> DataResult<Arc<Vec<Software>>> {
        self.check()?;
        Ok(self.software.clone())
    }
    fn software(&self, id: &SoftwareId) -> DataResult<Option<Software>> {
        self.check()?;
        Ok(self.find_software(id).cloned())
    }
    fn software_machine_refs(&self, id: &SoftwareId) -> DataResult<Option<Vec<MachineReference>>> {
        self.check()?;
        Ok(self.find_software(id).map(|_| {
            self.machines
                .iter()
                .filter(|m| {
                    self.software_by_machine
                        .get(&m.id)
                        .is_some_and(|v| v.contains(id))
                })
                .map(Machine::reference)
                .collect()
        }))
    }
    fn software_vulnerabilities(
        &self,
        id: &SoftwareId,
    ) -> DataResult<Option<Vec<PublicVulnerabilityDto>>> {
        self.check()?;
        Ok(self
            .find_software(id)
            .map(|_| self.vulns(self.vulns_by_software.get(id))))
    }
    fn vulnerabilities(&self) -> DataResult<Arc<Vec<PublicVulnerabilityDto>>> {
        self.check()?;
        Ok(self.vulnerabilities.clone())
    }
    fn vulnerability(&self, id: &CveId) -> DataResult<Option<PublicVulnerabilityDto>> {
        self.check()?;
        Ok(self.find_vuln(id).cloned())
    }
    fn vulnerability_machine_refs(&self, id: &CveId) -> DataResult<Option<Vec<MachineReference>>> {
        self.check()?;
        Ok(self.find_vuln(id).map(|_| {
            self.machines
                .iter()
                .filter(|m| {
                    self.vulns_by_machine
                        .get(&m.id)
                        .is_some_and(|v| v.contains(id))
                })
                .map(Machine::reference)
                .collect()
        }))
    }
    fn machines_vulnerabilities(
        &self,
        machine: Option<MachineId>,
    ) -> DataResult<Arc<Vec<PublicAssetVulnerabilityDto>>> {
        self.check()?;
        Ok(match machine {
            Some(m) => Arc::new(
                self.asset_vulnerabilities
                    .iter()
                    .filter(|r| r.machine_id == m)
                    .cloned()
                    .collect(),
            ),
            None => self.asset_vulnerabilities.clone(),
        })
    }
}
