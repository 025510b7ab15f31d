//! Facts from the real MSRC documents in the shared fixtures (2020-Mar, 2023-Feb).

use std::collections::BTreeSet;

use kbgap_catalog::products::normalized_name;
use kbgap_catalog::{parse_document, read_head, Document, ParsedDocument, RemediationKind};
use kbgap_core::{Build, KbId};

fn parse(name: &str) -> ParsedDocument {
    let path = kbgap_testdata::msrc_fixture(name);
    let bytes = std::fs::read(&path).unwrap();
    parse_document(&bytes, &path.display().to_string())
        .unwrap()
        .0
}

fn rows(d: &Document, kb: u32, kind: RemediationKind) -> Vec<(&str, &kbgap_catalog::Remediation)> {
    d.vulnerabilities
        .iter()
        .flat_map(|v| v.remediations.iter().map(move |r| (v.cve.as_str(), r)))
        .filter(|(_, r)| r.kb == Some(KbId::new(kb)) && r.kind == kind)
        .collect()
}

#[test]
fn march_2020_kb4540673() {
    let p = parse("cvrfDocument-2020-Mar.xml");
    let d = &p.document;
    assert_eq!(d.id.as_str(), "2020-Mar");
    assert_eq!(d.title, "March 2020 Security Updates");
    assert_eq!(d.revision, "11");
    assert_eq!(d.vulnerabilities.len(), 118);
    assert_eq!(d.products.len(), 145);

    let fixes = rows(d, 4540673, RemediationKind::VendorFix);
    let cves: BTreeSet<&str> = fixes.iter().map(|(c, _)| *c).collect();
    assert_eq!(cves.len(), 94);
    for (_, r) in &fixes {
        assert_eq!(r.supersedes, vec![KbId::new(4532693)]);
        assert_eq!(
            r.url.as_deref(),
            Some("https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB4540673")
        );
        assert!(r.is_kb_fix());
    }
    let names: BTreeSet<String> = fixes
        .iter()
        .flat_map(|(_, r)| r.products.iter())
        .map(|id| {
            let p = d
                .products
                .iter()
                .find(|p| &p.id == id)
                .expect("product in tree");
            normalized_name(&p.name).unwrap().name
        })
        .collect();
    let want: BTreeSet<String> = ["windows_10", "edge", "internet_explorer"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, want);

    let known = rows(d, 4540673, RemediationKind::KnownIssue);
    let known_cves: BTreeSet<&str> = known.iter().map(|(c, _)| *c).collect();
    assert_eq!(known_cves.len(), 94);
    assert!(known
        .iter()
        .all(|(_, r)| !r.is_kb_fix() && r.supersedes.is_empty()));

    // Spot check from detection.md: CVE-2020-0684.
    let v = d
        .vulnerabilities
        .iter()
        .find(|v| v.cve.as_str() == "CVE-2020-0684")
        .unwrap();
    let r = v
        .remediations
        .iter()
        .find(|r| r.is_kb_fix() && r.kb == Some(KbId::new(4540673)))
        .unwrap();
    assert_eq!(r.sub_type.as_deref(), Some("Security Update"));
    assert_eq!(r.restart_required.as_deref(), Some("Yes"));
    assert_eq!(r.fixed_build, None);
    let ids: Vec<&str> = r.products.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        ids,
        ["11644", "11645", "11646", "11647", "11712", "11713", "11714", "11715"]
    );
    // Product tree: family recorded, duplicates removed, compound ids kept.
    let prod = d
        .products
        .iter()
        .find(|p| p.id.as_str() == "11713")
        .unwrap();
    assert_eq!(prod.name, "Windows 10 Version 1909 for x64-based Systems");
    assert_eq!(prod.family.as_deref(), Some("Windows"));
    assert!(d.products.iter().any(|p| p.id.as_str() == "10486-11713"));
    // Counts from detection.md §1.3.
    let all: Vec<_> = d
        .vulnerabilities
        .iter()
        .flat_map(|v| &v.remediations)
        .collect();
    let vf = all.iter().filter(|r| r.kind == RemediationKind::VendorFix);
    assert_eq!(vf.clone().filter(|r| r.kb.is_some()).count(), 915);
    assert_eq!(vf.filter(|r| r.kb.is_none()).count(), 32);
    assert_eq!(
        all.iter()
            .filter(|r| r.kind == RemediationKind::KnownIssue)
            .count(),
        617
    );
    assert_eq!(
        all.iter().filter(|r| r.supersedence_raw.is_some()).count(),
        744
    );
    assert!(d.vulnerabilities.iter().all(|v| v.exploited.is_some()));
    assert!(p_issues_have_context(&p));
}

fn p_issues_have_context(p: &ParsedDocument) -> bool {
    p.issues
        .iter()
        .all(|i| i.document.is_some() && i.line.is_some() && !i.field.is_empty())
}

#[test]
fn february_2023_fixed_builds_and_supersedence() {
    let p = parse("cvrfDocument-2023-Feb.xml");
    let d = &p.document;
    assert_eq!(d.revision, "33");
    assert_eq!(d.vulnerabilities.len(), 111);
    let builds: BTreeSet<Build> = rows(d, 5022834, RemediationKind::VendorFix)
        .iter()
        .filter_map(|(_, r)| r.fixed_build)
        .collect();
    let want: BTreeSet<Build> = ["10.0.19042.2604", "10.0.19044.2604", "10.0.19045.2604"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(builds, want);
    assert!(rows(d, 5022834, RemediationKind::VendorFix)
        .iter()
        .all(|(_, r)| r.supersedes == vec![KbId::new(5022282)]));

    let all: Vec<_> = d
        .vulnerabilities
        .iter()
        .flat_map(|v| &v.remediations)
        .collect();
    let multi = all.iter().filter(|r| r.supersedes.len() > 1).count();
    assert_eq!(multi, 50);
    let junk: Vec<_> = p
        .issues
        .iter()
        .filter(|i| i.field == "Remediation/Supercedence")
        .collect();
    assert_eq!(junk.len(), 2, "{junk:#?}");
    for i in &junk {
        assert_eq!(i.document.as_ref().unwrap().as_str(), "2023-Feb");
        assert!(i.cve.as_deref().unwrap().starts_with("CVE-"));
        assert!(i.line.unwrap() > 1);
        assert!(!i.skipped);
    }
    // File-version and non-build FixedBuilds.
    assert!(rows(d, 5022899, RemediationKind::VendorFix)
        .iter()
        .all(|(_, r)| r.fixed_build_raw.as_deref() == Some("6.3.9600.20821")));
    assert_eq!(
        all.iter().filter(|r| r.fixed_build_raw.is_some()).count(),
        833
    );
    assert!(all
        .iter()
        .filter(|r| r.fixed_build.is_none())
        .filter_map(|r| r.fixed_build_raw.as_deref())
        .all(|t| t.parse::<Build>().is_err()));
    let v = d
        .vulnerabilities
        .iter()
        .find(|v| v.cve.as_str() == "CVE-2023-21823")
        .unwrap();
    assert_eq!(v.exploited, Some(true));
    assert!(v.published.is_some() && v.updated >= v.published);
}

#[test]
fn read_head_agrees_and_stops_early() {
    for name in [
        "cvrfDocument-2020-Feb.xml",
        "cvrfDocument-2020-Mar.xml",
        "cvrfDocument-2020-Apr.xml",
        "cvrfDocument-2023-Feb.xml",
    ] {
        let bytes = std::fs::read(kbgap_testdata::msrc_fixture(name)).unwrap();
        let head = read_head(&bytes, name).unwrap();
        assert_eq!(head, parse(name).document.head());
        // Stops at DocumentTracking: a document cut right after it still has a head.
        let text = std::str::from_utf8(&bytes).unwrap();
        let cut = text.find("</cvrf:DocumentTracking>").unwrap() + 30;
        assert_eq!(read_head(&bytes[..cut], name).unwrap(), head);
    }
}

#[test]
fn model_round_trips_through_serde() {
    let p = parse("cvrfDocument-2023-Feb.xml");
    let json = serde_json::to_string(&p).unwrap();
    let back: ParsedDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}
