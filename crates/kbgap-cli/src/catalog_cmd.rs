//! `kbgap catalog ...`: import, sync, show and stats over the store.

use anyhow::{bail, Context, Result};
use kbgap_catalog::{parse_document, read_head, Catalog, DocumentHead, ParseIssue};
use kbgap_core::{DocumentId, KbId};
use kbgap_store::{CatalogStore, ImportAction, ImportItem};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::progress;

/// Opens the store named by `--db`/`KBGAP_DB`, or the default file, and re-derives documents
/// stored by a kbgap with another model version from their stored sources.
pub fn open_store(db: Option<&str>) -> Result<Box<dyn CatalogStore>> {
    let url = match db {
        Some(u) => u.to_owned(),
        None => kbgap_store::default_db_path()?
            .to_string_lossy()
            .into_owned(),
    };
    let mut store = kbgap_store::open(&url)?;
    refresh_stale(store.as_mut())?;
    Ok(store)
}

/// Re-parses documents whose stored model is from another kbgap version (their sources are
/// kept for this), in one transaction.
fn refresh_stale(store: &mut dyn CatalogStore) -> Result<()> {
    let stale = store.stale_documents()?;
    if stale.is_empty() {
        return Ok(());
    }
    tracing::info!(
        count = stale.len(),
        "re-deriving documents stored by another kbgap version"
    );
    let items: Vec<ImportItem> = stale
        .into_par_iter()
        .map(|s| {
            let (parsed, format) = parse_document(&s.source, &s.origin)
                .with_context(|| format!("re-parsing stored document {}", s.id))?;
            Ok(ImportItem {
                parsed,
                source: s.source,
                format,
                origin: s.origin,
            })
        })
        .collect::<Result<_>>()?;
    store.import(items)?;
    Ok(())
}

/// The outcome of one import or sync, for people and for `--json`.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    added: Vec<String>,
    replaced: Vec<String>,
    unchanged: Vec<String>,
    older_than_stored: Vec<String>,
    failed: Vec<FailedSource>,
    /// Oddities handled while parsing, counted by field.
    issues_by_field: BTreeMap<String, usize>,
    /// Entries skipped whole, each with document, CVE and field.
    skipped_entries: Vec<ParseIssue>,
}

#[derive(Debug, Serialize)]
struct FailedSource {
    source: String,
    error: String,
}

impl ImportReport {
    fn record(&mut self, id: &DocumentId, action: &ImportAction) {
        let id = id.to_string();
        match action {
            ImportAction::Added => self.added.push(id),
            ImportAction::Replaced { .. } => self.replaced.push(id),
            ImportAction::Unchanged => self.unchanged.push(id),
            ImportAction::OlderThanStored { .. } => self.older_than_stored.push(id),
        }
    }

    fn record_issues(&mut self, issues: &[ParseIssue]) {
        for i in issues {
            *self.issues_by_field.entry(i.field.clone()).or_default() += 1;
            if i.skipped {
                self.skipped_entries.push(i.clone());
            }
        }
    }

    fn print(&self, json: bool) -> Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        println!(
            "{} added, {} replaced, {} unchanged, {} older than stored, {} failed",
            self.added.len(),
            self.replaced.len(),
            self.unchanged.len(),
            self.older_than_stored.len(),
            self.failed.len()
        );
        if !self.issues_by_field.is_empty() {
            let total: usize = self.issues_by_field.values().sum();
            println!("{total} oddities handled (kept or skipped, never fatal):");
            for (field, n) in &self.issues_by_field {
                println!("  {n:>6}  {field}");
            }
        }
        for s in &self.skipped_entries {
            println!(
                "skipped: {} {} {}: {}",
                s.document.as_ref().map(|d| d.as_str()).unwrap_or("?"),
                s.cve.as_deref().unwrap_or("-"),
                s.field,
                s.message
            );
        }
        for f in &self.failed {
            eprintln!("error: {}", f.error);
        }
        Ok(())
    }
}

/// Lists CVRF files under the given paths (directories recursively), sorted.
fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_dir() {
            let before = files.len();
            walk(p, &mut files)?;
            if files.len() == before {
                bail!(
                    "{}: no CVRF documents (*.xml, *.json) in this directory",
                    p.display()
                );
            }
        } else {
            files.push(p.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("xml") || e.eq_ignore_ascii_case("json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

enum Prepared {
    Unchanged(DocumentId),
    Item(Box<ImportItem>),
    Failed(FailedSource),
}

/// Reads and parses one source unless its head matches what is stored.
fn prepare(bytes: Vec<u8>, origin: String, stored: &HashMap<DocumentId, DocumentHead>) -> Prepared {
    if let Ok(head) = read_head(&bytes, &origin) {
        if stored.get(&head.id) == Some(&head) {
            return Prepared::Unchanged(head.id);
        }
    }
    match parse_document(&bytes, &origin) {
        Ok((parsed, format)) => Prepared::Item(Box::new(ImportItem {
            parsed,
            source: bytes,
            format,
            origin,
        })),
        Err(e) => Prepared::Failed(FailedSource {
            source: origin,
            error: e.to_string(),
        }),
    }
}

/// `kbgap catalog import PATH...`
pub fn import(
    db: Option<&str>,
    paths: &[PathBuf],
    keep_going: bool,
    json: bool,
) -> Result<ExitCode> {
    let files = collect_files(paths)?;
    let mut store = open_store(db)?;
    let stored: HashMap<DocumentId, DocumentHead> = store
        .document_heads()?
        .into_iter()
        .map(|h| (h.id.clone(), h))
        .collect();
    let bar = progress::bar(files.len() as u64, "parsing");
    let prepared: Vec<Prepared> = files
        .par_iter()
        .map(|path| {
            let origin = path.display().to_string();
            let out = match std::fs::read(path) {
                Ok(bytes) => prepare(bytes, origin, &stored),
                Err(e) => Prepared::Failed(FailedSource {
                    error: format!("{origin}: cannot read: {e}"),
                    source: origin,
                }),
            };
            bar.inc(1);
            out
        })
        .collect();
    bar.finish_and_clear();

    let mut report = ImportReport::default();
    let mut items = Vec::new();
    for p in prepared {
        match p {
            Prepared::Unchanged(id) => report.unchanged.push(id.to_string()),
            Prepared::Item(item) => {
                report.record_issues(&item.parsed.issues);
                items.push(*item);
            }
            Prepared::Failed(f) => report.failed.push(f),
        }
    }
    if !report.failed.is_empty() && !keep_going {
        report.print(json)?;
        bail!(
            "{} of {} file(s) could not be parsed; nothing was imported (use --keep-going to import the rest)",
            report.failed.len(),
            files.len()
        );
    }
    if !items.is_empty() {
        let spinner = progress::bar(items.len() as u64, "storing");
        let outcome = store.import(items)?;
        spinner.finish_and_clear();
        for (id, action) in &outcome {
            report.record(id, action);
        }
    }
    report.print(json)?;
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `kbgap catalog sync`: fetch documents that are new or re-published since what is stored.
/// Each document is imported in its own transaction, so an interrupted sync keeps what it fetched.
pub fn sync(
    db: Option<&str>,
    from: Option<&str>,
    base_url: &str,
    retries: u32,
) -> Result<ExitCode> {
    use kbgap_msrc::{plan_sync, run_sync, ClientOptions, MonthFilter, MsrcClient, SyncError};
    let from: Option<MonthFilter> = from
        .map(|f| f.parse().map_err(|e| anyhow::anyhow!("--from {f:?}: {e}")))
        .transpose()?;
    let mut store = open_store(db)?;
    let client = MsrcClient::new(
        base_url,
        ClientOptions {
            retries,
            ..ClientOptions::default()
        },
    )?;
    let list = client.list_updates_detailed()?;
    let plan = plan_sync(&list.entries, &store.document_heads()?, from);
    let bar = progress::bar(plan.to_fetch.len() as u64, "syncing");
    let mut import = ImportReport::default();
    let mut report = run_sync(&client, &plan, |entry, bytes| {
        let url = client.document_url(&entry.id);
        let (parsed, format) = parse_document(&bytes, &url).map_err(SyncError::Parse)?;
        import.record_issues(&parsed.issues);
        let outcome = store
            .import(vec![ImportItem {
                parsed,
                source: bytes,
                format,
                origin: url,
            }])
            .map_err(|e| SyncError::Store(Box::new(e)))?;
        for (id, action) in &outcome {
            import.record(id, action);
        }
        bar.inc(1);
        Ok(())
    });
    bar.finish_and_clear();
    report.skipped_bad_entries = list.skipped.len();
    import.print(false)?;
    println!("{report}");
    for f in &report.failures {
        eprintln!("error: {}: {}", f.id, f.error);
    }
    Ok(if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// `kbgap catalog show KB`
pub fn show(db: Option<&str>, kb: &str, json: bool) -> Result<ExitCode> {
    let kb: KbId = kb
        .parse()
        .with_context(|| format!("{kb:?} is not a KB number"))?;
    let store = open_store(db)?;
    let catalog = Catalog::from_documents(store.documents_mentioning(kb)?);
    let Some(s) = catalog.kb_summary(kb) else {
        bail!("KB{kb} is not in the catalog as a Vendor Fix (run `kbgap catalog import` or `sync` first)");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("KB{}  {}", s.kb, s.name);
    println!(
        "  released      {} ({})",
        s.release_date.format("%Y-%m-%d"),
        s.document
    );
    println!("  products      {}", s.products_names.join(", "));
    for p in &s.products {
        println!("                {} {}", p.id, p.name);
    }
    println!("  CVEs          {}", s.cve_count);
    let cves: Vec<&str> = s.cves.iter().map(|c| c.as_str()).collect();
    for chunk in cves.chunks(6) {
        println!("                {}", chunk.join(" "));
    }
    if let Some(sev) = s.max_severity {
        println!("  max severity  {}", sev.msrc_name());
    }
    let kbs = |v: &[KbId]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.iter()
                .map(|k| format!("KB{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    println!("  supersedes    {}", kbs(&s.supersedes));
    println!("  superseded by {}", kbs(&s.superseded_by));
    if !s.fixed_builds.is_empty() {
        println!("  fixed builds  {}", s.fixed_builds.join(", "));
    }
    println!("  sub-types     {}", s.sub_types.join(", "));
    println!("  url           {}", s.url);
    Ok(ExitCode::SUCCESS)
}

/// `kbgap catalog stats`
pub fn stats(db: Option<&str>, json: bool) -> Result<ExitCode> {
    let store = open_store(db)?;
    let catalog = Catalog::from_documents(store.load_documents(None)?);
    let s = catalog.stats();
    let issues = store.parse_issues()?.len();
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["parse_issues"] = issues.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("documents        {}", s.documents);
    println!("KBs              {}", s.kbs);
    println!("products         {}", s.products);
    println!("CVEs             {}", s.cves);
    println!("vulnerabilities  {}", s.vulnerabilities);
    if let (Some(a), Some(b)) = (s.first_release, s.last_release) {
        println!(
            "date range       {} .. {}",
            a.format("%Y-%m-%d"),
            b.format("%Y-%m-%d")
        );
    }
    for (kind, n) in &s.remediations {
        println!("remediations     {n:>7} {kind}");
    }
    println!("non-KB fixes     {}", s.non_kb_vendor_fixes);
    println!("parse issues     {issues}");
    Ok(ExitCode::SUCCESS)
}
