//! The store-backed fleet: [`FleetData`] and [`DeviceIngest`] over a kbgap store and the engine.
//!
//! [`StoreFleet`] keeps an immutable [`Snapshot`] (behind an `Arc`) of every Defender view of the
//! fleet: machines, their missing KBs, software, vulnerabilities and machine-vulnerability rows,
//! all derived from one assessment per device (in parallel). Each request compares the store's
//! catalog and fleet generations with the snapshot's (two one-row queries) and rebuilds when
//! either changed; ingestion only stores (the next read rebuilds, once per burst of reports). The engine catalog is kept
//! across rebuilds while the catalog generation is unchanged, so a device-only change re-assesses
//! devices (cheap: platform models are cached) without re-reading the catalog.

use crate::api_model::{
    Machine, MachineReference, PublicAssetVulnerabilityDto, PublicProductFixDto,
    PublicVulnerabilityDto, Software, SoftwareId,
};
use crate::data::{DataError, DataResult, FleetData};
use chrono::Utc;
use kbgap_catalog::products::normalized_name;
use kbgap_catalog::Catalog;
use kbgap_core::{Arch, CveId, KbId, MachineId, ProductId};
use kbgap_engine::{assess, Assessment, EngineCatalog, Settings, Target};
use kbgap_inventory::{Device, OsFamily};
use kbgap_store::{
    machine_id_for, DbLocation, DeviceUpsert, Store, StoreError, StoredDevice, UpsertAction,
};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// One device accepted by an ingestion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestedDevice {
    /// Its machine id.
    pub machine_id: MachineId,
    /// Its host name.
    pub computer_dns_name: Option<String>,
    /// What happened.
    pub action: UpsertAction,
}

/// Why an ingestion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// A report cannot be stored (no host name nor machine id): 400.
    #[error("{0}")]
    Invalid(String),
    /// The store failed: 503/500.
    #[error("{0}")]
    Data(#[from] DataError),
}

/// Stores device reports (the `POST /kbgap/v1/devices` routes). All or nothing.
pub trait DeviceIngest: Send + Sync + 'static {
    /// Stores parsed reports in one transaction and returns what happened to each.
    fn ingest(&self, reports: Vec<Device>) -> Result<Vec<IngestedDevice>, IngestError>;
}

/// Everything the Defender routes read, derived once per (catalog, fleet) generation.
#[derive(Default)]
pub struct Snapshot {
    catalog_generation: i64,
    fleet_generation: i64,
    machines: Arc<Vec<Machine>>,
    machine_index: HashMap<MachineId, usize>,
    by_name: HashMap<String, usize>,
    missing: HashMap<MachineId, Arc<Vec<PublicProductFixDto>>>,
    machine_software: HashMap<MachineId, Arc<Vec<SoftwareId>>>,
    machine_vulns: HashMap<MachineId, Arc<Vec<CveId>>>,
    software: Arc<Vec<Software>>,
    software_index: HashMap<SoftwareId, usize>,
    software_missing: HashMap<SoftwareId, Vec<PublicProductFixDto>>,
    software_machines: HashMap<SoftwareId, Vec<MachineId>>,
    software_vulns: HashMap<SoftwareId, Arc<Vec<CveId>>>,
    vulns: Arc<Vec<PublicVulnerabilityDto>>,
    vuln_index: HashMap<CveId, usize>,
    vuln_machines: HashMap<CveId, Vec<MachineId>>,
    /// Each machine's shared (CVE, software, KB) rows; DTOs are made on request.
    asset_sig: HashMap<MachineId, Arc<Signature>>,
    /// The full machine-vulnerability list, built on first request.
    asset_all: std::sync::OnceLock<Arc<Vec<PublicAssetVulnerabilityDto>>>,
}

/// The engine catalog and the catalog-wide vulnerability rows of one catalog generation.
struct CatalogCache {
    generation: i64,
    engine: Arc<EngineCatalog>,
    /// Every catalog CVE (latest document wins), `exposedMachines` = 0.
    vulns: Vec<PublicVulnerabilityDto>,
    exploited: BTreeSet<CveId>,
    /// Per matched-product set: (CVE, KB) -> software the row is for.
    software_maps: Mutex<HashMap<Vec<ProductId>, Arc<SoftwareMap>>>,
}

type SoftwareMap = HashMap<(CveId, KbId), Vec<SoftwareId>>;

/// [`FleetData`] + [`DeviceIngest`] over a store.
pub struct StoreFleet {
    url: String,
    /// The database file, for the health check (None for in-memory stores).
    file: Option<PathBuf>,
    tenant: String,
    store: Mutex<Option<Box<dyn Store>>>,
    snapshot: RwLock<Arc<Snapshot>>,
    catalog: Mutex<Option<Arc<CatalogCache>>>,
    rebuild: Mutex<()>,
}

impl std::fmt::Debug for StoreFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreFleet")
            .field("url", &kbgap_store::redact_url(&self.url))
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: StoreError) -> DataError {
    match e {
        StoreError::Corrupt { .. } | StoreError::Stale { .. } | StoreError::SchemaTooNew { .. } => {
            DataError::Internal(e.to_string())
        }
        other => DataError::Unavailable(other.to_string()),
    }
}

impl StoreFleet {
    /// Opens the store at `url` (see [`kbgap_store::open_store`]) and builds the first snapshot.
    /// `tenant` is the tenant used to derive machine ids of reports without one (the same value
    /// must be given to `kbgap devices import` for both to agree; default empty).
    pub fn open(url: &str, tenant: &str) -> Result<Self, StoreError> {
        let file = match DbLocation::parse(url)? {
            DbLocation::SqliteFile(p) => Some(p),
            DbLocation::SqliteMemory | DbLocation::Postgres(_) => None,
        };
        let store = kbgap_store::open_store(url)?;
        let fleet = Self {
            url: url.to_owned(),
            file,
            tenant: tenant.to_owned(),
            store: Mutex::new(Some(store)),
            snapshot: RwLock::new(Arc::new(Snapshot {
                catalog_generation: -1,
                fleet_generation: -1,
                ..Snapshot::default()
            })),
            catalog: Mutex::new(None),
            rebuild: Mutex::new(()),
        };
        fleet
            .current()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(fleet)
    }

    /// The tenant used to derive machine ids.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Runs `f` on the store, re-opening it after a failure. A file-backed store whose file
    /// has disappeared is reported unavailable (and its connection dropped) rather than
    /// silently re-created empty.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T, StoreError>,
    ) -> DataResult<T> {
        let mut guard = self
            .store
            .lock()
            .map_err(|_| DataError::Internal("store lock poisoned".into()))?;
        if let Some(path) = &self.file {
            if std::fs::File::open(path).is_err() {
                *guard = None;
                return Err(DataError::Unavailable(format!(
                    "database file {} cannot be read",
                    path.display()
                )));
            }
        }
        if guard.is_none() {
            *guard = Some(kbgap_store::open_store(&self.url).map_err(unavailable)?);
            tracing::info!("database re-opened");
        }
        let store = guard
            .as_mut()
            .ok_or_else(|| DataError::Internal("no store".into()))?;
        match f(store.as_mut()) {
            Ok(v) => Ok(v),
            Err(e) => {
                if self.file.is_some() {
                    *guard = None;
                }
                Err(unavailable(e))
            }
        }
    }

    /// The current snapshot, rebuilt first if the store's generations moved.
    pub fn current(&self) -> DataResult<Arc<Snapshot>> {
        let gens = self.with_store(|s| Ok((s.catalog_generation()?, s.fleet_generation()?)))?;
        {
            let snap = self
                .snapshot
                .read()
                .map_err(|_| DataError::Internal("snapshot lock poisoned".into()))?;
            if (snap.catalog_generation, snap.fleet_generation) == gens {
                return Ok(snap.clone());
            }
        }
        let _g = self
            .rebuild
            .lock()
            .map_err(|_| DataError::Internal("rebuild lock poisoned".into()))?;
        // Another request may have rebuilt while we waited.
        let gens = self.with_store(|s| Ok((s.catalog_generation()?, s.fleet_generation()?)))?;
        if let Ok(snap) = self.snapshot.read() {
            if (snap.catalog_generation, snap.fleet_generation) == gens {
                return Ok(snap.clone());
            }
        }
        let started = std::time::Instant::now();
        let cache = self.catalog_cache(gens.0)?;
        let devices = self.with_store(|s| s.devices())?;
        let n = devices.len();
        let snap = Arc::new(build_snapshot(&cache, devices, gens.0, gens.1));
        if let Ok(mut w) = self.snapshot.write() {
            *w = snap.clone();
        }
        tracing::info!(
            devices = n,
            catalog_generation = gens.0,
            fleet_generation = gens.1,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "fleet snapshot rebuilt"
        );
        Ok(snap)
    }

    /// Rebuilds the snapshot now, even if the generations did not move (re-reads the devices,
    /// re-assesses them; the catalog is reloaded only if its generation moved). For
    /// benchmarks and forced refreshes.
    pub fn rebuild(&self) -> DataResult<Arc<Snapshot>> {
        let _g = self
            .rebuild
            .lock()
            .map_err(|_| DataError::Internal("rebuild lock poisoned".into()))?;
        let gens = self.with_store(|s| Ok((s.catalog_generation()?, s.fleet_generation()?)))?;
        let cache = self.catalog_cache(gens.0)?;
        let devices = self.with_store(|s| s.devices())?;
        let snap = Arc::new(build_snapshot(&cache, devices, gens.0, gens.1));
        if let Ok(mut w) = self.snapshot.write() {
            *w = snap.clone();
        }
        Ok(snap)
    }

    fn catalog_cache(&self, generation: i64) -> DataResult<Arc<CatalogCache>> {
        let mut guard = self
            .catalog
            .lock()
            .map_err(|_| DataError::Internal("catalog lock poisoned".into()))?;
        if let Some(c) = guard.as_ref().filter(|c| c.generation == generation) {
            return Ok(c.clone());
        }
        let docs = self.with_store(|s| s.load_documents(None))?;
        let catalog = Catalog::from_documents(docs);
        let (vulns, exploited) = catalog_vulnerabilities(&catalog);
        let cache = Arc::new(CatalogCache {
            generation,
            engine: Arc::new(EngineCatalog::new(catalog)),
            vulns,
            exploited,
            software_maps: Mutex::new(HashMap::new()),
        });
        *guard = Some(cache.clone());
        Ok(cache)
    }
}

impl DeviceIngest for StoreFleet {
    fn ingest(&self, reports: Vec<Device>) -> Result<Vec<IngestedDevice>, IngestError> {
        let mut batch = Vec::with_capacity(reports.len());
        for device in reports {
            let machine_id = machine_id_for(&device, &self.tenant)
                .map_err(|e| IngestError::Invalid(e.to_string()))?;
            batch.push(DeviceUpsert { machine_id, device });
        }
        let names: HashMap<MachineId, Option<String>> = batch
            .iter()
            .map(|u| (u.machine_id, u.device.host_name.clone()))
            .collect();
        let now = Utc::now();
        // The snapshot is not rebuilt here: the next read sees the fleet generation moved and
        // rebuilds once, however many reports arrived meanwhile (a rebuild per report would
        // make ingestion quadratic in the fleet size).
        let done = self.with_store(move |s| s.upsert_devices(batch, now))?;
        Ok(done
            .into_iter()
            .map(|(id, action)| IngestedDevice {
                machine_id: id,
                computer_dns_name: names.get(&id).cloned().flatten(),
                action,
            })
            .collect())
    }
}

/// Defender `osPlatform` of a family (`Windows10`, `WindowsServer2019`).
pub fn os_platform(family: OsFamily) -> Option<&'static str> {
    Some(match family {
        OsFamily::WindowsXp => "WindowsXP",
        OsFamily::Vista => "WindowsVista",
        OsFamily::Windows7 => "Windows7",
        OsFamily::Windows8 => "Windows8",
        OsFamily::Windows81 => "Windows8.1",
        OsFamily::Windows10 => "Windows10",
        OsFamily::Windows11 => "Windows11",
        OsFamily::Server2003 | OsFamily::Server2003R2 => "WindowsServer2003",
        OsFamily::Server2008 => "WindowsServer2008",
        OsFamily::Server2008R2 => "WindowsServer2008R2",
        OsFamily::Server2012 => "WindowsServer2012",
        OsFamily::Server2012R2 => "WindowsServer2012R2",
        OsFamily::Server2016 => "WindowsServer2016",
        OsFamily::Server2019 => "WindowsServer2019",
        OsFamily::Server2022 | OsFamily::Server2022_23H2 => "WindowsServer2022",
        OsFamily::Server2025 => "WindowsServer2025",
        OsFamily::ServerSemiAnnual => "WindowsServer",
        OsFamily::Unknown => return None,
    })
}

fn machine_dto(d: &StoredDevice) -> Machine {
    let mut m = Machine::new(d.machine_id, d.host_name.clone());
    let os = &d.device.os;
    m.first_seen = Some(d.first_seen);
    m.last_seen = Some(d.last_seen);
    m.os_platform = os_platform(os.family).map(str::to_owned);
    m.version = os.release.clone();
    m.os_build = os.build.map(|b| b.build);
    m.os_processor = os.architecture.map(|a| {
        match a {
            Arch::X64 => "x64",
            Arch::X86 => "x86",
            Arch::Arm64 => "arm64",
            Arch::Itanium => "ia64",
        }
        .to_owned()
    });
    m.os_architecture = os.architecture.map(|a| {
        match a {
            Arch::X86 => "32-bit",
            _ => "64-bit",
        }
        .to_owned()
    });
    m.health_status = Some("Active".into());
    m.onboarding_status = Some("Onboarded".into());
    m
}

fn software_id_of(product_name: &str) -> Option<SoftwareId> {
    let n = normalized_name(product_name)?;
    SoftwareId::new(&n.vendor, &n.name).ok()
}

/// Every CVE of the catalog as a vulnerability row (the latest document's copy wins).
fn catalog_vulnerabilities(catalog: &Catalog) -> (Vec<PublicVulnerabilityDto>, BTreeSet<CveId>) {
    let mut by_id: BTreeMap<CveId, PublicVulnerabilityDto> = BTreeMap::new();
    let mut exploited = BTreeSet::new();
    let mut docs: Vec<_> = catalog.documents().iter().collect();
    docs.sort_by_key(|d| d.initial_release);
    for doc in docs {
        for v in &doc.vulnerabilities {
            let severity = v.severities.iter().map(|s| s.severity).max();
            let best = v.cvss.iter().max_by(|a, b| a.base.total_cmp(&b.base));
            let public = v.exploited == Some(true);
            if public {
                exploited.insert(v.cve.clone());
            }
            by_id.insert(
                v.cve.clone(),
                PublicVulnerabilityDto {
                    id: v.cve.clone(),
                    name: if v.title.is_empty() {
                        v.cve.to_string()
                    } else {
                        v.title.clone()
                    },
                    description: v.description.clone(),
                    severity: severity.map(|s| s.defender_name().to_owned()),
                    cvss_v3: best.map(|c| (f64::from(c.base) * 10.0).round() / 10.0),
                    cvss_vector: best.and_then(|c| c.vector.clone()),
                    exposed_machines: 0,
                    published_on: v.published.or(Some(doc.initial_release)),
                    updated_on: v.updated.or(Some(doc.current_release)),
                    public_exploit: public,
                    exploit_verified: public,
                    exploit_in_kit: false,
                    exploit_types: Vec::new(),
                    exploit_uris: Vec::new(),
                    cve_supportability: Some("Supported".into()),
                    epss: None,
                },
            );
        }
    }
    (by_id.into_values().collect(), exploited)
}

/// The part of an assessment that many devices share: same matched products and same findings
/// (KB, CVEs, replaced KBs) give the same (CVE, software, KB) rows. Computed once per distinct
/// signature, so 10k identical desktops cost one row computation.
struct Signature {
    products: Vec<ProductId>,
    findings: Vec<(KbId, Vec<CveId>, Vec<KbId>)>,
    /// (CVE, software, fixing KB), sorted.
    rows: Vec<(CveId, SoftwareId, KbId)>,
    /// Distinct CVEs of `rows`.
    cves: Arc<Vec<CveId>>,
    /// Software -> (its CVEs, the KBs fixing them).
    by_software: Vec<(SoftwareId, Vec<CveId>, Vec<KbId>)>,
}

impl Signature {
    fn matches(&self, products: &[ProductId], a: &Assessment) -> bool {
        self.products == products
            && self.findings.len() == a.findings.len()
            && self
                .findings
                .iter()
                .zip(&a.findings)
                .all(|((kb, cves, rep), f)| *kb == f.kb && *cves == f.cves && *rep == f.replaces)
    }
}

fn signature_hash(products: &[ProductId], a: &Assessment) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    products.hash(&mut h);
    for f in &a.findings {
        f.kb.hash(&mut h);
        f.cves.hash(&mut h);
        f.replaces.hash(&mut h);
    }
    h.finish()
}

type SignatureCache = Mutex<HashMap<u64, Vec<Arc<Signature>>>>;

/// What every device with one assessment target shares: the assessment, its software and its
/// (CVE, software, KB) signature.
struct TargetView {
    assessment: Assessment,
    software: Arc<Vec<SoftwareId>>,
    sig: Arc<Signature>,
}

fn software_map(cache: &CatalogCache, products: &[(ProductId, String)]) -> Arc<SoftwareMap> {
    let key: Vec<ProductId> = products.iter().map(|(p, _)| p.clone()).collect();
    if let Ok(maps) = cache.software_maps.lock() {
        if let Some(m) = maps.get(&key) {
            return m.clone();
        }
    }
    let mut map: SoftwareMap = HashMap::new();
    for (p, name) in products {
        let Some(sid) = software_id_of(name) else {
            continue;
        };
        for row in cache.engine.rows(p) {
            let e = map.entry((row.cve.clone(), row.kb)).or_default();
            if !e.contains(&sid) {
                e.push(sid.clone());
            }
        }
    }
    let map = Arc::new(map);
    if let Ok(mut maps) = cache.software_maps.lock() {
        maps.insert(key, map.clone());
    }
    map
}

fn compute_signature(
    cache: &CatalogCache,
    products: &[(ProductId, String)],
    platform_sw: Option<&SoftwareId>,
    a: &Assessment,
) -> Signature {
    let map = software_map(cache, products);
    let mut rows = Vec::new();
    for f in &a.findings {
        for cve in &f.cves {
            let mut sws: Vec<&SoftwareId> = Vec::new();
            for kb in std::iter::once(&f.kb).chain(f.replaces.iter()) {
                for s in map.get(&(cve.clone(), *kb)).into_iter().flatten() {
                    if !sws.contains(&s) {
                        sws.push(s);
                    }
                }
            }
            if sws.is_empty() {
                sws.extend(platform_sw);
            }
            for s in sws {
                rows.push((cve.clone(), s.clone(), f.kb));
            }
        }
    }
    rows.sort();
    rows.dedup();
    let cves: BTreeSet<CveId> = rows.iter().map(|(c, _, _)| c.clone()).collect();
    let mut by_sw: BTreeMap<SoftwareId, (BTreeSet<CveId>, BTreeSet<KbId>)> = BTreeMap::new();
    for (c, s, k) in &rows {
        let e = by_sw.entry(s.clone()).or_default();
        e.0.insert(c.clone());
        e.1.insert(*k);
    }
    Signature {
        products: products.iter().map(|(p, _)| p.clone()).collect(),
        findings: a
            .findings
            .iter()
            .map(|f| (f.kb, f.cves.clone(), f.replaces.clone()))
            .collect(),
        rows,
        cves: Arc::new(cves.into_iter().collect()),
        by_software: by_sw
            .into_iter()
            .map(|(s, (c, k))| (s, c.into_iter().collect(), k.into_iter().collect()))
            .collect(),
    }
}

fn view_target(cache: &CatalogCache, sigs: &SignatureCache, target: &Target) -> TargetView {
    let assessment = assess(&cache.engine, target, &Settings::default());
    let products: Vec<(ProductId, String)> = assessment
        .products
        .iter()
        .map(|p| (p.id.clone(), p.name.clone()))
        .collect();
    let mut software: Vec<SoftwareId> = Vec::new();
    for (_, name) in &products {
        if let Some(s) = software_id_of(name) {
            if !software.contains(&s) {
                software.push(s);
            }
        }
    }
    let ids: Vec<ProductId> = products.iter().map(|(p, _)| p.clone()).collect();
    let h = signature_hash(&ids, &assessment);
    let found = sigs.lock().ok().and_then(|m| {
        m.get(&h)
            .and_then(|v| v.iter().find(|s| s.matches(&ids, &assessment)).cloned())
    });
    let sig = match found {
        Some(s) => s,
        None => {
            let s = Arc::new(compute_signature(
                cache,
                &products,
                software.first(),
                &assessment,
            ));
            if let Ok(mut m) = sigs.lock() {
                m.entry(h).or_default().push(s.clone());
            }
            s
        }
    };
    TargetView {
        assessment,
        software: Arc::new(software),
        sig,
    }
}

fn build_snapshot(
    cache: &CatalogCache,
    devices: Vec<StoredDevice>,
    catalog_generation: i64,
    fleet_generation: i64,
) -> Snapshot {
    let sigs: SignatureCache = Mutex::new(HashMap::new());
    // The assessment is a pure function of the target (OS facts, build, KB list), so devices
    // with equal targets are assessed once: fleets are mostly a few hundred distinct targets.
    let targets: Vec<Target> = devices
        .par_iter()
        .map(|d| Target::from_device(&d.device).assessment_key())
        .collect();
    let mut distinct: HashMap<&Target, usize> = HashMap::new();
    let slots: Vec<usize> = targets
        .iter()
        .map(|t| {
            let next = distinct.len();
            *distinct.entry(t).or_insert(next)
        })
        .collect();
    let mut unique: Vec<Option<&Target>> = vec![None; distinct.len()];
    for (t, i) in distinct {
        unique[i] = Some(t);
    }
    let shared: Vec<TargetView> = unique
        .par_iter()
        .flatten()
        .map(|t| view_target(cache, &sigs, t))
        .collect();
    let mut devices_per_target = vec![0u64; shared.len()];
    for &i in &slots {
        devices_per_target[i] += 1;
    }

    // Fleet-wide counts.
    let mut missed_on: HashMap<KbId, u64> = HashMap::new();
    for (v, &count) in shared.iter().zip(&devices_per_target) {
        for f in &v.assessment.findings {
            *missed_on.entry(f.kb).or_default() += count;
        }
    }
    let fix_dto = |f: &kbgap_engine::Finding, os_build: Option<u32>| PublicProductFixDto {
        id: f.kb,
        name: f.name.clone(),
        products_names: f.products_names.clone(),
        url: f.url.clone(),
        machine_missed_on: missed_on.get(&f.kb).copied().unwrap_or(0),
        cve_addressed: f.cve_addressed as u64,
        os_build,
    };
    let mut kb_dtos: HashMap<KbId, PublicProductFixDto> = HashMap::new();
    for v in &shared {
        for f in &v.assessment.findings {
            kb_dtos.entry(f.kb).or_insert_with(|| fix_dto(f, None));
        }
    }
    // A target's fixes, shared by its devices (`osBuild` is the target's build number).
    let target_fixes: Vec<Arc<Vec<PublicProductFixDto>>> = shared
        .iter()
        .zip(unique.iter().flatten())
        .map(|(v, t)| {
            let build = t.build.map(|b| b.build);
            Arc::new(
                v.assessment
                    .findings
                    .iter()
                    .map(|f| fix_dto(f, build))
                    .collect(),
            )
        })
        .collect();

    let mut snap = Snapshot {
        catalog_generation,
        fleet_generation,
        ..Snapshot::default()
    };
    let mut machines = Vec::with_capacity(devices.len());
    let mut software_names: BTreeSet<SoftwareId> = BTreeSet::new();
    for v in &shared {
        software_names.extend(v.software.iter().cloned());
    }
    // Signature (by pointer) -> its devices.
    let mut groups: HashMap<*const Signature, (Arc<Signature>, Vec<MachineId>)> = HashMap::new();
    let dtos: Vec<Machine> = devices.par_iter().map(machine_dto).collect();
    for (machine, &slot) in dtos.into_iter().zip(&slots) {
        let v = &shared[slot];
        let id = machine.id;
        snap.missing.insert(id, target_fixes[slot].clone());
        snap.machine_vulns.insert(id, v.sig.cves.clone());
        groups
            .entry(Arc::as_ptr(&v.sig))
            .or_insert_with(|| (v.sig.clone(), Vec::new()))
            .1
            .push(id);
        snap.asset_sig.insert(id, v.sig.clone());
        for s in v.software.iter() {
            snap.software_machines
                .entry(s.clone())
                .or_default()
                .push(id);
        }
        snap.machine_software.insert(id, v.software.clone());
        machines.push(machine);
    }
    machines.sort_by_key(|m| m.id);
    for (i, m) in machines.iter().enumerate() {
        snap.machine_index.insert(m.id, i);
        if let Some(n) = &m.computer_dns_name {
            snap.by_name.entry(n.to_lowercase()).or_insert(i);
        }
    }
    snap.machines = Arc::new(machines);

    let mut sw_cves: BTreeMap<SoftwareId, BTreeSet<CveId>> = BTreeMap::new();
    let mut sw_exposed: BTreeMap<SoftwareId, BTreeSet<MachineId>> = BTreeMap::new();
    let mut sw_kbs: BTreeMap<SoftwareId, BTreeSet<KbId>> = BTreeMap::new();
    let mut vuln_machines: BTreeMap<CveId, Vec<MachineId>> = BTreeMap::new();
    for (sig, ids) in groups.into_values() {
        for c in sig.cves.iter() {
            vuln_machines.entry(c.clone()).or_default().extend(&ids);
        }
        for (sw, cves, kbs) in &sig.by_software {
            sw_cves
                .entry(sw.clone())
                .or_default()
                .extend(cves.iter().cloned());
            sw_exposed.entry(sw.clone()).or_default().extend(&ids);
            sw_kbs.entry(sw.clone()).or_default().extend(kbs);
        }
    }
    for ids in vuln_machines.values_mut() {
        ids.sort();
    }

    let software: Vec<Software> = software_names
        .into_iter()
        .map(|id| {
            let cves = sw_cves.get(&id);
            Software {
                name: id.product().to_owned(),
                vendor: id.vendor().to_owned(),
                weaknesses: cves.map_or(0, |c| c.len() as u64),
                public_exploit: cves.is_some_and(|c| c.iter().any(|x| cache.exploited.contains(x))),
                active_alert: false,
                exposed_machines: sw_exposed.get(&id).map_or(0, |m| m.len() as u64),
                impact_score: 0.0,
                id,
            }
        })
        .collect();
    for (i, s) in software.iter().enumerate() {
        snap.software_index.insert(s.id.clone(), i);
        snap.software_vulns.insert(
            s.id.clone(),
            Arc::new(
                sw_cves
                    .get(&s.id)
                    .map(|c| c.iter().cloned().collect())
                    .unwrap_or_default(),
            ),
        );
        snap.software_missing.insert(
            s.id.clone(),
            sw_kbs
                .get(&s.id)
                .map(|kbs| kbs.iter().filter_map(|k| kb_dtos.get(k).cloned()).collect())
                .unwrap_or_default(),
        );
    }
    snap.software = Arc::new(software);

    let vulns: Vec<PublicVulnerabilityDto> = cache
        .vulns
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v.exposed_machines = vuln_machines.get(&v.id).map_or(0, |m| m.len() as u64);
            v
        })
        .collect();
    for (i, v) in vulns.iter().enumerate() {
        snap.vuln_index.insert(v.id.clone(), i);
    }
    snap.vulns = Arc::new(vulns);
    snap.vuln_machines = vuln_machines.into_iter().collect();
    snap
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("catalog_generation", &self.catalog_generation)
            .field("fleet_generation", &self.fleet_generation)
            .field("machines", &self.machines.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// One machine's machine-vulnerability rows.
    fn asset_rows(&self, id: MachineId) -> Vec<PublicAssetVulnerabilityDto> {
        let Some(sig) = self.asset_sig.get(&id) else {
            return Vec::new();
        };
        sig.rows
            .iter()
            .map(|(cve, sw, kb)| PublicAssetVulnerabilityDto {
                // kbgap does not inventory per-product versions.
                id: PublicAssetVulnerabilityDto::make_id(
                    id,
                    cve,
                    sw.vendor(),
                    sw.product(),
                    None,
                    Some(*kb),
                ),
                cve_id: cve.clone(),
                machine_id: id,
                fixing_kb_id: Some(*kb),
                product_name: sw.product().to_owned(),
                product_vendor: sw.vendor().to_owned(),
                product_version: None,
                severity: self
                    .vuln_index
                    .get(cve)
                    .and_then(|&i| self.vulns[i].severity.clone()),
            })
            .collect()
    }
    fn machine(&self, id: MachineId) -> Option<&Machine> {
        self.machine_index.get(&id).map(|&i| &self.machines[i])
    }
    fn vulns_of(&self, ids: Option<&Arc<Vec<CveId>>>) -> Vec<PublicVulnerabilityDto> {
        ids.map(|ids| {
            ids.iter()
                .filter_map(|c| self.vuln_index.get(c).map(|&i| self.vulns[i].clone()))
                .collect()
        })
        .unwrap_or_default()
    }
    fn refs(&self, ids: Option<&Vec<MachineId>>) -> Vec<MachineReference> {
        ids.map(|ids| {
            ids.iter()
                .filter_map(|m| self.machine(*m).map(Machine::reference))
                .collect()
        })
        .unwrap_or_default()
    }
    /// Number of machines.
    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }
}

impl FleetData for StoreFleet {
    fn machines(&self) -> DataResult<Arc<Vec<Machine>>> {
        Ok(self.current()?.machines.clone())
    }
    fn machine_by_id(&self, id: MachineId) -> DataResult<Option<Machine>> {
        Ok(self.current()?.machine(id).cloned())
    }
    fn machine_by_name(&self, name: &str) -> DataResult<Option<Machine>> {
        let s = self.current()?;
        Ok(s.by_name
            .get(&name.trim().to_lowercase())
            .map(|&i| s.machines[i].clone()))
    }
    fn missing_kbs_for_machine(
        &self,
        id: MachineId,
    ) -> DataResult<Option<Vec<PublicProductFixDto>>> {
        let s = self.current()?;
        Ok(s.machine(id).map(|_| {
            s.missing
                .get(&id)
                .map(|v| v.as_ref().clone())
                .unwrap_or_default()
        }))
    }
    fn missing_kbs_for_software(
        &self,
        id: &SoftwareId,
    ) -> DataResult<Option<Vec<PublicProductFixDto>>> {
        let s = self.current()?;
        Ok(s.software_index
            .get(id)
            .map(|_| s.software_missing.get(id).cloned().unwrap_or_default()))
    }
    fn machine_software(&self, id: MachineId) -> DataResult<Option<Vec<Software>>> {
        let s = self.current()?;
        Ok(s.machine(id).map(|_| {
            s.machine_software
                .get(&id)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|x| s.software_index.get(x).map(|&i| s.software[i].clone()))
                        .collect()
                })
                .unwrap_or_default()
        }))
    }
    fn machine_vulnerabilities(
        &self,
        id: MachineId,
    ) -> DataResult<Option<Vec<PublicVulnerabilityDto>>> {
        let s = self.current()?;
        Ok(s.machine(id).map(|_| s.vulns_of(s.machine_vulns.get(&id))))
    }
    fn software_list(&self) -> DataResult<Arc<Vec<Software>>> {
        Ok(self.current()?.software.clone())
    }
    fn software(&self, id: &SoftwareId) -> DataResult<Option<Software>> {
        let s = self.current()?;
        Ok(s.software_index.get(id).map(|&i| s.software[i].clone()))
    }
    fn software_machine_refs(&self, id: &SoftwareId) -> DataResult<Option<Vec<MachineReference>>> {
        let s = self.current()?;
        Ok(s.software_index
            .get(id)
            .map(|_| s.refs(s.software_machines.get(id))))
    }
    fn software_vulnerabilities(
        &self,
        id: &SoftwareId,
    ) -> DataResult<Option<Vec<PublicVulnerabilityDto>>> {
        let s = self.current()?;
        Ok(s.software_index
            .get(id)
            .map(|_| s.vulns_of(s.software_vulns.get(id))))
    }
    fn vulnerabilities(&self) -> DataResult<Arc<Vec<PublicVulnerabilityDto>>> {
        Ok(self.current()?.vulns.clone())
    }
    fn vulnerability(&self, id: &CveId) -> DataResult<Option<PublicVulnerabilityDto>> {
        let s = self.current()?;
        Ok(s.vuln_index.get(id).map(|&i| s.vulns[i].clone()))
    }
    fn vulnerability_machine_refs(&self, id: &CveId) -> DataResult<Option<Vec<MachineReference>>> {
        let s = self.current()?;
        Ok(s.vuln_index
            .get(id)
            .map(|_| s.refs(s.vuln_machines.get(id))))
    }
    fn machines_vulnerabilities(
        &self,
        machine: Option<MachineId>,
    ) -> DataResult<Arc<Vec<PublicAssetVulnerabilityDto>>> {
        let s = self.current()?;
        Ok(match machine {
            Some(m) => Arc::new(s.asset_rows(m)),
            None => s
                .asset_all
                .get_or_init(|| {
                    Arc::new(
                        s.machines
                            .par_iter()
                            .flat_map_iter(|m| s.asset_rows(m.id))
                            .collect(),
                    )
                })
                .clone(),
        })
    }
}
