//! The store-backed fleet: [`FleetData`] and [`DeviceIngest`] over a kbgap store and the engine.
//!
//! [`StoreFleet`] keeps an immutable [`Snapshot`] (behind an `Arc`) of every Defender view of the
//! fleet: machines, their missing KBs, software, vulnerabilities and machine-vulnerability rows.
//! The store hands over each distinct device setup once plus a few columns per device
//! ([`kbgap_store::FleetRows`]); each setup is assessed once (in parallel) and everything a
//! device shows is looked up through its setup, so a device costs about a hundred bytes here
//! and a million devices with a few thousand setups rebuild in seconds. Each request compares the store's
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
use kbgap_inventory::{Device, DeviceSetup, OsFamily};
use kbgap_store::{
    machine_id_for, DbLocation, DeviceUpsert, FleetRows, Store, StoreError, UpsertAction,
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
///
/// Per-device state is one [`DeviceEntry`] (sorted by id), one name-index slot and one member
/// slot in its setup; everything else is per setup, per software or per CVE.
#[derive(Default)]
pub struct Snapshot {
    catalog_generation: i64,
    fleet_generation: i64,
    /// Every device, sorted by id.
    devices: Vec<DeviceEntry>,
    /// (hash of the lowercase host name, device index), sorted: `machine_by_name`.
    by_name: Vec<(u64, u32)>,
    /// What the devices of each distinct setup share.
    setups: Vec<SetupView>,
    /// The Defender machine list, built on the first `/api/machines` request.
    machines: std::sync::OnceLock<Arc<Vec<Machine>>>,
    software: Arc<Vec<Software>>,
    software_index: HashMap<SoftwareId, usize>,
    software_missing: HashMap<SoftwareId, Vec<PublicProductFixDto>>,
    /// Software -> setups whose devices have it installed.
    software_setups: HashMap<SoftwareId, Vec<u32>>,
    software_vulns: HashMap<SoftwareId, Arc<Vec<CveId>>>,
    vulns: Arc<Vec<PublicVulnerabilityDto>>,
    vuln_index: HashMap<CveId, usize>,
    /// CVE -> setups whose devices are exposed to it.
    vuln_setups: HashMap<CveId, Vec<u32>>,
    /// The full machine-vulnerability list, built on first request.
    asset_all: std::sync::OnceLock<Arc<Vec<PublicAssetVulnerabilityDto>>>,
}

/// One device of the snapshot: identity, name, times and its setup.
struct DeviceEntry {
    id: MachineId,
    host_name: Option<Box<str>>,
    first_seen: chrono::DateTime<Utc>,
    last_seen: chrono::DateTime<Utc>,
    setup: u32,
}

/// What every device with one setup shares: its OS facts (for the machine rows), its missing
/// KBs, software and (CVE, software, KB) signature, and which devices have it.
struct SetupView {
    setup: DeviceSetup,
    fixes: Arc<Vec<PublicProductFixDto>>,
    software: Arc<Vec<SoftwareId>>,
    sig: Arc<Signature>,
    /// Indices into `Snapshot::devices`, ascending (so, in id order).
    members: Vec<u32>,
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
        let gens = self.with_store(|s| s.generations())?;
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
        let gens = self.with_store(|s| s.generations())?;
        if let Ok(snap) = self.snapshot.read() {
            if (snap.catalog_generation, snap.fleet_generation) == gens {
                return Ok(snap.clone());
            }
        }
        let started = std::time::Instant::now();
        let cache = self.catalog_cache(gens.0)?;
        let rows = self.with_store(|s| s.fleet_rows())?;
        let n = rows.devices.len();
        let snap = Arc::new(build_snapshot(&cache, rows, gens.0));
        if let Ok(mut w) = self.snapshot.write() {
            *w = snap.clone();
        }
        tracing::info!(
            devices = n,
            catalog_generation = gens.0,
            fleet_generation = snap.fleet_generation,
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
        let gens = self.with_store(|s| s.generations())?;
        let cache = self.catalog_cache(gens.0)?;
        let rows = self.with_store(|s| s.fleet_rows())?;
        let snap = Arc::new(build_snapshot(&cache, rows, gens.0));
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

fn machine_dto(d: &DeviceEntry, os: &DeviceSetup) -> Machine {
    let mut m = Machine::new(d.id, d.host_name.as_deref().map(str::to_owned));
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

fn name_hash(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.trim().to_lowercase().hash(&mut h);
    h.finish()
}

fn build_snapshot(cache: &CatalogCache, rows: FleetRows, catalog_generation: i64) -> Snapshot {
    let FleetRows {
        fleet_generation,
        setups,
        devices,
        ..
    } = rows;
    let mut devices: Vec<DeviceEntry> = devices
        .into_iter()
        .map(|r| DeviceEntry {
            id: r.machine_id,
            host_name: r.host_name.map(String::into_boxed_str),
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            setup: r.setup,
        })
        .collect();
    devices.par_sort_unstable_by_key(|d| d.id);

    // The assessment is a pure function of the setup: each distinct setup is assessed once.
    let sigs: SignatureCache = Mutex::new(HashMap::new());
    let views: Vec<TargetView> = setups
        .par_iter()
        .map(|s| view_target(cache, &sigs, &Target::from_setup(s, None)))
        .collect();
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); setups.len()];
    for (i, d) in devices.iter().enumerate() {
        members[d.setup as usize].push(i as u32);
    }

    // Fleet-wide counts.
    let mut missed_on: HashMap<KbId, u64> = HashMap::new();
    for (v, m) in views.iter().zip(&members) {
        for f in &v.assessment.findings {
            *missed_on.entry(f.kb).or_default() += m.len() as u64;
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
    for (v, m) in views.iter().zip(&members) {
        if m.is_empty() {
            continue;
        }
        for f in &v.assessment.findings {
            kb_dtos.entry(f.kb).or_insert_with(|| fix_dto(f, None));
        }
    }

    let mut software_names: BTreeSet<SoftwareId> = BTreeSet::new();
    let mut software_setups: HashMap<SoftwareId, Vec<u32>> = HashMap::new();
    let mut sw_cves: BTreeMap<SoftwareId, BTreeSet<CveId>> = BTreeMap::new();
    let mut sw_exposed: BTreeMap<SoftwareId, u64> = BTreeMap::new();
    let mut sw_kbs: BTreeMap<SoftwareId, BTreeSet<KbId>> = BTreeMap::new();
    let mut vuln_setups: HashMap<CveId, Vec<u32>> = HashMap::new();
    let mut vuln_exposed: HashMap<CveId, u64> = HashMap::new();
    for (i, (v, m)) in views.iter().zip(&members).enumerate() {
        if m.is_empty() {
            continue;
        }
        let n = m.len() as u64;
        for sw in v.software.iter() {
            software_names.insert(sw.clone());
            software_setups
                .entry(sw.clone())
                .or_default()
                .push(i as u32);
        }
        for c in v.sig.cves.iter() {
            vuln_setups.entry(c.clone()).or_default().push(i as u32);
            *vuln_exposed.entry(c.clone()).or_default() += n;
        }
        for (sw, cves, kbs) in &v.sig.by_software {
            sw_cves
                .entry(sw.clone())
                .or_default()
                .extend(cves.iter().cloned());
            *sw_exposed.entry(sw.clone()).or_default() += n;
            sw_kbs.entry(sw.clone()).or_default().extend(kbs);
        }
    }

    let setups: Vec<SetupView> = setups
        .into_iter()
        .zip(views)
        .zip(members)
        .map(|((setup, v), members)| SetupView {
            fixes: Arc::new(
                v.assessment
                    .findings
                    .iter()
                    .map(|f| fix_dto(f, setup.build.map(|b| b.build)))
                    .collect(),
            ),
            software: v.software,
            sig: v.sig,
            members,
            setup,
        })
        .collect();

    let mut by_name: Vec<(u64, u32)> = devices
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.host_name.as_deref().map(|n| (name_hash(n), i as u32)))
        .collect();
    by_name.par_sort_unstable();

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
                exposed_machines: sw_exposed.get(&id).copied().unwrap_or(0),
                impact_score: 0.0,
                id,
            }
        })
        .collect();
    let mut snap = Snapshot {
        catalog_generation,
        fleet_generation,
        ..Snapshot::default()
    };
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
            v.exposed_machines = vuln_exposed.get(&v.id).copied().unwrap_or(0);
            v
        })
        .collect();
    for (i, v) in vulns.iter().enumerate() {
        snap.vuln_index.insert(v.id.clone(), i);
    }
    snap.vulns = Arc::new(vulns);
    snap.vuln_setups = vuln_setups;
    snap.software_setups = software_setups;
    snap.devices = devices;
    snap.by_name = by_name;
    snap.setups = setups;
    snap
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("catalog_generation", &self.catalog_generation)
            .field("fleet_generation", &self.fleet_generation)
            .field("devices", &self.devices.len())
            .field("setups", &self.setups.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    fn index_of(&self, id: MachineId) -> Option<usize> {
        self.devices.binary_search_by_key(&id, |d| d.id).ok()
    }
    fn entry(&self, id: MachineId) -> Option<(&DeviceEntry, &SetupView)> {
        let d = &self.devices[self.index_of(id)?];
        Some((d, &self.setups[d.setup as usize]))
    }
    fn machine(&self, id: MachineId) -> Option<Machine> {
        self.entry(id).map(|(d, s)| machine_dto(d, &s.setup))
    }
    fn machine_at(&self, i: usize) -> Machine {
        let d = &self.devices[i];
        machine_dto(d, &self.setups[d.setup as usize].setup)
    }
    /// The first device (in id order) whose host name equals `name` case-insensitively.
    fn by_name(&self, name: &str) -> Option<usize> {
        let wanted = name.trim().to_lowercase();
        let h = name_hash(&wanted);
        let start = self.by_name.partition_point(|&(x, _)| x < h);
        self.by_name[start..]
            .iter()
            .take_while(|&&(x, _)| x == h)
            .map(|&(_, i)| i as usize)
            .find(|&i| {
                self.devices[i]
                    .host_name
                    .as_deref()
                    .is_some_and(|n| n.trim().to_lowercase() == wanted)
            })
    }
    /// One machine's machine-vulnerability rows.
    fn asset_rows(&self, i: usize) -> Vec<PublicAssetVulnerabilityDto> {
        let id = self.devices[i].id;
        let sig = &self.setups[self.devices[i].setup as usize].sig;
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
    fn vulns_of(&self, ids: &[CveId]) -> Vec<PublicVulnerabilityDto> {
        ids.iter()
            .filter_map(|c| self.vuln_index.get(c).map(|&i| self.vulns[i].clone()))
            .collect()
    }
    /// References to the devices of some setups, in id order.
    fn refs(&self, setups: Option<&Vec<u32>>) -> Vec<MachineReference> {
        let mut idx: Vec<u32> = setups
            .into_iter()
            .flatten()
            .flat_map(|&s| self.setups[s as usize].members.iter().copied())
            .collect();
        idx.sort_unstable();
        idx.into_iter()
            .map(|i| {
                let d = &self.devices[i as usize];
                let os = &self.setups[d.setup as usize].setup;
                MachineReference {
                    id: d.id,
                    computer_dns_name: d.host_name.as_deref().map(str::to_owned),
                    os_platform: os_platform(os.family).map(str::to_owned),
                    rbac_group_name: None,
                }
            })
            .collect()
    }
    /// Number of machines.
    pub fn machine_count(&self) -> usize {
        self.devices.len()
    }
    /// Number of distinct device setups (each assessed once).
    pub fn setup_count(&self) -> usize {
        self.setups.len()
    }
    /// Bytes held per device by the snapshot's per-device state (device entries with their
    /// host names, the name index and setup membership), for memory reports.
    pub fn per_device_bytes(&self) -> usize {
        let n = self.devices.len().max(1);
        let entries = self.devices.capacity() * std::mem::size_of::<DeviceEntry>();
        let names: usize = self
            .devices
            .iter()
            .filter_map(|d| d.host_name.as_ref())
            .map(|h| h.len())
            .sum();
        let index = self.by_name.capacity() * std::mem::size_of::<(u64, u32)>();
        let members: usize = self.setups.iter().map(|s| s.members.capacity() * 4).sum();
        (entries + names + index + members) / n
    }
}

impl FleetData for StoreFleet {
    fn machines(&self) -> DataResult<Arc<Vec<Machine>>> {
        let s = self.current()?;
        Ok(s.machines
            .get_or_init(|| {
                Arc::new(
                    (0..s.devices.len())
                        .into_par_iter()
                        .map(|i| s.machine_at(i))
                        .collect(),
                )
            })
            .clone())
    }
    fn machine_by_id(&self, id: MachineId) -> DataResult<Option<Machine>> {
        Ok(self.current()?.machine(id))
    }
    fn machine_by_name(&self, name: &str) -> DataResult<Option<Machine>> {
        let s = self.current()?;
        Ok(s.by_name(name).map(|i| s.machine_at(i)))
    }
    fn missing_kbs_for_machine(
        &self,
        id: MachineId,
    ) -> DataResult<Option<Vec<PublicProductFixDto>>> {
        let s = self.current()?;
        Ok(s.entry(id).map(|(_, v)| v.fixes.as_ref().clone()))
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
        Ok(s.entry(id).map(|(_, v)| {
            v.software
                .iter()
                .filter_map(|x| s.software_index.get(x).map(|&i| s.software[i].clone()))
                .collect()
        }))
    }
    fn machine_vulnerabilities(
        &self,
        id: MachineId,
    ) -> DataResult<Option<Vec<PublicVulnerabilityDto>>> {
        let s = self.current()?;
        Ok(s.entry(id).map(|(_, v)| s.vulns_of(&v.sig.cves)))
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
            .map(|_| s.refs(s.software_setups.get(id))))
    }
    fn software_vulnerabilities(
        &self,
        id: &SoftwareId,
    ) -> DataResult<Option<Vec<PublicVulnerabilityDto>>> {
        let s = self.current()?;
        Ok(s.software_index.get(id).map(|_| {
            s.software_vulns
                .get(id)
                .map(|c| s.vulns_of(c))
                .unwrap_or_default()
        }))
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
        Ok(s.vuln_index.get(id).map(|_| s.refs(s.vuln_setups.get(id))))
    }
    fn machines_vulnerabilities(
        &self,
        machine: Option<MachineId>,
    ) -> DataResult<Arc<Vec<PublicAssetVulnerabilityDto>>> {
        let s = self.current()?;
        Ok(match machine {
            Some(m) => Arc::new(s.index_of(m).map(|i| s.asset_rows(i)).unwrap_or_default()),
            None => s
                .asset_all
                .get_or_init(|| {
                    Arc::new(
                        (0..s.devices.len())
                            .into_par_iter()
                            .flat_map_iter(|i| s.asset_rows(i))
                            .collect(),
                    )
                })
                .clone(),
        })
    }
}
