//! Input that is not a usable CVRF document fails with a positioned, one-line error, never a panic.

use kbgap_catalog::{parse_document, read_head};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(kbgap_testdata::msrc_fixture(name)).unwrap()
}

#[test]
fn truncated_xml_reports_line_and_column() {
    let full = fixture("cvrfDocument-2020-Mar.xml");
    let half = &full[..full.len() / 2];
    let e = parse_document(half, "half.xml").unwrap_err();
    assert!(e.line.unwrap() > 1000, "{e}");
    assert!(e.column.is_some());
    assert!(!e.to_string().contains('\n'));
    assert!(e.to_string().starts_with("half.xml:"), "{e}");
}

#[test]
fn wrong_namespace_is_not_cvrf() {
    let xml = br#"<?xml version="1.0"?><cvrf:cvrfdoc xmlns:cvrf="http://www.icasi.org/CVRF/schema/cvrf/1.2"><cvrf:DocumentTitle>x</cvrf:DocumentTitle></cvrf:cvrfdoc>"#;
    let e = parse_document(xml, "ns.xml").unwrap_err();
    assert!(e.message.contains("not a CVRF 1.1 document"), "{e}");
    assert_eq!(e.line, Some(1));
}

#[test]
fn other_xml_is_not_cvrf() {
    let e =
        parse_document(b"<html><body>Service Unavailable</body></html>", "503.html").unwrap_err();
    assert!(e.message.contains("not a CVRF 1.1 document"), "{e}");
    let e = read_head(b"<html/>", "503.html").unwrap_err();
    assert!(e.message.contains("not a CVRF 1.1 document"), "{e}");
}

#[test]
fn random_bytes_and_empty_input_fail() {
    let mut x: u32 = 0x1234_5678;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    assert!(parse_document(&noise, "noise.bin").is_err());
    let mut angled = noise.clone();
    angled[0] = b'<';
    let e = parse_document(&angled, "noise.xml").unwrap_err();
    assert!(e.line.is_some(), "{e}");
    assert!(parse_document(b"", "empty").is_err());
    assert!(parse_document(b"{not json", "bad.json")
        .unwrap_err()
        .line
        .is_some());
}

#[test]
fn missing_identity_is_fatal() {
    let xml = br#"<cvrf:cvrfdoc xmlns:cvrf="http://www.icasi.org/CVRF/schema/cvrf/1.1"><cvrf:DocumentTitle>x</cvrf:DocumentTitle></cvrf:cvrfdoc>"#;
    let e = parse_document(xml, "noid.xml").unwrap_err();
    assert!(
        e.message.contains("DocumentTracking/Identification/ID"),
        "{e}"
    );
}

#[test]
fn default_namespace_documents_parse() {
    // 2023-Dec is served with default namespaces instead of prefixes.
    let xml = br#"<cvrfdoc xmlns="http://www.icasi.org/CVRF/schema/cvrf/1.1"><DocumentTitle>T</DocumentTitle><DocumentTracking><Identification><ID>2023-Dec</ID></Identification><RevisionHistory><Revision><Number>1</Number><Date>2023-12-12T08:00:00</Date></Revision></RevisionHistory><InitialReleaseDate>2023-12-12T08:00:00</InitialReleaseDate><CurrentReleaseDate>2023-12-12T08:00:00</CurrentReleaseDate></DocumentTracking><Vulnerability xmlns="http://www.icasi.org/CVRF/schema/vuln/1.1"><CVE>CVE-2023-1234</CVE><RevisionHistory><Revision><Date xmlns="http://www.icasi.org/CVRF/schema/cvrf/1.1">2023-12-07T18:58:56</Date></Revision></RevisionHistory></Vulnerability></cvrfdoc>"#;
    let (p, _) = parse_document(xml, "dec.xml").unwrap();
    assert_eq!(p.document.vulnerabilities.len(), 1);
    assert!(p.document.vulnerabilities[0].published.is_some());
}
