//! The store-backed fleet end to end: real SQLite file, real MSRC documents (2020 Feb/Mar/Apr),
//! real and synthetic device reports ingested over a real socket; idempotency, replacement,
//! cross-route consistency, 413/400 storing nothing, and 503 while the database is gone.

mod common;

use common::*;
use kbgap_server::*;
use kbgap_store::ImportItem;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

fn import_catalog(db: &Path) {
    let mut store = kbgap_store::open_store(&db.to_string_lossy()).unwrap();
    let mut items = Vec::new();
    for name in [
        "cvrfDocument-2020-Feb.xml",
        "cvrfDocument-2020-Mar.xml",
        "cvrfDocument-2020-Apr.xml",
    ] {
        let path = kbgap_testdata::msrc_fixture(name);
        let bytes = std::fs::read(&path).unwrap();
        let (parsed, format) = kbgap_catalog::parse_document(&bytes, name).unwrap();
        items.push(ImportItem {
            parsed,
            source: bytes,
            format,
            origin: path.display().to_string(),
        });
    }
    store.import(items).unwrap();
}

fn report_1909(host: &str, kbs: &[&str]) -> String {
    let hotfixes: Vec<String> = kbs
        .iter()
        .map(|k| format!(r#"{{"id":"{k}","description":"Security Update"}}"#))
        .collect();
    format!(
        r#"{{"schema":"kbgap.device/1","hostName":"{host}","collectedAt":"2020-04-20T08:00:00Z",
        "os":{{"productName":"Windows 10 Enterprise","currentMajorVersionNumber":10,
        "currentMinorVersionNumber":0,"currentBuild":"18363","architecture":"x64",
        "installationType":"Client"}},"hotfixes":[{}]}}"#,
        hotfixes.join(",")
    )
}

struct Http {
    base: String,
    read: String,
    ingest: String,
}

impl Http {
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }
    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let mut r = Self::agent()
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.read))
            .call()
            .unwrap();
        let s = r.status().as_u16();
        let t = r.body_mut().read_to_string().unwrap();
        (
            s,
            serde_json::from_str(&t).unwrap_or(serde_json::Value::Null),
        )
    }
    /// Status 0 when the server closed the connection while the body was being sent.
    fn post(&self, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
        let mut r = match Self::agent()
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.ingest))
            .send(body)
        {
            Ok(r) => r,
            Err(ureq::Error::Io(e)) => return (0, serde_json::Value::String(e.to_string())),
            Err(e) => panic!("{e}"),
        };
        let s = r.status().as_u16();
        let t = r.body_mut().read_to_string().unwrap();
        (
            s,
            serde_json::from_str(&t).unwrap_or(serde_json::Value::Null),
        )
    }
}

fn kb_ids(v: &serde_json::Value) -> BTreeSet<String> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ingest_assess_and_serve_over_real_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = dir.join("kbgap.db");
    import_catalog(&db);
    let fleet = Arc::new(StoreFleet::open(&db.to_string_lossy(), "").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::for_store(fleet, auth_config(), ServerConfig::new(BASE));
    rt.spawn(async move { axum::serve(listener, router(state)).await });
    let http = Http {
        base: format!("http://{addr}"),
        read: all_roles(),
        ingest: token(&["Device.Ingest"]),
    };
    let stored = || {
        kbgap_store::open_store(&db.to_string_lossy())
            .unwrap()
            .devices()
            .unwrap()
            .len()
    };

    // A read-only token cannot ingest; an ingest-only token cannot read.
    let r = Http::agent()
        .post(&format!("{}/kbgap/v1/devices", http.base))
        .header("Authorization", &format!("Bearer {}", http.read))
        .send(report_1909("X", &[]).as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // 1. A Windows 10 1909 device without updates: April's LCU KB4549951 is missing.
    let (s, b) = http.post(
        "/kbgap/v1/devices",
        report_1909("STORY-1909", &[]).as_bytes(),
    );
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["devices"][0]["action"], "added");
    let m1909 = b["devices"][0]["machineId"].as_str().unwrap().to_owned();
    assert_eq!(
        m1909,
        kbgap_store::derive_machine_id("", "story-1909").to_string()
    );
    let (s, missing) = http.get(&format!("/api/machines/{m1909}/getmissingkbs"));
    assert_eq!(s, 200, "{missing}");
    assert!(kb_ids(&missing).contains("4549951"), "{missing}");

    // 2. A real systeminfo fixture, raw body.
    let sysinfo = std::fs::read(
        kbgap_testdata::systeminfo_dir().join("10_1803_x64_education_en-us_systeminfo.txt"),
    )
    .unwrap();
    let (s, b) = http.post("/kbgap/v1/devices?name=edu_systeminfo.txt", &sysinfo);
    assert_eq!(s, 201, "{b}");
    let m1803 = b["devices"][0]["machineId"].as_str().unwrap().to_owned();
    assert_eq!(stored(), 2);

    // 3. Same report again: unchanged.
    let (s, b) = http.post("/kbgap/v1/devices?name=other-name.txt", &sysinfo);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["devices"][0]["action"], "unchanged");
    assert_eq!(b["unchanged"], 1);

    // 4. A second unpatched 1909 in a batch, then machineMissedOn = 2 everywhere.
    let batch = format!("[{}]", report_1909("STORY-1909-B", &[]));
    let (s, b) = http.post("/kbgap/v1/devices:batch", batch.as_bytes());
    assert_eq!(s, 201, "{b}");
    let (_, missing) = http.get(&format!("/api/machines/{m1909}/getmissingkbs"));
    let row = missing["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "4549951")
        .unwrap()
        .clone();
    assert_eq!(row["machineMissedOn"], 2, "{row}");
    assert_eq!(row["osBuild"], 18363);
    assert!(row["cveAddressed"].as_u64().unwrap() > 10);
    let (_, sw) = http.get("/api/Software/microsoft-_-windows_10/getmissingkbs");
    let sw_row = sw["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "4549951")
        .unwrap();
    assert_eq!(sw_row["machineMissedOn"], 2);

    // 5. The first 1909 installs KB4549951: replaced, and the KB is no longer missing there.
    let (s, b) = http.post(
        "/kbgap/v1/devices",
        report_1909("STORY-1909", &["KB4549951"]).as_bytes(),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["devices"][0]["action"], "replaced");
    assert_eq!(b["devices"][0]["machineId"], m1909.as_str());
    let (_, missing) = http.get(&format!("/api/machines/{m1909}/getmissingkbs"));
    assert!(!kb_ids(&missing).contains("4549951"), "{missing}");
    let (_, m) = http.get(&format!("/api/machines/{m1909}"));
    assert_eq!(m["osPlatform"], "Windows10");
    assert_eq!(m["version"], "1909");
    assert_eq!(m["computerDnsName"], "STORY-1909");

    // 6. machinesVulnerabilities agrees with getmissingkbs on every machine.
    let (_, machines) = http.get("/api/machines");
    assert_eq!(machines["value"].as_array().unwrap().len(), 3);
    let (_, rows) = http.get("/api/vulnerabilities/machinesVulnerabilities");
    let mut by_machine: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows["value"].as_array().unwrap() {
        by_machine
            .entry(r["machineId"].as_str().unwrap().to_owned())
            .or_default()
            .insert(r["fixingKbId"].as_str().unwrap().to_owned());
    }
    let mut missed_on: BTreeMap<String, u64> = BTreeMap::new();
    for m in machines["value"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let (_, missing) = http.get(&format!("/api/machines/{id}/getmissingkbs"));
        assert_eq!(
            by_machine.get(id).cloned().unwrap_or_default(),
            kb_ids(&missing),
            "machine {id}"
        );
        for r in missing["value"].as_array().unwrap() {
            let kb = r["id"].as_str().unwrap().to_owned();
            let n = r["machineMissedOn"].as_u64().unwrap();
            assert_eq!(
                *missed_on.entry(kb).or_insert(n),
                n,
                "machineMissedOn differs"
            );
        }
    }
    assert!(
        by_machine.contains_key(&m1803),
        "the 1803 fixture has findings"
    );
    let (_, refs) = http.get("/api/Software/microsoft-_-windows_10/machineReferences");
    assert_eq!(refs["value"].as_array().unwrap().len(), 3);

    // 7. Oversized and malformed bodies: 413 / 400 and nothing stored.
    // (Over a raw socket: the server answers before reading a declared-too-large body, so a
    // client still writing would see a broken pipe instead of the response.)
    {
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        write!(
            sock,
            "POST /kbgap/v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            http.ingest,
            9 * 1024 * 1024
        )
        .unwrap();
        sock.write_all(&[b'x'; 4096]).unwrap();
        let mut resp = String::new();
        let _ = sock.read_to_string(&mut resp);
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
        assert!(resp.contains("PayloadTooLarge"), "{resp}");
    }
    // Through a client that writes the whole body: 413, or the server closed the connection
    // before the client finished writing (status 0 here); either way nothing is stored.
    let (s, b) = http.post("/kbgap/v1/devices", &vec![b'x'; 8 * 1024 * 1024 + 1]);
    assert!(s == 413 || s == 0, "{s} {b}");
    let (s, b) = http.post("/kbgap/v1/devices?name=junk.txt", b"hello\nworld\n");
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], "InvalidRequestBody");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("junk.txt"),
        "{b}"
    );
    let bad_batch = format!(
        "[{}, {{\"schema\":\"kbgap.device/1\",\"hostName\":\"BAD\",\"bogus\":1}}]",
        report_1909("SHOULD-NOT-BE-STORED", &[])
    );
    let (s, b) = http.post("/kbgap/v1/devices:batch", bad_batch.as_bytes());
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("batch[1]"),
        "{b}"
    );
    // A KB list without a host name cannot be stored.
    let (s, b) = http.post("/kbgap/v1/devices", b"HotFixID\r\nKB4549951\r\n");
    assert_eq!(s, 400, "{b}");
    assert_eq!(stored(), 3);

    // 8. Database gone: 503; back: 200.
    let away = tmp.path().join("db-away");
    std::fs::rename(&dir, &away).unwrap();
    let (s, b) = http.get("/api/machines");
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["code"], "ServiceUnavailable");
    let (s, _) = http.post("/kbgap/v1/devices", report_1909("DOWN", &[]).as_bytes());
    assert_eq!(s, 503);
    std::fs::rename(&away, &dir).unwrap();
    let (s, b) = http.get("/api/machines");
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["value"].as_array().unwrap().len(), 3);
    rt.shutdown_background();
}
