//! Deterministic synthetic fleets built from the stored catalog, for the fleet-scale benchmarks.
//!
//! [`FleetPlan::from_catalog`] picks the Windows products of a realistic mix that exist in the
//! catalog and, for each, the update levels devices can be at: for Windows 10/11 and Server
//! 2016+ the LCU fixed builds (from the catalog's FixedBuild rows) of the product's last ~12
//! months; for legacy hosts (Windows 7 SP1, Server 2012 R2) the Monthly Rollup KBs of that span.
//! [`FleetPlan::report`] then makes device `i` of a fleet as a kbgap JSON device report
//! (`kbgap.device/1`, docs/device-report.md). Everything is a function of (catalog, seed, i):
//! the same seed gives byte-identical reports, and devices can be made in parallel or streamed.

use chrono::{DateTime, Duration, Utc};
use kbgap_catalog::model::RemediationKind;
use kbgap_catalog::Catalog;
use kbgap_core::{KbId, ProductId};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// splitmix64: a tiny, well-mixed 64-bit generator (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for device `index` of the fleet seeded with `seed`.
    pub fn for_device(seed: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`; modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// One kind of host in the mix: the MSRC product it maps to and what its report says.
#[derive(Debug)]
struct OsTemplate {
    /// Exact MSRC product name (case-insensitive match against the catalog).
    msrc_name: &'static str,
    /// Relative share of the fleet.
    weight: u32,
    product_name: &'static str,
    current_version: &'static str,
    build: u32,
    display_version: Option<&'static str>,
    csd_version: Option<&'static str>,
    installation_type: &'static str,
    edition_id: &'static str,
    host_prefix: &'static str,
    /// Pre-Windows 10: KB list only, levels are Monthly Rollups.
    legacy: bool,
    server: bool,
}

// A row constructor of the MIX table: one argument per column reads best there.
#[allow(clippy::too_many_arguments)]
const fn modern(
    msrc_name: &'static str,
    weight: u32,
    product_name: &'static str,
    build: u32,
    display_version: &'static str,
    installation_type: &'static str,
    edition_id: &'static str,
    host_prefix: &'static str,
) -> OsTemplate {
    let server = !matches!(installation_type.as_bytes(), b"Client");
    OsTemplate {
        msrc_name,
        weight,
        product_name,
        current_version: "6.3",
        build,
        display_version: Some(display_version),
        csd_version: None,
        installation_type,
        edition_id,
        host_prefix,
        legacy: false,
        server,
    }
}

/// The mix: ~90% Windows 10/11 and Server 2016+, ~10% legacy (weights sum to 100).
const MIX: &[OsTemplate] = &[
    modern(
        "Windows 10 Version 21H2 for x64-based Systems",
        6,
        "Windows 10 Enterprise",
        19044,
        "21H2",
        "Client",
        "Enterprise",
        "W10",
    ),
    modern(
        "Windows 10 Version 22H2 for x64-based Systems",
        22,
        "Windows 10 Enterprise",
        19045,
        "22H2",
        "Client",
        "Enterprise",
        "W10",
    ),
    modern(
        "Windows 11 Version 22H2 for x64-based Systems",
        6,
        "Windows 10 Enterprise",
        22621,
        "22H2",
        "Client",
        "Enterprise",
        "W11",
    ),
    modern(
        "Windows 11 Version 23H2 for x64-based Systems",
        13,
        "Windows 10 Enterprise",
        22631,
        "23H2",
        "Client",
        "Enterprise",
        "W11",
    ),
    modern(
        "Windows 11 Version 24H2 for x64-based Systems",
        17,
        "Windows 10 Enterprise",
        26100,
        "24H2",
        "Client",
        "Enterprise",
        "W11",
    ),
    modern(
        "Windows 11 Version 25H2 for x64-based Systems",
        5,
        "Windows 10 Enterprise",
        26200,
        "25H2",
        "Client",
        "Enterprise",
        "W11",
    ),
    modern(
        "Windows Server 2016",
        3,
        "Windows Server 2016 Datacenter",
        14393,
        "1607",
        "Server",
        "ServerDatacenter",
        "SRV16",
    ),
    modern(
        "Windows Server 2016 (Server Core installation)",
        1,
        "Windows Server 2016 Datacenter",
        14393,
        "1607",
        "Server Core",
        "ServerDatacenter",
        "SRV16C",
    ),
    modern(
        "Windows Server 2019",
        4,
        "Windows Server 2019 Standard",
        17763,
        "1809",
        "Server",
        "ServerStandard",
        "SRV19",
    ),
    modern(
        "Windows Server 2019 (Server Core installation)",
        2,
        "Windows Server 2019 Standard",
        17763,
        "1809",
        "Server Core",
        "ServerStandard",
        "SRV19C",
    ),
    modern(
        "Windows Server 2022",
        6,
        "Windows Server 2022 Datacenter",
        20348,
        "21H2",
        "Server",
        "ServerDatacenter",
        "SRV22",
    ),
    modern(
        "Windows Server 2022 (Server Core installation)",
        2,
        "Windows Server 2022 Datacenter",
        20348,
        "21H2",
        "Server Core",
        "ServerDatacenter",
        "SRV22C",
    ),
    modern(
        "Windows Server 2025",
        2,
        "Windows Server 2025 Datacenter",
        26100,
        "24H2",
        "Server",
        "ServerDatacenter",
        "SRV25",
    ),
    modern(
        "Windows Server 2025 (Server Core installation)",
        1,
        "Windows Server 2025 Datacenter",
        26100,
        "24H2",
        "Server Core",
        "ServerDatacenter",
        "SRV25C",
    ),
    OsTemplate {
        msrc_name: "Windows 7 for x64-based Systems Service Pack 1",
        weight: 5,
        product_name: "Windows 7 Enterprise",
        current_version: "6.1",
        build: 7601,
        display_version: None,
        csd_version: Some("Service Pack 1"),
        installation_type: "Client",
        edition_id: "Enterprise",
        host_prefix: "W7",
        legacy: true,
        server: false,
    },
    OsTemplate {
        msrc_name: "Windows Server 2012 R2",
        weight: 5,
        product_name: "Windows Server 2012 R2 Standard",
        current_version: "6.3",
        build: 9600,
        display_version: None,
        csd_version: None,
        installation_type: "Server",
        edition_id: "ServerStandard",
        host_prefix: "SRV12",
        legacy: true,
        server: true,
    },
];

/// One update level a device can be at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Level {
    /// Month of the update (its document's initial release).
    month: DateTime<Utc>,
    /// UBR the level brings (modern hosts).
    revision: Option<u32>,
    /// The KB.
    kb: KbId,
}

/// A mix entry present in the catalog, with its levels (oldest first).
#[derive(Debug)]
struct Kind {
    template: &'static OsTemplate,
    product: ProductId,
    levels: Vec<Level>,
}

/// The fleet recipe derived from one catalog.
#[derive(Debug)]
pub struct FleetPlan {
    kinds: Vec<Kind>,
    total_weight: u32,
    collected_at: DateTime<Utc>,
}

/// How many days of updates devices are spread over.
const SPAN_DAYS: i64 = 365;

impl FleetPlan {
    /// Builds the recipe: the mix's products found in `catalog` and their levels. Errors when
    /// none of the mix's products has usable rows (an empty or unrelated catalog).
    pub fn from_catalog(catalog: &Catalog) -> anyhow::Result<Self> {
        let mut kinds = Vec::new();
        for t in MIX {
            let Some(product) = catalog
                .products()
                .find(|p| p.name.trim().eq_ignore_ascii_case(t.msrc_name))
                .map(|p| p.id.clone())
            else {
                continue;
            };
            let levels = levels_of(catalog, &product, t);
            if !levels.is_empty() {
                kinds.push(Kind {
                    template: t,
                    product,
                    levels,
                });
            }
        }
        let total_weight = kinds.iter().map(|k| k.template.weight).sum();
        let newest = kinds
            .iter()
            .filter_map(|k| k.levels.last().map(|l| l.month))
            .max();
        let Some(newest) = newest else {
            anyhow::bail!(
                "the catalog holds none of the fleet generator's Windows products with fix rows; \
                 import MSRC documents first (kbgap catalog import)"
            );
        };
        Ok(Self {
            kinds,
            total_weight,
            collected_at: newest + Duration::days(20),
        })
    }

    /// MSRC product names of the mix found in the catalog, with how many levels each has.
    pub fn summary(&self) -> Vec<(String, ProductId, usize)> {
        self.kinds
            .iter()
            .map(|k| {
                (
                    k.template.msrc_name.to_owned(),
                    k.product.clone(),
                    k.levels.len(),
                )
            })
            .collect()
    }

    /// Device `index` of the fleet seeded with `seed`, as a kbgap JSON device report.
    pub fn report(&self, seed: u64, index: u64) -> Value {
        let mut rng = Rng::for_device(seed, index);
        let mut pick = rng.below(self.total_weight as usize) as u32;
        let kind = self
            .kinds
            .iter()
            .find(|k| {
                if pick < k.template.weight {
                    true
                } else {
                    pick -= k.template.weight;
                    false
                }
            })
            .unwrap_or(&self.kinds[0]);
        let t = kind.template;
        let n = kind.levels.len();
        // Skewed to recent levels: the later of two uniform picks.
        let mut at = rng.below(n).max(rng.below(n));
        let machine_id = format!(
            "{:016x}{:016x}{:08x}",
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64() as u32
        );
        let host = format!("{}-{:07}", t.host_prefix, index);
        let installed = |l: &Level| {
            json!({
                "id": format!("KB{}", l.kb),
                "installedOn": l.month.format("%-m/%-d/%Y").to_string(),
                "description": "Security Update",
            })
        };
        let mut hotfixes = Vec::new();
        let mut ubr = Value::Null;
        if t.legacy {
            // Some hosts are missing the last rollups.
            if rng.chance(30) {
                at = at.saturating_sub(1 + rng.below(4));
            }
            let from = at.saturating_sub(2);
            let skip = if at - from == 2 && rng.chance(30) {
                Some(from + 1)
            } else {
                None
            };
            for (i, l) in kind.levels.iter().enumerate().take(at + 1).skip(from) {
                if Some(i) != skip {
                    hotfixes.push(installed(l));
                }
            }
        } else {
            let l = &kind.levels[at];
            ubr = json!(l.revision);
            if at > 0 && rng.chance(50) {
                hotfixes.push(installed(&kind.levels[at - 1]));
            }
            hotfixes.push(installed(l));
        }
        let mut software = Vec::new();
        if !t.server && rng.chance(70) {
            software.push(json!({
                "name": "Microsoft 365 Apps for enterprise - en-us",
                "vendor": "Microsoft Corporation",
                "version": format!("16.0.{}.{}", 17_000 + rng.below(1_800), 20_000 + rng.below(300)),
            }));
        }
        if !t.legacy && rng.chance(90) {
            software.push(json!({
                "name": "Microsoft Edge",
                "vendor": "Microsoft Corporation",
                "version": format!("1{}.0.{}.{}", 30 + rng.below(10), 2_700 + rng.below(600), rng.below(150)),
            }));
        }
        if rng.chance(60) {
            software.push(if t.legacy {
                json!({"name": "Microsoft .NET Framework 4.8", "vendor": "Microsoft Corporation", "version": "4.8.03761"})
            } else {
                json!({
                    "name": format!("Microsoft .NET Runtime - 8.0.{} (x64)", rng.below(20)),
                    "vendor": "Microsoft Corporation",
                    "version": format!("8.0.{}", rng.below(20)),
                })
            });
        }
        json!({
            "schema": "kbgap.device/1",
            "hostName": host,
            "machineId": machine_id,
            "collectedAt": self.collected_at.to_rfc3339(),
            "os": {
                "productName": t.product_name,
                "currentMajorVersionNumber": if t.legacy { Value::Null } else { json!(10) },
                "currentMinorVersionNumber": if t.legacy { Value::Null } else { json!(0) },
                "currentVersion": t.current_version,
                "currentBuild": t.build.to_string(),
                "ubr": ubr,
                "displayVersion": t.display_version,
                "csdVersion": t.csd_version,
                "installationType": t.installation_type,
                "editionId": t.edition_id,
                "architecture": "x64",
            },
            "hotfixes": hotfixes,
            "software": software,
        })
    }
}

/// The levels of one product over its last [`SPAN_DAYS`]: LCU fixed builds on the template's
/// build (modern), or Monthly Rollup KBs (legacy). One level per KB, oldest first.
fn levels_of(catalog: &Catalog, product: &ProductId, t: &OsTemplate) -> Vec<Level> {
    let mut by_kb: BTreeMap<KbId, Level> = BTreeMap::new();
    for doc in catalog.documents() {
        for v in &doc.vulnerabilities {
            for r in &v.remediations {
                if r.kind != RemediationKind::VendorFix || !r.products.contains(product) {
                    continue;
                }
                let Some(kb) = r.kb else { continue };
                let sub = r
                    .sub_type
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if sub.contains("hotpatch") {
                    continue;
                }
                let level = if t.legacy {
                    if sub != "monthly rollup" {
                        continue;
                    }
                    Level {
                        month: doc.initial_release,
                        revision: None,
                        kb,
                    }
                } else {
                    match r.fixed_build {
                        Some(b) if b.build == t.build && b.revision.is_some() => Level {
                            month: doc.initial_release,
                            revision: b.revision,
                            kb,
                        },
                        _ => continue,
                    }
                };
                by_kb
                    .entry(kb)
                    .and_modify(|l| {
                        if level.month < l.month {
                            *l = level.clone();
                        }
                    })
                    .or_insert(level);
            }
        }
    }
    let mut levels: Vec<Level> = by_kb.into_values().collect();
    levels.sort();
    if let Some(newest) = levels.last().map(|l| l.month) {
        levels.retain(|l| l.month >= newest - Duration::days(SPAN_DAYS));
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;
    use kbgap_engine::{assess, EngineCatalog, Settings, Target};

    fn catalog() -> Catalog {
        let path = kbgap_testdata::msrc_fixture("cvrfDocument-2023-Feb.xml");
        let bytes = std::fs::read(&path).expect("fixture readable");
        let (parsed, _) = kbgap_catalog::cvrf::parse_document(&bytes, "cvrfDocument-2023-Feb.xml")
            .expect("parses");
        Catalog::from_documents(vec![parsed.document])
    }

    #[test]
    fn same_seed_same_reports_other_seed_other_reports() {
        let cat = catalog();
        let plan = FleetPlan::from_catalog(&cat).expect("plan");
        let a: Vec<String> = (0..50).map(|i| plan.report(7, i).to_string()).collect();
        let b: Vec<String> = (0..50).map(|i| plan.report(7, i).to_string()).collect();
        let c: Vec<String> = (0..50).map(|i| plan.report(8, i).to_string()).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // A second plan from the same catalog gives the same reports too.
        let plan2 = FleetPlan::from_catalog(&cat).expect("plan");
        assert_eq!(plan2.report(7, 3).to_string(), a[3]);
    }

    #[test]
    fn reports_parse_and_map_to_products() {
        let cat = catalog();
        let plan = FleetPlan::from_catalog(&cat).expect("plan");
        // The Feb 2023 document has Windows 10/11, Server 2016-2022 and Server 2012 R2 (legacy).
        let names: Vec<String> = plan.summary().into_iter().map(|(n, _, _)| n).collect();
        assert!(
            names.iter().any(|n| n == "Windows Server 2012 R2"),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n.contains("Server Core")), "{names:?}");
        let engine = EngineCatalog::new(cat);
        let mut legacy = 0;
        for i in 0..300 {
            let report = plan.report(42, i);
            let bytes = serde_json::to_vec(&report).expect("serialises");
            let device = kbgap_inventory::parse_any(&bytes, &format!("dev{i}.json"))
                .unwrap_or_else(|e| panic!("report {i} does not parse: {e}\n{report}"));
            if device.os.build.is_some_and(|b| b.build < 10_000) {
                legacy += 1;
            }
            let a = assess(&engine, &Target::from_device(&device), &Settings::default());
            assert!(
                !a.products.is_empty(),
                "report {i} maps to no product:\n{report}"
            );
        }
        // ~10% legacy hosts (weights 10/100): 300 draws land well inside 10..60.
        assert!((10..60).contains(&legacy), "legacy hosts: {legacy}");
    }
}
