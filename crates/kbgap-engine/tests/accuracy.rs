//! Labelled accuracy corpus: same-day captures whose Windows Update "missing" lists are ground
//! truth (detection.md §6), assessed against the real MSRC archive as of the capture date.

mod support;

use kbgap_engine::{Confidence, DropReason};
use support::*;

const A_SYSTEMINFO: &str = "10_1803_x64_proforworkstations_en-us_A_20190305_systeminfo.txt";
const B_SYSTEMINFO: &str = "10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt";

/// Security KBs of a WUA list that the catalog knows (the rest, like MSRT, Defender definitions
/// or microcode, are not CVRF security updates and cannot be compared).
fn wua_security_kbs(name: &str) -> std::collections::BTreeSet<u32> {
    let path = kbgap_testdata::systeminfo_dir().join(name);
    let bytes = std::fs::read(&path).expect("WUA list");
    kbgap_inventory::wua::parse(&bytes, name)
        .expect("WUA list parses")
        .into_iter()
        .map(|u| u.kb)
        .filter(|kb| archive_engine().catalog().kb_summary(*kb).is_some())
        .map(|kb| kb.get())
        .collect()
}

#[test]
fn machine_a_1803_fully_patched_and_never_kb4345421() {
    let a = assess_fixture(A_SYSTEMINFO, Some(day(2019, 3, 5)));
    assert_eq!(finding_kbs(&a), Default::default(), "{:#?}", a.findings);
    // wesng's false positive (upstream issue #5): the July 2018 Alternate Cumulative OOB.
    assert!(a.finding(kb(4345421)).is_none());
    // ADV190005's KB4487029 has SubType "Update": out of scope, never a finding.
    assert!(a.finding(kb(4487029)).is_none());
    // WUA's own list has no CVRF security update either.
    assert!(
        wua_security_kbs("10_1803_x64_proforworkstations_en-us_A_20190305_updates.txt").is_empty()
    );
}

#[test]
fn machine_a_qfe_agrees_with_its_systeminfo() {
    let mut dev = device(A_SYSTEMINFO);
    let qfe = device("10_1803_x64_proforworkstations_en-us_A_20190305_qfe.txt");
    dev.merge_hotfixes(&qfe).expect("same host");
    let a = kbgap_engine::assess(
        archive_engine(),
        &kbgap_engine::Target::from_device(&dev),
        &kbgap_engine::Settings {
            as_of: Some(day(2019, 3, 5)),
        },
    );
    assert!(a.findings.is_empty(), "{:#?}", a.findings);
}

#[test]
fn machine_b_no_hotfixes_misses_february_lcu_and_flash() {
    let a = assess_fixture(B_SYSTEMINFO, Some(day(2019, 3, 6)));
    assert_eq!(finding_kbs(&a), [4487017, 4487038].into_iter().collect());
    // The WUA list agrees on every security KB it names.
    let wua = wua_security_kbs("10_1803_x64_proforworkstations_en-us_B_20190306_updates.txt");
    assert_eq!(wua, finding_kbs(&a));
    // The Dec 2018 Flash OOB KB4477029 is absorbed by February's Flash update (rule 4).
    match &a
        .dropped(kb(4477029))
        .expect("KB4477029 is a candidate")
        .reason
    {
        DropReason::IncludedInFinding { finding } => assert_eq!(*finding, kb(4487038)),
        other => panic!("KB4477029 dropped for {other:?}"),
    }
    // Nothing is listed and there is no revision: the answer says it is unsure.
    assert_eq!(a.confidence, Confidence::Low);
    let lcu = a.finding(kb(4487017)).unwrap();
    assert_eq!(lcu.name, "February 2019 Security Updates");
    assert!(lcu.products_names.starts_with(&["windows_10".to_owned()]));
}

#[test]
fn education_1809_fully_patched() {
    let a = assess_fixture(
        "10_1809_x64_education_en-us_20190306_systeminfo.txt",
        Some(day(2019, 3, 6)),
    );
    assert!(a.findings.is_empty(), "{:#?}", a.findings);
    // WUA only misses a .NET update that is not in CVRF.
    assert!(wua_security_kbs("10_1809_x64_education_en-us_20190306_updates.txt").is_empty());
}

#[test]
fn windows7_truncated_list_completed_by_qfe_misses_rollup_and_ie_cumulative() {
    let mut dev = device("7_sp1_x64_enterprise_en-us_20190305_systeminfo.txt");
    let qfe = device("7_sp1_x64_enterprise_en-us_20190305_qfe.txt");
    dev.merge_hotfixes(&qfe)
        .expect("qfe completes the truncated list");
    let a = kbgap_engine::assess(
        archive_engine(),
        &kbgap_engine::Target::from_device(&dev),
        &kbgap_engine::Settings {
            as_of: Some(day(2019, 3, 5)),
        },
    );
    assert_eq!(finding_kbs(&a), [4486474, 4486563].into_iter().collect());
    assert_eq!(a.finding(kb(4486563)).unwrap().cves.len(), 58);
    // IE's December OOB (what WUA names) is included in February's IE Cumulative update.
    let ie = a.finding(kb(4486474)).unwrap();
    assert!(ie.cves.iter().any(|c| c.as_str() == "CVE-2018-8653"));
    // Every security KB WUA lists that kbgap does not report is covered by a finding.
    let wua = wua_security_kbs("7_sp1_x64_enterprise_en-us_20190305_updates.txt");
    for k in wua.difference(&finding_kbs(&a)) {
        let d = a.dropped(kb(*k));
        assert!(
            matches!(
                d.map(|d| &d.reason),
                Some(DropReason::IncludedInFinding { .. })
            ) || d.is_none(),
            "WUA names KB{k}, kbgap says {d:?}"
        );
    }
}

#[test]
fn windows7_truncated_list_alone_is_low_confidence_but_same_kbs() {
    let a = assess_fixture(
        "7_sp1_x64_enterprise_en-us_20190305_systeminfo.txt",
        Some(day(2019, 3, 5)),
    );
    assert_eq!(a.confidence, Confidence::Low);
    assert!(a.notes.iter().any(|n| n.contains("truncated")));
    assert_eq!(finding_kbs(&a), [4486474, 4486563].into_iter().collect());
}

#[test]
fn server_2012r2_never_reports_the_preview_rollup() {
    let a = assess_fixture("srv_2012r2_u1_systeminfo.txt", Some(day(2019, 3, 31)));
    assert!(
        a.finding(kb(4489893)).is_none(),
        "the optional preview is not a security update"
    );
    // The March 2019 rollup is installed: no Windows finding remains.
    assert!(
        a.findings
            .iter()
            .all(|f| f.products_names == ["flash_player"]),
        "{:#?}",
        a.findings
    );
}

#[test]
fn every_systeminfo_fixture_assesses_against_the_full_archive() {
    let dir = kbgap_testdata::systeminfo_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("systeminfo"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 49);
    let mut mapped = 0;
    for n in &names {
        let a = assess_fixture(n, None);
        if !a.products.is_empty() {
            mapped += 1;
            // Findings carry the Defender fields.
            for f in &a.findings {
                assert!(!f.name.is_empty(), "{n}: KB{} has no name", f.kb);
                assert!(f.url.ends_with(&format!("KB{}", f.kb)), "{n}: {}", f.url);
                assert!(f.cve_addressed > 0);
            }
        } else {
            assert!(a.findings.is_empty());
            assert!(
                a.notes.iter().any(|x| x.contains("unmapped product")),
                "{n}: {:?}",
                a.notes
            );
        }
    }
    // XP (5) and Server 2003 (4) predate CVRF: 9 of 49 cannot map. (Vista SP2 is in CVRF until
    // 2017-Apr; older Vista service packs map to it with a note.)
    assert_eq!(mapped, 40);
}
