//! Format sniffing: `parse_any` decides whether bytes are systeminfo, a hotfix table/CSV,
//! osquery JSON or a kbgap report, and dispatches to the right parser.

use crate::decode::{self, DecodeProblem, Decoded, TextEncoding};
use crate::device::Device;
use crate::error::InventoryError;
use crate::{osquery, qfe, report, systeminfo, wua};

/// Decodes input bytes, refusing binary and empty inputs with a clear error.
pub fn decode_input(bytes: &[u8], source_name: &str) -> Result<Decoded, InventoryError> {
    let d = decode_input_allow_empty(bytes, source_name)?;
    if d.text.trim().is_empty() {
        return Err(InventoryError::new(
            source_name,
            None,
            "empty input: expected systeminfo, wmic qfe, Get-HotFix, osquery or kbgap JSON output",
        ));
    }
    Ok(d)
}

/// Decodes input bytes, refusing binary input but accepting whitespace-only text.
pub fn decode_input_allow_empty(
    bytes: &[u8],
    source_name: &str,
) -> Result<Decoded, InventoryError> {
    if bytes.is_empty() {
        return Err(InventoryError::new(
            source_name,
            None,
            "empty file (0 bytes): expected systeminfo, wmic qfe, Get-HotFix, osquery or kbgap JSON output",
        ));
    }
    decode::decode(bytes).map_err(|p| match p {
        DecodeProblem::Binary { offset } => InventoryError::new(
            source_name,
            None,
            format!("binary data at byte {offset}: expected the text output of a Windows tool"),
        ),
    })
}

/// The input formats `parse_any` recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// systeminfo list form.
    Systeminfo,
    /// systeminfo `/fo csv`.
    SysteminfoCsv,
    /// wmic qfe / Get-HotFix table.
    HotfixTable,
    /// Get-HotFix Export-Csv.
    HotfixCsv,
    /// osquery JSON.
    Osquery,
    /// kbgap JSON report.
    KbgapReport,
    /// A Windows Update Agent list (ground truth, not a device).
    WuaList,
}

/// Guesses the format of decoded text.
pub fn sniff(text: &str) -> Option<Sniffed> {
    let t = text.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(t) {
            if v.get("schema")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.starts_with("kbgap.device/"))
            {
                return Some(Sniffed::KbgapReport);
            }
            if osquery::looks_like(&v) {
                return Some(Sniffed::Osquery);
            }
            return None;
        }
    }
    if qfe::looks_like_csv(text) {
        return Some(Sniffed::HotfixCsv);
    }
    if systeminfo::looks_like_csv(text) {
        return Some(Sniffed::SysteminfoCsv);
    }
    if qfe::looks_like_table(text) {
        return Some(Sniffed::HotfixTable);
    }
    if wua::looks_like(text) {
        return Some(Sniffed::WuaList);
    }
    if systeminfo::looks_like_list(text) {
        return Some(Sniffed::Systeminfo);
    }
    None
}

/// Parses any supported device input, sniffing its format.
///
/// Errors: 0-byte or whitespace-only input, binary data, a systeminfo cut before a required
/// field (the error names it), a WUA list (not a device), unknown formats. One exception to
/// "empty is an error": a Unicode BOM followed only by whitespace is what PowerShell's `>`
/// writes for a `wmic qfe` with no rows, so it is read as a hotfix list with zero entries.
pub fn parse_any(bytes: &[u8], source_name: &str) -> Result<Device, InventoryError> {
    let d = decode_input_allow_empty(bytes, source_name)?;
    if d.text.trim().is_empty() {
        let bom = matches!(
            d.encoding,
            TextEncoding::Utf16LeBom | TextEncoding::Utf16BeBom | TextEncoding::Utf8Bom
        );
        if bom && bytes.len() <= 8 {
            return qfe::parse_table_text(&d.text, d.encoding, source_name);
        }
        return Err(InventoryError::new(
            source_name,
            None,
            "empty input: expected systeminfo, wmic qfe, Get-HotFix, osquery or kbgap JSON output",
        ));
    }
    match sniff(&d.text) {
        Some(Sniffed::Systeminfo | Sniffed::SysteminfoCsv) => {
            systeminfo::parse_text(&d.text, d.encoding, source_name)
        }
        Some(Sniffed::HotfixTable) => qfe::parse_table_text(&d.text, d.encoding, source_name),
        Some(Sniffed::HotfixCsv) => qfe::parse_csv_text(&d.text, d.encoding, source_name),
        Some(Sniffed::Osquery) => {
            let v: serde_json::Value = serde_json::from_str(d.text.trim_start())
                .map_err(|e| InventoryError::new(source_name, Some(e.line()), format!("invalid JSON: {e}")))?;
            osquery::parse_value(&v, d.encoding, source_name)
        }
        Some(Sniffed::KbgapReport) => {
            let v: serde_json::Value = serde_json::from_str(d.text.trim_start())
                .map_err(|e| InventoryError::new(source_name, Some(e.line()), format!("invalid JSON: {e}")))?;
            report::to_device(&report::validate(&v, source_name)?, d.encoding, source_name)
        }
        Some(Sniffed::WuaList) => Err(InventoryError::new(
            source_name,
            Some(1),
            "this is a Windows Update Agent list (`KBnnnn: title`), not a device inventory; read it with wua::parse",
        )),
        None => {
            let t = d.text.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(t) {
                    return Err(InventoryError::new(source_name, Some(e.line()), format!("invalid JSON: {e}")));
                }
                return Err(InventoryError::new(
                    source_name,
                    None,
                    "JSON is neither a kbgap.device/1 report nor osquery results (os_version, patches, registry, programs)",
                ));
            }
            let first = decode::lines(&d.text).find(|(_, l)| !l.trim().is_empty());
            Err(InventoryError::new(
                source_name,
                first.map(|f| f.0),
                format!(
                    "unknown format: expected systeminfo, wmic qfe, Get-HotFix, osquery or kbgap JSON; first line is {:?}",
                    first.map(|f| f.1.trim().chars().take(60).collect::<String>()).unwrap_or_default()
                ),
            ))
        }
    }
}
