//! kbgap's own JSON device report (`"schema": "kbgap.device/1"`): types, strict reader, writer.
//!
//! The schema is described in `docs/device-report.md`; `collector/Collect-KbgapReport.ps1`
//! produces it on a Windows host. Validation is strict: unknown keys, wrong types and bad
//! values are errors naming the JSON path (`$.os.ubr: expected an integer`).

use crate::decode::TextEncoding;
use crate::device::{Arch, Device, FactField, HotfixListState, Software, SourceFormat};
use crate::error::InventoryError;
use kbgap_core::{Build, MachineId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The schema identifier this module reads and writes.
pub const SCHEMA: &str = "kbgap.device/1";

/// The OS block of a report: the registry `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`
/// values, named as in the registry (camel-cased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReportOs {
    /// `ProductName` (says "Windows 10" on Windows 11; kbgap decides by build).
    pub product_name: String,
    /// `CurrentMajorVersionNumber` (10 on Windows 10+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_major_version_number: Option<u32>,
    /// `CurrentMinorVersionNumber`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_minor_version_number: Option<u32>,
    /// `CurrentVersion` (`6.3`; used for pre-Windows 10 hosts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// `CurrentBuild` (`19045`), digits.
    pub current_build: String,
    /// `UBR` (update build revision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ubr: Option<u32>,
    /// `DisplayVersion` (`22H2`) or `ReleaseId` on older builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_version: Option<String>,
    /// `CSDVersion` (`Service Pack 1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csd_version: Option<String>,
    /// `InstallationType`: `Client`, `Server` or `Server Core`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation_type: Option<String>,
    /// `EditionID` (`Enterprise`, `ServerDatacenter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition_id: Option<String>,
    /// `x64`, `x86`, `arm64` or `itanium`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// One installed hotfix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportHotfix {
    /// `HotFixID` as Get-HotFix gives it (`KB5022502`).
    pub id: String,
    /// `InstalledOn`, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_on: Option<String>,
    /// `Description` (`Security Update`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One installed program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSoftware {
    /// `DisplayName`.
    pub name: String,
    /// `Publisher`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// `DisplayVersion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A whole `kbgap.device/1` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Host name.
    pub host_name: String,
    /// Optional 40-hex machine id (Defender's or kbgap's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<MachineId>,
    /// RFC 3339 collection time.
    pub collected_at: String,
    /// OS block.
    pub os: ReportOs,
    /// Installed hotfixes (Get-HotFix).
    pub hotfixes: Vec<ReportHotfix>,
    /// Installed programs; may be empty.
    #[serde(default)]
    pub software: Vec<ReportSoftware>,
}

struct Ctx<'a> {
    source: &'a str,
}

impl Ctx<'_> {
    fn err(&self, path: &str, msg: impl std::fmt::Display) -> InventoryError {
        InventoryError::new(self.source, None, format!("{path}: {msg}"))
    }
    fn obj<'v>(&self, v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, InventoryError> {
        v.as_object()
            .ok_or_else(|| self.err(path, "expected an object"))
    }
    fn only_keys(
        &self,
        m: &Map<String, Value>,
        path: &str,
        allowed: &[&str],
    ) -> Result<(), InventoryError> {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(self.err(
                    &format!("{path}.{k}"),
                    format!("unknown key (allowed: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }
    fn req_str(
        &self,
        m: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Result<String, InventoryError> {
        self.opt_str(m, path, key)?.ok_or_else(|| {
            self.err(
                &format!("{path}.{key}"),
                "required string is missing or empty",
            )
        })
    }
    fn opt_str(
        &self,
        m: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Result<Option<String>, InventoryError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
            Some(_) => Err(self.err(&format!("{path}.{key}"), "expected a string")),
        }
    }
    fn opt_u32(
        &self,
        m: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Result<Option<u32>, InventoryError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.err(
                        &format!("{path}.{key}"),
                        "expected a non-negative 32-bit integer",
                    )
                }),
            Some(_) => Err(self.err(&format!("{path}.{key}"), "expected an integer")),
        }
    }
}

/// Reads and validates a report from a JSON value.
pub fn validate(v: &Value, source_name: &str) -> Result<DeviceReport, InventoryError> {
    let c = Ctx {
        source: source_name,
    };
    let top = c.obj(v, "$")?;
    c.only_keys(
        top,
        "$",
        &[
            "schema",
            "hostName",
            "machineId",
            "collectedAt",
            "os",
            "hotfixes",
            "software",
        ],
    )?;
    let schema = c.req_str(top, "$", "schema")?;
    if schema != SCHEMA {
        return Err(c.err("$.schema", format!("expected {SCHEMA:?}, found {schema:?}")));
    }
    let host_name = c.req_str(top, "$", "hostName")?;
    let machine_id = match c.opt_str(top, "$", "machineId")? {
        Some(s) => Some(s.parse::<MachineId>().map_err(|_| {
            c.err(
                "$.machineId",
                format!("expected 40 hex characters, found {s:?}"),
            )
        })?),
        None => None,
    };
    let collected_at = c.req_str(top, "$", "collectedAt")?;
    if chrono::DateTime::parse_from_rfc3339(&collected_at).is_err() {
        return Err(c.err(
            "$.collectedAt",
            format!("expected an RFC 3339 time, found {collected_at:?}"),
        ));
    }
    let os_v = top
        .get("os")
        .ok_or_else(|| c.err("$.os", "required object is missing"))?;
    let os_m = c.obj(os_v, "$.os")?;
    c.only_keys(
        os_m,
        "$.os",
        &[
            "productName",
            "currentMajorVersionNumber",
            "currentMinorVersionNumber",
            "currentVersion",
            "currentBuild",
            "ubr",
            "displayVersion",
            "csdVersion",
            "installationType",
            "editionId",
            "architecture",
        ],
    )?;
    let current_build = match os_m.get("currentBuild") {
        Some(Value::String(s))
            if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.trim().to_owned()
        }
        Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
        Some(other) => {
            return Err(c.err(
                "$.os.currentBuild",
                format!("expected digits, found {other}"),
            ))
        }
        None => return Err(c.err("$.os.currentBuild", "required value is missing")),
    };
    let installation_type = c.opt_str(os_m, "$.os", "installationType")?;
    if let Some(t) = &installation_type {
        if !["client", "server", "server core"].contains(&t.to_ascii_lowercase().as_str()) {
            return Err(c.err(
                "$.os.installationType",
                format!("expected Client, Server or Server Core, found {t:?}"),
            ));
        }
    }
    let architecture = c.opt_str(os_m, "$.os", "architecture")?;
    if let Some(a) = &architecture {
        if Arch::parse(a).is_none() {
            return Err(c.err(
                "$.os.architecture",
                format!("expected x64, x86, arm64 or itanium, found {a:?}"),
            ));
        }
    }
    let current_version = c.opt_str(os_m, "$.os", "currentVersion")?;
    if let Some(cv) = &current_version {
        let ok = cv
            .split_once('.')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
        if !ok {
            return Err(c.err(
                "$.os.currentVersion",
                format!("expected `major.minor`, found {cv:?}"),
            ));
        }
    }
    let os = ReportOs {
        product_name: c.req_str(os_m, "$.os", "productName")?,
        current_major_version_number: c.opt_u32(os_m, "$.os", "currentMajorVersionNumber")?,
        current_minor_version_number: c.opt_u32(os_m, "$.os", "currentMinorVersionNumber")?,
        current_version,
        current_build,
        ubr: c.opt_u32(os_m, "$.os", "ubr")?,
        display_version: c.opt_str(os_m, "$.os", "displayVersion")?,
        csd_version: c.opt_str(os_m, "$.os", "csdVersion")?,
        installation_type,
        edition_id: c.opt_str(os_m, "$.os", "editionId")?,
        architecture,
    };
    let hot_v = top
        .get("hotfixes")
        .ok_or_else(|| c.err("$.hotfixes", "required array is missing"))?;
    let hot_a = hot_v
        .as_array()
        .ok_or_else(|| c.err("$.hotfixes", "expected an array"))?;
    let mut hotfixes = Vec::new();
    for (i, h) in hot_a.iter().enumerate() {
        let p = format!("$.hotfixes[{i}]");
        let m = c.obj(h, &p)?;
        c.only_keys(m, &p, &["id", "installedOn", "description"])?;
        hotfixes.push(ReportHotfix {
            id: c.req_str(m, &p, "id")?,
            installed_on: c.opt_str(m, &p, "installedOn")?,
            description: c.opt_str(m, &p, "description")?,
        });
    }
    let mut software = Vec::new();
    match top.get("software") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, s) in a.iter().enumerate() {
                let p = format!("$.software[{i}]");
                let m = c.obj(s, &p)?;
                c.only_keys(m, &p, &["name", "vendor", "version"])?;
                software.push(ReportSoftware {
                    name: c.req_str(m, &p, "name")?,
                    vendor: c.opt_str(m, &p, "vendor")?,
                    version: c.opt_str(m, &p, "version")?,
                });
            }
        }
        Some(_) => return Err(c.err("$.software", "expected an array")),
    }
    Ok(DeviceReport {
        schema,
        host_name,
        machine_id,
        collected_at,
        os,
        hotfixes,
        software,
    })
}

/// Parses report bytes into a [`Device`].
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Device, InventoryError> {
    let d = crate::detect::decode_input(bytes, source_name)?;
    let v: Value = serde_json::from_str(&d.text).map_err(|e| {
        InventoryError::new(source_name, Some(e.line()), format!("invalid JSON: {e}"))
    })?;
    to_device(&validate(&v, source_name)?, d.encoding, source_name)
}

/// Builds a [`Device`] from a validated report.
pub fn to_device(
    r: &DeviceReport,
    encoding: TextEncoding,
    source_name: &str,
) -> Result<Device, InventoryError> {
    let mut dev = Device::new(source_name, SourceFormat::KbgapReport);
    dev.fact(FactField::Encoding, encoding.name(), None);
    dev.host_name = Some(r.host_name.clone());
    dev.fact(FactField::HostName, &r.host_name, None);
    dev.machine_id = r.machine_id;
    if let Some(m) = r.machine_id {
        dev.fact(FactField::MachineId, &m.to_string(), None);
    }
    dev.collected_at = Some(r.collected_at.clone());
    dev.fact(FactField::CollectedAt, &r.collected_at, None);
    let os = &r.os;
    dev.os.name_raw = Some(os.product_name.clone());
    dev.fact(FactField::ProductName, &os.product_name, None);
    let build: u32 = os.current_build.parse().map_err(|_| {
        InventoryError::new(
            source_name,
            None,
            format!("$.os.currentBuild: {:?} is too large", os.current_build),
        )
    })?;
    dev.fact(FactField::CurrentBuild, &os.current_build, None);
    let (major, minor) = match (os.current_major_version_number, os.current_minor_version_number) {
        (Some(a), Some(b)) => (a, b),
        _ => match os.current_version.as_deref().and_then(|v| v.split_once('.')) {
            Some((a, b)) => (a.parse().unwrap_or(10), b.parse().unwrap_or(0)),
            None if build >= 10240 => (10, 0),
            None => {
                return Err(InventoryError::new(
                    source_name,
                    None,
                    "$.os.currentVersion: required for builds before 10240 (no currentMajorVersionNumber)",
                ))
            }
        },
    };
    dev.os.build = Some(Build::new(major, minor, build, os.ubr));
    if let Some(u) = os.ubr {
        dev.fact(FactField::Ubr, &u.to_string(), None);
    }
    if let Some(sp) = &os.csd_version {
        dev.os.service_pack = sp.rsplit(' ').next().and_then(|n| n.parse().ok());
    }
    let server_hint = os.installation_type.as_deref().map(|t| {
        dev.facts.push(crate::device::Fact {
            field: FactField::InstallationType,
            value: t.to_owned(),
            source_name: source_name.to_owned(),
            line: None,
        });
        t.to_ascii_lowercase().starts_with("server")
    });
    dev.os.server_core = os
        .installation_type
        .as_deref()
        .map(|t| t.eq_ignore_ascii_case("server core"));
    if let Some(e) = &os.edition_id {
        dev.os.edition = Some(e.clone());
        dev.fact(FactField::EditionId, e, None);
    }
    if let Some(a) = &os.architecture {
        dev.os.architecture = Arch::parse(a);
        dev.fact(FactField::Architecture, a, None);
    }
    let mut w = Vec::new();
    dev.os.classify(server_hint, source_name, &mut w);
    dev.warnings.extend(w);
    if dev.os.release.is_none() {
        if let Some(dv) = &os.display_version {
            dev.os.release = Some(dv.clone());
        }
    }
    if let Some(dv) = &os.display_version {
        dev.fact(FactField::DisplayVersion, dv, None);
    }
    for (i, h) in r.hotfixes.iter().enumerate() {
        if dev
            .add_hotfix_item(&h.id, h.installed_on.clone(), None)
            .is_none()
        {
            dev.warn(
                None,
                format!(
                    "$.hotfixes[{i}].id: {:?} is not a KB; kept as another hotfix",
                    h.id
                ),
            );
        }
    }
    dev.hotfix_list = HotfixListState::Complete;
    dev.fact(
        FactField::Hotfixes,
        &format!("{} hotfixes", r.hotfixes.len()),
        None,
    );
    dev.software = r
        .software
        .iter()
        .map(|s| Software {
            name: s.name.clone(),
            vendor: s.vendor.clone(),
            version: s.version.clone(),
        })
        .collect();
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_json_path() {
        let v: Value = serde_json::json!({
            "schema": SCHEMA, "hostName": "H", "collectedAt": "2026-01-01T00:00:00Z",
            "os": {"productName": "Windows 10 Pro", "currentBuild": "19045", "ubr": "x"},
            "hotfixes": []
        });
        let e = validate(&v, "r.json").unwrap_err();
        assert_eq!(e.to_string(), "r.json: $.os.ubr: expected an integer");
        let v: Value = serde_json::json!({
            "schema": SCHEMA, "hostName": "H", "collectedAt": "2026-01-01T00:00:00Z",
            "os": {"productName": "Windows 10 Pro", "currentBuild": "19045"},
            "hotfixes": [{"id": "KB1234567", "bogus": 1}]
        });
        let e = validate(&v, "r.json").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("r.json: $.hotfixes[0].bogus: unknown key"),
            "{e}"
        );
    }
}
