//! The typed catalog model: one MSRC CVRF document as kbgap keeps it, whatever form it came in.
//!
//! The model keeps what the engine, the API and `catalog show` need and drops presentation-only
//! text (FAQ notes, acknowledgments). It round-trips through serde so the store can persist it.

use chrono::{DateTime, Utc};
use kbgap_core::{Build, CveId, DocumentId, KbId, ProductId, Severity};
use serde::{Deserialize, Serialize};

/// Bumped whenever the model's shape or a parsing rule changes, so stored documents parsed by an
/// older kbgap are re-parsed from their stored source.
pub const MODEL_VERSION: u32 = 1;

/// One MSRC security-update document (`2020-Mar`, `Oct-OOB`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// `DocumentTracking/Identification/ID`.
    pub id: DocumentId,
    /// `DocumentTracking/Identification/Alias`, when present.
    pub alias: Option<String>,
    /// `DocumentTitle`, e.g. "March 2020 Security Updates".
    pub title: String,
    /// `DocumentTracking/InitialReleaseDate` (dates without a zone are UTC).
    pub initial_release: DateTime<Utc>,
    /// `DocumentTracking/CurrentReleaseDate`: what sync compares.
    pub current_release: DateTime<Utc>,
    /// The newest `DocumentTracking/RevisionHistory/Revision/Number`, as text ("11", "1.0").
    pub revision: String,
    /// `ProductTree/FullProductName`, de-duplicated by id.
    pub products: Vec<Product>,
    /// `Vulnerability` elements in document order.
    pub vulnerabilities: Vec<Vulnerability>,
}

/// One `FullProductName`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// `ProductID`, e.g. `11713` or compound `10486-11713`.
    pub id: ProductId,
    /// The full name as written in this document, whitespace-collapsed.
    pub name: String,
    /// The `Branch Type="Product Family"` name it sits under ("Windows", "ESU", "Browser"...).
    pub family: Option<String>,
}

/// One `Vulnerability`: a CVE (or advisory) and how each product is affected and fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// `CVE` element: `CVE-2020-0796` or `ADV200005`.
    pub cve: CveId,
    /// `Title`.
    pub title: String,
    /// `Notes/Note Type="Description"`, HTML as published.
    pub description: Option<String>,
    /// `Notes/Note Type="Tag"`: the affected component ("Microsoft Windows SMB Server").
    pub tag: Option<String>,
    /// `Notes/Note Type="CNA"`, when present.
    pub cna: Option<String>,
    /// `CWE` ids, newer documents only.
    pub cwe: Vec<String>,
    /// `ProductStatuses/Status Type="Known Affected"`.
    pub affected: Vec<ProductId>,
    /// `Threats/Threat Type="Severity"`, one entry per product.
    pub severities: Vec<ProductSeverity>,
    /// `Threats/Threat Type="Impact"`, one entry per product.
    pub impacts: Vec<ProductImpact>,
    /// From `Threats/Threat Type="Exploit Status"` (`Exploited:Yes`).
    pub exploited: Option<bool>,
    /// From `Threats/Threat Type="Exploit Status"` (`Publicly Disclosed:No`).
    pub publicly_disclosed: Option<bool>,
    /// `CVSSScoreSets/ScoreSet`.
    pub cvss: Vec<CvssScore>,
    /// `Remediations/Remediation`, all types (only Vendor Fix rows with a KB become findings).
    pub remediations: Vec<Remediation>,
    /// The earliest `RevisionHistory/Revision/Date` of this vulnerability.
    pub published: Option<DateTime<Utc>>,
    /// The latest `RevisionHistory/Revision/Date` of this vulnerability.
    pub updated: Option<DateTime<Utc>>,
}

/// A severity rating for one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSeverity {
    /// The product rated.
    pub product: ProductId,
    /// The rating.
    pub severity: Severity,
}

/// An impact ("Remote Code Execution") for one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductImpact {
    /// The product.
    pub product: ProductId,
    /// The impact text as published.
    pub impact: String,
}

/// One CVSS score set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvssScore {
    /// `BaseScore`.
    pub base: f32,
    /// `TemporalScore`, when present.
    pub temporal: Option<f32>,
    /// `Vector`, e.g. `CVSS:3.1/AV:N/...`.
    pub vector: Option<String>,
    /// The products this score applies to.
    pub products: Vec<ProductId>,
}

/// The `Type` attribute of a remediation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RemediationKind {
    /// "Vendor Fix": the fix itself.
    VendorFix,
    /// "Known Issue": a duplicate row pointing at the KB's support article. Never a finding.
    KnownIssue,
    /// "Release Notes" (2025+): a duplicate with the KB in SubType. Never a finding.
    ReleaseNotes,
    /// "Workaround".
    Workaround,
    /// "Mitigation".
    Mitigation,
    /// "Will Not Fix".
    WillNotFix,
    /// "None Available".
    NoneAvailable,
    /// Anything else, kept verbatim.
    Other(String),
}

impl RemediationKind {
    /// Maps the XML `Type` attribute text.
    pub fn from_xml(text: &str) -> Self {
        match text.trim() {
            "Vendor Fix" => Self::VendorFix,
            "Known Issue" => Self::KnownIssue,
            "Release Notes" => Self::ReleaseNotes,
            "Workaround" => Self::Workaround,
            "Mitigation" => Self::Mitigation,
            "Will Not Fix" => Self::WillNotFix,
            "None Available" => Self::NoneAvailable,
            other => Self::Other(other.to_owned()),
        }
    }
    /// The XML `Type` attribute text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::VendorFix => "Vendor Fix",
            Self::KnownIssue => "Known Issue",
            Self::ReleaseNotes => "Release Notes",
            Self::Workaround => "Workaround",
            Self::Mitigation => "Mitigation",
            Self::WillNotFix => "Will Not Fix",
            Self::NoneAvailable => "None Available",
            Self::Other(s) => s,
        }
    }
}

/// One `Remediation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remediation {
    /// `Type`.
    pub kind: RemediationKind,
    /// `Description` as published (KB digits, "Release Notes", HTML...).
    pub description: Option<String>,
    /// The KB, when `Description` is 6-7 digits (optionally `KB`-prefixed). `None` for text.
    pub kb: Option<KbId>,
    /// `URL`.
    pub url: Option<String>,
    /// `Supercedence` parsed: 6-7 digit tokens split on `[;,\s]+`; junk dropped (and reported).
    pub supersedes: Vec<KbId>,
    /// `Supercedence` verbatim, when present.
    pub supersedence_raw: Option<String>,
    /// `ProductID`s this remediation applies to.
    pub products: Vec<ProductId>,
    /// `RestartRequired` ("Yes", "No", "Maybe"...).
    pub restart_required: Option<String>,
    /// `SubType` ("Security Update", "Monthly Rollup", "Security Only", "IE Cumulative", ...).
    pub sub_type: Option<String>,
    /// `FixedBuild` verbatim, when present.
    pub fixed_build_raw: Option<String>,
    /// `FixedBuild` when it is a dotted build (`^\d+(\.\d+){2,3}$`).
    pub fixed_build: Option<Build>,
}

impl Remediation {
    /// True for a Vendor Fix that names a KB: the only rows that can become findings.
    pub fn is_kb_fix(&self) -> bool {
        self.kind == RemediationKind::VendorFix && self.kb.is_some()
    }
}

/// Something in a document that was not as expected: counted and reported, not fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseIssue {
    /// The document.
    pub document: Option<DocumentId>,
    /// The vulnerability, when inside one.
    pub cve: Option<String>,
    /// The element or field, e.g. `Remediation/Supercedence`.
    pub field: String,
    /// What was wrong and what was done about it ("junk token `20.0.1` dropped").
    pub message: String,
    /// Whether the entry was skipped entirely (true) or kept with the odd part dropped (false).
    pub skipped: bool,
    /// The 1-based line in the source, when known.
    pub line: Option<u64>,
}

/// What parsing one document produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParsedDocument {
    /// The document.
    pub document: Document,
    /// Oddities found on the way, each naming document, CVE and field.
    pub issues: Vec<ParseIssue>,
}

/// The first few facts of a document, readable without parsing all of it; sync and the
/// re-import no-op compare these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentHead {
    /// Document id.
    pub id: DocumentId,
    /// Newest revision number, as text.
    pub revision: String,
    /// `CurrentReleaseDate`.
    pub current_release: DateTime<Utc>,
}

impl Document {
    /// The head facts of this document.
    pub fn head(&self) -> DocumentHead {
        DocumentHead {
            id: self.id.clone(),
            revision: self.revision.clone(),
            current_release: self.current_release,
        }
    }
}
