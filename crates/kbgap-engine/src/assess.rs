//! The decision: for one device, which fix groups are unfixed, and which KB to report for each.

use chrono::{DateTime, Utc};
use kbgap_core::{Build, KbId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::finding::{Assessment, Confidence, DropReason, Dropped, Finding};
use crate::index::{EngineCatalog, PlatformKey};
use crate::platform::{PlatformModel, Series};
use crate::resolve::resolve;
use crate::target::{KbListState, Target};

/// What the caller chooses about an assessment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Evaluate against the catalog as it stood on this date (documents released by then).
    pub as_of: Option<DateTime<Utc>>,
}

/// How an evidence node got into the evidence set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    Listed,
    Build(Build),
}

/// Assesses one device. Pure: no I/O, same inputs give the same answer.
pub fn assess(cat: &EngineCatalog, target: &Target, settings: &Settings) -> Assessment {
    let mut notes = Vec::new();
    let resolution = match resolve(cat, target) {
        Ok(r) => r,
        Err(why) => {
            notes.push(why);
            return Assessment {
                findings: Vec::new(),
                dropped: Vec::new(),
                products: Vec::new(),
                confidence: Confidence::Low,
                notes,
            };
        }
    };
    notes.extend(resolution.notes.iter().cloned());
    let model = cat.platform_model(PlatformKey {
        platform: resolution.platform.clone(),
        components: resolution.components.clone(),
        as_of: settings.as_of,
    });

    // Evidence: listed KBs, and KBs whose fixed build the device's revision has reached.
    let mut evidence: BTreeMap<usize, Evidence> = BTreeMap::new();
    for kb in &target.installed {
        if let Some(&n) = model.index.get(kb) {
            evidence.insert(n, Evidence::Listed);
        }
    }
    let device_build = target.build.filter(|b| b.is_nt10() && b.revision.is_some());
    if let Some(dev) = device_build {
        for (i, node) in model.nodes.iter().enumerate() {
            if node.series == Series::Hotpatch {
                continue; // a hotpatch fixed build counts only with KB evidence (rule 6)
            }
            if let Some(fb) = node
                .fixed_builds
                .iter()
                .find(|fb| fb.build == dev.build && fb.revision <= dev.revision)
            {
                evidence.entry(i).or_insert(Evidence::Build(*fb));
            }
        }
    }
    let starts: Vec<usize> = evidence.keys().copied().collect();
    let covered = model.covered_from(&starts);
    // A device whose newest installed rollup-or-security-only update is a Security Only one follows
    // the Security-Only track: report Security Only and IE Cumulative updates, not the Rollup.
    let security_only_track = starts
        .iter()
        .filter(|&&n| {
            matches!(
                model.nodes[n].series,
                Series::MonthlyRollup | Series::SecurityOnly
            )
        })
        .max_by_key(|&&n| {
            let node = &model.nodes[n];
            (node.month, node.series == Series::MonthlyRollup)
        })
        .is_some_and(|&n| model.nodes[n].series == Series::SecurityOnly);
    if security_only_track {
        notes.push("the device follows the Security-Only track: Security Only and IE Cumulative updates are reported instead of Monthly Rollups".to_owned());
    }

    // Units: fixed, or assigned to the best head.
    let mut assigned: BTreeMap<usize, Vec<usize>> = BTreeMap::new(); // head -> units
    let mut included_in: HashMap<usize, usize> = HashMap::new(); // member -> head
    let mut unit_fixed_by: HashMap<usize, usize> = HashMap::new(); // member -> covering origin
    for (u, unit) in model.units.iter().enumerate() {
        if unit.members.is_empty() {
            continue;
        }
        if let Some(origin) = unit.members.iter().find_map(|m| covered.get(m).copied()) {
            for &m in &unit.members {
                unit_fixed_by.entry(m).or_insert(origin);
            }
            continue;
        }
        let pick = |heads: &[Option<usize>]| {
            unit.members
                .iter()
                .filter_map(|&m| heads[m])
                .max_by_key(|&h| model.head_key(h))
        };
        let head = if security_only_track {
            pick(&model.best_head_without_rollups).or_else(|| pick(&model.best_head))
        } else {
            pick(&model.best_head)
        };
        let Some(head) = head else { continue }; // only out-of-scope KBs fix it
        assigned.entry(head).or_default().push(u);
        for &m in &unit.members {
            if m != head {
                included_in.entry(m).or_insert(head);
            }
        }
    }

    let findings: Vec<Finding> = assigned
        .iter()
        .map(|(&head, units)| finding(cat, &model, target, head, units))
        .collect();

    let finding_nodes: BTreeSet<usize> = assigned.keys().copied().collect();
    let mut dropped = Vec::new();
    for (i, node) in model.nodes.iter().enumerate() {
        if finding_nodes.contains(&i) {
            continue;
        }
        let reason = if let Some(ev) = evidence.get(&i) {
            match ev {
                Evidence::Listed => DropReason::Installed,
                Evidence::Build(fixed) => DropReason::FixedByBuild {
                    device: target.build.unwrap_or(*fixed),
                    fixed: *fixed,
                },
            }
        } else if let Some(&origin) = covered.get(&i) {
            covered_reason(&model, &evidence, target, origin)
        } else if !node.in_scope {
            DropReason::OutOfScope {
                sub_type: node.sub_type.as_deref().unwrap_or_default().to_owned(),
            }
        } else if let Some(&h) = included_in.get(&i) {
            DropReason::IncludedInFinding {
                finding: model.nodes[h].kb,
            }
        } else if let Some(&origin) = unit_fixed_by.get(&i) {
            DropReason::AlternativeInstalled {
                by: model.nodes[origin].kb,
            }
        } else if node.series == Series::Hotpatch {
            DropReason::HotpatchWithoutEvidence
        } else if let Some(h) = model.best_head[i].filter(|&h| h != i) {
            DropReason::IncludedInFinding {
                finding: model.nodes[h].kb,
            }
        } else {
            DropReason::NoOpenFixes
        };
        dropped.push(Dropped {
            kb: node.kb,
            reason,
        });
    }

    let confidence = confidence(&model, target, &evidence, &mut notes);
    Assessment {
        findings,
        dropped,
        products: resolution.matched,
        confidence,
        notes,
    }
}

fn covered_reason(
    model: &PlatformModel,
    evidence: &BTreeMap<usize, Evidence>,
    target: &Target,
    origin: usize,
) -> DropReason {
    match evidence.get(&origin) {
        Some(Evidence::Build(fixed)) => DropReason::FixedByBuild {
            device: target.build.unwrap_or(*fixed),
            fixed: *fixed,
        },
        _ => DropReason::CoveredByInstalled {
            by: model.nodes[origin].kb,
        },
    }
}

fn finding(
    cat: &EngineCatalog,
    model: &PlatformModel,
    target: &Target,
    head: usize,
    units: &[usize],
) -> Finding {
    let node = &model.nodes[head];
    let meta = cat.kb_meta(node.kb);
    let mut cves = BTreeSet::new();
    let mut products = BTreeSet::new();
    let mut replaces = BTreeSet::new();
    let mut max_severity = None;
    let mut rev_gap: Option<Build> = None;
    for &u in units {
        let unit = &model.units[u];
        cves.insert(unit.cve.clone());
        products.insert(unit.product.clone());
        max_severity = max_severity.max(unit.severity);
        for &m in &unit.members {
            if m != head {
                replaces.insert(model.nodes[m].kb);
            }
        }
        if let Some(dev) = target.build {
            for (_, fb) in &unit.fixed {
                if fb.build == dev.build && rev_gap.is_none_or(|g| fb > &g) {
                    rev_gap = Some(*fb);
                }
            }
        }
    }
    let product_names: Vec<String> = products
        .iter()
        .map(|p| {
            cat.catalog()
                .product(p)
                .map(|x| format!("{} ({p})", x.name))
                .unwrap_or_else(|| p.to_string())
        })
        .collect();
    let mut evidence = vec![format!(
        "fixes {} CVE(s) on {} as a {}",
        cves.len(),
        product_names.join(", "),
        node.series.label()
    )];
    evidence.push(match (&target.kb_list, target.installed.len()) {
        (KbListState::Empty, _) => "the device lists no installed updates".to_owned(),
        (_, 0) => "no installed KB is known for the device".to_owned(),
        (_, n) => format!("none of the device's {n} listed KB(s) is, includes or supersedes it"),
    });
    match (target.build, rev_gap) {
        (Some(dev), Some(fb)) if dev.revision.is_some() => {
            evidence.push(format!("device build {dev} is below fixed build {fb}"))
        }
        (Some(dev), Some(fb)) => evidence.push(format!(
            "device build {dev} has no revision, so fixed build {fb} could not be checked"
        )),
        _ => {}
    }
    if !replaces.is_empty() {
        let list: Vec<String> = replaces.iter().map(|k| format!("KB{k}")).collect();
        evidence.push(format!("also stands for {}", list.join(", ")));
    }
    Finding {
        kb: node.kb,
        name: meta.map(|m| m.name.clone()).unwrap_or_default(),
        products_names: meta.map(|m| m.products_names.clone()).unwrap_or_default(),
        url: meta
            .map(|m| m.url.clone())
            .unwrap_or_else(|| node.kb.catalog_url()),
        release_date: node.month,
        sub_type: node.sub_type.as_deref().map(str::to_owned),
        cve_addressed: meta.map(|m| m.cve_count).unwrap_or(cves.len()),
        cves: cves.into_iter().collect(),
        max_severity,
        evidence,
        replaces: replaces.into_iter().collect::<Vec<KbId>>(),
    }
}

fn confidence(
    model: &PlatformModel,
    target: &Target,
    evidence: &BTreeMap<usize, Evidence>,
    notes: &mut Vec<String>,
) -> Confidence {
    let mut level = Confidence::Medium;
    if target
        .build
        .is_some_and(|b| b.is_nt10() && b.revision.is_some())
    {
        level = Confidence::High;
    }
    if let KbListState::Truncated { declared, listed } = target.kb_list {
        notes.push(format!(
            "the hotfix list is truncated ({listed} of {declared} listed): findings may include updates already installed"
        ));
        level = Confidence::Low;
    }
    let nt10 = model.nodes.iter().any(|n| n.series == Series::Lcu);
    let has_cumulative = evidence
        .keys()
        .any(|&n| matches!(model.nodes[n].series, Series::Lcu | Series::MonthlyRollup));
    if nt10 && level != Confidence::High && !has_cumulative {
        notes.push(
            "no build revision and no cumulative update listed: the device may be newer than its KB list shows"
                .to_owned(),
        );
        level = Confidence::Low;
    }
    level
}
