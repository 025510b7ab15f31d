//! The JSON form and the XML form of the same hand-written document parse to the same model.

use kbgap_catalog::{parse_document, read_head, RemediationKind, SourceFormat};
use kbgap_core::{Build, KbId, Severity};

const JSON: &[u8] = include_bytes!("data/cvrf-sample.json");
const XML: &[u8] = include_bytes!("data/cvrf-sample.xml");

#[test]
fn json_and_xml_give_the_same_document() {
    let (j, jf) = parse_document(JSON, "cvrf-sample.json").unwrap();
    let (x, xf) = parse_document(XML, "cvrf-sample.xml").unwrap();
    assert_eq!((jf, xf), (SourceFormat::Json, SourceFormat::Xml));
    assert_eq!(j.document, x.document);
    // Same oddities in both forms: junk supersedence token, unknown severity "None", broken CVE.
    let fields = |issues: &[kbgap_catalog::ParseIssue]| {
        let mut v: Vec<(bool, Option<String>)> =
            issues.iter().map(|i| (i.skipped, i.cve.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(fields(&j.issues), fields(&x.issues));
    assert_eq!(x.issues.len(), 3, "{:#?}", x.issues);
    assert!(x
        .issues
        .iter()
        .all(|i| i.document.as_ref().unwrap().as_str() == "2023-Feb"));
    assert!(x.issues.iter().all(|i| i.line.is_some()));
}

#[test]
fn sample_facts() {
    let (p, _) = parse_document(JSON, "cvrf-sample.json").unwrap();
    let d = &p.document;
    assert_eq!(d.id.as_str(), "2023-Feb");
    assert_eq!(d.title, "February 2023 Security Updates");
    assert_eq!(d.revision, "33");
    assert_eq!(d.products.len(), 3);
    assert_eq!(
        d.products[1].name,
        "Windows 10 Version 1809 for x64-based Systems"
    );
    assert_eq!(d.products[1].family.as_deref(), Some("Windows"));
    assert_eq!(d.products[2].family.as_deref(), Some("Browser"));
    assert_eq!(d.vulnerabilities.len(), 2);
    let v = &d.vulnerabilities[0];
    assert_eq!(v.cve.as_str(), "CVE-2023-21823");
    assert_eq!(v.tag.as_deref(), Some("Microsoft Graphics Component"));
    assert_eq!(v.cna.as_deref(), Some("Microsoft"));
    assert_eq!(v.cwe, vec!["CWE-20".to_string()]);
    assert_eq!(
        (v.exploited, v.publicly_disclosed),
        (Some(true), Some(false))
    );
    assert_eq!(v.affected.len(), 3);
    assert_eq!(v.severities.len(), 2);
    assert!(v
        .severities
        .iter()
        .all(|s| s.severity == Severity::Important));
    assert_eq!(v.cvss[0].temporal, Some(7.2));
    assert!(v.published < v.updated);
    let r = &v.remediations;
    assert_eq!(r.len(), 3);
    assert!(r[0].is_kb_fix());
    assert_eq!(r[0].fixed_build, Some(Build::new(10, 0, 17763, Some(4010))));
    assert_eq!(r[0].supersedes, vec![KbId::new(5022286)]);
    assert_eq!(r[0].restart_required.as_deref(), Some("Yes"));
    assert_eq!(r[1].kind, RemediationKind::KnownIssue);
    assert_eq!(r[1].kb, Some(KbId::new(5022840)));
    assert!(!r[1].is_kb_fix());
    assert_eq!(
        r[2].supersedes,
        vec![KbId::new(5018545), KbId::new(5021088), KbId::new(5022476)]
    );
    assert_eq!(r[2].fixed_build, None);
    assert_eq!(
        r[2].fixed_build_raw.as_deref(),
        Some("4.8.9334.0 and 4.8.4802.0")
    );
    assert_eq!(r[2].products[0].platform(), Some("11569"));
    let w = &d.vulnerabilities[1];
    assert_eq!(w.description.as_deref(), Some("<p>Word &amp; RTF.</p>"));
    assert_eq!(w.remediations[0].kind, RemediationKind::Workaround);
    assert_eq!(w.remediations[1].kb, None, "Click to Run is not a KB");
    assert_eq!(w.severities.len(), 1, "unknown word None dropped");
}

#[test]
fn head_matches_full_parse_in_both_forms() {
    for (bytes, name) in [(JSON, "j.json"), (XML, "x.xml")] {
        let h = read_head(bytes, name).unwrap();
        let (p, _) = parse_document(bytes, name).unwrap();
        assert_eq!(h, p.document.head());
        assert_eq!(h.revision, "33");
    }
}

#[test]
fn json_missing_id_names_the_path() {
    let text = std::str::from_utf8(JSON)
        .unwrap()
        .replace(r#""ID": {"Value": "2023-Feb"}, "#, "");
    let e = parse_document(text.as_bytes(), "broken.json").unwrap_err();
    assert!(
        e.message.contains("DocumentTracking.Identification.ID"),
        "{e}"
    );
    assert!(e.to_string().starts_with("broken.json"));
    let text = std::str::from_utf8(JSON).unwrap().replace(
        r#""CurrentReleaseDate": "2023-02-25T08:00:00Z""#,
        r#""CurrentReleaseDate": "soon""#,
    );
    let e = read_head(text.as_bytes(), "d.json").unwrap_err();
    assert!(
        e.message.contains("DocumentTracking.CurrentReleaseDate"),
        "{e}"
    );
}

#[test]
fn json_unknown_enum_integers_are_issues() {
    let text = std::str::from_utf8(JSON)
        .unwrap()
        .replace(r#""Type": 5,"#, r#""Type": 42,"#);
    let (p, _) = parse_document(text.as_bytes(), "odd.json").unwrap();
    let odd: Vec<_> = p
        .issues
        .iter()
        .filter(|i| i.field == "Remediations[].Type")
        .collect();
    assert_eq!(odd.len(), 1);
    assert_eq!(
        p.document.vulnerabilities[0].remediations[1].kind,
        RemediationKind::Other("42".into())
    );
}
