//! Times parsing every document of the MSRC archive fixture single-threaded and prints issue counts by field.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn main() {
    let docs = kbgap_testdata::archive_documents();
    let mut total = Duration::ZERO;
    let mut bytes = 0usize;
    let mut by_field: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = 0;
    for path in &docs {
        let data = std::fs::read(path).expect("read archive document");
        bytes += data.len();
        let start = Instant::now();
        let res = kbgap_catalog::parse_document(&data, &path.display().to_string());
        total += start.elapsed();
        match res {
            Ok((d, _)) => {
                for i in d.issues {
                    *by_field
                        .entry(format!("{} (skipped={})", i.field, i.skipped))
                        .or_default() += 1;
                }
            }
            Err(e) => {
                failures += 1;
                eprintln!("{e}");
            }
        }
    }
    let loaded: Vec<Vec<u8>> = docs
        .iter()
        .map(|p| std::fs::read(p).expect("read archive document"))
        .collect();
    let head_start = Instant::now();
    for data in &loaded {
        let _ = kbgap_catalog::read_head(data, "x");
    }
    println!(
        "{} documents, {:.1} MB, parse {:.2?} ({:.0} MB/s), {failures} errors; read_head {:.2?} for all documents (in memory)",
        docs.len(),
        bytes as f64 / 1e6,
        total,
        bytes as f64 / 1e6 / total.as_secs_f64(),
        head_start.elapsed()
    );
    for (f, n) in by_field {
        println!("{n:>7}  {f}");
    }
}
