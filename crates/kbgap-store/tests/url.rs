//! Database location parsing, backend selection and password redaction.

use kbgap_store::{redact_url, DbLocation, StoreError};
use std::path::PathBuf;

fn file(p: &str) -> DbLocation {
    DbLocation::SqliteFile(PathBuf::from(p))
}

#[test]
fn sqlite_forms() {
    assert_eq!(
        DbLocation::parse("sqlite:///var/lib/kbgap.db").unwrap(),
        file("/var/lib/kbgap.db")
    );
    assert_eq!(
        DbLocation::parse("sqlite://rel/kbgap.db").unwrap(),
        file("rel/kbgap.db")
    );
    assert_eq!(
        DbLocation::parse("SQLITE:kbgap.db").unwrap(),
        file("kbgap.db")
    );
    assert_eq!(DbLocation::parse("/tmp/x.db").unwrap(), file("/tmp/x.db"));
    assert_eq!(DbLocation::parse("x.db").unwrap(), file("x.db"));
    assert_eq!(
        DbLocation::parse(r"C:\data\kbgap.db").unwrap(),
        file(r"C:\data\kbgap.db")
    );
    assert_eq!(
        DbLocation::parse("sqlite::memory:").unwrap(),
        DbLocation::SqliteMemory
    );
    assert!(matches!(
        DbLocation::parse("sqlite://"),
        Err(StoreError::UnsupportedUrl { .. })
    ));
    assert!(matches!(
        DbLocation::parse("  "),
        Err(StoreError::UnsupportedUrl { .. })
    ));
}

#[test]
fn postgres_urls_select_postgres_and_unreachable_is_one_redacted_error() {
    for url in [
        "postgres://kbgap:s3cr3t@127.0.0.1:1/kbgap",
        "postgresql://kbgap:s3cr3t@127.0.0.1:1/kbgap?sslmode=require",
        "postgres://127.0.0.1:1/kbgap?user=kbgap&password=s3cr3t",
    ] {
        let loc = DbLocation::parse(url).unwrap();
        assert_eq!(loc, DbLocation::Postgres(url.to_owned()));
        assert!(!format!("{loc:?}").contains("s3cr3t"), "{loc:?}");
        let err = kbgap_store::open(url).map(|_| ()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Open { .. }), "{text}");
        assert!(!text.contains("s3cr3t"), "password leaked: {text}");
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }
}

#[test]
fn unknown_scheme_is_rejected_with_redaction() {
    let err = DbLocation::parse("mysql://root:hunter2@localhost/kb")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown scheme `mysql`"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn redaction() {
    assert_eq!(
        redact_url("postgres://u:p%40ss@h:5432/db?sslmode=require&password=x"),
        "postgres://u:***@h:5432/db?sslmode=require&password=***"
    );
    assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    assert_eq!(redact_url("/plain/path.db"), "/plain/path.db");
}

#[test]
fn default_path_is_in_the_data_dir() {
    let path = kbgap_store::default_db_path().unwrap();
    assert!(path.ends_with("kbgap/kbgap.db"), "{}", path.display());
}
