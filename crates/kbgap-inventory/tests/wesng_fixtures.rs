//! Every file of the wesng-validation fixture set parses, with the specific facts the lead relies on.

use kbgap_core::KbId;
use kbgap_inventory::{parse_any, wua, Device, HotfixListState, OsFamily, SourceFormat};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/systeminfo/wesng-validation"
    ))
}

fn files(kind: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .expect("fixture dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt") && n.contains(kind))
        .collect();
    v.sort();
    v
}

fn load(name: &str) -> Device {
    let bytes = std::fs::read(dir().join(name)).expect("read fixture");
    parse_any(&bytes, name).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_systeminfo_fixture_parses_to_a_known_os() {
    let names = files("_systeminfo");
    assert_eq!(
        names.len(),
        49,
        "detection.md §6 promises 49 systeminfo files"
    );
    let mut summary = String::new();
    for n in &names {
        let d = load(n);
        assert_eq!(d.source_format, SourceFormat::Systeminfo, "{n}");
        assert_ne!(d.os.family, OsFamily::Unknown, "{n}: {}", d.summary_line());
        assert!(d.os.build.is_some(), "{n}");
        assert!(d.os.architecture.is_some(), "{n}");
        assert_ne!(d.hotfix_list, HotfixListState::Unknown, "{n}");
        summary.push_str(&format!("{n}: {}\n", d.summary_line()));
    }
    insta::assert_snapshot!("systeminfo_summaries", summary);
}

#[test]
fn every_qfe_fixture_parses_to_a_kb_list() {
    let names = files("_qfe");
    assert_eq!(names.len(), 15);
    let mut summary = String::new();
    for n in &names {
        let d = load(n);
        assert!(d.source_format.is_kb_list_only(), "{n}");
        assert!(!d.has_os(), "{n}");
        assert_eq!(d.hotfix_list, HotfixListState::Complete, "{n}");
        summary.push_str(&format!(
            "{n}: host={} kbs={} other={} encoding={}\n",
            d.host_name.as_deref().unwrap_or("-"),
            d.installed_kbs.len(),
            d.other_hotfixes.len(),
            d.facts[0].value
        ));
    }
    insta::assert_snapshot!("qfe_summaries", summary);
}

#[test]
fn every_wua_list_parses_and_is_not_a_device() {
    let names = files("_updates");
    assert_eq!(names.len(), 5);
    let mut summary = String::new();
    for n in &names {
        let bytes = std::fs::read(dir().join(n)).unwrap();
        let list = wua::parse(&bytes, n).unwrap_or_else(|e| panic!("{e}"));
        assert!(!list.is_empty(), "{n}");
        let err = parse_any(&bytes, n).unwrap_err();
        assert!(err.message.contains("Windows Update Agent"), "{err}");
        summary.push_str(&format!(
            "{n}: {} lines, first KB{} {:?}\n",
            list.len(),
            list[0].kb,
            list[0].title.chars().take(40).collect::<String>()
        ));
    }
    insta::assert_snapshot!("wua_summaries", summary);
    let a = wua::parse(
        &std::fs::read(dir().join("10_1803_x64_proforworkstations_en-us_A_20190305_updates.txt"))
            .unwrap(),
        "A",
    )
    .unwrap();
    let kbs: Vec<KbId> = a.iter().map(|u| u.kb).collect();
    assert_eq!(kbs, vec![KbId::new(4100347), KbId::new(2267602)]);
}

fn kbs(d: &Device) -> Vec<u32> {
    d.installed_kbs.iter().map(|k| k.kb.get()).collect()
}

#[test]
fn pair_a_utf16_systeminfo_and_qfe_agree() {
    let d = load("10_1803_x64_proforworkstations_en-us_A_20190305_systeminfo.txt");
    assert_eq!(kbs(&d), vec![4462930, 4485449, 4487038, 4487017]);
    assert_eq!(d.hotfix_list, HotfixListState::Complete);
    assert_eq!(d.os.family, OsFamily::Windows10);
    assert_eq!(d.os.release.as_deref(), Some("1803"));
    assert_eq!(d.host_name.as_deref(), Some("DESKTOP-OOF6NB5"));
    let q = load("10_1803_x64_proforworkstations_en-us_A_20190305_qfe.txt");
    assert_eq!(q.kbs(), d.kbs());
}

#[test]
fn pair_b_has_no_hotfixes() {
    let d = load("10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt");
    assert_eq!(d.hotfix_list, HotfixListState::None);
    assert!(d.installed_kbs.is_empty());
    let q = load("10_1803_x64_proforworkstations_en-us_B_20190306_qfe.txt");
    assert!(q.installed_kbs.is_empty());
}

#[test]
fn truncated_lists_are_flagged() {
    let d = load("7_sp1_x64_enterprise_en-us_20190305_systeminfo.txt");
    assert_eq!(
        d.hotfix_list,
        HotfixListState::Truncated {
            declared: 273,
            listed: 245
        }
    );
    assert!(d.has_kb(KbId::new(3127220)));
    let de = load("7_sp1_x64_ultimaten_de_systeminfo.txt");
    assert_eq!(
        de.hotfix_list,
        HotfixListState::Truncated {
            declared: 263,
            listed: 245
        }
    );
    let s = load("srv_2003r2_sp2_x86_standard_en-us_systeminfo.txt");
    assert_eq!(
        s.hotfix_list,
        HotfixListState::Truncated {
            declared: 352,
            listed: 240
        }
    );
    assert!(!s
        .installed_kbs
        .iter()
        .any(|k| k.raw.starts_with("KB2862") && k.raw.len() == 6));
    assert!(s.has_kb(KbId::new(2862152)));
    assert!(!s.has_kb(KbId::new(2862)));
    let cut = s.other_hotfixes.last().unwrap();
    assert_eq!(cut.raw, "KB2862");
    assert_eq!(cut.kind, kbgap_inventory::OtherHotfixKind::Cut);
}

#[test]
fn merging_qfe_completes_a_truncated_list() {
    let mut d = load("7_sp1_x64_enterprise_en-us_B_systeminfo.txt");
    let q = load("7_sp1_x64_enterprise_en-us_B_qfe.txt");
    assert_eq!(q.host_name.as_deref(), Some("WIN7SP1X64"));
    let before = d.installed_kbs.len();
    let added = d.merge_hotfixes(&q).unwrap();
    assert!(added > 0);
    assert_eq!(d.installed_kbs.len(), before + added);
    assert_eq!(d.hotfix_list, HotfixListState::Complete);
    assert_eq!(d.os.family, OsFamily::Windows7);
    let other = load("srv_2012r2_x64_standard_ru_qfe.txt");
    let e = d.merge_hotfixes(&other).unwrap_err();
    assert!(e.to_string().contains("DC"), "{e}");
}

#[test]
fn localised_files_get_their_builds() {
    let zh = load("10_1809_x64_enterprise_zh-cn_systeminfo.txt");
    assert_eq!(zh.os.build.unwrap().build, 17763);
    assert_eq!(zh.os.family, OsFamily::Windows10);
    assert_eq!(zh.host_name.as_deref(), Some("DESKTOP-0CQH3P2"));
    assert_eq!(kbs(&zh), vec![4464455]);
    assert!(
        zh.summary_line().contains("encoding=gbk"),
        "{}",
        zh.summary_line()
    );
    let ru = load("srv_2012r2_x64_standard_ru_systeminfo.txt");
    assert_eq!(ru.os.build.unwrap().build, 9600);
    assert_eq!(ru.os.family, OsFamily::Server2012R2);
    assert_eq!(ru.installed_kbs.len(), 7);
    let es = load("10_1809_x64_education_es_systeminfo.txt");
    assert_eq!(es.os.build.unwrap().build, 17763);
    assert!(es.summary_line().contains("encoding=cp850"));
    assert_eq!(es.installed_kbs.len(), 9);
    let fr = load("7_sp1_x64_enterprise_fr_systeminfo_cmd.txt");
    assert_eq!(fr.os.family, OsFamily::Windows7);
    assert_eq!(fr.os.service_pack, Some(1));
    assert_eq!(fr.os.edition.as_deref(), Some("Entreprise N"));
    assert_eq!(fr.installed_kbs.len(), 73);
    let it = load("10_1803_x64_pro_it_systeminfo.txt");
    assert_eq!(it.installed_kbs.len(), 10);
}

#[test]
fn modern_builds_and_families() {
    let s = load("srv_2022_systeminfo.txt");
    assert_eq!(s.os.family, OsFamily::Server2022);
    assert_eq!(s.os.build.unwrap().build, 20348);
    assert_eq!(s.os.server_core, None);
    let w = load("11_24H2_x64_enterprise_systeminfo.txt");
    assert_eq!(w.os.family, OsFamily::Windows11);
    assert_eq!(w.os.release.as_deref(), Some("24H2"));
    assert_eq!(w.os.build.unwrap().build, 26100);
    let w10 = load("10_22H2_x64_enterprise_en-us_systeminfo.txt");
    assert_eq!(kbs(&w10), vec![5022502]);
    assert_eq!(w10.os.release.as_deref(), Some("22H2"));
    let s8 = load("srv_2008_rtm_x64_standard_en-us_systeminfo.txt");
    assert_eq!(s8.os.family, OsFamily::Server2008);
    let xp64 = load("xp_sp2_x64_systeminfo.txt");
    assert_eq!(xp64.os.family, OsFamily::WindowsXp);
}

#[test]
fn xp_qfe_reads_kbs_from_service_pack_column() {
    let d = load("xp_rtm_x86_professional_en-us_qfe.txt");
    assert_eq!(d.host_name.as_deref(), Some("WINXPSP0"));
    assert_eq!(kbs(&d), vec![893803]);
    assert_eq!(d.other_hotfixes.len(), 1, "{:?}", d.other_hotfixes);
    let mixed = load("xp_sp2_x86_qfe.txt");
    assert!(mixed.summary_line().contains("encoding=ascii+utf-16le"));
    assert_eq!(mixed.host_name.as_deref(), Some("WINXPSP2"));
}
