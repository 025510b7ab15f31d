//! Every document of the 2016-2026 MSRC archive parses; issue counts per field are pinned.

use std::collections::BTreeMap;

use kbgap_catalog::parse_document;

#[test]
fn every_archive_document_parses() {
    let docs = kbgap_testdata::archive_documents();
    assert_eq!(docs.len(), 127);
    let mut by_field: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    let mut vulns = 0;
    for path in &docs {
        let bytes = std::fs::read(path).unwrap();
        let (p, _) =
            parse_document(&bytes, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ids.insert(p.document.id.clone()),
            "duplicate id {}",
            p.document.id
        );
        vulns += p.document.vulnerabilities.len();
        for i in &p.issues {
            assert_eq!(i.document.as_ref(), Some(&p.document.id));
            assert!(i.line.is_some(), "{i:?}");
            *by_field
                .entry(format!("{} skipped={}", i.field, i.skipped))
                .or_default() += 1;
        }
    }
    // 13,774 Vulnerability elements (51 of them in 2023-Dec's default-namespace form) minus the
    // one whose CVE reads "CVE-2024-21626M".
    assert_eq!(vulns, 13_773);
    insta::assert_json_snapshot!("archive_issue_counts_by_field", by_field);
}
