//! The engine's input view of a device: OS facts and installed-update evidence.

use kbgap_core::{Build, KbId};
use std::collections::BTreeSet;

/// What the engine knows about one device.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Host name, for messages.
    pub host_name: Option<String>,
    /// The OS.
    pub os: Option<OsTarget>,
    /// The OS build, with the revision (UBR) when known.
    pub build: Option<Build>,
    /// KBs the device lists as installed.
    pub installed: BTreeSet<KbId>,
    /// Whether that list is complete.
    pub kb_list: KbListState,
}

/// State of the device's installed-update list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KbListState {
    /// The list is complete.
    Complete,
    /// The device reported no updates at all (`Hotfix(s): N/A`).
    Empty,
    /// The list was cut short.
    Truncated {
        /// How many the device said it had.
        declared: u32,
        /// How many were listed.
        listed: u32,
    },
    /// Unknown (no list given).
    #[default]
    Unknown,
}

/// The OS facts product resolution needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsTarget {
    /// The OS kind.
    pub kind: OsKind,
    /// Release ("22H2", "1809"), when applicable.
    pub release: Option<String>,
    /// Architecture.
    pub arch: Option<Arch>,
    /// Service pack.
    pub service_pack: Option<u32>,
    /// Server Core installation, when known.
    pub server_core: Option<bool>,
}

/// OS kinds the catalog distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OsKind {
    /// Windows 7.
    Windows7,
    /// Windows 8.1.
    Windows81,
    /// Windows RT 8.1.
    WindowsRt81,
    /// Windows 10.
    Windows10,
    /// Windows 11.
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
    /// Windows Server 2022.
    Server2022,
    /// Windows Server 2022, 23H2 Edition (build 25398).
    Server2022Edition23H2,
    /// Windows Server 2025.
    Server2025,
    /// Semi-annual channel Windows Server ("version 20H2").
    ServerSemiAnnual,
    /// Anything older or unknown: not in the CVRF catalog.
    Other,
}

/// CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x64.
    X64,
    /// x86 / 32-bit.
    X86,
    /// ARM64.
    Arm64,
    /// Itanium.
    Itanium,
}
