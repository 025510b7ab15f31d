//! Every Windows product name in the four MSRC fixture documents either parses as a Windows OS,
//! is a compound "X on <Windows OS>", or is knowingly not an OS.

use std::collections::BTreeSet;

use kbgap_catalog::parse_document;
use kbgap_catalog::products::{normalized_name, parse_windows_product, split_on_platform};

/// Names starting with "Windows" that are applications or OS variants kbgap does not map.
const NOT_AN_OS: &[&str] = &[
    "Windows 10 Mobile",
    "Windows 10 Version 1607 for HoloLens",
    "Windows 10 Version 1809 for HoloLens",
    "Windows 10 Version 1903 for HoloLens",
    "Windows 10 Version 2004 for HoloLens",
    "Windows Admin Center",
    "Windows Defender Antimalware Platform",
    "Windows Malicious Software Removal Tool 32-bit",
    "Windows Malicious Software Removal Tool 64-bit",
    "Windows Server 2022 Azure Edition Core Hotpatch",
    "Windows Subsystem for Linux (WSL2)",
    "Windows Terminal for Windows 10",
    "Windows Terminal for Windows 11",
    "Windows Update Assistant",
];

#[test]
fn fixture_windows_names_are_covered() {
    let mut names = BTreeSet::new();
    for f in [
        "cvrfDocument-2020-Feb.xml",
        "cvrfDocument-2020-Mar.xml",
        "cvrfDocument-2020-Apr.xml",
        "cvrfDocument-2023-Feb.xml",
    ] {
        let bytes = std::fs::read(kbgap_testdata::msrc_fixture(f)).unwrap();
        let (p, _) = parse_document(&bytes, f).unwrap();
        for prod in p.document.products {
            let windows_family = matches!(prod.family.as_deref(), Some("Windows" | "ESU"));
            if windows_family || prod.name.starts_with("Windows") {
                names.insert(prod.name);
            }
        }
    }
    assert!(names.len() > 100, "{}", names.len());
    let mut os = 0;
    let mut unexplained = Vec::new();
    for n in &names {
        let ok = if let Some((_, platform)) = split_on_platform(n) {
            parse_windows_product(n).is_none() && parse_windows_product(platform).is_some()
        } else if parse_windows_product(n).is_some() {
            os += 1;
            true
        } else {
            NOT_AN_OS.iter().any(|k| k.eq_ignore_ascii_case(n)) || !n.starts_with("Windows")
        };
        if !ok {
            unexplained.push(n.clone());
        }
        assert!(normalized_name(n).is_some(), "{n}");
    }
    assert!(
        unexplained.is_empty(),
        "unexplained Windows names: {unexplained:#?}"
    );
    assert_eq!(os, 58, "distinct Windows OS names parsed");
}
