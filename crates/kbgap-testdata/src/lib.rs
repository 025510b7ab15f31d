//! Dev-only access to the shared test fixtures: paths to MSRC documents and device files, and the
//! MSRC CVRF archive unpacked once per workspace.
//!
//! Fixtures live outside the repository (`../shared/fixtures` relative to the workspace root) and
//! are never copied into it. Every function panics with a clear message when a fixture is
//! missing: tests that need them cannot run meaningfully without.

pub mod http;
pub mod pg;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// File name of the compressed CVRF archive under `fixtures/msrc-archive/`.
pub const ARCHIVE_NAME: &str = "cvrf-2016-04_2026-08.tar.zst";

/// Number of documents the archive holds; [`archive_dir`] checks it to know an unpack completed.
pub const ARCHIVE_DOCUMENTS: usize = 127;

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared fixtures directory (`<workspace>/../shared/fixtures`).
///
/// # Panics
/// When the directory does not exist.
pub fn fixtures_dir() -> PathBuf {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        dir.is_dir(),
        "kbgap test fixtures not found at {}: these tests need the shared fixtures checked out beside the workspace",
        dir.display()
    );
    dir.to_path_buf()
}

/// One single MSRC document under `fixtures/msrc/`, e.g. `msrc_fixture("cvrfDocument-2020-Mar.xml")`.
///
/// # Panics
/// When the file does not exist.
pub fn msrc_fixture(name: &str) -> PathBuf {
    let p = fixtures_dir().join("msrc").join(name);
    assert!(p.is_file(), "MSRC fixture missing: {}", p.display());
    p
}

/// The wesng validation device files (`fixtures/systeminfo/wesng-validation/`).
///
/// # Panics
/// When the directory does not exist.
pub fn systeminfo_dir() -> PathBuf {
    let p = fixtures_dir().join("systeminfo").join("wesng-validation");
    assert!(p.is_dir(), "systeminfo fixtures missing: {}", p.display());
    p
}

/// The MSRC CVRF archive, unpacked into `<workspace>/target/kbgap-testdata/msrc-archive/`.
///
/// Unpacks on first use only: the archive is extracted into a temporary directory beside the
/// destination and renamed into place, so concurrent test processes never see a partial tree
/// (the loser of a rename race discards its copy). A complete existing unpack is reused.
///
/// # Panics
/// When the archive fixture is missing or cannot be unpacked.
pub fn archive_dir() -> PathBuf {
    let archive = fixtures_dir().join("msrc-archive").join(ARCHIVE_NAME);
    assert!(
        archive.is_file(),
        "MSRC archive fixture missing: {}",
        archive.display()
    );
    let parent = workspace_dir().join("target").join("kbgap-testdata");
    let dest = parent.join("msrc-archive");
    if is_complete(&dest) {
        return dest;
    }
    if let Err(e) = unpack(&archive, &parent, &dest) {
        panic!(
            "cannot unpack {} into {}: {e}",
            archive.display(),
            dest.display()
        );
    }
    assert!(
        is_complete(&dest),
        "unpacked archive at {} does not hold {ARCHIVE_DOCUMENTS} documents",
        dest.display()
    );
    dest
}

/// The XML documents of the unpacked archive, sorted by file name.
pub fn archive_documents() -> Vec<PathBuf> {
    let dir = archive_dir();
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

fn is_complete(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "xml"))
            .count()
            >= ARCHIVE_DOCUMENTS
    })
}

fn unpack(archive: &Path, parent: &Path, dest: &Path) -> io::Result<()> {
    fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".msrc-archive.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    let file = fs::File::open(archive)?;
    let decoder = zstd::stream::read::Decoder::new(file)?;
    tar::Archive::new(decoder).unpack(&tmp)?;
    // The tar may hold the documents at its root or under one directory: flatten to the root.
    let root = single_subdir(&tmp)?.unwrap_or_else(|| tmp.clone());
    if dest.exists() && !is_complete(dest) {
        // A stale, incomplete tree from an interrupted run (renames are atomic, so this only
        // happens if someone copied files by hand): replace it.
        let _ = fs::remove_dir_all(dest);
    }
    match fs::rename(&root, dest) {
        Ok(()) => {}
        Err(_) if is_complete(dest) => {} // another process won the race
        Err(e) => return Err(e),
    }
    let _ = fs::remove_dir_all(&tmp);
    Ok(())
}

fn single_subdir(dir: &Path) -> io::Result<Option<PathBuf>> {
    let entries: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    Ok(match entries.as_slice() {
        [only] if only.is_dir() => Some(only.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_resolve() {
        assert!(msrc_fixture("cvrfDocument-2020-Mar.xml").is_file());
        assert!(systeminfo_dir().read_dir().unwrap().count() > 40);
    }

    #[test]
    fn archive_unpacks_all_documents() {
        let docs = archive_documents();
        assert_eq!(docs.len(), ARCHIVE_DOCUMENTS);
        assert!(docs
            .iter()
            .any(|p| p.file_name().unwrap() == "cvrfDocument-2023-Dec.xml"));
    }
}
