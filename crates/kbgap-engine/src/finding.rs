//! What an assessment answers: findings (KBs to install) with evidence, and dropped candidates with reasons.

use chrono::{DateTime, Utc};
use kbgap_core::{Build, CveId, KbId, ProductId, Severity};
use serde::Serialize;

/// The answer for one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The KBs the admin must install: one per chain, the newest applicable.
    pub findings: Vec<Finding>,
    /// Every candidate KB that is not a finding, with why.
    pub dropped: Vec<Dropped>,
    /// The MSRC products the device was matched to.
    pub products: Vec<MatchedProduct>,
    /// How sure the answer is.
    pub confidence: Confidence,
    /// Why confidence is not high, and other things the admin should know.
    pub notes: Vec<String>,
}

impl Assessment {
    /// True when nothing is missing.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
    /// The finding for a KB, if it is one.
    pub fn finding(&self, kb: KbId) -> Option<&Finding> {
        self.findings.iter().find(|f| f.kb == kb)
    }
    /// The dropped entry for a KB, if it was dropped.
    pub fn dropped(&self, kb: KbId) -> Option<&Dropped> {
        self.dropped.iter().find(|d| d.kb == kb)
    }
}

/// How much of the device's state the answer rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Confidence {
    /// Evidence was missing or cut short; findings may include things already installed.
    Low,
    /// Decided from a KB list (no build revision), list complete.
    Medium,
    /// Decided from the build revision, or a complete list with a current cumulative update.
    High,
}

/// An MSRC product the device was matched to, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedProduct {
    /// ProductID.
    pub id: ProductId,
    /// Its MSRC name.
    pub name: String,
    /// Why it applies ("operating system", "in-box component on the OS", "installed software").
    pub reason: String,
}

/// One KB the device is missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The KB to install.
    pub kb: KbId,
    /// Update title ("March 2020 Security Updates").
    pub name: String,
    /// Defender-style product names of the KB (catalog-wide, OS first).
    pub products_names: Vec<String>,
    /// Update Catalog URL.
    pub url: String,
    /// The KB's month (initial release of the document holding most of its rows).
    pub release_date: DateTime<Utc>,
    /// Remediation sub-type ("Security Update", "Monthly Rollup", ...).
    pub sub_type: Option<String>,
    /// Distinct CVEs the KB addresses in the catalog (Defender `cveAddressed`).
    pub cve_addressed: usize,
    /// The CVEs this KB fixes on this device (sorted).
    pub cves: Vec<CveId>,
    /// Highest severity over those CVEs on this device's products.
    pub max_severity: Option<Severity>,
    /// Why it is missing: one line per piece of evidence.
    pub evidence: Vec<String>,
    /// Older KBs this finding stands for (chain members the device also lacks).
    pub replaces: Vec<KbId>,
}

/// A candidate KB that is not a finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dropped {
    /// The KB.
    pub kb: KbId,
    /// Why it is not a finding.
    pub reason: DropReason,
}

/// Why a candidate was dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DropReason {
    /// It is installed (listed by the device).
    Installed,
    /// An installed KB (or one implied by the build) covers it.
    CoveredByInstalled {
        /// The installed KB that covers it.
        by: KbId,
    },
    /// The device's build revision is at or past the KB's fixed build.
    FixedByBuild {
        /// The device's build.
        device: Build,
        /// The KB's fixed build for the device's product.
        fixed: Build,
    },
    /// A newer KB in the answer includes it; install that one instead.
    IncludedInFinding {
        /// The finding that covers it.
        finding: KbId,
    },
    /// Not a security update for this purpose (preview, servicing stack, setup dynamic update...).
    OutOfScope {
        /// The sub-type that put it out of scope.
        sub_type: String,
    },
    /// Every fix group it belongs to is already fixed through an installed alternative
    /// (e.g. the Monthly Rollup instead of the IE Cumulative update).
    AlternativeInstalled {
        /// The installed KB that fixed them.
        by: KbId,
    },
    /// A hotpatch whose fixed build counts only with KB evidence.
    HotpatchWithoutEvidence,
    /// None of its fixes is open on this device.
    NoOpenFixes,
}

impl DropReason {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Installed => "installed on the device".into(),
            Self::CoveredByInstalled { by } => format!("covered by installed KB{by}"),
            Self::FixedByBuild { device, fixed } => {
                format!("device build {device} is at or past fixed build {fixed}")
            }
            Self::IncludedInFinding { finding } => {
                format!("included in KB{finding}, which the answer lists instead")
            }
            Self::OutOfScope { sub_type } => {
                format!("sub-type {sub_type:?} is not a security update to report")
            }
            Self::AlternativeInstalled { by } => {
                format!("its fixes are installed through the alternative KB{by}")
            }
            Self::NoOpenFixes => "none of its fixes is open on this device".into(),
            Self::HotpatchWithoutEvidence => {
                "hotpatch: its fixed build counts only when the KB is listed".into()
            }
        }
    }
}
