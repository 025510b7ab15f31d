//! Product naming: MSRC full product names to Defender-style normalised names (`windows_10`, `edge`).
//!
//! Two views of one MSRC `FullProductName`:
//! - [`normalized_name`]: the coarse `vendor`/`name` pair Defender's API reports
//!   (`microsoft`/`windows_10`, `microsoft`/`internet_explorer`).
//! - [`parse_windows_product`]: the structured Windows OS identity (kind, release,
//!   architecture, service pack, Server Core) used to match a device to exact ProductIDs.
//!
//! Matching is exact on whitespace-collapsed, case-insensitive names, never by substring:
//! "Windows Server 2022, 23H2 Edition" is not "Windows Server 2022".

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A Defender-style product identity: vendor and product name in lower snake case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NormalizedProduct {
    /// `microsoft` (or `adobe` for Flash Player).
    pub vendor: String,
    /// `windows_10`, `edge`, `internet_explorer`, `.net_framework`, `sql_server_2019`...
    pub name: String,
}

/// A Windows operating-system family as MSRC names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WindowsKind {
    /// Windows Vista (in CVRF until its end of support, 2017-Apr).
    Vista,
    /// Windows 7.
    Windows7,
    /// Windows 8.1.
    Windows81,
    /// Windows RT 8.1.
    WindowsRt81,
    /// Windows 10 (all releases 1507-22H2).
    Windows10,
    /// Windows 11 (21H2 onwards).
    Windows11,
    /// Windows Server 2008.
    Server2008,
    /// Windows Server 2008 R2.
    Server2008R2,
    /// Windows Server 2012.
    Server2012,
    /// Windows Server 2012 R2.
    Server2012R2,
    /// Windows Server 2016.
    Server2016,
    /// Windows Server 2019.
    Server2019,
    /// Windows Server 2022 (build 20348).
    Server2022,
    /// "Windows Server 2022, 23H2 Edition" (build 25398): a different product from Server 2022.
    Server2022Edition23H2,
    /// Windows Server 2025.
    Server2025,
    /// Semi-annual channel servers: "Windows Server, version 20H2" (release in `release`).
    ServerSemiAnnual,
}

impl WindowsKind {
    /// The Defender-style normalised name of this family.
    pub fn normalized_name(self) -> &'static str {
        match self {
            Self::Vista => "windows_vista",
            Self::Windows7 => "windows_7",
            Self::Windows81 => "windows_8.1",
            Self::WindowsRt81 => "windows_rt_8.1",
            Self::Windows10 => "windows_10",
            Self::Windows11 => "windows_11",
            Self::Server2008 => "windows_server_2008",
            Self::Server2008R2 => "windows_server_2008_r2",
            Self::Server2012 => "windows_server_2012",
            Self::Server2012R2 => "windows_server_2012_r2",
            Self::Server2016 => "windows_server_2016",
            Self::Server2019 => "windows_server_2019",
            Self::Server2022 | Self::Server2022Edition23H2 => "windows_server_2022",
            Self::Server2025 => "windows_server_2025",
            // Semi-annual channel servers share Windows 10's code base and builds (1909 = 18363);
            // Defender's KB4540673 example lists only windows_10/edge/internet_explorer although
            // that KB also covers "Windows Server, version 1909".
            Self::ServerSemiAnnual => "windows_10",
        }
    }
    /// True for server kinds.
    pub fn is_server(self) -> bool {
        !matches!(
            self,
            Self::Vista
                | Self::Windows7
                | Self::Windows81
                | Self::WindowsRt81
                | Self::Windows10
                | Self::Windows11
        )
    }
}

/// Processor architecture in an MSRC product name (the shared [`kbgap_core::Arch`]).
pub use kbgap_core::Arch as Architecture;

/// A Windows OS product name taken apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowsProductName {
    /// The family.
    pub kind: WindowsKind,
    /// Feature release (`22H2`, `1909`; `1507` for plain Windows 10, `21H2` for plain Windows 11,
    /// `23H2` for Server 2022 23H2 Edition); `None` for pre-10 and LTSC servers.
    pub release: Option<String>,
    /// Architecture, when the name states one (servers 2012+ do not).
    pub architecture: Option<Architecture>,
    /// Service pack number, when stated.
    pub service_pack: Option<u8>,
    /// "(Server Core installation)", any case.
    pub server_core: bool,
}

/// Splits a compound name "X on Y" (e.g. "Internet Explorer 11 on Windows 10 Version 1909 for
/// x64-based Systems") into `(X, Y)`; `None` when the name has no " on ".
pub fn split_on_platform(full_name: &str) -> Option<(&str, &str)> {
    full_name
        .split_once(" on ")
        .map(|(a, b)| (a.trim(), b.trim()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
}

fn arch(word: &str) -> Option<Architecture> {
    match word {
        "x64-based" => Some(Architecture::X64),
        "32-bit" => Some(Architecture::X86),
        "arm64-based" => Some(Architecture::Arm64),
        "itanium-based" => Some(Architecture::Itanium),
        _ => None,
    }
}

static CLIENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^windows (7|8\.1|10|11)(?: version (\w+))? for (x64-based|32-bit|arm64-based|itanium-based) systems(?: service pack (\d+))?$",
    )
    .expect("static regex")
});
static SERVER_2008: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^windows server 2008( r2)? for (x64-based|32-bit|itanium-based) systems(?: service pack (\d+))?$",
    )
    .expect("static regex")
});
static SERVER_PLAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^windows server (2012|2012 r2|2016|2019|2022|2025)$").expect("static regex")
});
static SERVER_SAC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^windows server, version (\w+)$").expect("static regex"));

/// Parses an MSRC Windows OS product name. `None` for anything else, including compound
/// "X on Windows ..." names (use [`split_on_platform`]) and OS variants kbgap does not map
/// (XP, Windows 10 Mobile, HoloLens, Azure Edition hotpatch).
pub fn parse_windows_product(full_name: &str) -> Option<WindowsProductName> {
    let mut name = full_name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if split_on_platform(&name).is_some() {
        return None;
    }
    let mut server_core = false;
    if let Some(rest) = name.strip_suffix(" (server core installation)") {
        server_core = true;
        name = rest.to_owned();
    }
    let upper = |s: &str| s.to_ascii_uppercase();
    if let Some(c) = CLIENT.captures(&name) {
        let architecture = arch(&c[3]);
        let service_pack = c.get(4).and_then(|m| m.as_str().parse().ok());
        let release = c.get(2).map(|m| upper(m.as_str()));
        let (kind, release) = match &c[1] {
            "7" if release.is_none() && architecture != Some(Architecture::Arm64) => {
                (WindowsKind::Windows7, None)
            }
            "8.1" if release.is_none() && service_pack.is_none() => (WindowsKind::Windows81, None),
            "10" if service_pack.is_none() && architecture != Some(Architecture::Itanium) => (
                WindowsKind::Windows10,
                Some(release.unwrap_or_else(|| "1507".into())),
            ),
            "11" if service_pack.is_none()
                && matches!(architecture, Some(Architecture::X64 | Architecture::Arm64)) =>
            {
                (
                    WindowsKind::Windows11,
                    Some(release.unwrap_or_else(|| "21H2".into())),
                )
            }
            _ => return None,
        };
        if server_core {
            return None;
        }
        return Some(WindowsProductName {
            kind,
            release,
            architecture,
            service_pack,
            server_core,
        });
    }
    if let Some(rest) = name.strip_prefix("windows vista") {
        let (architecture, rest) = match rest.strip_prefix(" x64 edition") {
            Some(r) => (Some(Architecture::X64), r),
            None => (Some(Architecture::X86), rest),
        };
        let rest = rest.trim();
        let service_pack = rest
            .strip_prefix("service pack ")
            .and_then(|n| n.parse().ok());
        if !server_core && (rest.is_empty() || service_pack.is_some()) {
            return Some(WindowsProductName {
                kind: WindowsKind::Vista,
                release: None,
                architecture,
                service_pack,
                server_core,
            });
        }
        return None;
    }
    if name == "windows rt 8.1" && !server_core {
        return Some(WindowsProductName {
            kind: WindowsKind::WindowsRt81,
            release: None,
            architecture: None,
            service_pack: None,
            server_core,
        });
    }
    if let Some(c) = SERVER_2008.captures(&name) {
        return Some(WindowsProductName {
            kind: if c.get(1).is_some() {
                WindowsKind::Server2008R2
            } else {
                WindowsKind::Server2008
            },
            release: None,
            architecture: arch(&c[2]),
            service_pack: c.get(3).and_then(|m| m.as_str().parse().ok()),
            server_core,
        });
    }
    if let Some(c) = SERVER_PLAIN.captures(&name) {
        let kind = match &c[1] {
            "2012" => WindowsKind::Server2012,
            "2012 r2" => WindowsKind::Server2012R2,
            "2016" => WindowsKind::Server2016,
            "2019" => WindowsKind::Server2019,
            "2022" => WindowsKind::Server2022,
            _ => WindowsKind::Server2025,
        };
        return Some(WindowsProductName {
            kind,
            release: None,
            architecture: None,
            service_pack: None,
            server_core,
        });
    }
    if name == "windows server 2022, 23h2 edition" {
        return Some(WindowsProductName {
            kind: WindowsKind::Server2022Edition23H2,
            release: Some("23H2".into()),
            architecture: None,
            service_pack: None,
            server_core,
        });
    }
    if let Some(c) = SERVER_SAC.captures(&name) {
        return Some(WindowsProductName {
            kind: WindowsKind::ServerSemiAnnual,
            release: Some(upper(&c[1])),
            architecture: None,
            service_pack: None,
            server_core,
        });
    }
    None
}

/// Phrases removed before snake-casing a non-Windows name: editions, architectures, servicing
/// levels and version suffixes that Defender's coarse names do not carry.
static NOISE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        \s*\([^)]*\)                                  # (32-bit editions), (GDR), (CU 4) ...
        | \s+for\s+(x64|x86|32-bit|64-bit|arm64|arm|itanium)(-based)?\s+(systems|editions?)
        | \s+for\s+(32|64)-bit\s+editions?
        | \s+service\s+pack\s+\d+
        | \s+(cumulative\s+)?update(\s+rollup)?\s+[\d.]+
        | \s+version\s+[\w.]+(\s+\(includes[^)]*\))?
        | \s+(gdr|qfe)$
        ",
    )
    .expect("static regex")
});

fn snake(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.trim().chars().flat_map(char::to_lowercase) {
        let c = match ch {
            'a'..='z' | '0'..='9' | '.' | '+' | '#' => ch,
            _ => '_',
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// The Defender-style normalised name of an MSRC full product name.
///
/// Windows OS names map by family (`windows_10`, `windows_server_2012_r2`); for compound
/// "X on Y" names the product is X (`internet_explorer`); Edge (EdgeHTML and Chromium) is `edge`,
/// .NET Framework `.net_framework`, Office suites `office`; other products become lower snake
/// case without edition/architecture/servicing noise (`sql_server_2019`, `exchange_server`).
/// `None` only for blank names.
pub fn normalized_name(full_name: &str) -> Option<NormalizedProduct> {
    let collapsed = full_name.split_whitespace().collect::<Vec<_>>().join(" ");
    let product = split_on_platform(&collapsed).map_or(collapsed.as_str(), |(x, _)| x);
    let ms = |name: &str| {
        Some(NormalizedProduct {
            vendor: "microsoft".into(),
            name: name.to_owned(),
        })
    };
    if let Some(w) = parse_windows_product(product) {
        return ms(w.kind.normalized_name());
    }
    let lower = product.to_lowercase();
    let l = lower.strip_prefix("microsoft ").unwrap_or(&lower);
    if l.starts_with("internet explorer") {
        return ms("internet_explorer");
    }
    if l == "edge" || l.starts_with("edge (") {
        return ms("edge");
    }
    if l.starts_with(".net framework") {
        return ms(".net_framework");
    }
    if l.starts_with("office")
        && !l.starts_with("office online")
        && !l.starts_with("office web apps")
        && !l.starts_with("office for ")
        || l.starts_with("365 apps")
    {
        return ms("office");
    }
    if l.starts_with("exchange server") {
        return ms("exchange_server");
    }
    if l.starts_with("sharepoint") && l.contains("server") && !l.contains("language pack") {
        return ms("sharepoint_server");
    }
    if l.starts_with("adobe flash player") {
        return Some(NormalizedProduct {
            vendor: "adobe".into(),
            name: "flash_player".into(),
        });
    }
    let cleaned = NOISE.replace_all(l, "");
    let name = snake(&cleaned);
    if name.is_empty() {
        None
    } else {
        ms(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(n: &str) -> String {
        normalized_name(n).map(|p| p.name).unwrap_or_default()
    }

    #[test]
    fn windows_names_parse_exactly() {
        let p = parse_windows_product("Windows 10 Version 1909 for x64-based Systems").unwrap();
        assert_eq!(
            (p.kind, p.release.as_deref(), p.architecture),
            (
                WindowsKind::Windows10,
                Some("1909"),
                Some(Architecture::X64)
            )
        );
        let p = parse_windows_product("Windows 10 for 32-bit Systems").unwrap();
        assert_eq!(p.release.as_deref(), Some("1507"));
        assert_eq!(p.architecture, Some(Architecture::X86));
        let p = parse_windows_product("Windows 11 for x64-based Systems").unwrap();
        assert_eq!(
            (p.kind, p.release.as_deref()),
            (WindowsKind::Windows11, Some("21H2"))
        );
        let p = parse_windows_product("Windows 11 version 21H2 for ARM64-based Systems").unwrap();
        assert_eq!(
            (p.release.as_deref(), p.architecture),
            (Some("21H2"), Some(Architecture::Arm64))
        );
        let p = parse_windows_product("Windows Server 2016  (Server Core installation)").unwrap();
        assert_eq!((p.kind, p.server_core), (WindowsKind::Server2016, true));
        let p = parse_windows_product("Windows 8.1 for x64-based systems").unwrap();
        assert_eq!(p.kind, WindowsKind::Windows81);
        let p = parse_windows_product("Windows 7 for x64-based Systems Service Pack 1").unwrap();
        assert_eq!((p.kind, p.service_pack), (WindowsKind::Windows7, Some(1)));
        let p = parse_windows_product(
            "Windows Server 2008 R2 for Itanium-Based Systems Service Pack 1",
        )
        .unwrap();
        assert_eq!(
            (p.kind, p.architecture, p.service_pack),
            (
                WindowsKind::Server2008R2,
                Some(Architecture::Itanium),
                Some(1)
            )
        );
        let p = parse_windows_product("Windows Server, version 20H2 (Server Core Installation)")
            .unwrap();
        assert_eq!(
            (p.kind, p.release.as_deref(), p.server_core),
            (WindowsKind::ServerSemiAnnual, Some("20H2"), true)
        );
        assert_eq!(
            parse_windows_product("Windows RT 8.1").unwrap().kind,
            WindowsKind::WindowsRt81
        );
    }

    #[test]
    fn server_2022_23h2_edition_is_not_server_2022() {
        let p =
            parse_windows_product("Windows Server 2022, 23H2 Edition (Server Core installation)")
                .unwrap();
        assert_eq!(p.kind, WindowsKind::Server2022Edition23H2);
        assert_eq!(p.release.as_deref(), Some("23H2"));
        assert!(p.server_core);
        let plain = parse_windows_product("Windows Server 2022").unwrap();
        assert_eq!(
            (plain.kind, plain.server_core),
            (WindowsKind::Server2022, false)
        );
    }

    #[test]
    fn vista_names_parse_with_architecture_and_service_pack() {
        let x64 = parse_windows_product("Windows Vista x64 Edition Service Pack 2").unwrap();
        assert_eq!(x64.kind, WindowsKind::Vista);
        assert_eq!(x64.architecture, Some(Architecture::X64));
        assert_eq!(x64.service_pack, Some(2));
        let x86 = parse_windows_product("Windows Vista Service Pack 2").unwrap();
        assert_eq!(x86.architecture, Some(Architecture::X86));
        assert_eq!(
            parse_windows_product("Windows Vista Home Basic Edition"),
            None
        );
    }

    #[test]
    fn non_os_and_compound_names_are_not_windows() {
        for n in [
            "Internet Explorer 11 on Windows 10 Version 1909 for x64-based Systems",
            "Windows Terminal for Windows 11",
            "Windows ADK for Windows Server 2022",
            "Windows 10 Mobile",
            "Windows 10 Version 1607 for HoloLens",
            "Windows Server 2022 Azure Edition Core Hotpatch",
            "Windows Server 2022 Datacenter",
            "Windows 10 Version 1909 for x64-based Systems (Server Core installation)",
        ] {
            assert_eq!(parse_windows_product(n), None, "{n}");
        }
        assert_eq!(
            split_on_platform("Microsoft Edge (EdgeHTML-based) on Windows 10 for 32-bit Systems"),
            Some((
                "Microsoft Edge (EdgeHTML-based)",
                "Windows 10 for 32-bit Systems"
            ))
        );
    }

    #[test]
    fn normalized_names_follow_defender_style() {
        let cases = [
            (
                "Windows 10 Version 22H2 for x64-based Systems",
                "windows_10",
            ),
            (
                "Windows 11 Version 24H2 for ARM64-based Systems",
                "windows_11",
            ),
            (
                "Windows Server 2012 R2 (Server Core installation)",
                "windows_server_2012_r2",
            ),
            ("Windows Server 2012", "windows_server_2012"),
            (
                "Windows Server 2008 for 32-bit Systems Service Pack 2",
                "windows_server_2008",
            ),
            (
                "Windows Server 2022, 23H2 Edition (Server Core installation)",
                "windows_server_2022",
            ),
            ("Windows 8.1 for 32-bit systems", "windows_8.1"),
            (
                "Windows Server, version 1909 (Server Core installation)",
                "windows_10",
            ),
            ("Windows RT 8.1", "windows_rt_8.1"),
            (
                "Internet Explorer 11 on Windows 10 Version 1909 for x64-based Systems",
                "internet_explorer",
            ),
            (
                "Microsoft Edge (EdgeHTML-based) on Windows 10 Version 1909 for x64-based Systems",
                "edge",
            ),
            ("Microsoft Edge (Chromium-based)", "edge"),
            (
                "Microsoft .NET Framework 4.8 on Windows 10 Version 1909 for x64-based Systems",
                ".net_framework",
            ),
            ("Microsoft Office 2016 (64-bit edition)", "office"),
            ("Microsoft Office LTSC 2021 for 32-bit editions", "office"),
            (
                "Microsoft 365 Apps for Enterprise for 64-bit Systems",
                "office",
            ),
            (
                "Microsoft Exchange Server 2019 Cumulative Update 12",
                "exchange_server",
            ),
            (
                "Microsoft SharePoint Enterprise Server 2016",
                "sharepoint_server",
            ),
            (
                "Microsoft SQL Server 2019 for x64-based Systems (GDR)",
                "sql_server_2019",
            ),
            (
                "Microsoft SQL Server 2008 R2 for x64-Based Systems Service Pack 3 (QFE)",
                "sql_server_2008_r2",
            ),
            (
                "Microsoft Visual Studio 2019 version 16.11 (includes 16.0 - 16.10)",
                "visual_studio_2019",
            ),
            ("Microsoft Word 2016 (32-bit edition)", "word_2016"),
            (
                "Microsoft Dynamics 365 (on-premises) version 9.1",
                "dynamics_365",
            ),
        ];
        for (full, want) in cases {
            assert_eq!(norm(full), want, "{full}");
        }
        assert_eq!(
            normalized_name("Adobe Flash Player on Windows 8.1 for 32-bit systems")
                .unwrap()
                .vendor,
            "adobe"
        );
        assert_eq!(normalized_name("   "), None);
    }
}
