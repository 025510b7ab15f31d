//! Parsers for KB-only hotfix lists: `wmic qfe` tables, `Get-HotFix` tables and `Get-HotFix | Export-Csv`.
//!
//! These give installed KBs (and perhaps the host name), never the OS: the resulting
//! [`Device`] has `os.family == Unknown` and is meant to be merged into a systeminfo or
//! registry-based device with [`Device::merge_hotfixes`].

use crate::decode::{self, TextEncoding};
use crate::device::{
    classify_hotfix_item, Device, FactField, HotfixItem, HotfixListState, SourceFormat,
};
use crate::error::InventoryError;

/// A header column: name (lower-case) and start offset in chars.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    start: usize,
}

/// Finds a fixed-width table header: a line with `HotFixID` and `Description` as words.
/// Returns (index in `lines`, columns with char offsets in that line).
fn find_header(lines: &[(usize, &str)]) -> Option<(usize, Vec<Column>)> {
    for (idx, (_, l)) in lines.iter().enumerate() {
        let lower = l.to_lowercase();
        if !(lower.contains("hotfixid") && lower.contains("description")) || l.contains('"') {
            continue;
        }
        // Header words, with char offsets; a junk prefix glued to the first column name
        // (`Please wait while WMIC is being installed.Caption`) is cut at the known name.
        let chars: Vec<char> = l.chars().collect();
        let lower_chars: Vec<char> = lower.chars().collect();
        // Skip a junk prefix: start at the earliest leading column name (char offset).
        let mut i = [
            "caption",
            "csname",
            "description",
            "source",
            "pscomputername",
        ]
        .iter()
        .filter_map(|k| {
            let kc: Vec<char> = k.chars().collect();
            lower_chars
                .windows(kc.len())
                .position(|w| w == kc.as_slice())
        })
        .min()
        .unwrap_or(0);
        let mut cols = Vec::new();
        while i < chars.len() {
            if chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            cols.push(Column {
                name: word.to_lowercase(),
                start,
            });
        }
        if cols.iter().any(|c| c.name == "hotfixid") {
            return Some((idx, cols));
        }
    }
    None
}

/// Splits a data row into column values.
///
/// Tokens are runs separated by two or more spaces. A token starting exactly at a column
/// offset belongs to that column; otherwise it goes to the column whose range contains it
/// if that one is still free, else to the next free column (wmic misaligns rows that
/// contain non-ASCII text, e.g. `TEST_dc\Администратор`).
fn split_row(row: &str, cols: &[Column], origin: usize) -> Vec<Option<String>> {
    let chars: Vec<char> = row.chars().collect();
    let mut tokens: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        while i < chars.len() {
            if chars[i].is_whitespace() {
                let ws = chars[i..].iter().take_while(|c| c.is_whitespace()).count();
                if ws >= 2 || i + ws == chars.len() {
                    break;
                }
                i += ws;
            } else {
                i += 1;
                end = i;
            }
        }
        tokens.push((
            start.saturating_sub(origin),
            chars[start..end].iter().collect(),
        ));
    }
    let mut out: Vec<Option<String>> = vec![None; cols.len()];
    let mut next_free = 0usize;
    for (start, text) in tokens {
        let exact = cols.iter().position(|c| c.start == start);
        let containing = cols.iter().rposition(|c| c.start <= start).unwrap_or(0);
        let idx = match exact {
            Some(e) if e >= next_free => e,
            _ if containing >= next_free => containing,
            _ => next_free,
        };
        if idx < out.len() {
            out[idx] = Some(text);
            next_free = idx + 1;
        }
    }
    out
}

/// True when the text looks like a wmic qfe / Get-HotFix fixed-width table.
pub fn looks_like_table(text: &str) -> bool {
    let lines: Vec<(usize, &str)> = decode::lines(text).take(50).collect();
    find_header(&lines).is_some()
}

/// True when the text looks like `Get-HotFix | Export-Csv` output.
pub fn looks_like_csv(text: &str) -> bool {
    decode::lines(text)
        .map(|(_, l)| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with("#TYPE"))
        .take(1)
        .any(|l| l.contains(',') && l.to_ascii_lowercase().contains("hotfixid"))
}

/// Parses a `wmic qfe` or `Get-HotFix` table (decoding the bytes first).
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Device, InventoryError> {
    let d = crate::detect::decode_input_allow_empty(bytes, source_name)?;
    if looks_like_csv(&d.text) {
        parse_csv_text(&d.text, d.encoding, source_name)
    } else {
        parse_table_text(&d.text, d.encoding, source_name)
    }
}

fn record_kb(
    dev: &mut Device,
    id: &str,
    spie: Option<&str>,
    installed_on: Option<String>,
    line: Option<usize>,
) {
    // XP lists per-file entries as `HotFixID = File 1` with the KB in ServicePackInEffect.
    let id_is_kb = matches!(classify_hotfix_item(id), HotfixItem::Kb { .. });
    if !id_is_kb {
        if let Some(s) = spie {
            if let HotfixItem::Kb { kb, note } = classify_hotfix_item(s) {
                dev.push_kb(crate::device::InstalledKb {
                    kb,
                    raw: format!("{id} / {s}"),
                    installed_on,
                    note: Some(match note {
                        Some(n) => format!("KB taken from ServicePackInEffect; {n}"),
                        None => "KB taken from ServicePackInEffect".to_owned(),
                    }),
                    source_name: dev.source_name.clone(),
                    line,
                });
                return;
            }
        }
    }
    dev.add_hotfix_item(id, installed_on, line);
}

/// Parses decoded `wmic qfe` / `Get-HotFix` table text. Whitespace-only text is an empty list.
pub fn parse_table_text(
    text: &str,
    encoding: TextEncoding,
    source_name: &str,
) -> Result<Device, InventoryError> {
    let lines: Vec<(usize, &str)> = decode::lines(text).collect();
    let mut dev = Device::new(source_name, SourceFormat::WmicQfe);
    dev.fact(FactField::Encoding, encoding.name(), None);
    if text.trim().is_empty() {
        dev.hotfix_list = HotfixListState::Complete;
        dev.warn(None, "empty output read as a hotfix list with zero entries");
        dev.fact(FactField::Hotfixes, "0 rows", None);
        return Ok(dev);
    }
    let Some((hidx, cols)) = find_header(&lines) else {
        return Err(InventoryError::new(
            source_name,
            lines
                .iter()
                .find(|(_, l)| !l.trim().is_empty())
                .map(|(n, _)| *n),
            "expected a wmic qfe / Get-HotFix header line naming Description and HotFixID columns",
        ));
    };
    let (hline, _) = lines[hidx];
    if cols.iter().any(|c| c.name == "source") && !cols.iter().any(|c| c.name == "caption") {
        dev.source_format = SourceFormat::GetHotFixTable;
    }
    for (n, l) in &lines[..hidx] {
        if !l.trim().is_empty() {
            dev.warn(
                Some(*n),
                format!("text before the table header ignored: {:?}", l.trim()),
            );
        }
    }
    // Offset of the first column in the header line (a junk prefix is skipped).
    let origin = cols.first().map_or(0, |c| c.start);
    let cols: Vec<Column> = cols
        .into_iter()
        .map(|c| Column {
            name: c.name,
            start: c.start - origin,
        })
        .collect();
    dev.fact(
        FactField::Hotfixes,
        &format!("table header at line {hline}"),
        Some(hline),
    );
    let col = |name: &str| cols.iter().position(|c| c.name == name);
    let (c_id, c_on, c_spie) = (
        col("hotfixid"),
        col("installedon"),
        col("servicepackineffect"),
    );
    let c_host = col("csname")
        .or_else(|| col("source"))
        .or_else(|| col("pscomputername"));
    let mut rows = 0usize;
    for (n, l) in &lines[hidx + 1..] {
        let t = l.trim();
        if t.is_empty() || t.chars().all(|c| c == '-' || c.is_whitespace()) {
            continue;
        }
        // Data rows are aligned to the header without its junk prefix.
        let vals = split_row(l, &cols, 0);
        let get = |c: Option<usize>| c.and_then(|i| vals.get(i).cloned().flatten());
        let Some(id) = get(c_id) else {
            dev.warn(
                Some(*n),
                format!("row without a HotFixID value ignored: {t:?}"),
            );
            continue;
        };
        rows += 1;
        if dev.host_name.is_none() {
            if let Some(h) = get(c_host) {
                dev.fact(FactField::HostName, &h, Some(*n));
                dev.host_name = Some(h);
            }
        }
        let spie = get(c_spie);
        record_kb(&mut dev, &id, spie.as_deref(), get(c_on), Some(*n));
    }
    dev.hotfix_list = HotfixListState::Complete;
    if rows == 0 {
        dev.warn(Some(hline), "table header without rows: zero hotfixes");
    }
    Ok(dev)
}

/// Parses decoded `Get-HotFix | Export-Csv` text (with or without the `#TYPE` line).
pub fn parse_csv_text(
    text: &str,
    encoding: TextEncoding,
    source_name: &str,
) -> Result<Device, InventoryError> {
    let mut dev = Device::new(source_name, SourceFormat::GetHotFixCsv);
    dev.fact(FactField::Encoding, encoding.name(), None);
    // Drop the `#TYPE ...` line but keep line numbers right.
    let body: String = decode::lines(text)
        .map(|(_, l)| if l.starts_with("#TYPE") { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    let mut header: Option<Vec<String>> = None;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            InventoryError::new(
                source_name,
                e.position().map(|p| p.line() as usize),
                format!("Get-HotFix CSV: {e}"),
            )
        })?;
        let line = rec.position().map(|p| p.line() as usize);
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let Some(h) = &header else {
            let h: Vec<String> = rec.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
            if !h.iter().any(|c| c == "hotfixid") {
                return Err(InventoryError::new(
                    source_name,
                    line,
                    "expected a Get-HotFix CSV header with a HotFixID column",
                ));
            }
            dev.fact(FactField::Hotfixes, "Get-HotFix CSV header", line);
            header = Some(h);
            continue;
        };
        let get = |name: &str| {
            h.iter()
                .position(|c| c == name)
                .and_then(|i| rec.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let Some(id) = get("hotfixid") else {
            dev.warn(line, "row without a HotFixID value ignored");
            continue;
        };
        if dev.host_name.is_none() {
            if let Some(hn) = get("csname")
                .or_else(|| get("source"))
                .or_else(|| get("pscomputername"))
            {
                dev.fact(FactField::HostName, &hn, line);
                dev.host_name = Some(hn);
            }
        }
        let spie = get("servicepackineffect");
        record_kb(&mut dev, &id, spie.as_deref(), get("installedon"), line);
    }
    if header.is_none() {
        return Err(InventoryError::new(
            source_name,
            None,
            "Get-HotFix CSV without a header row",
        ));
    }
    dev.hotfix_list = HotfixListState::Complete;
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misaligned_non_ascii_row_still_splits() {
        let header = "Caption  CSName  HotFixID   InstalledBy                 InstalledOn  Name";
        let lines = vec![(1, header)];
        let (_, cols) = find_header(&[(1, "Description  HotFixID  InstalledOn")]).unwrap();
        assert_eq!(cols.len(), 3);
        assert!(find_header(&lines).is_none(), "no Description column");
        let header = "Caption  CSName  Description  HotFixID   InstalledBy                 InstalledOn  Name";
        let (_, cols) = find_header(&[(1, header)]).unwrap();
        let row = "http://x  DC      Update       KB2919355  TEST_dc\\Администратор  3/18/2014";
        let v = split_row(row, &cols, 0);
        assert_eq!(v[3].as_deref(), Some("KB2919355"));
        assert_eq!(v[4].as_deref(), Some("TEST_dc\\Администратор"));
        assert_eq!(v[5].as_deref(), Some("3/18/2014"));
    }
}
