//! Parser for Windows `systeminfo` output (list form and `/fo csv`) in any display language.
//!
//! Fields are found by localised label (tables below), with a fallback on value shape for
//! languages kbgap does not know: the OS version is the value shaped `6.1.7601 ...`, the
//! hotfix block is the `[nn]:` block whose items are KBs (processor and NIC blocks use
//! `[nn]:` too). A `ver` banner (`Microsoft Windows [Version 10.0.20348.2527]`) anywhere in
//! the input supplies the UBR.

use crate::decode::{self, TextEncoding};
use crate::device::{
    classify_hotfix_item, Arch, Device, FactField, HotfixItem, HotfixListState, OtherHotfixKind,
    SourceFormat,
};
use crate::error::InventoryError;
use kbgap_core::Build;
use regex::Regex;
use std::sync::OnceLock;

/// The systeminfo fields kbgap reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    HostName,
    OsName,
    OsVersion,
    SystemType,
    Hotfixes,
}

impl Field {
    fn english(self) -> &'static str {
        match self {
            Self::HostName => "Host Name",
            Self::OsName => "OS Name",
            Self::OsVersion => "OS Version",
            Self::SystemType => "System Type",
            Self::Hotfixes => "Hotfix(s)",
        }
    }
}

/// Localised labels (lower-case) for en, es, it, nl, fr, de, zh-CN, ru, pt, pl.
const LABELS: &[(&str, Field)] = &[
    ("host name", Field::HostName),
    ("nombre de host", Field::HostName),
    ("nome host", Field::HostName),
    ("hostnaam", Field::HostName),
    ("nom de l'hôte", Field::HostName),
    ("hostname", Field::HostName),
    ("主机名", Field::HostName),
    ("имя узла", Field::HostName),
    ("nome do host", Field::HostName),
    ("nazwa hosta", Field::HostName),
    ("os name", Field::OsName),
    ("nombre del sistema operativo", Field::OsName),
    ("nome so", Field::OsName),
    ("naam van besturingssysteem", Field::OsName),
    ("nom du système d'exploitation", Field::OsName),
    ("betriebssystemname", Field::OsName),
    ("os 名称", Field::OsName),
    ("название ос", Field::OsName),
    ("nome do so", Field::OsName),
    ("nazwa systemu operacyjnego", Field::OsName),
    ("os version", Field::OsVersion),
    ("versión del sistema operativo", Field::OsVersion),
    ("versione so", Field::OsVersion),
    ("versie van besturingssysteem", Field::OsVersion),
    ("version du système", Field::OsVersion),
    ("betriebssystemversion", Field::OsVersion),
    ("os 版本", Field::OsVersion),
    ("версия ос", Field::OsVersion),
    ("versão do so", Field::OsVersion),
    ("wersja systemu operacyjnego", Field::OsVersion),
    ("system type", Field::SystemType),
    ("tipo de sistema", Field::SystemType),
    ("tipo sistema", Field::SystemType),
    ("systeemtype", Field::SystemType),
    ("type du système", Field::SystemType),
    ("systemtyp", Field::SystemType),
    ("系统类型", Field::SystemType),
    ("тип системы", Field::SystemType),
    ("tipo do sistema", Field::SystemType),
    ("typ systemu", Field::SystemType),
    ("hotfix(s)", Field::Hotfixes),
    ("hotfix(es)", Field::Hotfixes),
    ("revisión(es)", Field::Hotfixes),
    ("aggiornamenti rapidi", Field::Hotfixes),
    ("correctif(s)", Field::Hotfixes),
    ("修补程序", Field::Hotfixes),
    ("исправление(я)", Field::Hotfixes),
    ("hotfix(s) instalado(s)", Field::Hotfixes),
    ("poprawki", Field::Hotfixes),
];

/// Localised "not available" values of the Hotfix(s) field.
const NOT_AVAILABLE: &[&str] = &[
    "n/a",
    "n/d",
    "暂缺",
    "н/д",
    "nv",
    "n.v.",
    "n.d.",
    "nicht zutreffend",
    "brak",
];

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid built-in regex"))
}

fn label_field(label: &str) -> Option<Field> {
    let l = label
        .replace('\u{a0}', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let l = l.trim_end_matches([':', '：']).trim();
    LABELS.iter().find(|(k, _)| *k == l).map(|(_, f)| *f)
}

/// One `[nn]: item` line under a field.
#[derive(Debug, Clone)]
struct Item {
    line: usize,
    text: String,
}

/// A top-level `Label: value` field with its indented `[nn]:` items.
#[derive(Debug, Clone)]
struct RawField {
    label: String,
    value: String,
    line: usize,
    items: Vec<Item>,
    /// Indented `[nnn` / `[nnn]` stubs without an item: the list was cut there.
    stubs: Vec<usize>,
}

/// Splits a top-level line at the first `:` that is followed by whitespace or the end.
fn split_label(line: &str) -> Option<(&str, &str)> {
    for (i, c) in line.char_indices() {
        if c == ':' || c == '：' {
            let rest = &line[i + c.len_utf8()..];
            if rest.is_empty() || rest.starts_with([' ', '\t']) {
                return Some((&line[..i], rest.trim()));
            }
        }
    }
    None
}

fn ver_banner(text: &str) -> Option<(usize, Build)> {
    static VER: OnceLock<Regex> = OnceLock::new();
    let r = re(&VER, r"Microsoft Windows \[[^\]0-9]*(\d+\.\d+\.\d+\.\d+)\]");
    for (n, l) in decode::lines(text) {
        if let Some(c) = r.captures(l) {
            if let Some(b) = c.get(1).and_then(|m| m.as_str().parse::<Build>().ok()) {
                return Some((n, b));
            }
        }
    }
    None
}

fn parse_list_fields(text: &str) -> Vec<RawField> {
    static ITEM: OnceLock<Regex> = OnceLock::new();
    static STUB: OnceLock<Regex> = OnceLock::new();
    let item = re(&ITEM, r"^\s+\[(\d+)\]\s*:\s?(.*)$");
    let stub = re(&STUB, r"^\s+\[\d*\]?\s*$");
    let mut fields: Vec<RawField> = Vec::new();
    for (n, l) in decode::lines(text) {
        if l.trim().is_empty() {
            continue;
        }
        if l.starts_with([' ', '\t']) {
            if let Some(f) = fields.last_mut() {
                if let Some(c) = item.captures(l) {
                    let t = c.get(2).map_or("", |m| m.as_str()).trim();
                    f.items.push(Item {
                        line: n,
                        text: t.to_owned(),
                    });
                } else if stub.is_match(l) {
                    f.stubs.push(n);
                }
            }
            continue;
        }
        if let Some((label, value)) = split_label(l) {
            fields.push(RawField {
                label: label.trim().to_owned(),
                value: value.to_owned(),
                line: n,
                items: Vec::new(),
                stubs: Vec::new(),
            });
        }
    }
    fields
}

fn parse_csv_fields(text: &str, source: &str) -> Result<Vec<RawField>, InventoryError> {
    static CSV_ITEM: OnceLock<Regex> = OnceLock::new();
    let item = re(&CSV_ITEM, r"^\[(\d+)\]\s*:\s?(.*)$");
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    for r in rdr.records() {
        let r = r.map_err(|e| {
            InventoryError::new(
                source,
                e.position().map(|p| p.line() as usize),
                format!("systeminfo CSV: {e}"),
            )
        })?;
        let line = r.position().map_or(0, |p| p.line() as usize);
        if r.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        records.push((line, r));
    }
    let Some((_, header)) = records.first() else {
        return Err(InventoryError::new(
            source,
            None,
            "systeminfo CSV has no header row",
        ));
    };
    let Some((vline, values)) = records.get(1) else {
        return Err(InventoryError::new(
            source,
            Some(records.first().map_or(1, |r| r.0)),
            "systeminfo CSV has a header row but no values row",
        ));
    };
    let mut fields = Vec::new();
    for (label, value) in header.iter().zip(values.iter()) {
        let mut f = RawField {
            label: label.trim().to_owned(),
            value: value.trim().to_owned(),
            line: *vline,
            items: Vec::new(),
            stubs: Vec::new(),
        };
        if value.contains(",[") {
            let mut parts = value.split(',');
            f.value = parts.next().unwrap_or("").trim().to_owned();
            for p in parts {
                if let Some(c) = item.captures(p.trim()) {
                    f.items.push(Item {
                        line: *vline,
                        text: c.get(2).map_or("", |m| m.as_str()).trim().to_owned(),
                    });
                }
            }
        }
        fields.push(f);
    }
    Ok(fields)
}

/// True when `text` looks like systeminfo list output: several `Label:   value` lines and a
/// value shaped like an OS version.
pub fn looks_like_list(text: &str) -> bool {
    let fields = parse_list_fields(text);
    fields.iter().any(|f| label_field(&f.label).is_some())
        || (fields.len() >= 3 && fields.iter().any(|f| os_version_shape(&f.value)))
}

/// True when `text` looks like `systeminfo /fo csv` output (a quoted header row naming a
/// known systeminfo label, then a values row).
pub fn looks_like_csv(text: &str) -> bool {
    let mut it = decode::lines(text)
        .map(|(_, l)| l)
        .filter(|l| !l.trim().is_empty());
    match (it.next(), it.next()) {
        (Some(h), Some(v)) => {
            h.trim_start().starts_with('"')
                && v.trim_start().starts_with('"')
                && h.split("\",\"").count() >= 5
                && h.split("\",\"")
                    .any(|l| label_field(l.trim_matches('"')).is_some())
        }
        _ => false,
    }
}

fn os_version_shape(value: &str) -> bool {
    static V: OnceLock<Regex> = OnceLock::new();
    re(&V, r"^\d+\.\d+\.\d+\s+\S.*\s\d+$").is_match(value.trim())
}

/// Parses systeminfo output (list form, or `/fo csv` when it looks like CSV).
pub fn parse(bytes: &[u8], source_name: &str) -> Result<Device, InventoryError> {
    let d = crate::detect::decode_input(bytes, source_name)?;
    parse_text(&d.text, d.encoding, source_name)
}

/// Parses already-decoded systeminfo text; `encoding` is recorded as a fact.
pub fn parse_text(
    text: &str,
    encoding: TextEncoding,
    source_name: &str,
) -> Result<Device, InventoryError> {
    let (fields, format) = if looks_like_csv(text) {
        (
            parse_csv_fields(text, source_name)?,
            SourceFormat::SysteminfoCsv,
        )
    } else {
        (parse_list_fields(text), SourceFormat::Systeminfo)
    };
    if fields.is_empty() {
        return Err(InventoryError::new(
            source_name,
            None,
            "expected systeminfo output (`Host Name:  ...` lines), found no `Label: value` line",
        ));
    }
    let mut dev = Device::new(source_name, format);
    dev.fact(FactField::Encoding, encoding.name(), None);

    let find = |want: Field| fields.iter().find(|f| label_field(&f.label) == Some(want));
    let labelled = |want: Field| find(want).is_some();
    let locale_known = labelled(Field::OsName) || labelled(Field::OsVersion);

    // OS Version, by label then by shape.
    let version =
        find(Field::OsVersion).or_else(|| fields.iter().find(|f| os_version_shape(&f.value)));
    let Some(version) = version else {
        let last = fields.last().map(|f| (f.line, f.label.clone()));
        return Err(InventoryError::new(
            source_name,
            last.as_ref().map(|l| l.0),
            match last {
                Some((_, label)) if locale_known => format!(
                    "systeminfo output is cut: it stops at field {label:?}, before the OS Version field"
                ),
                _ => "expected a systeminfo OS Version field (`OS Version: 10.0.19045 N/A Build 19045`), found none".to_owned(),
            },
        ));
    };
    static TRIPLE: OnceLock<Regex> = OnceLock::new();
    static SP: OnceLock<Regex> = OnceLock::new();
    let triple = re(&TRIPLE, r"^(\d+\.\d+\.\d+)\b");
    match triple
        .captures(&version.value)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse::<Build>().ok())
    {
        Some(b) => dev.os.build = Some(b),
        None => {
            return Err(InventoryError::new(
                source_name,
                Some(version.line),
                format!(
                    "OS Version field: expected `major.minor.build ...`, found {:?}",
                    version.value
                ),
            ))
        }
    }
    dev.fact(FactField::OsVersion, &version.value, Some(version.line));
    if let Some(sp) = re(&SP, r"(?i)service pack (\d+)")
        .captures(&version.value)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse().ok())
    {
        dev.os.service_pack = Some(sp);
    }

    // Host name: label, else the first field (systeminfo always starts with it).
    let host = find(Field::HostName).or_else(|| {
        fields
            .first()
            .filter(|f| f.line < version.line && !f.value.contains(' ') && !f.value.is_empty())
    });
    if let Some(h) = host {
        let v = h.value.trim();
        if !v.is_empty() && v != "..." {
            dev.host_name = Some(v.to_owned());
        }
        dev.fact(FactField::HostName, v, Some(h.line));
    }

    // OS name: label, else the field just before OS Version whose value mentions Windows.
    let name = find(Field::OsName).or_else(|| {
        fields
            .iter()
            .take_while(|f| f.line < version.line)
            .filter(|f| f.value.contains("Windows"))
            .last()
    });
    if let Some(n) = name {
        dev.os.name_raw = Some(n.value.clone());
        dev.fact(FactField::OsName, &n.value, Some(n.line));
    }

    // System type: label, else the `x64-based PC` shaped value.
    let stype = find(Field::SystemType).or_else(|| {
        fields
            .iter()
            .find(|f| f.value.to_ascii_lowercase().contains("-based"))
    });
    if let Some(s) = stype {
        dev.os.architecture = Arch::parse(&s.value);
        dev.fact(FactField::Architecture, &s.value, Some(s.line));
        if dev.os.architecture.is_none() {
            dev.warn(
                Some(s.line),
                format!(
                    "System Type {:?} is not an architecture kbgap knows",
                    s.value
                ),
            );
        }
    }

    // ver banner: the UBR.
    if let Some((line, b)) = ver_banner(text) {
        dev.fact(FactField::VerBanner, &b.to_string(), Some(line));
        match dev.os.build {
            Some(cur) if cur.without_revision() == b.without_revision() => {
                dev.os.build = Some(b);
            }
            Some(cur) => dev.warn(
                Some(line),
                format!("ver banner says {b} but OS Version says {cur}; banner ignored"),
            ),
            None => dev.os.build = Some(b),
        }
    }

    let mut warnings = Vec::new();
    dev.os.classify(None, source_name, &mut warnings);
    dev.warnings.extend(warnings);

    // Hotfix block: by label, else the `[nn]:` block made of hotfix-shaped items.
    let hot = find(Field::Hotfixes).or_else(|| {
        fields
            .iter()
            .filter(|f| !f.items.is_empty())
            .max_by_key(|f| {
                f.items
                    .iter()
                    .filter(|i| {
                        !matches!(
                            classify_hotfix_item(&i.text),
                            HotfixItem::Other(OtherHotfixKind::Unrecognised)
                        )
                    })
                    .count()
                    * 100
                    / f.items.len()
            })
            .filter(|f| {
                f.items
                    .iter()
                    .filter(|i| matches!(classify_hotfix_item(&i.text), HotfixItem::Kb { .. }))
                    .count()
                    * 2
                    >= f.items.len()
            })
    });
    match hot {
        Some(h) => read_hotfixes(&mut dev, h),
        None if locale_known => {
            let last = fields.last().map_or(version.line, |f| f.line);
            let last_label = fields.last().map_or("", |f| f.label.as_str());
            return Err(InventoryError::new(
                source_name,
                Some(last),
                format!(
                    "systeminfo output is cut: it stops at field {last_label:?}, before the {} field",
                    Field::Hotfixes.english()
                ),
            ));
        }
        None => {
            dev.hotfix_list = HotfixListState::Unknown;
            dev.warn(
                None,
                "no hotfix field found (labels in an unknown language?); installed KBs unknown",
            );
        }
    }
    Ok(dev)
}

fn read_hotfixes(dev: &mut Device, h: &RawField) {
    static NUM: OnceLock<Regex> = OnceLock::new();
    dev.fact(FactField::Hotfixes, &h.value, Some(h.line));
    let v = h.value.trim();
    let declared: Option<u32> = re(&NUM, r"\d+")
        .find(v)
        .and_then(|m| m.as_str().parse().ok());
    let listed = u32::try_from(h.items.len()).unwrap_or(u32::MAX);
    let state = match declared {
        Some(d) if d > listed => HotfixListState::Truncated {
            declared: d,
            listed,
        },
        Some(d) => {
            if d < listed {
                dev.warn(
                    Some(h.line),
                    format!("hotfix header declares {d} items but {listed} are listed"),
                );
            }
            HotfixListState::Complete
        }
        None if NOT_AVAILABLE.contains(&v.to_lowercase().as_str()) => HotfixListState::None,
        None if h.items.is_empty() => {
            dev.warn(
                Some(h.line),
                format!("hotfix field value {v:?} is neither a count nor N/A"),
            );
            HotfixListState::Unknown
        }
        None => HotfixListState::Complete,
    };
    dev.hotfix_list = state;
    let truncated = matches!(state, HotfixListState::Truncated { .. });
    let n = h.items.len();
    for (i, item) in h.items.iter().enumerate() {
        let is_last = i + 1 == n;
        if truncated && is_last && looks_cut(item, h.items.get(i.wrapping_sub(1)).filter(|_| i > 0))
        {
            dev.push_other(&item.text, OtherHotfixKind::Cut, Some(item.line));
            dev.warn(
                Some(item.line),
                format!(
                    "last item {:?} of a truncated hotfix list looks cut; not read as a KB",
                    item.text
                ),
            );
            continue;
        }
        dev.add_hotfix_item(&item.text, None, Some(item.line));
    }
    if let HotfixListState::Truncated { declared, listed } = state {
        dev.warn(
            Some(h.line),
            format!(
                "systeminfo lists {listed} of {declared} declared hotfixes (its output is truncated); \
                 merge a wmic qfe / Get-HotFix list for the rest"
            ),
        );
    }
}

/// The last item of a truncated list is cut when it is not a well-formed KB or its suffix
/// differs from the previous item's (`KB2862` after `KB2862152 - Update`).
fn looks_cut(item: &Item, prev: Option<&Item>) -> bool {
    static SUFFIX: OnceLock<Regex> = OnceLock::new();
    let r = re(&SUFFIX, r"^(?i)KB\d+(.*)$");
    match classify_hotfix_item(&item.text) {
        HotfixItem::Kb { .. } => {
            let suffix = |t: &str| {
                r.captures(t)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_owned())
            };
            match prev {
                Some(p) => match (suffix(&p.text), suffix(&item.text)) {
                    (Some(a), Some(b)) => a != b,
                    _ => false,
                },
                None => false,
            }
        }
        HotfixItem::Other(OtherHotfixKind::Malformed) => true,
        HotfixItem::Other(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_split_on_first_colon_space() {
        assert_eq!(
            split_label("Virtual Memory: Max Size:  58,231 MB"),
            Some(("Virtual Memory", "Max Size:  58,231 MB"))
        );
        assert_eq!(
            split_label("Registered Organization:   "),
            Some(("Registered Organization", ""))
        );
        assert_eq!(
            split_label("Microsoft Windows [Version 10.0.20348.2527]"),
            None
        );
        assert_eq!(label_field("Revisión(es)"), Some(Field::Hotfixes));
        assert_eq!(label_field("OS 名称"), Some(Field::OsName));
    }

    #[test]
    fn version_shapes() {
        assert!(os_version_shape("10.0.17763 N/D Compilación 17763"));
        assert!(os_version_shape("6.3.9600 Н/Д построение 9600"));
        assert!(os_version_shape("6.1.7601 Service Pack 1 version 7601"));
        assert!(!os_version_shape("6.1.7601"));
    }
}
