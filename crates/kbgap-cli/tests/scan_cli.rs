//! End-to-end tests of `kbgap scan` and `kbgap explain` over the real archive and device fixtures.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A database holding the whole archive, imported once per test binary.
fn archive_db() -> &'static Path {
    static DB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("archive.db");
        let archive = kbgap_testdata::archive_dir();
        let o = kbgap(&db, &["catalog", "import", archive.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (dir, db)
    })
    .1
}

fn kbgap(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("KBGAP_DB")
        .output()
        .expect("kbgap runs")
}

fn fixture(name: &str) -> String {
    kbgap_testdata::systeminfo_dir()
        .join(name)
        .to_string_lossy()
        .into_owned()
}

const B: &str = "10_1803_x64_proforworkstations_en-us_B_20190306_systeminfo.txt";
const A: &str = "10_1803_x64_proforworkstations_en-us_A_20190305_systeminfo.txt";

#[test]
fn scan_every_systeminfo_fixture_as_json() {
    let mut files: Vec<String> = std::fs::read_dir(kbgap_testdata::systeminfo_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains("systeminfo")
        })
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut args = vec!["scan", "--json"];
    args.extend(files.iter().map(String::as_str));
    let o = kbgap(archive_db(), &args);
    assert_eq!(o.status.code(), Some(1), "missing updates found => exit 1");
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let devices = out.as_array().unwrap();
    assert_eq!(devices.len(), 49);
    let defender = [
        "id",
        "name",
        "productsNames",
        "url",
        "machineMissedOn",
        "cveAddressed",
    ];
    let mut total = 0;
    for d in devices {
        assert!(d.get("error").is_none(), "{d}");
        for fix in d["value"].as_array().unwrap() {
            total += 1;
            let keys: Vec<&str> = fix
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(&keys[..6], &defender, "Defender fields first, in order");
            assert!(fix["id"]
                .as_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit()));
            assert!(fix["machineMissedOn"].as_u64().unwrap() >= 1);
            assert!(fix["cveAddressed"].as_u64().unwrap() >= 1);
            assert!(fix["productsNames"].is_array());
        }
    }
    assert!(total > 20);
}

#[test]
fn machine_missed_on_counts_scanned_devices() {
    // Two captures of the same kind of host, both missing February 2019's LCU as of that date.
    let o = kbgap(
        archive_db(),
        &[
            "scan",
            "--json",
            "--as-of",
            "2019-03-06",
            &fixture(B),
            &fixture("10_1803_x64_proforworkstations_en-us_systeminfo.txt"),
        ],
    );
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    for d in out.as_array().unwrap() {
        for fix in d["value"].as_array().unwrap() {
            if fix["id"] == "4487017" {
                assert_eq!(fix["machineMissedOn"], 2);
                assert_eq!(fix["name"], "February 2019 Security Updates");
            }
        }
    }
}

#[test]
fn exit_codes_distinguish_clean_missing_and_error() {
    let clean = kbgap(
        archive_db(),
        &["scan", "--as-of", "2019-03-05", &fixture(A)],
    );
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    assert!(String::from_utf8_lossy(&clean.stdout).contains("nothing missing"));
    let missing = kbgap(
        archive_db(),
        &["scan", "--as-of", "2019-03-06", &fixture(B)],
    );
    assert_eq!(missing.status.code(), Some(1));
    let table = String::from_utf8_lossy(&missing.stdout).into_owned();
    assert!(
        table.contains("KB4487017") && table.contains("KB4487038"),
        "{table}"
    );
    let csv = kbgap(
        archive_db(),
        &["scan", "--csv", "--as-of", "2019-03-06", &fixture(B)],
    );
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(
        csv.starts_with("source,hostName,id,name,productsNames,url,machineMissedOn,cveAddressed")
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[test]
fn bad_device_files_are_reported_and_the_rest_still_scanned() {
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("binary.txt");
    std::fs::write(&binary, [0u8, 159, 146, 150, 0, 1, 2, 3, 255, 254, 0, 0, 7]).unwrap();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let cut = tmp.path().join("cut_systeminfo.txt");
    let full = std::fs::read_to_string(fixture("srv_2022_systeminfo.txt")).unwrap();
    std::fs::write(&cut, &full[..full.find("OS Version").unwrap() + 3]).unwrap();
    let o = kbgap(
        archive_db(),
        &[
            "scan",
            "--json",
            binary.to_str().unwrap(),
            empty.to_str().unwrap(),
            cut.to_str().unwrap(),
            &fixture(B),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "some files failed => exit 2");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for name in ["binary.txt", "empty.txt", "cut_systeminfo.txt"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("error: ") && l.contains(name)),
            "{name}: {err}"
        );
    }
    assert!(!err.contains("panicked"));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let scanned: Vec<&Value> = out
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d.get("value").is_some())
        .collect();
    assert_eq!(scanned.len(), 1, "the good file is still scanned");
}

#[test]
fn explain_shows_the_evidence_for_kb4487017_on_machine_b() {
    let o = kbgap(
        archive_db(),
        &["explain", "--as-of", "2019-03-06", &fixture(B), "KB4487017"],
    );
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("KB4487017 is MISSING: February 2019 Security Updates"),
        "{text}"
    );
    assert!(
        text.contains("Windows 10 Version 1803 for x64-based Systems"),
        "{text}"
    );
    assert!(
        text.contains("the device lists no installed updates"),
        "{text}"
    );
    // A dropped candidate gets its reason.
    let o = kbgap(
        archive_db(),
        &["explain", "--as-of", "2019-03-06", &fixture(B), "KB4477029"],
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("KB4477029 is not reported: included in KB4487038"),
        "{text}"
    );
    // And the wesng false positive on machine A.
    let o = kbgap(
        archive_db(),
        &["explain", "--as-of", "2019-03-05", &fixture(A), "4345421"],
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("KB4345421 is not reported: covered by installed KB"),
        "{text}"
    );
}
