//! `kbgap bench`: fleet-scale benchmark helpers — a synthetic fleet generator (`bench fleet`)
//! and a timer of the full-fleet assessment (`bench assess`). Not part of normal operation.

use crate::fleetgen::FleetPlan;
use anyhow::{Context, Result};
use kbgap_catalog::Catalog;
use kbgap_engine::{assess, EngineCatalog, Settings, Target};
use kbgap_store::{machine_id_for, DeviceUpsert};
use rayon::prelude::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where `bench fleet` puts the generated reports.
#[derive(Debug, Default)]
pub struct FleetOutputs {
    /// One `<host>.json` file per device.
    pub out_dir: Option<PathBuf>,
    /// One report per line.
    pub jsonl: Option<PathBuf>,
    /// One machine id per line.
    pub ids: Option<PathBuf>,
    /// Ingest into this database through `upsert_devices`.
    pub db: Option<String>,
}

/// Devices made and stored per batch.
const BATCH: usize = 10_000;

fn load_catalog(url: &str) -> Result<Catalog> {
    let store = kbgap_store::open_store(url)?;
    let docs = store.load_documents(None)?;
    anyhow::ensure!(
        !docs.is_empty(),
        "{url}: the catalog is empty; import MSRC documents first (kbgap catalog import)"
    );
    Ok(Catalog::from_documents(docs))
}

/// `kbgap bench fleet --devices N [--seed S] [--out DIR] [--jsonl FILE] [--ids FILE] [--db URL]`.
/// `catalog_db` is the database the catalog is read from (the global `--db`).
pub fn fleet(
    catalog_db: &str,
    devices: u64,
    seed: u64,
    outputs: &FleetOutputs,
) -> Result<ExitCode> {
    anyhow::ensure!(
        outputs.out_dir.is_some() || outputs.jsonl.is_some() || outputs.db.is_some(),
        "give --out DIR, --jsonl FILE or --ingest (store into --db)"
    );
    let started = Instant::now();
    let catalog = load_catalog(catalog_db)?;
    let plan = FleetPlan::from_catalog(&catalog)?;
    drop(catalog);
    for (name, id, levels) in plan.summary() {
        eprintln!("  {id:<8} {levels:>3} levels  {name}");
    }
    if let Some(dir) = &outputs.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let open_out = |p: &PathBuf| -> Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ))
    };
    let mut jsonl = outputs.jsonl.as_ref().map(open_out).transpose()?;
    let mut ids = outputs.ids.as_ref().map(open_out).transpose()?;
    let mut store = outputs
        .db
        .as_deref()
        .map(kbgap_store::open_store)
        .transpose()?;
    let now = chrono::Utc::now();
    let mut stored = 0usize;
    let mut start = 0u64;
    while start < devices {
        let end = (start + BATCH as u64).min(devices);
        let reports: Vec<(String, Vec<u8>)> = (start..end)
            .into_par_iter()
            .map(|i| {
                let r = plan.report(seed, i);
                let host = r["hostName"].as_str().unwrap_or_default().to_owned();
                let id = r["machineId"].as_str().unwrap_or_default().to_owned();
                (
                    format!("{host}\t{id}"),
                    serde_json::to_vec(&r).unwrap_or_default(),
                )
            })
            .collect();
        for (key, bytes) in &reports {
            let (host, id) = key.split_once('\t').unwrap_or((key, ""));
            if let Some(w) = jsonl.as_mut() {
                w.write_all(bytes)?;
                w.write_all(b"\n")?;
            }
            if let Some(w) = ids.as_mut() {
                writeln!(w, "{id}")?;
            }
            if let Some(dir) = &outputs.out_dir {
                let p = dir.join(format!("{host}.json"));
                std::fs::write(&p, bytes)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
        }
        if let Some(store) = store.as_mut() {
            let batch = reports
                .par_iter()
                .map(|(key, bytes)| {
                    let device = kbgap_inventory::parse_any(bytes, key)
                        .map_err(|e| anyhow::anyhow!("generated report {key}: {e}"))?;
                    let machine_id = machine_id_for(&device, "")?;
                    Ok(DeviceUpsert { machine_id, device })
                })
                .collect::<Result<Vec<_>>>()?;
            stored += store.upsert_devices(batch, now)?.len();
        }
        start = end;
    }
    if let Some(mut w) = jsonl {
        w.flush()?;
    }
    if let Some(mut w) = ids {
        w.flush()?;
    }
    eprintln!(
        "generated {devices} devices (seed {seed}){} in {:.1} s",
        if store.is_some() {
            format!(", stored {stored}")
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Resident set size now and its peak (VmRSS, VmHWM of /proc/self/status), in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// `kbgap bench assess [--runs R] [--sample N]`: times the full-fleet assessment over the
/// database's devices: reading the fleet view (devices + distinct setups), the engine over the
/// distinct setups, and the server's snapshot build (`StoreFleet`, what `kbgap serve` does when
/// the fleet changes), with memory. `--sample N` adds the per-device baseline over N reports.
pub fn assess_fleet(
    url: &str,
    runs: usize,
    sample: Option<usize>,
    skip_snapshot: bool,
) -> Result<ExitCode> {
    let runs = runs.max(1);
    let (rss0, _) = rss_mib();
    let t = Instant::now();
    let catalog = load_catalog(url)?;
    let engine = EngineCatalog::new(catalog);
    let catalog_s = t.elapsed().as_secs_f64();
    let (rss_cat, _) = rss_mib();
    let store = kbgap_store::open_store(url)?;
    let mut load_times = Vec::new();
    let mut rows = kbgap_store::FleetRows::default();
    for _ in 0..runs {
        drop(std::mem::take(&mut rows));
        let t = Instant::now();
        rows = store.fleet_rows()?;
        load_times.push(t.elapsed());
    }
    let (rss_dev, _) = rss_mib();
    let n = rows.devices.len();
    anyhow::ensure!(
        n > 0,
        "{url}: no devices stored (kbgap bench fleet --ingest)"
    );
    let fmt = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "machine: {} threads (rayon {}), load {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        rayon::current_num_threads(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let m = median(load_times.clone());
    println!(
        "devices: {n}, distinct setups: {}; catalog load+index {catalog_s:.2} s; fleet view read: median {:.3} s ({:.0} devices/s); runs [{}]",
        rows.setups.len(),
        m.as_secs_f64(),
        n as f64 / m.as_secs_f64(),
        fmt(&load_times)
    );
    println!(
        "RSS: start {rss0:.0} MiB, +catalog {rss_cat:.0} MiB, +fleet view {rss_dev:.0} MiB \
         => {:.0} B per device for the rows as read (VmRSS delta / devices)",
        (rss_dev - rss_cat) * 1024.0 * 1024.0 / n as f64
    );
    let settings = Settings::default();
    // 1. Each distinct setup once (what the server snapshot does).
    let mut times = Vec::new();
    let mut findings = 0usize;
    for run in 0..=runs {
        let t = Instant::now();
        findings = rows
            .setups
            .par_iter()
            .map(|s| {
                assess(&engine, &Target::from_setup(s, None), &settings)
                    .findings
                    .len()
            })
            .sum();
        // Run 0 warms the platform-model cache; it is reported but not counted.
        if run == 0 {
            println!("engine warm-up run: {:.3} s", t.elapsed().as_secs_f64());
        } else {
            times.push(t.elapsed());
        }
    }
    let m = median(times.clone());
    let (rss_eng, hwm_eng) = rss_mib();
    println!(
        "engine assess, distinct setups ({} setups for {n} devices, {runs} runs): median {:.3} s; runs [{}]; {findings} findings; RSS {rss_eng:.0} MiB, peak {hwm_eng:.0} MiB",
        rows.setups.len(),
        m.as_secs_f64(),
        fmt(&times)
    );
    // 2. Baseline: the engine on each of SAMPLE stored reports, nothing shared.
    if let Some(k) = sample {
        let devices = store.devices()?;
        let every = &devices[..k.min(devices.len())];
        let mut times = Vec::new();
        let mut findings = 0usize;
        for _ in 0..runs {
            let t = Instant::now();
            findings = every
                .par_iter()
                .map(|d| {
                    assess(&engine, &Target::from_device(&d.device), &settings)
                        .findings
                        .len()
                })
                .sum();
            times.push(t.elapsed());
        }
        let m = median(times.clone());
        println!(
            "baseline: engine on every report ({} devices, {runs} runs): median {:.3} s = {:.0} devices/s; runs [{}]; {findings} findings",
            every.len(),
            m.as_secs_f64(),
            every.len() as f64 / m.as_secs_f64(),
            fmt(&times)
        );
    }
    drop(rows);
    drop(engine);
    drop(store);
    if skip_snapshot {
        return Ok(ExitCode::SUCCESS);
    }
    let (rss_before, _) = rss_mib();
    let t = Instant::now();
    let fleet = kbgap_server::StoreFleet::open(url, "")?;
    println!(
        "server snapshot, first build (catalog load + fleet view + assess + views): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut per_device = 0;
    let mut setups = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let snap = fleet.rebuild().map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
        anyhow::ensure!(snap.machine_count() == n, "snapshot lost devices");
        per_device = snap.per_device_bytes();
        setups = snap.setup_count();
    }
    let (rss_snap, hwm) = rss_mib();
    let m = median(times.clone());
    println!(
        "server snapshot rebuild (fleet view read + assess + views, {runs} runs): median {:.3} s = {:.0} devices/s; runs [{}]",
        m.as_secs_f64(),
        n as f64 / m.as_secs_f64(),
        fmt(&times)
    );
    println!(
        "server snapshot memory: {per_device} B per device held (entries, names, indexes; {setups} setups shared); \
         process RSS {rss_snap:.0} MiB (was {rss_before:.0} MiB before opening), peak {hwm:.0} MiB"
    );
    Ok(ExitCode::SUCCESS)
}
