//! The engine's input view of a device: OS facts and installed-update evidence.

use kbgap_core::{Arch, Build, KbId};
use kbgap_inventory::device::{Device, HotfixListState, OsFamily};
use kbgap_inventory::DeviceSetup;
use std::collections::BTreeSet;

/// What the engine knows about one device. Equal targets (ignoring `host_name`, which only
/// names the device in messages) get equal assessments: callers may assess each distinct
/// target once; [`Target::from_setup`] is that target for a stored `DeviceSetup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OsTarget {
    /// The OS family.
    pub family: OsFamily,
    /// Release ("22H2", "1809"), when applicable.
    pub release: Option<String>,
    /// Architecture.
    pub arch: Option<Arch>,
    /// Service pack.
    pub service_pack: Option<u32>,
    /// Server Core installation, when known.
    pub server_core: Option<bool>,
}

impl Target {
    /// The engine's view of an inventoried device.
    pub fn from_device(device: &Device) -> Self {
        Self::from_setup(&DeviceSetup::of(device), device.host_name.clone())
    }
    /// The engine's view of a device setup (what the store keeps once per distinct setup).
    /// [`Target::from_device`] goes through here, so both views always agree.
    pub fn from_setup(setup: &DeviceSetup, host_name: Option<String>) -> Self {
        let os = setup.has_os().then(|| OsTarget {
            family: setup.family,
            release: setup.release.clone(),
            arch: setup.architecture,
            service_pack: setup.service_pack,
            server_core: setup.server_core,
        });
        let kb_list = match setup.hotfix_list {
            HotfixListState::Complete => KbListState::Complete,
            HotfixListState::None => KbListState::Empty,
            HotfixListState::Truncated { declared, listed } => {
                KbListState::Truncated { declared, listed }
            }
            HotfixListState::Unknown => KbListState::Unknown,
        };
        Self {
            host_name,
            os,
            build: setup.build,
            installed: setup.installed.clone(),
            kb_list,
        }
    }
}
