//! End-to-end tests of `kbgap catalog ...`: the real binary, a real SQLite file, real MSRC documents.

use kbgap_testdata::http::{Reply, TestServer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kbgap(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("KBGAP_DB")
        .env_remove("RUST_LOG")
        .output()
        .expect("kbgap runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn msrc_dir() -> PathBuf {
    kbgap_testdata::fixtures_dir().join("msrc")
}

fn show_json(db: &Path, kb: &str) -> Value {
    let o = kbgap(db, &["catalog", "show", kb, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("show --json is JSON")
}

fn stats_json(db: &Path) -> Value {
    let o = kbgap(db, &["catalog", "stats", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("stats --json is JSON")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn import_fixtures_then_show_the_defender_example_kb() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let o = kbgap(&db, &["catalog", "import", msrc_dir().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("4 added, 0 replaced, 0 unchanged"),
        "{}",
        stdout(&o)
    );

    let kb = show_json(&db, "4540673");
    assert_eq!(kb["kb"], "4540673");
    assert_eq!(kb["name"], "March 2020 Security Updates");
    assert_eq!(
        strings(&kb["products_names"]),
        ["windows_10", "edge", "internet_explorer"]
    );
    assert_eq!(kb["cve_count"], 94);
    assert_eq!(strings(&kb["supersedes"]), ["4532693"]);
    // With Feb, Mar and Apr imported: April's LCU and the March OOB both supersede it.
    assert_eq!(strings(&kb["superseded_by"]), ["4549951", "4551762"]);
    assert_eq!(
        kb["url"],
        "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB4540673"
    );
    assert_eq!(kb["release_date"], "2020-03-10T07:00:00Z");

    let feb23 = show_json(&db, "KB5022834");
    assert_eq!(
        strings(&feb23["fixed_builds"]),
        ["10.0.19042.2604", "10.0.19044.2604", "10.0.19045.2604"]
    );

    // The readable form says the same.
    let o = kbgap(&db, &["catalog", "show", "4540673"]);
    let text = stdout(&o);
    assert!(
        text.contains("KB4540673  March 2020 Security Updates"),
        "{text}"
    );
    assert!(
        text.contains("superseded by KB4549951, KB4551762"),
        "{text}"
    );

    let s = stats_json(&db);
    assert_eq!(s["documents"], 4);
    assert_eq!(s["first_release"], "2020-02-11T08:00:00Z");
}

#[test]
fn reimport_is_a_noop_and_unknown_kb_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let dir = msrc_dir();
    assert!(kbgap(&db, &["catalog", "import", dir.to_str().unwrap()])
        .status
        .success());
    let o = kbgap(&db, &["catalog", "import", dir.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(
        stdout(&o).starts_with("0 added, 0 replaced, 4 unchanged"),
        "{}",
        stdout(&o)
    );
    let o = kbgap(&db, &["catalog", "show", "1234567"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("KB1234567 is not in the catalog"),
        "{}",
        stderr(&o)
    );
    let o = kbgap(&db, &["catalog", "show", "not-a-kb"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Bad input: each case is a one-line error naming the file and position, a non-zero exit, and
/// the stored catalog exactly as it was.
#[test]
fn bad_inputs_fail_cleanly_and_leave_the_catalog_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let mar = msrc_dir().join("cvrfDocument-2020-Mar.xml");
    assert!(kbgap(&db, &["catalog", "import", mar.to_str().unwrap()])
        .status
        .success());
    let before = stats_json(&db);

    let bytes = std::fs::read(msrc_dir().join("cvrfDocument-2020-Apr.xml")).unwrap();
    let truncated = tmp.path().join("truncated.xml");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let wrong_ns = tmp.path().join("wrong-ns.xml");
    std::fs::write(
        &wrong_ns,
        br#"<?xml version="1.0"?><cvrf:cvrfdoc xmlns:cvrf="http://example.com/not-cvrf"><cvrf:DocumentTitle>x</cvrf:DocumentTitle></cvrf:cvrfdoc>"#,
    )
    .unwrap();
    let not_cvrf = tmp.path().join("page.xml");
    std::fs::write(&not_cvrf, b"<html><body>Service unavailable</body></html>").unwrap();
    let json_missing = tmp.path().join("missing.json");
    std::fs::write(
        &json_missing,
        br#"{"DocumentTitle": {"Value": "x"}, "Vulnerability": []}"#,
    )
    .unwrap();
    let empty_dir = tmp.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();

    for (path, must_mention) in [
        (&truncated, "truncated.xml:"),
        (&wrong_ns, "wrong-ns.xml"),
        (&not_cvrf, "page.xml"),
        (&json_missing, "missing.json"),
        (&empty_dir, "no CVRF documents"),
    ] {
        // A good file in the same run is not imported either: all or nothing by default.
        let good = msrc_dir().join("cvrfDocument-2023-Feb.xml");
        let o = kbgap(
            &db,
            &[
                "catalog",
                "import",
                good.to_str().unwrap(),
                path.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{}", path.display());
        let err = stderr(&o);
        assert!(err.contains(must_mention), "{}: {err}", path.display());
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(stats_json(&db), before, "{}", path.display());
    }
    // The truncated file's error carries line and column.
    let o = kbgap(&db, &["catalog", "import", truncated.to_str().unwrap()]);
    let err = stderr(&o);
    let line = err.lines().find(|l| l.contains("truncated.xml:")).unwrap();
    let pos = line.split("truncated.xml:").nth(1).unwrap();
    assert!(
        pos.split(':')
            .take(2)
            .all(|n| n.trim().parse::<u64>().is_ok()),
        "{line}"
    );

    // --keep-going imports the good ones and still exits non-zero.
    let good = msrc_dir().join("cvrfDocument-2023-Feb.xml");
    let o = kbgap(
        &db,
        &[
            "catalog",
            "import",
            "--keep-going",
            good.to_str().unwrap(),
            truncated.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stats_json(&db)["documents"], 2);
}

#[test]
fn sync_from_a_local_mirror_fetches_only_what_is_new() {
    let list = r#"{"@odata.context": "https://api.msrc.microsoft.com/cvrf/v3.0/$metadata#updates", "value": [
        {"ID": "2020-Feb", "Alias": "2020-Feb", "DocumentTitle": "February 2020 Security Updates", "Severity": null,
         "InitialReleaseDate": "2020-02-11T08:00:00Z", "CurrentReleaseDate": "2020-09-22T07:00:00Z",
         "CvrfUrl": "https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2020-Feb"},
        {"ID": "2020-Mar", "Alias": "2020-Mar", "DocumentTitle": "March 2020 Security Updates", "Severity": null,
         "InitialReleaseDate": "2020-03-10T07:00:00Z", "CurrentReleaseDate": "2020-04-01T07:00:00Z",
         "CvrfUrl": "https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2020-Mar"}]}"#;
    let server = TestServer::start(move |req, _| match req.path.as_str() {
        "/cvrf/v3.0/updates" => Reply::new(200, list),
        "/cvrf/v3.0/cvrf/2020-Feb" => Reply::new(
            200,
            std::fs::read(msrc_dir().join("cvrfDocument-2020-Feb.xml")).unwrap(),
        ),
        "/cvrf/v3.0/cvrf/2020-Mar" => Reply::new(
            200,
            std::fs::read(msrc_dir().join("cvrfDocument-2020-Mar.xml")).unwrap(),
        ),
        _ => Reply::new(404, "not found"),
    });
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let base = server.base_url();
    let o = kbgap(
        &db,
        &["catalog", "sync", "--base-url", &base, "--from", "2020-Mar"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        server.hits("/cvrf/v3.0/cvrf/2020-Feb"),
        0,
        "--from skips February"
    );
    assert_eq!(stats_json(&db)["documents"], 1);
    let o = kbgap(&db, &["catalog", "sync", "--base-url", &base]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stats_json(&db)["documents"], 2);
    // Nothing new: no document is fetched again.
    let o = kbgap(&db, &["catalog", "sync", "--base-url", &base]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.hits("/cvrf/v3.0/cvrf/2020-Mar"), 1);
    assert_eq!(server.hits("/cvrf/v3.0/cvrf/2020-Feb"), 1);
    assert_eq!(
        show_json(&db, "4540673")["name"],
        "March 2020 Security Updates"
    );
}

#[test]
fn sync_against_a_failing_or_unreachable_api_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let mar = msrc_dir().join("cvrfDocument-2020-Mar.xml");
    assert!(kbgap(&db, &["catalog", "import", mar.to_str().unwrap()])
        .status
        .success());
    let before = stats_json(&db);

    let server = TestServer::start(|_, _| Reply::new(500, "internal error"));
    let o = kbgap(
        &db,
        &[
            "catalog",
            "sync",
            "--base-url",
            &server.base_url(),
            "--retries",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("/cvrf/v3.0/updates") && err.contains("500"),
        "{err}"
    );
    assert_eq!(stats_json(&db), before);

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = kbgap(
        &db,
        &["catalog", "sync", "--base-url", &url, "--retries", "0"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("cannot reach") && err.contains(&url), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(stats_json(&db), before);
}

/// Every document of the 127-month archive imports with zero fatal errors; oddities are counted.
#[test]
fn the_whole_archive_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let dir = kbgap_testdata::archive_dir();
    let o = kbgap(&db, &["catalog", "import", "--json", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["added"].as_array().unwrap().len(), 127);
    assert!(report["failed"].as_array().unwrap().is_empty());
    // The one skipped entry names document, CVE and field.
    let skipped = report["skipped_entries"].as_array().unwrap();
    assert!(skipped
        .iter()
        .all(|s| s["document"].is_string() && s["field"].is_string()));
    let s = stats_json(&db);
    assert_eq!(s["documents"], 127);
    assert_eq!(s["first_release"], "2016-04-12T07:00:00Z");
}

/// Documents stored by a kbgap with another model version are re-derived from their stored
/// sources on the next use, without re-downloading.
#[test]
fn stale_documents_are_reparsed_from_stored_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let mar = msrc_dir().join("cvrfDocument-2020-Mar.xml");
    assert!(kbgap(&db, &["catalog", "import", mar.to_str().unwrap()])
        .status
        .success());
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let n = conn
            .execute("UPDATE documents SET model_version = 0", [])
            .unwrap();
        assert_eq!(n, 1);
    }
    let kb = show_json(&db, "4540673");
    assert_eq!(kb["cve_count"], 94);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = conn
        .query_row("SELECT model_version FROM documents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, i64::from(kbgap_catalog::MODEL_VERSION));
}

/// The MSRC API's JSON form imports like the XML form (a small hand-written document).
#[test]
fn json_documents_import() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let json =
        kbgap_testdata::workspace_dir().join("crates/kbgap-catalog/tests/data/cvrf-sample.json");
    let o = kbgap(&db, &["catalog", "import", json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stats_json(&db)["documents"], 1);
    let kb = show_json(&db, "5022840");
    assert_eq!(kb["document"], "2023-Feb");
    assert!(!kb["fixed_builds"].as_array().unwrap().is_empty());
}
