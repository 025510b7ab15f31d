//! The device model every parser produces: OS identity, installed KBs, hotfix-list state, provenance.

use crate::error::InventoryWarning;
use kbgap_core::{Build, KbId, MachineId};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;

/// Windows product family, decided from the build number first and the OS name second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[allow(non_camel_case_types)]
pub enum OsFamily {
    /// Windows XP (5.1, and XP Professional x64 Edition on 5.2).
    WindowsXp,
    /// Windows Vista (6.0 client).
    Vista,
    /// Windows 7 (6.1 client).
    Windows7,
    /// Windows 8 (6.2 client).
    Windows8,
    /// Windows 8.1 (6.3 client).
    Windows81,
    /// Windows 10 (10.0 client, build < 22000).
    Windows10,
    /// Windows 11 (10.0 client, build >= 22000, whatever the name says).
    Windows11,
    /// Windows Server 2003 (5.2).
    Server2003,
    /// Windows Server 2003 R2 (5.2, name says R2).
    Server2003R2,
    /// Windows Server 2008 (6.0 server).
    Server2008,
    /// Windows Server 2008 R2 (6.1 server).
    Server2008R2,
    /// Windows Server 2012 (6.2 server).
    Server2012,
    /// Windows Server 2012 R2 (6.3 server).
    Server2012R2,
    /// Windows Server 2016 (build 14393).
    Server2016,
    /// Windows Server 2019 (build 17763).
    Server2019,
    /// Windows Server 2022 (build 20348).
    Server2022,
    /// Windows Server 2022, 23H2 Edition (build 25398): a different product from Server2022.
    Server2022_23H2,
    /// Windows Server 2025 (build 26100).
    Server2025,
    /// A semi-annual channel server (`Windows Server, version 1809`, `20H2`, ...).
    ServerSemiAnnual,
    /// Not recognised.
    Unknown,
}

impl OsFamily {
    /// True for server families.
    pub fn is_server(self) -> bool {
        matches!(
            self,
            Self::Server2003
                | Self::Server2003R2
                | Self::Server2008
                | Self::Server2008R2
                | Self::Server2012
                | Self::Server2012R2
                | Self::Server2016
                | Self::Server2019
                | Self::Server2022
                | Self::Server2022_23H2
                | Self::Server2025
                | Self::ServerSemiAnnual
        )
    }
    /// Human name, as MSRC spells the product stem.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::WindowsXp => "Windows XP",
            Self::Vista => "Windows Vista",
            Self::Windows7 => "Windows 7",
            Self::Windows8 => "Windows 8",
            Self::Windows81 => "Windows 8.1",
            Self::Windows10 => "Windows 10",
            Self::Windows11 => "Windows 11",
            Self::Server2003 => "Windows Server 2003",
            Self::Server2003R2 => "Windows Server 2003 R2",
            Self::Server2008 => "Windows Server 2008",
            Self::Server2008R2 => "Windows Server 2008 R2",
            Self::Server2012 => "Windows Server 2012",
            Self::Server2012R2 => "Windows Server 2012 R2",
            Self::Server2016 => "Windows Server 2016",
            Self::Server2019 => "Windows Server 2019",
            Self::Server2022 => "Windows Server 2022",
            Self::Server2022_23H2 => "Windows Server 2022, 23H2 Edition",
            Self::Server2025 => "Windows Server 2025",
            Self::ServerSemiAnnual => "Windows Server (semi-annual channel)",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for OsFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

pub use kbgap_core::Arch;

/// What is known about the installed operating system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    /// The OS name exactly as the input wrote it (`Microsoftr Windows Serverr 2008 Standard `).
    pub name_raw: Option<String>,
    /// Product family.
    pub family: OsFamily,
    /// Edition words after the product name (`Enterprise`, `Pro for Workstations`, `Standard`).
    pub edition: Option<String>,
    /// Servicing release (`22H2`, `1809`) derived from the build (§3.3 table), or the
    /// registry `DisplayVersion` when the build is not in the table.
    pub release: Option<String>,
    /// `major.minor.build[.UBR]`; the revision is the UBR when a source gave it.
    pub build: Option<Build>,
    /// Service pack number (`Service Pack 1` -> 1).
    pub service_pack: Option<u32>,
    /// OS architecture.
    pub architecture: Option<Arch>,
    /// Server Core installation: `None` when the input cannot tell (systeminfo never can).
    pub server_core: Option<bool>,
}

impl Default for OsInfo {
    fn default() -> Self {
        Self {
            name_raw: None,
            family: OsFamily::Unknown,
            edition: None,
            release: None,
            build: None,
            service_pack: None,
            architecture: None,
            server_core: None,
        }
    }
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are literals in this crate; a bad one is a programming error caught by tests.
    cell.get_or_init(|| Regex::new(pattern).expect("valid built-in regex"))
}

/// Normalises an OS name for matching: `Microsoftr`/`Serverr`/`VistaT`/`(R)`/`®` marks removed,
/// no-break spaces turned into spaces, runs of spaces collapsed.
pub fn normalize_os_name(name: &str) -> String {
    static MARKS: OnceLock<Regex> = OnceLock::new();
    let s = name
        .replace(['\u{a0}', '\u{202f}'], " ")
        .replace("(R)", "")
        .replace("(r)", "")
        .replace("(TM)", "")
        .replace(['®', '™'], "");
    let s = re(&MARKS, r"\b(Microsoft|Windows|Server|Vista)(?:r|T)\b").replace_all(&s, "$1");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Family from the OS name alone (used when there is no build, and to split client/server).
pub fn family_from_name(name: &str) -> OsFamily {
    let n = normalize_os_name(name).to_lowercase();
    if n.contains("server") {
        if n.contains("2025") {
            OsFamily::Server2025
        } else if n.contains("2022") && n.contains("23h2") {
            OsFamily::Server2022_23H2
        } else if n.contains("2022") {
            OsFamily::Server2022
        } else if n.contains("2019") {
            OsFamily::Server2019
        } else if n.contains("2016") {
            OsFamily::Server2016
        } else if n.contains("2012") && n.contains("r2") {
            OsFamily::Server2012R2
        } else if n.contains("2012") {
            OsFamily::Server2012
        } else if n.contains("2008") && n.contains("r2") {
            OsFamily::Server2008R2
        } else if n.contains("2008") {
            OsFamily::Server2008
        } else if n.contains("2003") && n.contains("r2") {
            OsFamily::Server2003R2
        } else if n.contains("2003") {
            OsFamily::Server2003
        } else if n.contains("version") {
            OsFamily::ServerSemiAnnual
        } else {
            OsFamily::Unknown
        }
    } else if n.contains("windows xp") {
        OsFamily::WindowsXp
    } else if n.contains("vista") {
        OsFamily::Vista
    } else if n.contains("windows 7") {
        OsFamily::Windows7
    } else if n.contains("windows 8.1") {
        OsFamily::Windows81
    } else if n.contains("windows 8") {
        OsFamily::Windows8
    } else if n.contains("windows 10") {
        OsFamily::Windows10
    } else if n.contains("windows 11") {
        OsFamily::Windows11
    } else {
        OsFamily::Unknown
    }
}

/// Decides the family from build and name. `server` is an explicit hint (registry
/// `InstallationType`); without it, the name decides client vs server.
///
/// Windows 11 is decided by build >= 22000 even when the name says Windows 10 (its registry
/// `ProductName` does); Server 2022 23H2 (25398) is never confused with Server 2022 (20348).
pub fn classify_family(name: Option<&str>, build: Option<Build>, server: Option<bool>) -> OsFamily {
    let by_name = name.map(family_from_name).unwrap_or(OsFamily::Unknown);
    let is_server = server.unwrap_or(by_name.is_server());
    let lower = name.map(|n| normalize_os_name(n).to_lowercase());
    let says = |w: &str| lower.as_deref().is_some_and(|n| n.contains(w));
    let Some(b) = build else {
        return by_name;
    };
    match (b.major, b.minor) {
        (5, 1) => OsFamily::WindowsXp,
        (5, 2) if says("xp") => OsFamily::WindowsXp,
        (5, 2) if says("r2") => OsFamily::Server2003R2,
        (5, 2) => OsFamily::Server2003,
        (6, 0) if is_server => OsFamily::Server2008,
        (6, 0) => OsFamily::Vista,
        (6, 1) if is_server => OsFamily::Server2008R2,
        (6, 1) => OsFamily::Windows7,
        (6, 2) if is_server => OsFamily::Server2012,
        (6, 2) => OsFamily::Windows8,
        (6, 3) if is_server => OsFamily::Server2012R2,
        (6, 3) => OsFamily::Windows81,
        (10, 0) => {
            let server_only = matches!(b.build, 20348 | 25398);
            if is_server || (server_only && server.is_none() && !by_name_is_client(by_name)) {
                match b.build {
                    14393 => OsFamily::Server2016,
                    17763 => OsFamily::Server2019,
                    20348 => OsFamily::Server2022,
                    25398 => OsFamily::Server2022_23H2,
                    26100 => OsFamily::Server2025,
                    16299 | 17134 | 18362 | 18363 | 19041 | 19042 => OsFamily::ServerSemiAnnual,
                    _ if by_name.is_server() => by_name,
                    _ => OsFamily::Unknown,
                }
            } else if b.build >= 22000 {
                OsFamily::Windows11
            } else {
                OsFamily::Windows10
            }
        }
        _ => by_name,
    }
}

fn by_name_is_client(f: OsFamily) -> bool {
    f != OsFamily::Unknown && !f.is_server()
}

/// The servicing release of a family at a build (§3.3): `Some("22H2")` for Windows 10 19045.
/// `None` for pre-Windows 10 families and for builds not in the table.
pub fn release_for(family: OsFamily, build: u32) -> Option<&'static str> {
    let client = |b: u32| -> Option<&'static str> {
        Some(match b {
            10240 => "1507",
            10586 => "1511",
            14393 => "1607",
            15063 => "1703",
            16299 => "1709",
            17134 => "1803",
            17763 => "1809",
            18362 => "1903",
            18363 => "1909",
            19041 => "2004",
            19042 => "20H2",
            19043 => "21H1",
            19044 => "21H2",
            19045 => "22H2",
            22000 => "21H2",
            22621 => "22H2",
            22631 => "23H2",
            26100 => "24H2",
            26200 => "25H2",
            _ => return None,
        })
    };
    match family {
        OsFamily::Windows10 if build < 22000 => client(build),
        OsFamily::Windows11 if build >= 22000 => client(build),
        OsFamily::ServerSemiAnnual => client(build),
        OsFamily::Server2016 if build == 14393 => Some("1607"),
        OsFamily::Server2019 if build == 17763 => Some("1809"),
        OsFamily::Server2022 if build == 20348 => Some("21H2"),
        OsFamily::Server2022_23H2 if build == 25398 => Some("23H2"),
        OsFamily::Server2025 if build == 26100 => Some("24H2"),
        _ => None,
    }
}

/// The edition words after the product name: `Microsoft Windows 10 Pro for Workstations`
/// -> `Pro for Workstations`; `... Server 2003, Standard Edition` -> `Standard Edition`.
pub fn edition_from_name(name: &str) -> Option<String> {
    static ED: OnceLock<Regex> = OnceLock::new();
    let n = normalize_os_name(name);
    let r = re(
        &ED,
        r"(?i)windows\s+(?:server\s+20\d\d(?:\s*r2)?,?|server,?\s+version\s+\S+|xp|vista|7|8\.1|8|10|11)\s*(.*)$",
    );
    let rest = r.captures(&n)?.get(1)?.as_str().trim();
    (!rest.is_empty()).then(|| rest.to_owned())
}

impl OsInfo {
    /// Fills `family`, `release` and `edition` from `name_raw` and `build` (and a server hint),
    /// adding a warning when a Windows 10+ build is not in the release table.
    pub fn classify(
        &mut self,
        server_hint: Option<bool>,
        source: &str,
        warnings: &mut Vec<InventoryWarning>,
    ) {
        self.family = classify_family(self.name_raw.as_deref(), self.build, server_hint);
        if let Some(b) = self.build {
            let r = release_for(self.family, b.build);
            if let Some(r) = r {
                self.release = Some(r.to_owned());
            } else if b.is_nt10() && self.release.is_none() {
                warnings.push(InventoryWarning::new(
                    source,
                    None,
                    format!(
                        "build {} of {} is not in kbgap's release table; release unknown",
                        b, self.family
                    ),
                ));
            }
        }
        if self.edition.is_none() {
            self.edition = self.name_raw.as_deref().and_then(edition_from_name);
        }
    }
}

/// One installed update recognised as a KB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledKb {
    /// The KB.
    pub kb: KbId,
    /// The item as written (`KB893803v2 - Update`).
    pub raw: String,
    /// Install date as the source wrote it (formats vary by locale; not interpreted).
    pub installed_on: Option<String>,
    /// Why `raw` is not just `KBnnnnnnn` (`suffix "v2 - Update" dropped`), if it is not.
    pub note: Option<String>,
    /// Input it came from.
    pub source_name: String,
    /// 1-based line in that input, when line-based.
    pub line: Option<usize>,
}

/// What kind of non-KB hotfix item was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtherHotfixKind {
    /// `Q147222`: an old Q-article number (XP's placeholder for "hotfixes installed").
    QNumber,
    /// `File 1`: XP/2003's per-file placeholder; the KB (if any) is elsewhere.
    FilePlaceholder,
    /// `{7A068575-...}`: a component GUID.
    Guid,
    /// `KB2862`: KB-shaped but not 6-7 digits (often the cut last item of a truncated list).
    Malformed,
    /// The last item of a truncated list, cut mid-way.
    Cut,
    /// Anything else (`MSCompPackV1 - Update`).
    Unrecognised,
}

/// A hotfix item that is not a KB, kept for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherHotfix {
    /// The item as written.
    pub raw: String,
    /// Why it is not a KB.
    pub kind: OtherHotfixKind,
    /// Input it came from.
    pub source_name: String,
    /// 1-based line.
    pub line: Option<usize>,
}

/// A hotfix item classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotfixItem {
    /// A KB, with a note when the raw text had extra words.
    Kb {
        /// The KB.
        kb: KbId,
        /// Why the raw text differs from `KBnnnnnnn`.
        note: Option<String>,
    },
    /// Not a KB.
    Other(OtherHotfixKind),
}

/// Classifies one hotfix item as systeminfo, wmic and Get-HotFix print it.
///
/// `KB5022502` -> KB; `KB893803v2 - Update`, `KB2803821-v2 - Update`, `KB952069_WM11x64`,
/// `KB2510531-IE8` -> the KB, with a note; `940157` (bare 6-7 digits) -> KB with a note;
/// `Q147222`, `File 1`, GUIDs, `KB2862` -> not KBs.
pub fn classify_hotfix_item(raw: &str) -> HotfixItem {
    static KB: OnceLock<Regex> = OnceLock::new();
    let t = raw.trim();
    if let Some(c) = re(&KB, r"^(?i)KB(\d+)(.*)$").captures(t) {
        let digits = c.get(1).map_or("", |m| m.as_str());
        let rest = c.get(2).map_or("", |m| m.as_str());
        // A digit run directly followed by a letter other than the known suffix forms is fine;
        // only the digit count decides.
        return match KbId::parse_strict(digits) {
            Some(kb) => HotfixItem::Kb {
                kb,
                note: (!rest.trim().is_empty())
                    .then(|| format!("suffix {:?} dropped", rest.trim())),
            },
            None => HotfixItem::Other(OtherHotfixKind::Malformed),
        };
    }
    if (6..=7).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(kb) = KbId::parse_strict(t) {
            return HotfixItem::Kb {
                kb,
                note: Some("bare digits read as a KB number".to_owned()),
            };
        }
    }
    let upper = t.to_ascii_uppercase();
    if upper.len() > 1 && upper.starts_with('Q') && upper[1..].bytes().all(|b| b.is_ascii_digit()) {
        return HotfixItem::Other(OtherHotfixKind::QNumber);
    }
    if upper.starts_with("FILE ") && upper[5..].trim().bytes().all(|b| b.is_ascii_digit()) {
        return HotfixItem::Other(OtherHotfixKind::FilePlaceholder);
    }
    if t.len() == 38
        && t.starts_with('{')
        && t.ends_with('}')
        && t[1..37].bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    {
        return HotfixItem::Other(OtherHotfixKind::Guid);
    }
    HotfixItem::Other(OtherHotfixKind::Unrecognised)
}

/// Whether the hotfix list of a device can be trusted to be complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HotfixListState {
    /// Every installed hotfix the source knows is listed.
    Complete,
    /// The source says there are none (`Hotfix(s): N/A`, localised `N/D`, `暂缺`, `Н/Д`).
    None,
    /// systeminfo declared more hotfixes than it printed (its output buffer is limited).
    Truncated {
        /// Count in the header line (`273 Hotfix(s) Installed.`).
        declared: u32,
        /// `[nn]:` items actually printed.
        listed: u32,
    },
    /// The source does not say (no hotfix field found, or an OS-only source).
    Unknown,
}

/// An installed program (from the Uninstall registry keys, osquery `programs`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    /// DisplayName.
    pub name: String,
    /// Publisher.
    pub vendor: Option<String>,
    /// DisplayVersion.
    pub version: Option<String>,
}

/// The device field a [`Fact`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FactField {
    /// Text encoding the input was decoded with.
    Encoding,
    /// Host name.
    HostName,
    /// OS name.
    OsName,
    /// OS version line (systeminfo `OS Version`, osquery `version`).
    OsVersion,
    /// `ver` banner giving the UBR.
    VerBanner,
    /// System type / architecture.
    Architecture,
    /// Hotfix list header or source.
    Hotfixes,
    /// Registry CurrentBuild.
    CurrentBuild,
    /// Registry UBR.
    Ubr,
    /// Registry DisplayVersion.
    DisplayVersion,
    /// Registry InstallationType.
    InstallationType,
    /// Registry EditionID.
    EditionId,
    /// Registry ProductName.
    ProductName,
    /// kbgap machine id.
    MachineId,
    /// Collection time.
    CollectedAt,
    /// Installed programs.
    Software,
}

/// Provenance: which input and line a device field came from, and the text seen there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The field.
    pub field: FactField,
    /// The value as seen (trimmed).
    pub value: String,
    /// Input name.
    pub source_name: String,
    /// 1-based line, when line-based.
    pub line: Option<usize>,
}

/// Which input format a device was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceFormat {
    /// `systeminfo` list output (default or `/fo list`).
    Systeminfo,
    /// `systeminfo /fo csv`.
    SysteminfoCsv,
    /// `wmic qfe` fixed-width table (KBs only).
    WmicQfe,
    /// PowerShell `Get-HotFix | Export-Csv` (KBs only).
    GetHotFixCsv,
    /// PowerShell `Get-HotFix` default table output (KBs only).
    GetHotFixTable,
    /// osquery JSON results.
    Osquery,
    /// kbgap's own JSON device report (`kbgap.device/1`).
    KbgapReport,
}

impl SourceFormat {
    /// True for formats that carry only a KB list, no OS identity.
    pub fn is_kb_list_only(self) -> bool {
        matches!(
            self,
            Self::WmicQfe | Self::GetHotFixCsv | Self::GetHotFixTable
        )
    }
}

/// A device as read from one or more inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Host name, when the input names one.
    pub host_name: Option<String>,
    /// kbgap/Defender machine id, when the input carries one (kbgap JSON report).
    pub machine_id: Option<MachineId>,
    /// Collection time as the input wrote it (kbgap JSON report).
    pub collected_at: Option<String>,
    /// Operating system.
    pub os: OsInfo,
    /// Installed KBs, in input order, without duplicates.
    pub installed_kbs: Vec<InstalledKb>,
    /// Hotfix items that are not KBs (`Q147222`, `File 1`, GUIDs, cut items).
    pub other_hotfixes: Vec<OtherHotfix>,
    /// Whether `installed_kbs` is complete.
    pub hotfix_list: HotfixListState,
    /// Installed programs (empty when the input has none).
    pub software: Vec<Software>,
    /// Provenance of the fields above.
    pub facts: Vec<Fact>,
    /// Oddities met while reading.
    pub warnings: Vec<InventoryWarning>,
    /// Format of the (first) input.
    pub source_format: SourceFormat,
    /// Name of the (first) input.
    pub source_name: String,
}

/// Two inputs that cannot describe the same device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot merge {other_source} into {source_name}: host {other_host:?} is not {host:?}")]
pub struct MergeError {
    /// Input merged into.
    pub source_name: String,
    /// Its host.
    pub host: String,
    /// Input being merged.
    pub other_source: String,
    /// Its host.
    pub other_host: String,
}

impl Device {
    /// An empty device read from `source_name` in `format`.
    pub fn new(source_name: &str, format: SourceFormat) -> Self {
        Self {
            host_name: None,
            machine_id: None,
            collected_at: None,
            os: OsInfo::default(),
            installed_kbs: Vec::new(),
            other_hotfixes: Vec::new(),
            hotfix_list: HotfixListState::Unknown,
            software: Vec::new(),
            facts: Vec::new(),
            warnings: Vec::new(),
            source_format: format,
            source_name: source_name.to_owned(),
        }
    }

    /// True when the device knows its OS (family or build); false for KB-list-only inputs.
    pub fn has_os(&self) -> bool {
        self.os.family != OsFamily::Unknown || self.os.build.is_some()
    }

    /// The installed KB numbers as a set.
    pub fn kbs(&self) -> BTreeSet<KbId> {
        self.installed_kbs.iter().map(|k| k.kb).collect()
    }

    /// True when `kb` is installed.
    pub fn has_kb(&self, kb: KbId) -> bool {
        self.installed_kbs.iter().any(|k| k.kb == kb)
    }

    /// Records a fact.
    pub fn fact(&mut self, field: FactField, value: &str, line: Option<usize>) {
        self.facts.push(Fact {
            field,
            value: value.trim().to_owned(),
            source_name: self.source_name.clone(),
            line,
        });
    }

    /// Records a warning.
    pub fn warn(&mut self, line: Option<usize>, message: impl Into<String>) {
        let w = InventoryWarning::new(&self.source_name, line, message);
        self.warnings.push(w);
    }

    /// Classifies a raw hotfix item and records it as a KB (deduplicated) or as another item.
    /// Returns the KB when it was one.
    pub fn add_hotfix_item(
        &mut self,
        raw: &str,
        installed_on: Option<String>,
        line: Option<usize>,
    ) -> Option<KbId> {
        match classify_hotfix_item(raw) {
            HotfixItem::Kb { kb, note } => {
                self.push_kb(InstalledKb {
                    kb,
                    raw: raw.trim().to_owned(),
                    installed_on,
                    note,
                    source_name: self.source_name.clone(),
                    line,
                });
                Some(kb)
            }
            HotfixItem::Other(kind) => {
                self.push_other(raw, kind, line);
                None
            }
        }
    }

    /// Records a non-KB hotfix item.
    pub fn push_other(&mut self, raw: &str, kind: OtherHotfixKind, line: Option<usize>) {
        self.other_hotfixes.push(OtherHotfix {
            raw: raw.trim().to_owned(),
            kind,
            source_name: self.source_name.clone(),
            line,
        });
    }

    /// Adds a KB unless already present (then only fills a missing install date).
    pub fn push_kb(&mut self, kb: InstalledKb) {
        if let Some(existing) = self.installed_kbs.iter_mut().find(|k| k.kb == kb.kb) {
            if existing.installed_on.is_none() {
                existing.installed_on = kb.installed_on;
            }
        } else {
            self.installed_kbs.push(kb);
        }
    }

    /// Merges the hotfix list of `other` (typically a `wmic qfe` or Get-HotFix list of the
    /// same host) into this device. Host names, when both are known, must match
    /// (case-insensitively). KBs are unioned; if `other`'s list is complete, this device's
    /// list becomes complete (it was perhaps truncated or unknown). Returns how many KBs
    /// were new.
    pub fn merge_hotfixes(&mut self, other: &Device) -> Result<usize, MergeError> {
        if let (Some(a), Some(b)) = (&self.host_name, &other.host_name) {
            if !a.eq_ignore_ascii_case(b) {
                return Err(MergeError {
                    source_name: self.source_name.clone(),
                    host: a.clone(),
                    other_source: other.source_name.clone(),
                    other_host: b.clone(),
                });
            }
        }
        if self.host_name.is_none() {
            self.host_name = other.host_name.clone();
        }
        let before = self.installed_kbs.len();
        for k in &other.installed_kbs {
            self.push_kb(k.clone());
        }
        for o in &other.other_hotfixes {
            if !self.other_hotfixes.iter().any(|x| x.raw == o.raw) {
                self.other_hotfixes.push(o.clone());
            }
        }
        let added = self.installed_kbs.len() - before;
        let new_state = match (self.hotfix_list, other.hotfix_list) {
            (_, HotfixListState::Complete) if !other.installed_kbs.is_empty() => {
                HotfixListState::Complete
            }
            (HotfixListState::Unknown, s) => s,
            (s, _) => s,
        };
        self.hotfix_list = new_state;
        self.facts.push(Fact {
            field: FactField::Hotfixes,
            value: format!(
                "merged {} KBs ({} new) from {:?}",
                other.installed_kbs.len(),
                added,
                other.source_format
            ),
            source_name: other.source_name.clone(),
            line: None,
        });
        self.warnings.extend(other.warnings.iter().cloned());
        Ok(added)
    }

    /// One compact line describing the device (used by tests and CLI summaries):
    /// `family release build arch kbs=N hotfixes=State encoding=...`.
    pub fn summary_line(&self) -> String {
        let enc = self
            .facts
            .iter()
            .find(|f| f.field == FactField::Encoding)
            .map_or("-", |f| f.value.as_str());
        let state = match self.hotfix_list {
            HotfixListState::Complete => "complete".to_owned(),
            HotfixListState::None => "none".to_owned(),
            HotfixListState::Truncated { declared, listed } => {
                format!("truncated({declared}/{listed})")
            }
            HotfixListState::Unknown => "unknown".to_owned(),
        };
        format!(
            "{:?} release={} build={} sp={} arch={} kbs={} other={} hotfixes={} encoding={} format={:?}",
            self.os.family,
            self.os.release.as_deref().unwrap_or("-"),
            self.os.build.map_or("-".to_owned(), |b| b.to_string()),
            self.os.service_pack.map_or("-".to_owned(), |s| s.to_string()),
            self.os.architecture.map_or("-", Arch::as_str),
            self.installed_kbs.len(),
            self.other_hotfixes.len(),
            state,
            enc,
            self.source_format,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hotfix_items_classify() {
        assert_eq!(
            classify_hotfix_item("KB5022502"),
            HotfixItem::Kb {
                kb: KbId::new(5022502),
                note: None
            }
        );
        match classify_hotfix_item("KB893803v2 - Update") {
            HotfixItem::Kb { kb, note } => {
                assert_eq!(kb, KbId::new(893803));
                assert!(note.unwrap().contains("v2 - Update"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_hotfix_item("KB952069_WM11x64"),
            HotfixItem::Kb { kb, .. } if kb == KbId::new(952069)
        ));
        assert_eq!(
            classify_hotfix_item("KB2862"),
            HotfixItem::Other(OtherHotfixKind::Malformed)
        );
        assert_eq!(
            classify_hotfix_item("Q147222"),
            HotfixItem::Other(OtherHotfixKind::QNumber)
        );
        assert_eq!(
            classify_hotfix_item("File 1"),
            HotfixItem::Other(OtherHotfixKind::FilePlaceholder)
        );
        assert_eq!(
            classify_hotfix_item("{7A068575-C5DB-43D9-BE20-3895D0C69B17}"),
            HotfixItem::Other(OtherHotfixKind::Guid)
        );
        assert!(matches!(
            classify_hotfix_item("940157"),
            HotfixItem::Kb { .. }
        ));
    }

    #[test]
    fn families_by_build_and_name() {
        let b = |s: &str| Some(s.parse::<Build>().unwrap());
        assert_eq!(
            classify_family(Some("Microsoft Windows 10 Pro"), b("10.0.22631"), None),
            OsFamily::Windows11
        );
        assert_eq!(
            classify_family(
                Some("Microsoftr Windows Serverr 2008 Standard "),
                b("6.0.6001"),
                None
            ),
            OsFamily::Server2008
        );
        assert_eq!(
            classify_family(
                Some("Microsoft Windows Server 2022 Standard"),
                b("10.0.25398"),
                None
            ),
            OsFamily::Server2022_23H2
        );
        assert_eq!(
            classify_family(None, b("10.0.20348"), None),
            OsFamily::Server2022
        );
        assert_eq!(
            classify_family(
                Some("Microsoft(R) Windows(R) XP Professional x64 Edition"),
                b("5.2.3790"),
                None
            ),
            OsFamily::WindowsXp
        );
        assert_eq!(release_for(OsFamily::Windows11, 26100), Some("24H2"));
        assert_eq!(release_for(OsFamily::Windows10, 26100), None);
        assert_eq!(
            edition_from_name("Microsoft Windows\u{a0}7 Entreprise N ").as_deref(),
            Some("Entreprise N")
        );
        assert_eq!(
            edition_from_name("Майкрософт Ознакомительная версия Windows Server 2012 R2 Standard")
                .as_deref(),
            Some("Standard")
        );
    }
}
