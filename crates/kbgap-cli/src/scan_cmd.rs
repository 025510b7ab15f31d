//! `kbgap scan` and `kbgap explain`: assess device files against the stored catalog and present the answer.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use kbgap_catalog::Catalog;
use kbgap_core::KbId;
use kbgap_engine::{assess, Assessment, EngineCatalog, Settings, Target};
use kbgap_inventory::device::Device;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::catalog_cmd::open_store;

/// Output form of `scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A readable table.
    Table,
    /// JSON, per device a Defender `PublicProductFixDto` array plus extra fields.
    Json,
    /// One CSV row per (device, KB).
    Csv,
}

/// Parses `--as-of`: a date (`2019-03-06`, end of that day UTC) or an RFC 3339 timestamp.
pub fn parse_as_of(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let end = d.and_hms_opt(23, 59, 59).context("invalid date")?;
        return Ok(end.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .with_context(|| format!("--as-of {text:?}: expected YYYY-MM-DD or an RFC 3339 timestamp"))
}

/// Loads the catalog from the store and prepares it for the engine.
pub fn load_engine(db: Option<&str>) -> Result<EngineCatalog> {
    let store = open_store(db)?;
    let docs = store.load_documents(None)?;
    if docs.is_empty() {
        bail!(
            "the catalog is empty: run `kbgap catalog import PATH` or `kbgap catalog sync` first"
        );
    }
    Ok(EngineCatalog::new(Catalog::from_documents(docs)))
}

/// One scanned file.
struct Scanned {
    source: String,
    result: Result<(Device, Assessment), String>,
}

/// Parses every file, then folds KB-list-only reports (wmic qfe, Get-HotFix) into the report of
/// the same host that names its OS, so a `systeminfo` whose hotfix list was cut short is completed
/// by the `qfe` output captured with it. Hosts match by host name or, when the KB list names no
/// host, by file name (`X_qfe.txt` with `X_systeminfo.txt`). Unmatched KB lists are assessed
/// alone (and say so).
fn scan_files(cat: &EngineCatalog, files: &[PathBuf], settings: &Settings) -> Vec<Scanned> {
    let parsed: Vec<(String, Result<Device, String>)> = files
        .par_iter()
        .map(|path| {
            let source = path.display().to_string();
            let device = kbgap_inventory::file::parse_file(path).map_err(|e| e.to_string());
            (source, device)
        })
        .collect();
    let merged_into = {
        let view: Vec<(&str, Option<&Device>)> = parsed
            .iter()
            .map(|(s, d)| (s.as_str(), d.as_ref().ok()))
            .collect();
        kbgap_inventory::merge::plan_kb_list_merges(&view)
    };
    let mut devices: Vec<(String, Result<Device, String>)> = Vec::new();
    let absorbed: std::collections::BTreeSet<usize> =
        merged_into.values().flatten().copied().collect();
    for (i, (source, d)) in parsed.iter().enumerate() {
        if absorbed.contains(&i) {
            continue;
        }
        let mut d = d.clone();
        let mut source = source.clone();
        if let (Ok(dev), Some(extra)) = (&mut d, merged_into.get(&i)) {
            for &j in extra {
                if let (other_source, Ok(other)) = &parsed[j] {
                    if dev.merge_hotfixes(other).is_ok() {
                        source = format!("{source} + {other_source}");
                    }
                }
            }
        }
        devices.push((source, d));
    }
    devices
        .into_par_iter()
        .map(|(source, device)| Scanned {
            source,
            result: device.map(|device| {
                let a = assess(cat, &Target::from_device(&device), settings);
                (device, a)
            }),
        })
        .collect()
}

/// A Defender `PublicProductFixDto` with kbgap's extra fields after it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FixDto<'a> {
    id: String,
    name: &'a str,
    products_names: &'a [String],
    url: &'a str,
    machine_missed_on: usize,
    cve_addressed: usize,
    os_build: Option<u32>,
    release_date: String,
    sub_type: Option<&'a str>,
    severity: Option<&'static str>,
    cves: Vec<&'a str>,
    evidence: &'a [String],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceDto<'a> {
    source: &'a str,
    host_name: Option<&'a str>,
    os: String,
    os_build: Option<String>,
    confidence: String,
    notes: &'a [String],
    products: Vec<String>,
    value: Vec<FixDto<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDto<'a> {
    source: &'a str,
    error: &'a str,
}

/// `kbgap scan FILE...`
pub fn scan(
    db: Option<&str>,
    files: &[PathBuf],
    as_of: Option<&str>,
    format: Format,
) -> Result<ExitCode> {
    let settings = Settings {
        as_of: as_of.map(parse_as_of).transpose()?,
    };
    let cat = load_engine(db)?;
    let scanned = scan_files(&cat, files, &settings);

    let mut missed_on: BTreeMap<KbId, usize> = BTreeMap::new();
    for s in &scanned {
        if let Ok((_, a)) = &s.result {
            for f in &a.findings {
                *missed_on.entry(f.kb).or_default() += 1;
            }
        }
    }
    let failed = scanned.iter().filter(|s| s.result.is_err()).count();
    let any_missing = !missed_on.is_empty();
    match format {
        Format::Json => print_json(&scanned, &missed_on)?,
        Format::Csv => print_csv(&scanned, &missed_on)?,
        Format::Table => print_table(&scanned, &missed_on),
    }
    for s in &scanned {
        if let Err(e) = &s.result {
            eprintln!("error: {e}");
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else if any_missing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn fix_dtos<'a>(
    a: &'a Assessment,
    device: &Device,
    missed_on: &BTreeMap<KbId, usize>,
) -> Vec<FixDto<'a>> {
    let os_build = device.os.build.map(|b| b.build);
    a.findings
        .iter()
        .map(|f| FixDto {
            id: f.kb.to_string(),
            name: &f.name,
            products_names: &f.products_names,
            url: &f.url,
            machine_missed_on: missed_on.get(&f.kb).copied().unwrap_or(1),
            cve_addressed: f.cve_addressed,
            os_build,
            release_date: f.release_date.format("%Y-%m-%d").to_string(),
            sub_type: f.sub_type.as_deref(),
            severity: f.max_severity.map(|s| s.msrc_name()),
            cves: f.cves.iter().map(|c| c.as_str()).collect(),
            evidence: &f.evidence,
        })
        .collect()
}

fn print_json(scanned: &[Scanned], missed_on: &BTreeMap<KbId, usize>) -> Result<()> {
    let mut out = Vec::new();
    for s in scanned {
        let v = match &s.result {
            Ok((device, a)) => serde_json::to_value(DeviceDto {
                source: &s.source,
                host_name: device.host_name.as_deref(),
                os: device.os.family.display_name().to_owned(),
                os_build: device.os.build.map(|b| b.to_string()),
                confidence: format!("{:?}", a.confidence),
                notes: &a.notes,
                products: a
                    .products
                    .iter()
                    .map(|p| format!("{} ({})", p.name, p.id))
                    .collect(),
                value: fix_dtos(a, device, missed_on),
            })?,
            Err(e) => serde_json::to_value(ErrorDto {
                source: &s.source,
                error: e,
            })?,
        };
        out.push(v);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn print_csv(scanned: &[Scanned], missed_on: &BTreeMap<KbId, usize>) -> Result<()> {
    println!("source,hostName,id,name,productsNames,url,machineMissedOn,cveAddressed,releaseDate,severity,confidence");
    for s in scanned {
        let Ok((device, a)) = &s.result else { continue };
        for f in &a.findings {
            let row = [
                csv_field(&s.source),
                csv_field(device.host_name.as_deref().unwrap_or("")),
                f.kb.to_string(),
                csv_field(&f.name),
                csv_field(&f.products_names.join(";")),
                csv_field(&f.url),
                missed_on.get(&f.kb).copied().unwrap_or(1).to_string(),
                f.cve_addressed.to_string(),
                f.release_date.format("%Y-%m-%d").to_string(),
                f.max_severity
                    .map(|s| s.msrc_name())
                    .unwrap_or("")
                    .to_owned(),
                format!("{:?}", a.confidence),
            ];
            println!("{}", row.join(","));
        }
    }
    Ok(())
}

fn print_table(scanned: &[Scanned], missed_on: &BTreeMap<KbId, usize>) {
    for s in scanned {
        let Ok((device, a)) = &s.result else { continue };
        println!(
            "{}  {}  {}  build {}  confidence {:?}",
            s.source,
            device.host_name.as_deref().unwrap_or("-"),
            device.os.family.display_name(),
            device
                .os
                .build
                .map(|b| b.to_string())
                .unwrap_or_else(|| "?".into()),
            a.confidence
        );
        for n in &a.notes {
            println!("  note: {n}");
        }
        if a.findings.is_empty() {
            println!("  nothing missing");
        } else {
            println!(
                "  {:<10} {:<8} {:<9} {:>5} {:>6}  name",
                "KB", "month", "severity", "CVEs", "hosts"
            );
            for f in &a.findings {
                println!(
                    "  {:<10} {:<8} {:<9} {:>5} {:>6}  {} [{}]",
                    format!("KB{}", f.kb),
                    f.release_date.format("%Y-%m").to_string(),
                    f.max_severity.map(|s| s.msrc_name()).unwrap_or("-"),
                    f.cves.len(),
                    missed_on.get(&f.kb).copied().unwrap_or(1),
                    f.name,
                    f.products_names.join(", ")
                );
            }
        }
        println!();
    }
}

/// `kbgap explain FILE KB`
pub fn explain(
    db: Option<&str>,
    file: &std::path::Path,
    kb: &str,
    as_of: Option<&str>,
) -> Result<ExitCode> {
    let kb: KbId = kb
        .parse()
        .with_context(|| format!("{kb:?} is not a KB number"))?;
    let settings = Settings {
        as_of: as_of.map(parse_as_of).transpose()?,
    };
    let cat = load_engine(db)?;
    let device = kbgap_inventory::file::parse_file(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let target = Target::from_device(&device);
    let a = assess(&cat, &target, &settings);

    println!(
        "device   {} ({})",
        device.host_name.as_deref().unwrap_or("-"),
        file.display()
    );
    println!(
        "os       {}  build {}",
        device.os.family.display_name(),
        device
            .os
            .build
            .map(|b| b.to_string())
            .unwrap_or_else(|| "?".into())
    );
    println!(
        "listed   {} KB(s), list {:?}",
        target.installed.len(),
        target.kb_list
    );
    for p in &a.products {
        println!("product  {} ({}): {}", p.name, p.id, p.reason);
    }
    for n in &a.notes {
        println!("note     {n}");
    }
    println!();
    if let Some(f) = a.finding(kb) {
        println!(
            "KB{kb} is MISSING: {} ({})",
            f.name,
            f.release_date.format("%Y-%m-%d")
        );
        for e in &f.evidence {
            println!("  - {e}");
        }
        let cves: Vec<&str> = f.cves.iter().map(|c| c.as_str()).collect();
        println!("  CVEs on this device ({}): {}", cves.len(), cves.join(" "));
        println!(
            "  catalog-wide it addresses {} CVE(s); {}",
            f.cve_addressed, f.url
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(d) = a.dropped(kb) {
        println!("KB{kb} is not reported: {}", d.reason.describe());
        return Ok(ExitCode::SUCCESS);
    }
    match cat.catalog().kb_summary(kb) {
        None => println!("KB{kb} is not in the catalog as a Vendor Fix, so it is never a finding"),
        Some(s) => {
            println!(
                "KB{kb} ({}) is not a candidate for this device: it applies to",
                s.name
            );
            for p in s.products.iter().take(12) {
                println!("  {} ({})", p.name, p.id);
            }
            if s.products.len() > 12 {
                println!("  ... and {} more", s.products.len() - 12);
            }
            if let Some(d) = settings.as_of {
                if s.release_date > d {
                    println!(
                        "  (and it was released after the --as-of date {})",
                        d.format("%Y-%m-%d")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
