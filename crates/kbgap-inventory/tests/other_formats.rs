//! Hand-written inputs: ver banner, systeminfo CSV, Get-HotFix, osquery, kbgap JSON, bad inputs.

use kbgap_core::{Build, KbId};
use kbgap_inventory::{parse_any, Arch, FactField, HotfixListState, OsFamily, SourceFormat};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/").to_owned() + name).unwrap()
}

const SRV2022: &str = "Microsoft Windows [Version 10.0.20348.2527]\r\n(c) Microsoft Corporation. All rights reserved.\r\n\r\nC:\\Users\\Administrator>systeminfo\r\n\r\nHost Name:                 WIN-RIBN7SM07BK\r\nOS Name:                   Microsoft Windows Server 2022 Standard\r\nOS Version:                10.0.20348 N/A Build 20348\r\nOS Manufacturer:           Microsoft Corporation\r\nSystem Type:               x64-based PC\r\nProcessor(s):              1 Processor(s) Installed.\r\n                           [01]: Intel64 Family 6 Model 85 Stepping 7 GenuineIntel ~2594 Mhz\r\nHotfix(s):                 2 Hotfix(s) Installed.\r\n                           [01]: KB5039889\r\n                           [02]: KB5039227\r\nNetwork Card(s):           1 NIC(s) Installed.\r\n                           [01]: Microsoft Hyper-V Network Adapter\r\n";

#[test]
fn ver_banner_gives_the_revision() {
    let d = parse_any(SRV2022.as_bytes(), "srv.txt").unwrap();
    assert_eq!(d.os.build, Some(Build::new(10, 0, 20348, Some(2527))));
    assert_eq!(d.os.family, OsFamily::Server2022);
    assert_eq!(d.installed_kbs.len(), 2);
    let banner = d
        .facts
        .iter()
        .find(|f| f.field == FactField::VerBanner)
        .unwrap();
    assert_eq!(banner.line, Some(1));
}

#[test]
fn ver_banner_for_another_build_is_ignored_with_a_warning() {
    let t = SRV2022.replace("10.0.20348.2527", "10.0.19045.2604");
    let d = parse_any(t.as_bytes(), "srv.txt").unwrap();
    assert_eq!(d.os.build, Some(Build::new(10, 0, 20348, None)));
    assert!(d.warnings.iter().any(|w| w.message.contains("ver banner")));
}

#[test]
fn systeminfo_csv_form() {
    let csv = "\"Host Name\",\"OS Name\",\"OS Version\",\"OS Manufacturer\",\"System Type\",\"Processor(s)\",\"Hotfix(s)\",\"Network Card(s)\"\r\n\"DESKTOP-OOF6NB5\",\"Microsoft Windows 10 Pro for Workstations\",\"10.0.17134 N/A Build 17134\",\"Microsoft Corporation\",\"x64-based PC\",\"1 Processor(s) Installed.,[01]: Intel64 Family 6 Model 78 Stepping 3 GenuineIntel ~2496 Mhz\",\"4 Hotfix(s) Installed.,[01]: KB4462930,[02]: KB4485449,[03]: KB4487038,[04]: KB4487017\",\"1 NIC(s) Installed.,[01]: Intel(R) 82574L Gigabit Network Connection\"\r\n";
    let d = parse_any(csv.as_bytes(), "si.csv").unwrap();
    assert_eq!(d.source_format, SourceFormat::SysteminfoCsv);
    assert_eq!(d.host_name.as_deref(), Some("DESKTOP-OOF6NB5"));
    assert_eq!(d.os.release.as_deref(), Some("1803"));
    assert_eq!(d.hotfix_list, HotfixListState::Complete);
    let kbs: Vec<u32> = d.installed_kbs.iter().map(|k| k.kb.get()).collect();
    assert_eq!(kbs, vec![4462930, 4485449, 4487038, 4487017]);
}

#[test]
fn localised_csv_with_n_a() {
    let csv = "\"Nombre de host\",\"Nombre del sistema operativo\",\"Versión del sistema operativo\",\"Tipo de sistema\",\"Revisión(es)\"\r\n\"PC1\",\"Microsoft Windows 10 Education\",\"10.0.17763 N/D Compilación 17763\",\"x64-based PC\",\"N/D\"\r\n";
    let d = parse_any(csv.as_bytes(), "es.csv").unwrap();
    assert_eq!(d.hotfix_list, HotfixListState::None);
    assert_eq!(d.os.build.unwrap().build, 17763);
}

#[test]
fn unknown_language_falls_back_on_shapes() {
    // Labels in a language kbgap has no table for (Portuguese-like but altered).
    let t = "Nomi do host:     PC9\r\nNomi do SO:       Microsoft Windows 10 Pro\r\nVersao do SO:     10.0.19045 N/D Compilacao 19045\r\nTipu do sistema:  x64-based PC\r\nProcessadori:     1 processador(es) instalado(s).\r\n                  [01]: Intel64 Family 6 Model 158\r\nCorrecoes:        2 correcoes instaladas.\r\n                  [01]: KB5022502\r\n                  [02]: KB5022282\r\nPlacas de rede:   1 placa(s) de rede instalada(s).\r\n                  [01]: Intel(R) Ethernet\r\n";
    let d = parse_any(t.as_bytes(), "pt.txt").unwrap();
    assert_eq!(d.os.family, OsFamily::Windows10);
    assert_eq!(d.host_name.as_deref(), Some("PC9"));
    assert_eq!(d.os.architecture, Some(Arch::X64));
    assert_eq!(d.installed_kbs.len(), 2);
    assert_eq!(d.hotfix_list, HotfixListState::Complete);
}

#[test]
fn get_hotfix_csv_with_and_without_type_line() {
    let d = parse_any(&data("gethotfix_export.csv"), "gh.csv").unwrap();
    assert_eq!(d.source_format, SourceFormat::GetHotFixCsv);
    assert_eq!(d.host_name.as_deref(), Some("WIN11-LAB"));
    assert!(d.has_kb(KbId::new(5050094)) && d.has_kb(KbId::new(5050021)));
    assert_eq!(
        d.installed_kbs[0].installed_on.as_deref(),
        Some("1/14/2025 12:00:00 AM")
    );
    let d = parse_any(&data("gethotfix_notype.csv"), "gh2.csv").unwrap();
    assert_eq!(d.host_name.as_deref(), Some("SRV01"));
    assert_eq!(d.installed_kbs.len(), 1);
}

#[test]
fn get_hotfix_table() {
    let d = parse_any(&data("gethotfix_table.txt"), "gh.txt").unwrap();
    assert_eq!(d.source_format, SourceFormat::GetHotFixTable);
    assert_eq!(d.host_name.as_deref(), Some("SRV01"));
    assert_eq!(d.installed_kbs.len(), 2);
    assert_eq!(
        d.installed_kbs[1].installed_on.as_deref(),
        Some("1/10/2024 12:00:00 AM")
    );
}

#[test]
fn osquery_combined_document_gets_ubr_from_registry() {
    let d = parse_any(&data("osquery_combined.json"), "oq.json").unwrap();
    assert_eq!(d.source_format, SourceFormat::Osquery);
    assert_eq!(d.os.build, Some(Build::new(10, 0, 19045, Some(2604))));
    assert_eq!(d.os.family, OsFamily::Windows10);
    assert_eq!(d.os.release.as_deref(), Some("22H2"));
    assert_eq!(d.os.server_core, Some(false));
    assert_eq!(d.os.edition.as_deref(), Some("Enterprise"));
    assert_eq!(d.os.architecture, Some(Arch::X64));
    assert_eq!(d.host_name.as_deref(), Some("DESKTOP-92B51CV"));
    assert_eq!(d.installed_kbs.len(), 2);
    assert_eq!(d.software.len(), 1);
    assert_eq!(d.hotfix_list, HotfixListState::Complete);
}

#[test]
fn osquery_single_table_and_server_core() {
    let d = parse_any(&data("osquery_patches.json"), "p.json").unwrap();
    assert!(!d.has_os());
    assert_eq!(d.installed_kbs.len(), 2);
    let s = parse_any(&data("osquery_server_core.json"), "s.json").unwrap();
    assert_eq!(s.os.family, OsFamily::Server2022);
    assert_eq!(s.os.server_core, Some(true));
    assert_eq!(s.os.build.unwrap().revision, Some(2527));
    assert_eq!(s.hotfix_list, HotfixListState::Complete);
    assert!(s.installed_kbs.is_empty());
}

#[test]
fn kbgap_report_round_trip() {
    let d = parse_any(&data("kbgap_report.json"), "r.json").unwrap();
    assert_eq!(d.source_format, SourceFormat::KbgapReport);
    // ProductName says Windows 10; build 26100 makes it Windows 11 24H2.
    assert_eq!(d.os.family, OsFamily::Windows11);
    assert_eq!(d.os.release.as_deref(), Some("24H2"));
    assert_eq!(d.os.build, Some(Build::new(10, 0, 26100, Some(7623))));
    assert_eq!(d.os.server_core, Some(false));
    assert_eq!(
        d.machine_id.unwrap().to_string(),
        "2339ad14a01bd0299afb93dfa2550136057bff96"
    );
    assert_eq!(d.installed_kbs.len(), 2);
    assert_eq!(d.software[0].vendor.as_deref(), Some("Igor Pavlov"));
}

#[test]
fn kbgap_report_errors_name_the_path() {
    let bad = String::from_utf8(data("kbgap_report.json"))
        .unwrap()
        .replace(
            "\"machineId\": \"2339ad14a01bd0299afb93dfa2550136057bff96\"",
            "\"machineId\": \"xyz\"",
        );
    let e = parse_any(bad.as_bytes(), "r.json").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("r.json: $.machineId: expected 40 hex"),
        "{e}"
    );
    let bad = String::from_utf8(data("kbgap_report.json"))
        .unwrap()
        .replace("\"26100\"", "\"26100a\"");
    let e = parse_any(bad.as_bytes(), "r.json").unwrap_err();
    assert!(e.to_string().contains("$.os.currentBuild"), "{e}");
}

#[test]
fn binary_input_is_refused() {
    let mut b = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    b.extend((0u8..=255).cycle().take(2000));
    let e = parse_any(&b, "a.out").unwrap_err();
    assert!(e.to_string().starts_with("a.out: binary data"), "{e}");
}

#[test]
fn empty_inputs_are_refused() {
    let e = parse_any(b"", "empty.txt").unwrap_err();
    assert_eq!(e.line, None);
    assert!(e.message.contains("empty"), "{e}");
    let e = parse_any(b"  \r\n\r\n", "blank.txt").unwrap_err();
    assert!(e.message.contains("empty"), "{e}");
}

#[test]
fn truncated_systeminfo_names_the_missing_field() {
    let cut: String = SRV2022.lines().take(10).collect::<Vec<_>>().join("\r\n");
    let e = parse_any(cut.as_bytes(), "cut.txt").unwrap_err();
    assert_eq!(e.line, Some(10));
    assert!(e.message.contains("Hotfix(s)"), "{e}");
    assert!(
        e.to_string()
            .starts_with("cut.txt:10: systeminfo output is cut"),
        "{e}"
    );
    let cut: String = SRV2022.lines().take(7).collect::<Vec<_>>().join("\r\n");
    let e = parse_any(cut.as_bytes(), "cut2.txt").unwrap_err();
    assert!(e.message.contains("OS Version"), "{e}");
}

#[test]
fn unknown_text_is_refused_with_its_first_line() {
    let e = parse_any(b"hello world\nthis is not an inventory\n", "x.txt").unwrap_err();
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("unknown format"), "{e}");
    let e = parse_any(b"{\"foo\": 1}", "x.json").unwrap_err();
    assert!(e.message.contains("neither"), "{e}");
}
