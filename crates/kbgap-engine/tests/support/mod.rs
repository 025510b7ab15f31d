//! Shared set-up for the engine's tests: the real MSRC archive parsed once, and device fixtures.

#![allow(dead_code)]

use chrono::{DateTime, NaiveDate, Utc};
use kbgap_catalog::{parse_document, Catalog, Document};
use kbgap_core::KbId;
use kbgap_engine::{assess, Assessment, EngineCatalog, Settings, Target};
use kbgap_inventory::device::Device;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Every document of the archive, parsed (in parallel) once per test binary.
pub fn archive_documents() -> &'static [Document] {
    static DOCS: OnceLock<Vec<Document>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let dir = kbgap_testdata::archive_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("archive dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 127, "the archive has 127 documents");
        let docs: Vec<Document> = std::thread::scope(|s| {
            let chunks: Vec<Vec<PathBuf>> = files
                .chunks(files.len().div_ceil(2))
                .map(<[_]>::to_vec)
                .collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|p| {
                                let bytes = std::fs::read(p).expect("read fixture");
                                parse_document(&bytes, &p.display().to_string())
                                    .expect("archive documents parse")
                                    .0
                                    .document
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("parser thread"))
                .collect()
        });
        docs
    })
}

/// The engine over the whole archive, built once per test binary.
pub fn archive_engine() -> &'static EngineCatalog {
    static ENGINE: OnceLock<EngineCatalog> = OnceLock::new();
    ENGINE.get_or_init(|| EngineCatalog::new(Catalog::from_documents(archive_documents().to_vec())))
}

/// A device fixture from `../shared/fixtures/systeminfo/wesng-validation/`.
pub fn device(name: &str) -> Device {
    let path = kbgap_testdata::systeminfo_dir().join(name);
    kbgap_inventory::file::parse_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// End of the given day, UTC.
pub fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|x| x.and_hms_opt(23, 59, 59))
        .expect("valid date")
        .and_utc()
}

/// Assesses a device fixture against the archive as of a date.
pub fn assess_fixture(name: &str, as_of: Option<DateTime<Utc>>) -> Assessment {
    let dev = device(name);
    assess(
        archive_engine(),
        &Target::from_device(&dev),
        &Settings { as_of },
    )
}

/// The KBs of an assessment's findings.
pub fn finding_kbs(a: &Assessment) -> BTreeSet<u32> {
    a.findings.iter().map(|f| f.kb.get()).collect()
}

/// Shorthand.
pub fn kb(n: u32) -> KbId {
    KbId::new(n)
}
