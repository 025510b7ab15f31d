//! Named regression tests, one per documented failure of existing engines (detection.md §4,
//! "Pitfalls to avoid"), on the real MSRC archive.

mod support;

use kbgap_engine::{assess, Assessment, DropReason, Settings, Target};
use support::*;

/// A device as kbgap's own JSON report describes it (the realistic path: the collector's output).
fn report(
    product: &str,
    build: u32,
    ubr: Option<u32>,
    installation: &str,
    hotfixes: &[&str],
) -> Target {
    let hotfixes: Vec<String> = hotfixes
        .iter()
        .map(|k| format!(r#"{{"id": "{k}"}}"#))
        .collect();
    let json = format!(
        r#"{{"schema": "kbgap.device/1", "hostName": "test-host", "collectedAt": "2026-01-01T00:00:00Z",
            "os": {{"productName": "{product}", "currentMajorVersionNumber": 10, "currentMinorVersionNumber": 0,
                    "currentBuild": "{build}", "ubr": {ubr}, "installationType": "{installation}", "architecture": "x64"}},
            "hotfixes": [{hotfixes}]}}"#,
        ubr = ubr.map_or("null".to_owned(), |u| u.to_string()),
        hotfixes = hotfixes.join(",")
    );
    let dev = kbgap_inventory::parse_any(json.as_bytes(), "test.json").expect("report parses");
    Target::from_device(&dev)
}

fn legacy_report(product: &str, version: &str, build: u32, ubr: u32, hotfixes: &[&str]) -> Target {
    let installation = if product.contains("Server") {
        "Server"
    } else {
        "Client"
    };
    let hotfixes: Vec<String> = hotfixes
        .iter()
        .map(|k| format!(r#"{{"id": "{k}"}}"#))
        .collect();
    let json = format!(
        r#"{{"schema": "kbgap.device/1", "hostName": "legacy", "collectedAt": "2026-01-01T00:00:00Z",
            "os": {{"productName": "{product}", "currentVersion": "{version}", "currentBuild": "{build}", "ubr": {ubr},
                    "csdVersion": "Service Pack 1", "installationType": "{installation}", "architecture": "x64"}},
            "hotfixes": [{hotfixes}]}}"#,
        hotfixes = hotfixes.join(",")
    );
    let dev = kbgap_inventory::parse_any(json.as_bytes(), "legacy.json").expect("report parses");
    Target::from_device(&dev)
}

fn run(t: &Target, as_of: Option<chrono::DateTime<chrono::Utc>>) -> Assessment {
    assess(archive_engine(), t, &Settings { as_of })
}

/// Pitfall 1: the LCU judged from the KB list alone. Get-HotFix lists only the newest LCU, or
/// none at all; the build revision decides.
#[test]
fn pitfall1_lcu_decided_by_revision_not_kb_list() {
    let feb = Some(day(2023, 2, 28));
    let patched = report("Windows 10 Enterprise", 19045, Some(2604), "Client", &[]);
    let a = run(&patched, feb);
    assert!(a.findings.is_empty(), "{:#?}", a.findings);
    match &a.dropped(kb(5022834)).expect("candidate").reason {
        DropReason::FixedByBuild { fixed, .. } => assert_eq!(fixed.to_string(), "10.0.19045.2604"),
        other => panic!("{other:?}"),
    }
    let january = report("Windows 10 Enterprise", 19045, Some(2486), "Client", &[]);
    let a = run(&january, feb);
    assert_eq!(finding_kbs(&a), [5022834].into_iter().collect());
    assert!(a
        .finding(kb(5022834))
        .unwrap()
        .evidence
        .iter()
        .any(|e| e.contains("below fixed build 10.0.19045.2604")));
}

/// Pitfall 2: successor-less chain heads. Nothing supersedes the SMBGhost OOB KB4551762, but
/// April's cumulative update contains it.
#[test]
fn pitfall2_oob_kb4551762_absorbed_by_april_lcu() {
    let t = report("Windows 10 Pro", 18363, None, "Client", &["KB4549951"]);
    let a = run(&t, Some(day(2020, 4, 30)));
    assert!(a.finding(kb(4551762)).is_none(), "{:#?}", a.findings);
    assert!(a.finding(kb(4540673)).is_none());
    assert!(matches!(
        a.dropped(kb(4551762)).map(|d| &d.reason),
        Some(DropReason::CoveredByInstalled { by }) if *by == kb(4549951)
    ));
}

/// Pitfall 2 (WinShield's sample): 26200.7628 comes from the OOB KB5078127 and must not be
/// reported as missing January's KB5074109 (.7623).
#[test]
fn pitfall2_winshield_oob_build_not_flagged() {
    let t = report("Windows 10 Enterprise", 26200, Some(7628), "Client", &[]);
    let a = run(&t, Some(day(2026, 1, 31)));
    assert_eq!(
        a.products[0].name,
        "Windows 11 Version 25H2 for x64-based Systems"
    );
    assert!(a.finding(kb(5074109)).is_none(), "{:#?}", a.findings);
    assert!(matches!(
        a.dropped(kb(5074109)).map(|d| &d.reason),
        Some(DropReason::FixedByBuild { .. })
    ));
}

/// Pitfall 3: alternatives. A Windows 7 host on the Security-Only track is not told to install
/// the Monthly Rollup for fixes its Security Only update already has.
#[test]
fn pitfall3_security_only_and_rollup_are_alternatives() {
    let t = legacy_report(
        "Windows 7 Enterprise",
        "6.1",
        7601,
        24544,
        &["KB4537820", "KB4541500"],
    );
    let a = run(&t, Some(day(2020, 3, 31)));
    assert_eq!(
        a.products[0].name,
        "Windows 7 for x64-based Systems Service Pack 1"
    );
    // March's Security Only is installed: March's rollup is not a finding...
    assert!(a.finding(kb(4540688)).is_none(), "{:#?}", a.findings);
    // ...and the IE fixes come from the IE Cumulative update, the Security-Only track's way.
    assert_eq!(
        finding_kbs(&a),
        [4540671].into_iter().collect(),
        "{:#?} {:?}",
        finding_kbs(&a),
        a.notes
    );
    // With the rollup installed instead, no Windows fix is missing. (IE's December 2018 OOB
    // CVE-2018-8653 has only IE Cumulative rows, and rule 4 lets a rollup cover OS fixes only.)
    let rollup = legacy_report("Windows 7 Enterprise", "6.1", 7601, 24544, &["KB4540688"]);
    let a = run(&rollup, Some(day(2020, 3, 31)));
    assert!(a.finding(kb(4540688)).is_none());
    assert!(
        a.findings
            .iter()
            .all(|f| f.products_names == ["internet_explorer"]),
        "{:#?}",
        finding_kbs(&a)
    );
}

/// Pitfall 3 (hotpatch beside the LCU): a hotpatched 24H2 host at 26100.7092 with the hotpatch
/// listed is not missing November's LCU fixes; without the KB the hotpatch's build does not count.
#[test]
fn pitfall3_hotpatch_counts_only_with_kb_evidence() {
    let nov = Some(day(2025, 11, 30));
    let with_kb = report(
        "Windows 10 Enterprise",
        26100,
        Some(7092),
        "Client",
        &["KB5068966"],
    );
    let a = run(&with_kb, nov);
    assert!(a.finding(kb(5068861)).is_none(), "{:#?}", a.findings);
    let without_kb = report("Windows 10 Enterprise", 26100, Some(7092), "Client", &[]);
    let a = run(&without_kb, nov);
    assert!(a.finding(kb(5068861)).is_some(), "{:#?}", finding_kbs(&a));
    assert!(
        a.finding(kb(5068966)).is_none(),
        "an LCU is preferred over a hotpatch"
    );
}

/// Pitfall 4: substring product matching. Build 20348 is Windows Server 2022, never its
/// "23H2 Edition" (build 25398).
#[test]
fn pitfall4_server_2022_is_not_its_23h2_edition() {
    let a = assess_fixture("srv_2022_systeminfo.txt", None);
    assert_eq!(a.products[0].name, "Windows Server 2022");
    assert!(a.products.iter().all(|p| !p.name.contains("23H2")));
    let t = report(
        "Windows Server 2022 Datacenter",
        25398,
        Some(1000),
        "Server Core",
        &[],
    );
    let a = run(&t, None);
    assert_eq!(
        a.products[0].name,
        "Windows Server 2022, 23H2 Edition (Server Core installation)"
    );
}

/// Pitfall 5: stale build tables. 26100 is Windows 11 24H2 (wesng 1.0.3 maps it to "Windows 11
/// for x64-based Systems") or Windows Server 2025.
#[test]
fn pitfall5_new_builds_map_to_their_products() {
    let a = assess_fixture("11_24H2_x64_enterprise_systeminfo.txt", None);
    assert_eq!(
        a.products[0].name,
        "Windows 11 Version 24H2 for x64-based Systems"
    );
    let t = report(
        "Windows Server 2025 Datacenter",
        26100,
        Some(7171),
        "Server",
        &[],
    );
    let a = run(&t, Some(day(2025, 11, 30)));
    assert_eq!(a.products[0].name, "Windows Server 2025");
}

/// Pitfall 6: locale. wes.py exits on the Russian Server 2012 R2 output; kbgap assesses it.
#[test]
fn pitfall6_russian_server_2012r2_is_assessed() {
    let a = assess_fixture("srv_2012r2_x64_standard_ru_systeminfo.txt", None);
    assert_eq!(a.products[0].name, "Windows Server 2012 R2");
    assert!(!a.findings.is_empty());
}

/// Pitfall 7: duplicates and non-KB descriptions are never findings ("KB: patches 1822
/// vulnerabilities"). Every finding over every fixture is a real Vendor Fix KB, listed once.
#[test]
fn pitfall7_no_duplicate_or_non_kb_findings() {
    let dir = kbgap_testdata::systeminfo_dir();
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !name.contains("systeminfo") {
            continue;
        }
        let a = assess_fixture(&name, None);
        let mut seen = std::collections::BTreeSet::new();
        for f in &a.findings {
            assert!(seen.insert(f.kb), "{name}: KB{} twice", f.kb);
            assert!(
                (100_000..10_000_000).contains(&f.kb.get()),
                "{name}: KB{}",
                f.kb
            );
            assert!(archive_engine().catalog().kb_summary(f.kb).is_some());
        }
    }
}

/// Pitfall 8: naive Supercedence parsing. Junk tokens (`20.0.1`, bulletin ids) never become KBs.
#[test]
fn pitfall8_junk_supersedence_is_not_a_kb() {
    let cat = archive_engine().catalog();
    for k in cat.kbs() {
        assert!((100_000..10_000_000).contains(&k.get()), "KB{k}");
        if let Some(s) = cat.kb_summary(k) {
            for old in s.supersedes {
                assert!(
                    (100_000..10_000_000).contains(&old.get()),
                    "KB{k} supersedes {old}"
                );
            }
        }
    }
}

/// Pitfall 10: FixedBuild compared across products or when it is a file version. Server 2012 R2
/// rollups carry `6.3.9600.x` file versions: a UBR at that number proves nothing.
#[test]
fn pitfall10_file_version_fixed_builds_are_not_revisions() {
    let t = legacy_report("Windows Server 2012 R2 Standard", "6.3", 9600, 20821, &[]);
    let a = run(&t, Some(day(2023, 2, 28)));
    assert_eq!(a.products[0].name, "Windows Server 2012 R2");
    assert!(a.finding(kb(5022899)).is_some(), "{:#?}", a.findings);
}

/// Pitfall 11: missing data read as a verdict. XP predates CVRF: unmapped, no findings; and
/// pre-2016 bulletins like KB3109560 are never findings.
#[test]
fn pitfall11_pre_cvrf_systems_are_out_of_scope() {
    let a = assess_fixture("xp_sp3_x86_professional_en-us_systeminfo.txt", None);
    assert!(a.findings.is_empty());
    assert!(a.notes.iter().any(|n| n.contains("unmapped product")));
    let w7 = assess_fixture(
        "7_sp1_x64_enterprise_en-us_20190305_systeminfo.txt",
        Some(day(2019, 3, 5)),
    );
    assert!(w7.finding(kb(3109560)).is_none());
}

/// As-of: nothing released after the date is reported, even from rewritten older documents
/// (2018-Jan names April 2019's KB4493464).
#[test]
fn as_of_bounds_documents_and_kb_months() {
    let as_of = day(2019, 3, 6);
    let a = assess_fixture(
        "10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt",
        Some(as_of),
    );
    assert!(a.findings.iter().all(|f| f.release_date <= as_of));
    assert!(a.finding(kb(4493464)).is_none());
}

/// Bad input: a build newer than the catalog knows gets a diagnostic naming the build, not a
/// floor lookup to the nearest known release.
#[test]
fn unknown_newer_build_is_unmapped_with_a_diagnostic() {
    let t = report("Windows 10 Enterprise", 28000, Some(100), "Client", &[]);
    let a = run(&t, None);
    assert!(a.findings.is_empty());
    assert!(
        a.notes.iter().any(|n| n.contains("build 10.0.28000.100")),
        "{:?}",
        a.notes
    );
}

/// Server 2008 RTM (SP1, build 6001) is only published as Service Pack 2 products: the answer
/// says so instead of silently assessing a different product.
#[test]
fn older_service_pack_than_the_catalog_is_called_out() {
    let a = assess_fixture("srv_2008_rtm_x64_standard_en-us_systeminfo.txt", None);
    assert!(
        a.products[0].name.contains("Service Pack 2"),
        "{:?}",
        a.products
    );
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("Service Pack 1") && n.contains("install Service Pack 2")),
        "{:?}",
        a.notes
    );
}

/// Vista SP2 is in CVRF until its end of support (2017-Apr): it maps and gets answers, where
/// XP does not.
#[test]
fn vista_sp2_maps_to_its_cvrf_product() {
    let a = assess_fixture("vista_x64_sp2_systeminfo.txt", None);
    assert_eq!(
        a.products[0].name,
        "Windows Vista x64 Edition Service Pack 2"
    );
    assert!(!a.findings.is_empty());
    let end_of_support = day(2017, 4, 30);
    assert!(a.findings.iter().all(|f| f.release_date <= end_of_support));
}
