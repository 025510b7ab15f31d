//! A device's setup: the part of a report that assessments and fleet views depend on.
//!
//! A report carries much more than the engine reads (raw hotfix lines, provenance facts,
//! warnings, software). [`DeviceSetup`] is the rest: OS facts, build and the installed-KB set.
//! Two devices with equal setups get equal assessments, and a fleet of a million devices has
//! only a few hundred or thousand distinct setups, so the store keeps each distinct setup once
//! (keyed by [`DeviceSetup::digest`]) and the server assesses each once.

use crate::device::{Arch, Device, HotfixListState, OsFamily};
use kbgap_core::{Build, KbId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Version of the stored setup encoding, part of every digest. Bump it (and add a store
/// migration that clears the stored digests, so they are re-derived from the reports) when
/// [`DeviceSetup`] gains or changes a field.
pub const SETUP_ENCODING: &str = "kbgap-setup-v1";

/// What the engine and the Defender machine views read of a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceSetup {
    /// Product family.
    pub family: OsFamily,
    /// Servicing release (`22H2`), when known.
    pub release: Option<String>,
    /// `major.minor.build[.UBR]`.
    pub build: Option<Build>,
    /// Service pack number.
    pub service_pack: Option<u32>,
    /// OS architecture.
    pub architecture: Option<Arch>,
    /// Server Core installation, when known.
    pub server_core: Option<bool>,
    /// Installed KBs.
    pub installed: BTreeSet<KbId>,
    /// Whether that list is complete.
    pub hotfix_list: HotfixListState,
}

impl DeviceSetup {
    /// The setup of a parsed report.
    pub fn of(device: &Device) -> Self {
        Self {
            family: device.os.family,
            release: device.os.release.clone(),
            build: device.os.build,
            service_pack: device.os.service_pack,
            architecture: device.os.architecture,
            server_core: device.os.server_core,
            installed: device.kbs(),
            hotfix_list: device.hotfix_list,
        }
    }

    /// True when the OS is known (family or build); false for KB-list-only reports.
    /// Same rule as [`Device::has_os`].
    pub fn has_os(&self) -> bool {
        self.family != OsFamily::Unknown || self.build.is_some()
    }

    /// The stored form (compact JSON).
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data (no maps with non-string keys) cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the stored form back.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Hex SHA-256 of [`SETUP_ENCODING`] and the stored form: equal setups, equal digests.
    pub fn digest(&self) -> String {
        digest_of_encoded(&self.encode())
    }
}

/// [`DeviceSetup::digest`] of an already encoded setup.
pub fn digest_of_encoded(encoded: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(SETUP_ENCODING.as_bytes());
    h.update([0u8]);
    h.update(encoded);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::SourceFormat;

    fn sample() -> Device {
        let text = "Host Name:                 PC1\n\
                    OS Name:                   Microsoft Windows 10 Enterprise\n\
                    OS Version:                10.0.19045 N/A Build 19045\n\
                    System Type:               x64-based PC\n\
                    Hotfix(s):                 2 Hotfix(s) Installed.\n\
                    \x20                          [01]: KB5031356\n\
                    \x20                          [02]: KB5030841\n";
        crate::parse_any(text.as_bytes(), "pc1.txt").expect("sample parses")
    }

    #[test]
    fn setup_round_trips_and_ignores_provenance() {
        let d = sample();
        let s = DeviceSetup::of(&d);
        assert_eq!(s.family, OsFamily::Windows10);
        assert_eq!(s.installed.len(), 2);
        assert!(s.has_os());
        assert_eq!(DeviceSetup::decode(&s.encode()).unwrap(), s);
        // The same machine reported from another file, with another host name: same setup.
        let mut other = d.clone();
        other.source_name = "elsewhere.txt".into();
        other.host_name = Some("PC2".into());
        other.facts.clear();
        assert_eq!(DeviceSetup::of(&other).digest(), s.digest());
        // One more KB: another setup.
        let mut patched = d.clone();
        patched.installed_kbs.push(crate::InstalledKb {
            kb: "KB5032189".parse().unwrap(),
            raw: "KB5032189".into(),
            installed_on: None,
            note: None,
            source_name: String::new(),
            line: None,
        });
        assert_ne!(DeviceSetup::of(&patched).digest(), s.digest());
        assert_eq!(s.digest().len(), 64);
    }

    #[test]
    fn kb_list_only_devices_have_no_os() {
        let d = Device::new("qfe.csv", SourceFormat::WmicQfe);
        assert!(!DeviceSetup::of(&d).has_os());
    }
}
