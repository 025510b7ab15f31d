//! Parser for osquery JSON results (`osqueryi --json`): os_version, patches, registry, programs.
//!
//! Accepted shapes:
//! * one table, as `osqueryi --json "select * from patches"` prints it: a JSON array of row
//!   objects (the table is recognised by its columns);
//! * a combined document `{"os_version": [...], "patches": [...], "registry": [...],
//!   "programs": [...]}`, each key optional, each value such an array (a single object is
//!   accepted for `os_version`).
//!
//! osquery prints every value as a string; numbers are accepted too. `os_version.build`
//! lacks the UBR (osquery#7663), so the UBR comes from `registry` rows under
//! `HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion` (names `CurrentBuild`,
//! `UBR`, `DisplayVersion`, `InstallationType`, `ProductName`, `EditionID`).

use crate::decode::TextEncoding;
use crate::device::{Arch, Device, FactField, HotfixListState, Software, SourceFormat};
use crate::error::InventoryError;
use kbgap_core::Build;
use serde_json::{Map, Value};

/// Which osquery table a row array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `os_version`.
    OsVersion,
    /// `patches` (Win32_QuickFixEngineering).
    Patches,
    /// `registry`.
    Registry,
    /// `programs`.
    Programs,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn field(row: &Map<String, Value>, key: &str) -> Option<String> {
    row.get(key).and_then(text)
}

/// Recognises the table of a row by its columns.
pub fn table_of(row: &Map<String, Value>) -> Option<Table> {
    if row.contains_key("hotfix_id") {
        Some(Table::Patches)
    } else if row.contains_key("path") && row.contains_key("data") {
        Some(Table::Registry)
    } else if row.contains_key("platform")
        || (row.contains_key("major") && row.contains_key("build"))
    {
        Some(Table::OsVersion)
    } else if row.contains_key("name")
        && (row.contains_key("publisher") || row.contains_key("install_location"))
    {
        Some(Table::Programs)
    } else {
        None
    }
}

/// True when a parsed JSON value looks like osquery output.
pub fn looks_like(v: &Value) -> bool {
    match v {
        Value::Array(rows) => rows
            .first()
            .and_then(Value::as_object)
            .and_then(table_of)
            .is_some(),
        Value::Object(m) => ["os_version", "patches", "registry", "programs"]
            .iter()
            .any(|k| m.contains_key(*k)),
        _ => false,
    }
}

/// Parses osquery JSON bytes.
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Device, InventoryError> {
    let d = crate::detect::decode_input(bytes, source_name)?;
    let v: Value = serde_json::from_str(&d.text).map_err(|e| {
        InventoryError::new(source_name, Some(e.line()), format!("invalid JSON: {e}"))
    })?;
    parse_value(&v, d.encoding, source_name)
}

fn rows<'a>(
    v: &'a Value,
    path: &str,
    source_name: &str,
) -> Result<Vec<&'a Map<String, Value>>, InventoryError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => {
            return Err(InventoryError::new(
                source_name,
                None,
                format!("{path}: expected an array of row objects"),
            ))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_object().ok_or_else(|| {
                InventoryError::new(
                    source_name,
                    None,
                    format!("{path}[{i}]: expected a row object"),
                )
            })
        })
        .collect()
}

/// Parses an already-decoded osquery JSON value.
pub fn parse_value(
    v: &Value,
    encoding: TextEncoding,
    source_name: &str,
) -> Result<Device, InventoryError> {
    let mut dev = Device::new(source_name, SourceFormat::Osquery);
    dev.fact(FactField::Encoding, encoding.name(), None);
    let mut os_rows = Vec::new();
    let mut patch_rows = Vec::new();
    let mut reg_rows = Vec::new();
    let mut prog_rows = Vec::new();
    match v {
        Value::Array(_) => {
            let rs = rows(v, "$", source_name)?;
            let Some(first) = rs.first() else {
                return Err(InventoryError::new(
                    source_name,
                    None,
                    "$: empty osquery result: no rows, table unknown",
                ));
            };
            let Some(t) = table_of(first) else {
                return Err(InventoryError::new(
                    source_name,
                    None,
                    "$[0]: row columns match no supported osquery table (os_version, patches, registry, programs)",
                ));
            };
            match t {
                Table::OsVersion => os_rows = rs,
                Table::Patches => patch_rows = rs,
                Table::Registry => reg_rows = rs,
                Table::Programs => prog_rows = rs,
            }
        }
        Value::Object(m) => {
            for (k, val) in m {
                let path = format!("$.{k}");
                match k.as_str() {
                    "os_version" => os_rows = rows(val, &path, source_name)?,
                    "patches" => patch_rows = rows(val, &path, source_name)?,
                    "registry" => reg_rows = rows(val, &path, source_name)?,
                    "programs" => prog_rows = rows(val, &path, source_name)?,
                    other => dev.warn(None, format!("$.{other}: unknown osquery table ignored")),
                }
            }
        }
        _ => {
            return Err(InventoryError::new(
                source_name,
                None,
                "$: expected an osquery result array or a {\"os_version\": [...], ...} object",
            ))
        }
    }

    let mut server_hint = None;
    if let Some(os) = os_rows.first() {
        if let Some(name) = field(os, "name") {
            dev.fact(FactField::OsName, &name, None);
            dev.os.name_raw = Some(name);
        }
        if let Some(ver) = field(os, "version") {
            dev.fact(FactField::OsVersion, &ver, None);
            dev.os.build = ver.parse::<Build>().ok();
        }
        if dev.os.build.is_none() {
            let num = |k: &str| field(os, k).and_then(|s| s.parse::<u32>().ok());
            if let (Some(ma), Some(mi), Some(b)) = (num("major"), num("minor"), num("build")) {
                dev.os.build = Some(Build::new(ma, mi, b, num("revision")));
            }
        }
        if let Some(a) = field(os, "arch") {
            dev.os.architecture = Arch::parse(&a);
            dev.fact(FactField::Architecture, &a, None);
        }
        if let Some(p) = field(os, "platform") {
            if p != "windows" {
                dev.warn(None, format!("os_version.platform is {p:?}, not windows"));
            }
        }
    }

    // Registry rows: key path ends in \CurrentVersion\<Name>; the name column repeats it.
    let mut cur_build: Option<u32> = None;
    let mut ubr: Option<u32> = None;
    for (i, r) in reg_rows.iter().enumerate() {
        let path = field(r, "path").unwrap_or_default();
        if !path
            .to_ascii_lowercase()
            .contains("\\microsoft\\windows nt\\currentversion")
        {
            continue;
        }
        let name =
            field(r, "name").unwrap_or_else(|| path.rsplit('\\').next().unwrap_or("").to_owned());
        let Some(data) = field(r, "data") else {
            continue;
        };
        match name.to_ascii_lowercase().as_str() {
            "currentbuild" | "currentbuildnumber" => {
                dev.fact(FactField::CurrentBuild, &data, None);
                cur_build = data.parse().ok();
            }
            "ubr" => {
                dev.fact(FactField::Ubr, &data, None);
                ubr = parse_dword(&data);
                if ubr.is_none() {
                    return Err(InventoryError::new(
                        source_name,
                        None,
                        format!("$.registry[{i}].data: UBR {data:?} is not a number"),
                    ));
                }
            }
            "displayversion" => {
                dev.fact(FactField::DisplayVersion, &data, None);
                dev.os.release = Some(data);
            }
            "installationtype" => {
                dev.fact(FactField::InstallationType, &data, None);
                let l = data.to_ascii_lowercase();
                server_hint = Some(l.starts_with("server"));
                dev.os.server_core = Some(l == "server core");
            }
            "productname" => {
                dev.fact(FactField::ProductName, &data, None);
                if dev.os.name_raw.is_none() {
                    dev.os.name_raw = Some(data);
                }
            }
            "editionid" => {
                dev.fact(FactField::EditionId, &data, None);
                dev.os.edition = Some(data);
            }
            _ => {}
        }
    }
    if let Some(cb) = cur_build {
        match dev.os.build {
            Some(b) if b.build != cb => dev.warn(
                None,
                format!(
                    "registry CurrentBuild {cb} disagrees with os_version build {b}; registry kept"
                ),
            ),
            _ => {}
        }
        let base = dev.os.build.unwrap_or(Build::new(10, 0, cb, None));
        dev.os.build = Some(Build::new(base.major, base.minor, cb, base.revision));
    }
    if let (Some(u), Some(b)) = (ubr, dev.os.build) {
        dev.os.build = Some(Build::new(b.major, b.minor, b.build, Some(u)));
    }
    let release_from_registry = dev.os.release.take();
    let mut w = Vec::new();
    dev.os.classify(server_hint, source_name, &mut w);
    dev.warnings.extend(w);
    if dev.os.release.is_none() {
        dev.os.release = release_from_registry;
    }

    for (i, r) in patch_rows.iter().enumerate() {
        let Some(id) = field(r, "hotfix_id") else {
            dev.warn(
                None,
                format!("$.patches[{i}]: row without hotfix_id ignored"),
            );
            continue;
        };
        if dev.host_name.is_none() {
            dev.host_name = field(r, "csname");
        }
        dev.add_hotfix_item(&id, field(r, "installed_on"), None);
    }
    dev.hotfix_list =
        if patch_rows.is_empty() && !matches!(v, Value::Object(m) if m.contains_key("patches")) {
            HotfixListState::Unknown
        } else {
            dev.fact(
                FactField::Hotfixes,
                &format!("{} patches rows", patch_rows.len()),
                None,
            );
            HotfixListState::Complete
        };

    for r in &prog_rows {
        if let Some(name) = field(r, "name") {
            dev.software.push(Software {
                name,
                vendor: field(r, "publisher"),
                version: field(r, "version"),
            });
        }
    }
    if !prog_rows.is_empty() {
        dev.fact(
            FactField::Software,
            &format!("{} programs rows", prog_rows.len()),
            None,
        );
    }
    Ok(dev)
}

/// Registry DWORDs print as decimal in osquery, or `0x..` hex in some exports.
fn parse_dword(s: &str) -> Option<u32> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => t.parse().ok(),
    }
}
