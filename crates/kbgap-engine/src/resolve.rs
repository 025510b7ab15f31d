//! Product resolution: a device's OS facts to exact MSRC ProductIDs (never by substring).

use crate::finding::MatchedProduct;
use crate::index::{Component, EngineCatalog};
use crate::target::{OsTarget, Target};
use kbgap_catalog::products::{parse_windows_product, WindowsKind};
use kbgap_core::{Arch, ProductId};
use kbgap_inventory::device::OsFamily;

/// A parsed Windows OS product name from the catalog, in the engine's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinName {
    /// OS family, in the device model's terms.
    pub kind: OsFamily,
    /// Release ("22H2", "1507"), when the name has one.
    pub release: Option<String>,
    /// Architecture, when the name has one (servers 2016+ have none).
    pub arch: Option<Arch>,
    /// "(Server Core installation)".
    pub server_core: bool,
    /// Service pack the name states ("Service Pack 2").
    pub service_pack: Option<u8>,
}

impl WinName {
    /// Windows 10/11 and Server 2016+: builds compare by revision.
    pub fn is_nt10(&self) -> bool {
        matches!(
            self.kind,
            OsFamily::Windows10
                | OsFamily::Windows11
                | OsFamily::Server2016
                | OsFamily::Server2019
                | OsFamily::Server2022
                | OsFamily::Server2022_23H2
                | OsFamily::Server2025
                | OsFamily::ServerSemiAnnual
        )
    }
}

/// Parses a catalog product name into the engine's terms (`None` for non-OS and compound names).
pub fn windows_name(name: &str) -> Option<WinName> {
    let w = parse_windows_product(name)?;
    let kind = match w.kind {
        WindowsKind::Vista => OsFamily::Vista,
        WindowsKind::Windows7 => OsFamily::Windows7,
        WindowsKind::Windows81 => OsFamily::Windows81,
        // Windows RT 8.1 devices do not produce systeminfo reports kbgap reads; no device maps here.
        WindowsKind::WindowsRt81 => return None,
        WindowsKind::Windows10 => OsFamily::Windows10,
        WindowsKind::Windows11 => OsFamily::Windows11,
        WindowsKind::Server2008 => OsFamily::Server2008,
        WindowsKind::Server2008R2 => OsFamily::Server2008R2,
        WindowsKind::Server2012 => OsFamily::Server2012,
        WindowsKind::Server2012R2 => OsFamily::Server2012R2,
        WindowsKind::Server2016 => OsFamily::Server2016,
        WindowsKind::Server2019 => OsFamily::Server2019,
        WindowsKind::Server2022 => OsFamily::Server2022,
        WindowsKind::Server2022Edition23H2 => OsFamily::Server2022_23H2,
        WindowsKind::Server2025 => OsFamily::Server2025,
        WindowsKind::ServerSemiAnnual => OsFamily::ServerSemiAnnual,
    };
    Some(WinName {
        kind,
        release: w.release,
        arch: w.architecture,
        server_core: w.server_core,
        service_pack: w.service_pack,
    })
}

/// The products an assessment covers.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The OS ProductID.
    pub platform: ProductId,
    /// Compound products assessed on it (in-box components).
    pub components: Vec<ProductId>,
    /// All of them with reasons, for the answer.
    pub matched: Vec<MatchedProduct>,
    /// Things worth saying about the match.
    pub notes: Vec<String>,
}

/// Maps the device to exact products, or says why it cannot.
pub fn resolve(cat: &EngineCatalog, target: &Target) -> Result<Resolution, String> {
    let Some(os) = &target.os else {
        return Err("unmapped product: the report has no operating-system facts (a KB list alone cannot be assessed)".to_owned());
    };
    if !in_catalog_era(os.family) {
        return Err("unmapped product: this Windows version is not in MSRC's CVRF data (it predates 2016 or is unknown); no findings".to_owned());
    }
    let mut notes = Vec::new();
    // `os_products` is sorted by id, so candidates are too.
    let mut candidates: Vec<(ProductId, String, WinName)> = cat
        .os_products
        .iter()
        .filter(|(_, _, w)| matches(os, w))
        .cloned()
        .collect();
    if os.server_core.is_none() && candidates.iter().any(|c| !c.2.server_core) {
        let before = candidates.len();
        candidates.retain(|c| !c.2.server_core);
        if before != candidates.len() {
            notes.push(
                "installation type unknown: assessed as a full installation (not Server Core)"
                    .to_owned(),
            );
        }
    }
    let Some((platform, name, win)) = candidates.first().cloned() else {
        let release_needed = matches!(
            os.family,
            OsFamily::Windows10 | OsFamily::Windows11 | OsFamily::ServerSemiAnnual
        );
        if let (true, None, Some(build)) = (release_needed, &os.release, target.build) {
            return Err(format!(
                "unmapped product: build {build} of {} is not a release kbgap or the catalog knows (newer than the catalog?); no findings",
                os.family.display_name()
            ));
        }
        return Err(format!(
            "unmapped product: no MSRC product matches {} (release {}, {})",
            os.family.display_name(),
            os.release.as_deref().unwrap_or("-"),
            os.arch
                .map(|a| a.as_str())
                .unwrap_or("architecture unknown")
        ));
    };
    if let (Some(device_sp), Some(product_sp)) = (os.service_pack, win.service_pack) {
        if device_sp < u32::from(product_sp) {
            notes.push(format!(
                "the device reports Service Pack {device_sp}, but MSRC publishes fixes only for {name}: install Service Pack {product_sp} first; findings assume it"
            ));
        }
    }
    if candidates.len() > 1 {
        notes.push(format!(
            "{} MSRC products match; assessed against {name} ({platform})",
            candidates.len()
        ));
    }
    let mut matched = vec![MatchedProduct {
        id: platform.clone(),
        name,
        reason: "operating system".to_owned(),
    }];
    let components = in_box_components(cat, &platform);
    for c in &components {
        matched.push(MatchedProduct {
            id: c.clone(),
            name: cat
                .catalog()
                .product(c)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            reason: "in-box component of the operating system".to_owned(),
        });
    }
    Ok(Resolution {
        platform,
        components,
        matched,
        notes,
    })
}

fn matches(os: &OsTarget, w: &WinName) -> bool {
    if w.kind != os.family {
        return false;
    }
    let release_matters = matches!(
        os.family,
        OsFamily::Windows10 | OsFamily::Windows11 | OsFamily::ServerSemiAnnual
    );
    if release_matters && w.release != os.release {
        return false;
    }
    if let (Some(a), Some(b)) = (os.arch, w.arch) {
        if a != b {
            return false;
        }
    }
    if let Some(core) = os.server_core {
        if core != w.server_core {
            return false;
        }
    }
    true
}

/// In-box compound products on the platform: EdgeHTML, Flash, and the newest Internet Explorer
/// (a device has one IE version; IE 11 replaced the others everywhere it was offered).
fn in_box_components(cat: &EngineCatalog, platform: &ProductId) -> Vec<ProductId> {
    let compounds = cat.compounds_on(platform);
    let ie_version = |id: &ProductId| -> u32 {
        cat.catalog()
            .product(id)
            .and_then(|p| {
                p.name
                    .trim_start_matches("Internet Explorer")
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    };
    let newest_ie = compounds
        .iter()
        .filter(|(_, c)| *c == Component::InternetExplorer)
        .max_by_key(|(id, _)| ie_version(id))
        .map(|(id, _)| id.clone());
    compounds
        .iter()
        .filter(|(id, c)| match c {
            Component::InternetExplorer => Some(id) == newest_ie.as_ref(),
            other => other.in_box(),
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Families MSRC's CVRF documents (2016 on) cover.
fn in_catalog_era(f: OsFamily) -> bool {
    !matches!(
        f,
        OsFamily::WindowsXp
            | OsFamily::Windows8
            | OsFamily::Server2003
            | OsFamily::Server2003R2
            | OsFamily::Unknown
    )
}
