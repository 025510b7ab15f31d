//! Pairing KB-list-only reports (wmic qfe, Get-HotFix) with the report of the same host that
//! names its OS, so a `systeminfo` whose hotfix list was cut short is completed by the `qfe`
//! output captured with it. Used by `kbgap scan`, `kbgap devices import` and the ingestion API.

use crate::Device;
use std::collections::BTreeMap;

fn host_key(d: &Device) -> Option<String> {
    d.host_name.as_deref().map(str::to_ascii_lowercase)
}

/// `file:X` for `X_systeminfo.*`, `X_qfe.*`, `X_hotfix.*`, `X_hotfixes.*` source names.
fn stem_key(source: &str) -> Option<String> {
    let name = std::path::Path::new(source)
        .file_stem()?
        .to_str()?
        .to_ascii_lowercase();
    ["_systeminfo", "_qfe", "_hotfix", "_hotfixes"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix).map(|s| format!("file:{s}")))
}

/// Plans the merges of a set of parsed inputs (`(source name, device or None when it failed to
/// parse)`): returns, for each input that names its OS, the indices of the KB-list-only inputs
/// to fold into it with [`Device::merge_hotfixes`]. Hosts match by host name or, when the KB
/// list names no host, by file name (`X_qfe.txt` with `X_systeminfo.txt`). The first input
/// naming an OS for a host wins. Unmatched KB lists are not in the plan (they stand alone).
pub fn plan_kb_list_merges(items: &[(&str, Option<&Device>)]) -> BTreeMap<usize, Vec<usize>> {
    let mut by_stem: BTreeMap<String, usize> = BTreeMap::new();
    let mut with_os: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (source, d)) in items.iter().enumerate() {
        if let Some(d) = d.filter(|d| d.has_os()) {
            if let Some(h) = host_key(d) {
                with_os.entry(h).or_insert(i);
            }
            if let Some(k) = stem_key(source) {
                by_stem.entry(k).or_insert(i);
            }
        }
    }
    let mut merged_into: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, (source, d)) in items.iter().enumerate() {
        if let Some(d) = d.filter(|d| d.source_format.is_kb_list_only()) {
            let target = match host_key(d) {
                Some(h) => with_os.get(&h),
                None => stem_key(source).and_then(|k| by_stem.get(&k)),
            };
            if let Some(&target) = target {
                merged_into.entry(target).or_default().push(i);
            }
        }
    }
    merged_into
}

/// Applies [`plan_kb_list_merges`] to parsed devices: KB-list-only devices that fold into
/// another are removed, and the receiving device's source name lists both
/// (`a_systeminfo.txt + a_qfe.txt`). Order is kept otherwise.
pub fn fold_kb_lists(items: Vec<(String, Device)>) -> Vec<(String, Device)> {
    let plan = {
        let view: Vec<(&str, Option<&Device>)> =
            items.iter().map(|(s, d)| (s.as_str(), Some(d))).collect();
        plan_kb_list_merges(&view)
    };
    let absorbed: std::collections::BTreeSet<usize> = plan.values().flatten().copied().collect();
    let mut out = Vec::with_capacity(items.len());
    for (i, (source, dev)) in items.iter().enumerate() {
        if absorbed.contains(&i) {
            continue;
        }
        let mut dev = dev.clone();
        let mut source = source.clone();
        for &j in plan.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
            if dev.merge_hotfixes(&items[j].1).is_ok() {
                source = format!("{source} + {}", items[j].0);
            }
        }
        out.push((source, dev));
    }
    out
}
