//! Behaviour of the SQLite catalog store: migrations, import semantics, round-trips, atomicity.

mod common;

use common::{realistic_document, utc, DocBuilder};
use kbgap_catalog::MODEL_VERSION;
use kbgap_core::{DocumentId, KbId};
use kbgap_store::sqlite::{migrate, SqliteStore};
use kbgap_store::{CatalogStore, ImportAction, StoreError};

fn id(s: &str) -> DocumentId {
    s.parse().unwrap()
}

fn ids(docs: &[kbgap_catalog::Document]) -> Vec<String> {
    docs.iter().map(|d| d.id.to_string()).collect()
}

fn mar() -> DocBuilder {
    DocBuilder::new("2020-Mar", utc(2020, 3, 10))
        .vuln("CVE-2020-0796", 4551762, &[4540673])
        .vuln("CVE-2020-0684", 4540673, &[4532693, 4528760])
        .issue(
            Some("CVE-2020-0684"),
            "Remediation/Supercedence",
            "junk token `20.0.1` dropped",
            Some(812),
        )
        .issue(
            None,
            "ProductTree/FullProductName",
            "duplicate product 11713 dropped",
            None,
        )
}

fn feb() -> DocBuilder {
    DocBuilder::new("2020-Feb", utc(2020, 2, 11)).vuln("CVE-2020-0662", 4532693, &[4528760])
}

#[test]
fn migrations_apply_on_fresh_file_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/kbgap.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), migrate::latest_version());
        assert_eq!(store.catalog_generation().unwrap(), 0);
        assert!(store.document_heads().unwrap().is_empty());
    }
    assert!(path.exists(), "parent directories and file are created");
    let mut store = SqliteStore::open(&path).unwrap();
    store.import(vec![feb().item()]).unwrap();
    drop(store);
    // Reopen: no migration re-applied (would fail on CREATE TABLE), data intact.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), migrate::latest_version());
    assert_eq!(store.document_heads().unwrap().len(), 1);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, migrate::MIGRATIONS.len() as i64);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kbgap.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'future')",
        [],
    )
    .unwrap();
    drop(conn);
    match SqliteStore::open(&path) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, 999);
            assert_eq!(supported, migrate::latest_version());
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn garbage_file_is_a_clear_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not-a-db.db"), "{text}");
}

#[test]
fn import_then_load_round_trips_exactly() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let (m, f) = (mar().item(), feb().item());
    let expected = vec![f.parsed.document.clone(), m.parsed.document.clone()];
    let actions = store.import(vec![m.clone(), f]).unwrap();
    assert_eq!(
        actions,
        vec![
            (id("2020-Mar"), ImportAction::Added),
            (id("2020-Feb"), ImportAction::Added)
        ]
    );
    // Ordered by initial release, equal to what was imported.
    assert_eq!(store.load_documents(None).unwrap(), expected);
    // as_of filters by initial release (inclusive).
    assert_eq!(
        ids(&store.load_documents(Some(utc(2020, 3, 1))).unwrap()),
        ["2020-Feb"]
    );
    assert_eq!(
        store.load_documents(Some(utc(2020, 3, 10))).unwrap().len(),
        2
    );
    assert!(store
        .load_documents(Some(utc(2019, 1, 1)))
        .unwrap()
        .is_empty());

    // Heads, infos, issues, source.
    let heads = store.document_heads().unwrap();
    assert_eq!(heads, vec![expected[0].head(), expected[1].head()]);
    let infos = store.document_infos().unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[1].head, expected[1].head());
    assert_eq!(infos[1].title, "2020-Mar Security Updates");
    assert_eq!(infos[1].initial_release, utc(2020, 3, 10));
    assert_eq!(infos[1].origin, "test://2020-Mar");
    assert_eq!((infos[0].issue_count, infos[1].issue_count), (0, 2));
    assert_eq!(store.parse_issues().unwrap(), m.parsed.issues);
    let (source, _) = store.document_source(&id("2020-Mar")).unwrap().unwrap();
    assert_eq!(source, m.source);
    assert!(store.stale_documents().unwrap().is_empty());
    assert_eq!(store.catalog_generation().unwrap(), 1);
}

#[test]
fn realistic_document_round_trips() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let doc = realistic_document(3, "2.1");
    store
        .import(vec![common::item_with_source(doc.clone(), 100_000)])
        .unwrap();
    assert_eq!(store.load_documents(None).unwrap(), vec![doc]);
}

#[test]
fn documents_mentioning_uses_fixes_and_supersedence() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    store.import(vec![mar().item(), feb().item()]).unwrap();
    assert_eq!(
        ids(&store.documents_mentioning(KbId::new(4551762)).unwrap()),
        ["2020-Mar"]
    );
    // 4532693 is fixed in Feb and superseded in Mar.
    assert_eq!(
        ids(&store.documents_mentioning(KbId::new(4532693)).unwrap()),
        ["2020-Feb", "2020-Mar"]
    );
    assert!(store
        .documents_mentioning(KbId::new(1234567))
        .unwrap()
        .is_empty());
}

#[test]
fn same_head_is_unchanged_and_keeps_generation() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    store.import(vec![mar().item()]).unwrap();
    let generation = store.catalog_generation().unwrap();
    let infos = store.document_infos().unwrap();
    // Same head, even with different content: nothing written.
    let mut again = mar().item();
    again.parsed.document.title = "changed".into();
    assert_eq!(
        store.import(vec![again]).unwrap(),
        vec![(id("2020-Mar"), ImportAction::Unchanged)]
    );
    assert_eq!(store.catalog_generation().unwrap(), generation);
    assert_eq!(store.document_infos().unwrap(), infos);
    // Numerically equal revision text ("1.0" vs "1") is the same head too.
    let same = DocBuilder::new("2020-Mar", utc(2020, 3, 10)).revision("1.0", utc(2020, 3, 10));
    assert_eq!(
        store.import(vec![same.item()]).unwrap()[0].1,
        ImportAction::Unchanged
    );
    assert_eq!(store.catalog_generation().unwrap(), generation);
}

#[test]
fn newer_revision_replaces_document_and_its_kbs() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    store.import(vec![mar().item(), feb().item()]).unwrap();
    let generation = store.catalog_generation().unwrap();
    let newer = DocBuilder::new("2020-Mar", utc(2020, 3, 10))
        .revision("2", utc(2020, 3, 20))
        .vuln("CVE-2020-0796", 4560960, &[]);
    let expected = newer.clone().build();
    assert_eq!(
        store.import(vec![newer.item()]).unwrap(),
        vec![(
            id("2020-Mar"),
            ImportAction::Replaced {
                previous_revision: "1".into()
            }
        )]
    );
    assert_eq!(store.catalog_generation().unwrap(), generation + 1);
    assert!(store
        .documents_mentioning(KbId::new(4551762))
        .unwrap()
        .is_empty());
    assert_eq!(
        store.documents_mentioning(KbId::new(4560960)).unwrap(),
        vec![expected]
    );
    // 4532693 now only in Feb.
    assert_eq!(
        ids(&store.documents_mentioning(KbId::new(4532693)).unwrap()),
        ["2020-Feb"]
    );
    // Old issues are gone with the old revision.
    assert!(store.parse_issues().unwrap().is_empty());
    assert_eq!(store.document_heads().unwrap().len(), 2);
}

#[test]
fn same_date_higher_revision_number_replaces() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let at = utc(2020, 3, 10);
    store
        .import(vec![DocBuilder::new("2020-Mar", at)
            .revision("1.9", at)
            .item()])
        .unwrap();
    let newer = DocBuilder::new("2020-Mar", at).revision("1.10", at);
    assert!(matches!(
        store.import(vec![newer.item()]).unwrap()[0].1,
        ImportAction::Replaced { .. }
    ));
    let older = DocBuilder::new("2020-Mar", at).revision("1.2", at);
    assert_eq!(
        store.import(vec![older.item()]).unwrap()[0].1,
        ImportAction::OlderThanStored {
            stored_revision: "1.10".into()
        }
    );
}

#[test]
fn older_revision_is_not_written() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let newer = DocBuilder::new("2020-Mar", utc(2020, 3, 10))
        .revision("3", utc(2020, 4, 1))
        .vuln("CVE-2020-0796", 4551762, &[]);
    store.import(vec![newer.clone().item()]).unwrap();
    let generation = store.catalog_generation().unwrap();
    assert_eq!(
        store.import(vec![mar().item()]).unwrap(),
        vec![(
            id("2020-Mar"),
            ImportAction::OlderThanStored {
                stored_revision: "3".into()
            }
        )]
    );
    assert_eq!(store.catalog_generation().unwrap(), generation);
    assert_eq!(store.load_documents(None).unwrap(), vec![newer.build()]);
}

#[test]
fn failed_batch_leaves_previous_catalog_intact() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    store.import(vec![mar().item(), feb().item()]).unwrap();
    let generation = store.catalog_generation().unwrap();
    let before_docs = store.load_documents(None).unwrap();
    let before_infos = store.document_infos().unwrap();
    let before_issues = store.parse_issues().unwrap();

    store.set_import_hook(Some(Box::new(|id, index| {
        if index == 1 {
            Err(StoreError::Database(format!("forced failure after {id}")))
        } else {
            Ok(())
        }
    })));
    let replacement = DocBuilder::new("2020-Mar", utc(2020, 3, 10))
        .revision("5", utc(2020, 5, 1))
        .vuln("CVE-2020-0796", 4560960, &[]);
    let added = DocBuilder::new("2020-Apr", utc(2020, 4, 14)).vuln("CVE-2020-1020", 4549951, &[]);
    let err = store
        .import(vec![replacement.item(), added.item()])
        .unwrap_err();
    assert!(
        err.to_string().contains("forced failure after 2020-Apr"),
        "{err}"
    );
    store.set_import_hook(None);

    assert_eq!(store.catalog_generation().unwrap(), generation);
    assert_eq!(store.load_documents(None).unwrap(), before_docs);
    assert_eq!(store.document_infos().unwrap(), before_infos);
    assert_eq!(store.parse_issues().unwrap(), before_issues);
    assert!(store
        .documents_mentioning(KbId::new(4560960))
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&store.documents_mentioning(KbId::new(4551762)).unwrap()),
        ["2020-Mar"]
    );
}

#[test]
fn stale_model_version_requires_reparse_and_same_head_reimport_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kbgap.db");
    let mut store = SqliteStore::open(&path).unwrap();
    let m = mar().item();
    store.import(vec![m.clone(), feb().item()]).unwrap();
    // Simulate a database written by an older kbgap.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE documents SET model_version = ?1 WHERE id = '2020-Mar'",
        [i64::from(MODEL_VERSION) - 1],
    )
    .unwrap();
    drop(conn);

    match store.load_documents(None) {
        Err(StoreError::Stale {
            id: stale,
            stored,
            current,
        }) => {
            assert_eq!(stale, id("2020-Mar"));
            assert_eq!(
                (stored, current),
                (i64::from(MODEL_VERSION) - 1, i64::from(MODEL_VERSION))
            );
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    let stale = store.stale_documents().unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].id, id("2020-Mar"));
    assert_eq!(stale[0].source, m.source);
    assert_eq!(stale[0].origin, "test://2020-Mar");

    // The CLI re-parses the source and re-imports: same head, but the stale row is replaced.
    let generation = store.catalog_generation().unwrap();
    assert_eq!(
        store.import(vec![m]).unwrap()[0].1,
        ImportAction::Replaced {
            previous_revision: "1".into()
        }
    );
    assert!(store.stale_documents().unwrap().is_empty());
    assert_eq!(store.load_documents(None).unwrap().len(), 2);
    assert_eq!(store.catalog_generation().unwrap(), generation + 1);
}

#[test]
fn duplicate_ids_in_one_batch_keep_the_newest() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let v2 = DocBuilder::new("2020-Mar", utc(2020, 3, 10)).revision("2", utc(2020, 3, 12));
    let actions = store.import(vec![v2.clone().item(), mar().item()]).unwrap();
    assert_eq!(actions[0].1, ImportAction::Added);
    assert_eq!(
        actions[1].1,
        ImportAction::OlderThanStored {
            stored_revision: "2".into()
        }
    );
    assert_eq!(store.load_documents(None).unwrap(), vec![v2.build()]);
    assert_eq!(store.catalog_generation().unwrap(), 1);
}

#[test]
fn open_by_url_picks_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b.db");
    let url = format!("sqlite://{}", path.display());
    let mut store = kbgap_store::open(&url).unwrap();
    store.import(vec![feb().item()]).unwrap();
    drop(store);
    let store = kbgap_store::open(&path.display().to_string()).unwrap();
    assert_eq!(store.document_heads().unwrap().len(), 1);
    let store = kbgap_store::open(&format!("sqlite:{}", path.display())).unwrap();
    assert_eq!(store.catalog_generation().unwrap(), 1);
    let mem = kbgap_store::open("sqlite::memory:").unwrap();
    assert!(mem.document_heads().unwrap().is_empty());
}
