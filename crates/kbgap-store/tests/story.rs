//! One story, run against both backends: a temp SQLite file and a fresh PostgreSQL database.
//! Catalog import / revision replacement / no-op re-import / as-of loads / KB lookups / parse
//! issues / generations, then device upserts (add, replace, unchanged, repeated ids),
//! first/last seen, lookups, the fleet generation, the fleet view (setups shared, derived for
//! older rows, never half a batch). The PostgreSQL half fails (never skips)
//! when no server is reachable.

use chrono::{DateTime, Duration, TimeZone, Utc};
use kbgap_catalog::{parse_document, Document, ParseIssue};
use kbgap_core::{KbId, MachineId};
use kbgap_inventory::DeviceSetup;
use kbgap_store::{DeviceUpsert, ImportAction, ImportItem, Store, StoreError, UpsertAction};
use kbgap_testdata::pg::TempDb;

fn fixture(name: &str) -> ImportItem {
    let path = kbgap_testdata::msrc_fixture(name);
    let source = std::fs::read(&path).unwrap();
    let (parsed, format) = parse_document(&source, name).unwrap();
    ImportItem {
        parsed,
        source,
        format,
        origin: path.display().to_string(),
    }
}

fn device(file: &str) -> kbgap_inventory::Device {
    let path = format!("{}/../kbgap-server/demo/{file}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    kbgap_inventory::parse_any(&bytes, file).unwrap()
}

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 3, 20, h, 0, 0).unwrap() + Duration::nanoseconds(123_456_789)
}

fn ids(docs: &[Document]) -> Vec<String> {
    docs.iter().map(|d| d.id.to_string()).collect()
}

fn mentions(doc: &Document, kb: KbId) -> bool {
    doc.vulnerabilities
        .iter()
        .flat_map(|v| &v.remediations)
        .any(|r| r.kb == Some(kb) || r.supersedes.contains(&kb))
}

fn story(store: &mut dyn Store) {
    // --- catalog ---
    assert_eq!(store.catalog_generation().unwrap(), 0);
    assert!(store.document_heads().unwrap().is_empty());
    let (feb, mar, apr) = (
        fixture("cvrfDocument-2020-Feb.xml"),
        fixture("cvrfDocument-2020-Mar.xml"),
        fixture("cvrfDocument-2020-Apr.xml"),
    );
    let actions = store.import(vec![mar.clone(), feb.clone()]).unwrap();
    assert_eq!(
        actions,
        vec![
            (mar.parsed.document.id.clone(), ImportAction::Added),
            (feb.parsed.document.id.clone(), ImportAction::Added),
        ]
    );
    assert_eq!(store.catalog_generation().unwrap(), 1);
    let loaded = store.load_documents(None).unwrap();
    assert_eq!(ids(&loaded), ["2020-Feb", "2020-Mar"]);
    assert_eq!(loaded[0], feb.parsed.document);
    assert_eq!(loaded[1], mar.parsed.document);

    // Same heads again: nothing written, generation unchanged.
    let actions = store.import(vec![mar.clone()]).unwrap();
    assert_eq!(actions[0].1, ImportAction::Unchanged);
    assert_eq!(store.catalog_generation().unwrap(), 1);

    // A newer revision of March (with a parse issue) replaces it; the old one is then older.
    let mut mar2 = mar.clone();
    let old_rev = mar.parsed.document.revision.clone();
    mar2.parsed.document.revision = "99.0".into();
    mar2.parsed.document.current_release += Duration::days(3);
    mar2.parsed.document.title = "March revised".into();
    mar2.parsed.issues.push(ParseIssue {
        document: None,
        cve: Some("CVE-2020-0684".into()),
        field: "Remediation/Supercedence".into(),
        message: "junk token `20.0.1` dropped".into(),
        skipped: false,
        line: Some(4242),
    });
    let actions = store.import(vec![apr.clone(), mar2.clone()]).unwrap();
    assert_eq!(actions[0].1, ImportAction::Added);
    assert_eq!(
        actions[1].1,
        ImportAction::Replaced {
            previous_revision: old_rev
        }
    );
    assert_eq!(store.catalog_generation().unwrap(), 2);
    let actions = store.import(vec![mar.clone()]).unwrap();
    assert_eq!(
        actions[0].1,
        ImportAction::OlderThanStored {
            stored_revision: "99.0".into()
        }
    );
    assert_eq!(store.catalog_generation().unwrap(), 2);

    let heads = store.document_heads().unwrap();
    assert_eq!(heads.len(), 3);
    let mar_head = heads.iter().find(|h| h.id.as_str() == "2020-Mar").unwrap();
    assert_eq!(mar_head, &mar2.parsed.document.head());

    let all = store.load_documents(None).unwrap();
    assert_eq!(ids(&all), ["2020-Feb", "2020-Mar", "2020-Apr"]);
    assert_eq!(all[1], mar2.parsed.document);
    let as_of = store
        .load_documents(Some(
            mar.parsed.document.initial_release - Duration::seconds(1),
        ))
        .unwrap();
    assert_eq!(ids(&as_of), ["2020-Feb"]);
    let as_of = store
        .load_documents(Some(mar.parsed.document.initial_release))
        .unwrap();
    assert_eq!(ids(&as_of), ["2020-Feb", "2020-Mar"]);

    // KB lookups agree with a scan of the parsed documents.
    let kb: KbId = "KB4540673".parse().unwrap();
    let expected: Vec<String> = [&feb, &mar2, &apr]
        .iter()
        .map(|i| &i.parsed.document)
        .filter(|d| mentions(d, kb))
        .map(|d| d.id.to_string())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids(&store.documents_mentioning(kb).unwrap()), expected);
    let nowhere: KbId = "KB1".parse().unwrap();
    assert!(store.documents_mentioning(nowhere).unwrap().is_empty());

    // Parse issues: every issue of every stored document, owned by its row, in order.
    let mut want: Vec<ParseIssue> = Vec::new();
    for item in [&feb, &mar2, &apr] {
        for issue in &item.parsed.issues {
            want.push(ParseIssue {
                document: Some(item.parsed.document.id.clone()),
                ..issue.clone()
            });
        }
    }
    assert_eq!(store.parse_issues().unwrap(), want);
    let infos = store.document_infos().unwrap();
    assert_eq!(infos.len(), 3);
    assert_eq!(infos[1].title, "March revised");
    assert_eq!(infos[1].issue_count, mar2.parsed.issues.len() as u64);
    assert_eq!(infos[0].origin, feb.origin);
    assert!(store.stale_documents().unwrap().is_empty());

    // --- devices ---
    assert_eq!(store.fleet_generation().unwrap(), 0);
    let desktop = device("desktop-1909.json");
    let laptop = device("laptop-1909-patched.json");
    let id_d = desktop.machine_id.unwrap();
    let id_l = kbgap_store::machine_id_for(&laptop, "").unwrap();
    let up = |id: MachineId, d: &kbgap_inventory::Device| DeviceUpsert {
        machine_id: id,
        device: d.clone(),
    };
    let r = store
        .upsert_devices(vec![up(id_d, &desktop), up(id_l, &laptop)], at(8))
        .unwrap();
    assert_eq!(
        r,
        vec![(id_d, UpsertAction::Added), (id_l, UpsertAction::Added)]
    );
    assert_eq!(store.fleet_generation().unwrap(), 1);

    // Same report under another file name: unchanged, only last_seen moves.
    let mut renamed = desktop.clone();
    renamed.source_name = "elsewhere.json".into();
    let r = store
        .upsert_devices(vec![up(id_d, &renamed)], at(9))
        .unwrap();
    assert_eq!(r, vec![(id_d, UpsertAction::Unchanged)]);
    assert_eq!(store.fleet_generation().unwrap(), 1);
    let d = store.device(id_d).unwrap().unwrap();
    assert_eq!(
        (d.first_seen, d.last_seen, d.updated_at),
        (at(8), at(9), at(8))
    );

    // A different report replaces it (first_seen kept); a repeated id in one batch: last wins.
    let mut patched = desktop.clone();
    patched.installed_kbs.clear();
    let mut patched2 = patched.clone();
    patched2.host_name = Some("Demo-Desktop-Renamed".into());
    let r = store
        .upsert_devices(
            vec![up(id_d, &patched), up(id_l, &laptop), up(id_d, &patched2)],
            at(10),
        )
        .unwrap();
    assert_eq!(
        r,
        vec![
            (id_d, UpsertAction::Replaced),
            (id_l, UpsertAction::Unchanged),
            (id_d, UpsertAction::Replaced),
        ]
    );
    assert_eq!(store.fleet_generation().unwrap(), 2);
    let d = store.device(id_d).unwrap().unwrap();
    assert_eq!(
        (d.first_seen, d.last_seen, d.updated_at),
        (at(8), at(10), at(10))
    );
    assert_eq!(d.host_name.as_deref(), Some("Demo-Desktop-Renamed"));
    assert!(d.device.installed_kbs.is_empty());
    let l = store.device(id_l).unwrap().unwrap();
    assert_eq!(
        (l.first_seen, l.last_seen, l.updated_at),
        (at(8), at(10), at(8))
    );
    assert_eq!(l.device.installed_kbs.len(), laptop.installed_kbs.len());
    assert!(!laptop.installed_kbs.is_empty());

    // Lookups: by host (case-insensitive), unknown id, all devices ordered by id.
    let by_host = store.devices_by_host("  demo-desktop-RENAMED ").unwrap();
    assert_eq!(by_host.len(), 1);
    assert_eq!(by_host[0].machine_id, id_d);
    assert!(store
        .devices_by_host("DEMO-DESKTOP-1909")
        .unwrap()
        .is_empty());
    assert!(store
        .device("00000000000000000000000000000000000000aa".parse().unwrap())
        .unwrap()
        .is_none());
    // Many devices: the listing is ordered by id (what paging relies on).
    let many: Vec<DeviceUpsert> = (0..50)
        .map(|i| {
            let mut d = laptop.clone();
            d.host_name = Some(format!("HOST-{i:03}"));
            d.machine_id = None;
            DeviceUpsert {
                machine_id: kbgap_store::machine_id_for(&d, "story").unwrap(),
                device: d,
            }
        })
        .collect();
    let r = store.upsert_devices(many, at(11)).unwrap();
    assert!(r.iter().all(|(_, a)| *a == UpsertAction::Added));
    assert_eq!(store.fleet_generation().unwrap(), 3);
    let all = store.devices().unwrap();
    assert_eq!(all.len(), 52);
    let listed: Vec<String> = all.iter().map(|d| d.machine_id.to_string()).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    // Catalog untouched by device writes.
    assert_eq!(store.catalog_generation().unwrap(), 2);
    fleet_rows_agree_with_reports(store, 3);
    assert_eq!(store.generations().unwrap(), (2, 3));
    // The 50 hosts are the laptop under other names: 52 devices, two setups (the desktop's
    // latest report and the laptop's); the desktop's replaced setups are not listed.
    assert_eq!(store.fleet_rows().unwrap().setups.len(), 2);
}

/// The fleet view names, for every stored device, exactly the setup of its stored report, and
/// each distinct setup once.
fn fleet_rows_agree_with_reports(store: &dyn Store, generation: i64) {
    let rows = store.fleet_rows().unwrap();
    let all = store.devices().unwrap();
    assert_eq!(rows.fleet_generation, generation);
    assert!(rows.unreadable.is_empty());
    assert_eq!(rows.devices.len(), all.len());
    let distinct: std::collections::BTreeSet<String> = all
        .iter()
        .map(|d| DeviceSetup::of(&d.device).digest())
        .collect();
    assert_eq!(rows.setups.len(), distinct.len());
    let by_id: std::collections::HashMap<MachineId, &kbgap_store::StoredDevice> =
        all.iter().map(|d| (d.machine_id, d)).collect();
    for row in &rows.devices {
        let stored = by_id[&row.machine_id];
        assert_eq!(
            rows.setups[row.setup as usize],
            DeviceSetup::of(&stored.device)
        );
        assert_eq!(row.host_name, stored.host_name);
        assert_eq!(row.first_seen, stored.first_seen);
        assert_eq!(row.last_seen, stored.last_seen);
    }
}

#[test]
fn story_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("story.db").display());
    let mut store = kbgap_store::open_store(&url).unwrap();
    story(store.as_mut());
}

#[test]
fn story_on_postgres() {
    let db = TempDb::create();
    let mut store = kbgap_store::open_store(&db.url()).unwrap();
    story(store.as_mut());
    // A second handle (another replica) sees the same data at once.
    let other = kbgap_store::open_store(&db.url()).unwrap();
    assert_eq!(other.catalog_generation().unwrap(), 2);
    assert_eq!(other.devices().unwrap().len(), 52);
}

/// Stores the demo devices, then forgets their setups (as a database written before schema
/// 0003 has none) through `forget`, and reopens: the setups are derived again from the reports.
fn setups_are_derived_on_open(url: &str, forget: impl FnOnce()) {
    let mut store = kbgap_store::open_store(url).unwrap();
    let batch: Vec<DeviceUpsert> = ["desktop-1909.json", "laptop-1909-patched.json"]
        .iter()
        .map(|f| {
            let d = device(f);
            DeviceUpsert {
                machine_id: kbgap_store::machine_id_for(&d, "t").unwrap(),
                device: d,
            }
        })
        .collect();
    store.upsert_devices(batch, at(1)).unwrap();
    drop(store);
    forget();
    let store = kbgap_store::open_store(url).unwrap();
    fleet_rows_agree_with_reports(store.as_ref(), 1);
    assert_eq!(store.fleet_rows().unwrap().setups.len(), 2);
}

#[test]
fn setups_of_earlier_reports_are_derived_on_open_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    setups_are_derived_on_open(&format!("sqlite://{}", path.display()), || {
        let c = rusqlite::Connection::open(&path).unwrap();
        let n = c
            .execute("UPDATE devices SET setup_digest = NULL", [])
            .unwrap();
        assert_eq!(n, 2);
        c.execute("DELETE FROM device_setups", []).unwrap();
    });
}

#[test]
fn setups_of_earlier_reports_are_derived_on_open_postgres() {
    let db = TempDb::create();
    let url = db.url();
    setups_are_derived_on_open(&url, || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let n = c
            .execute("UPDATE devices SET setup_digest = NULL", &[])
            .unwrap();
        assert_eq!(n, 2);
        c.execute("DELETE FROM device_setups", &[]).unwrap();
    });
}

#[test]
fn postgres_replicas_migrating_at_once_agree() {
    let db = TempDb::create();
    let url = db.url();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                kbgap_store::postgres::PgStore::open(&url).map(|s| s.schema_version())
            })
        })
        .collect();
    for h in handles {
        let version = h.join().unwrap().unwrap().unwrap();
        assert_eq!(version, kbgap_store::postgres::migrate::latest_version());
    }
    let rows = db
        .client()
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [1, 2, 3, 4]);
}

#[test]
fn postgres_store_reconnects_after_its_session_is_killed() {
    let db = TempDb::create();
    let mut store = kbgap_store::open_store(&db.url()).unwrap();
    store
        .import(vec![fixture("cvrfDocument-2020-Feb.xml")])
        .unwrap();
    assert!(db.terminate_sessions() >= 1);
    // The next call notices the dead connection, reconnects and retries once.
    assert_eq!(store.catalog_generation().unwrap(), 1);
    assert_eq!(store.load_documents(None).unwrap().len(), 1);
    assert!(db.terminate_sessions() >= 1);
    let r = store
        .import(vec![fixture("cvrfDocument-2020-Mar.xml")])
        .unwrap();
    assert_eq!(r[0].1, ImportAction::Added);
    assert_eq!(store.catalog_generation().unwrap(), 2);
}

#[test]
fn postgres_generations_read_the_meta_rows_and_refuse_a_missing_one() {
    // The generations are read with the simple query protocol (one round trip each): they
    // follow the stored rows, and a missing row is an error naming the table, not a panic.
    let db = TempDb::create();
    let store = kbgap_store::open_store(&db.url()).unwrap();
    assert_eq!(store.catalog_generation().unwrap(), 0);
    assert_eq!(store.fleet_generation().unwrap(), 0);
    let mut admin = db.client();
    admin
        .batch_execute(
            "UPDATE catalog_meta SET value = 41 WHERE key = 'generation';
             UPDATE fleet_meta SET value = 9000000000 WHERE key = 'generation'",
        )
        .unwrap();
    assert_eq!(store.catalog_generation().unwrap(), 41);
    assert_eq!(store.fleet_generation().unwrap(), 9_000_000_000);
    admin
        .batch_execute("DELETE FROM fleet_meta WHERE key = 'generation'")
        .unwrap();
    let err = store.fleet_generation().unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err}");
    assert!(err.to_string().contains("fleet_meta"), "{err}");
    assert_eq!(store.catalog_generation().unwrap(), 41);
}

#[test]
fn postgres_unreachable_after_open_is_unavailable() {
    // A store whose server goes away answers Unavailable (the server maps it to 503) and
    // recovers by itself: simulated by pointing a store at a database that is then dropped.
    let db = TempDb::create();
    let store = kbgap_store::open_store(&db.url()).unwrap();
    let name = db.name().to_owned();
    drop(db);
    let err = store.catalog_generation().unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&name), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

/// A writer flips a group of devices between two reports, one transaction per flip, while a
/// reader (another connection, as another replica would be) reads the fleet view: every read
/// sees the whole group on one report, never some devices before and some after.
fn readers_never_see_half_a_batch(url: &str) {
    const GROUP: usize = 40;
    const FLIPS: usize = 60;
    let laptop = device("laptop-1909-patched.json");
    let mut bare = laptop.clone();
    bare.installed_kbs.clear();
    let batch = |d: &kbgap_inventory::Device| -> Vec<DeviceUpsert> {
        (0..GROUP)
            .map(|i| {
                let mut d = d.clone();
                d.host_name = Some(format!("FLIP-{i:02}"));
                d.machine_id = None;
                DeviceUpsert {
                    machine_id: kbgap_store::machine_id_for(&d, "flip").unwrap(),
                    device: d,
                }
            })
            .collect()
    };
    let mut writer = kbgap_store::open_store(url).unwrap();
    writer.upsert_devices(batch(&laptop), at(1)).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (url, done) = (url.to_owned(), done.clone());
        std::thread::spawn(move || {
            let store = kbgap_store::open_store(&url).unwrap();
            let (mut reads, mut generations) = (0, std::collections::BTreeSet::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) || reads < 5 {
                let rows = store.fleet_rows().unwrap();
                assert_eq!(rows.devices.len(), GROUP);
                let seen: std::collections::BTreeSet<u32> =
                    rows.devices.iter().map(|d| d.setup).collect();
                assert_eq!(seen.len(), 1, "a read saw half a batch: {seen:?}");
                assert_eq!(rows.setups.len(), 1);
                generations.insert(rows.fleet_generation);
                reads += 1;
            }
            (reads, generations.len())
        })
    };
    for i in 0..FLIPS {
        let d = if i % 2 == 0 { &bare } else { &laptop };
        writer.upsert_devices(batch(d), at(2)).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (reads, generations) = reader.join().unwrap();
    assert!(reads >= 5);
    assert!(generations >= 1);
    assert_eq!(writer.fleet_generation().unwrap(), 1 + FLIPS as i64);
}

#[test]
fn readers_never_see_half_a_batch_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    readers_never_see_half_a_batch(&format!(
        "sqlite://{}",
        dir.path().join("flip.db").display()
    ));
}

#[test]
fn readers_never_see_half_a_batch_postgres() {
    let db = TempDb::create();
    readers_never_see_half_a_batch(&db.url());
}
