//! Typed identifiers shared by every kbgap crate: KBs, products, CVEs, documents, builds, machines.
//!
//! Nothing here does I/O. Each type parses strictly from the text forms that
//! appear in Microsoft's data and prints back in the canonical form the
//! Defender API uses (for example a [`KbId`] prints as bare digits).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Error for identifier text that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {text:?}")]
pub struct IdError {
    /// Which identifier was being parsed ("KB number", "build", ...).
    pub kind: &'static str,
    /// The offending text (truncated to 80 characters).
    pub text: String,
}

impl IdError {
    fn new(kind: &'static str, text: &str) -> Self {
        Self {
            kind,
            text: text.chars().take(80).collect(),
        }
    }
}

/// A Microsoft Knowledge Base article number: the identity of an update package.
///
/// Parses `4540673`, `KB4540673`, `kb4540673` and `KB4540673v2`-style suffixes are rejected
/// (callers that see them in hotfix lists strip them first). Displays as bare digits, as the
/// Defender API does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KbId(u32);

impl KbId {
    /// Wraps a KB number.
    pub const fn new(n: u32) -> Self {
        Self(n)
    }
    /// The KB number.
    pub const fn get(self) -> u32 {
        self.0
    }
    /// Microsoft Update Catalog search URL for this KB.
    pub fn catalog_url(self) -> String {
        format!(
            "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB{}",
            self.0
        )
    }
    /// Parses KB-shaped text strictly: optional `KB` prefix, then 6 or 7 digits.
    ///
    /// MSRC KBs since 2016 are 6-7 digits; shorter or longer digit runs in a
    /// `Supercedence` field are junk (`20.0.1`), not KBs.
    pub fn parse_strict(text: &str) -> Option<Self> {
        let t = text.trim();
        let digits = t
            .strip_prefix("KB")
            .or_else(|| t.strip_prefix("kb"))
            .or_else(|| t.strip_prefix("Kb"))
            .unwrap_or(t);
        if (6..=7).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok().map(Self)
        } else {
            None
        }
    }
}

impl fmt::Display for KbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for KbId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t
            .strip_prefix("KB")
            .or_else(|| t.strip_prefix("kb"))
            .or_else(|| t.strip_prefix("Kb"))
            .unwrap_or(t);
        if !digits.is_empty() && digits.len() <= 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits
                .parse()
                .map(Self)
                .map_err(|_| IdError::new("KB number", s))
        } else {
            Err(IdError::new("KB number", s))
        }
    }
}

impl TryFrom<String> for KbId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<KbId> for String {
    fn from(k: KbId) -> String {
        k.to_string()
    }
}

/// An MSRC ProductID: `11713`, or compound `10486-11713` (product 10486 on platform 11713).
///
/// Stable across documents while product names drift, so it is the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(String);

impl ProductId {
    /// Wraps MSRC ProductID text (trimmed). Any non-empty text without whitespace is accepted,
    /// since MSRC uses digits, compound `A-B` ids and occasionally `0`.
    pub fn new(text: &str) -> Result<Self, IdError> {
        let t = text.trim();
        if t.is_empty() || t.chars().any(char::is_whitespace) {
            Err(IdError::new("product id", text))
        } else {
            Ok(Self(t.to_owned()))
        }
    }
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// For a compound id `A-B`, `(A, B)`: product A installed on platform B.
    pub fn compound_parts(&self) -> Option<(&str, &str)> {
        self.0.split_once('-')
    }
    /// The platform part of a compound id (`B` of `A-B`); `None` for a simple id.
    pub fn platform(&self) -> Option<&str> {
        self.compound_parts().map(|(_, b)| b)
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A vulnerability identifier as MSRC uses it: `CVE-2020-0796`, or an advisory `ADV200005`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CveId(String);

impl CveId {
    /// The id text, upper-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// True for `CVE-` ids, false for advisories (`ADV...`) and other MSRC ids.
    pub fn is_cve(&self) -> bool {
        self.0.starts_with("CVE-")
    }
}

impl FromStr for CveId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_uppercase();
        let ok = if let Some(rest) = t.strip_prefix("CVE-") {
            let mut parts = rest.splitn(2, '-');
            let year = parts.next().unwrap_or("");
            let num = parts.next().unwrap_or("");
            year.len() == 4
                && year.bytes().all(|b| b.is_ascii_digit())
                && num.len() >= 4
                && num.bytes().all(|b| b.is_ascii_digit())
        } else {
            // MSRC advisories and other vendor ids: letters then digits, no spaces.
            !t.is_empty()
                && t.len() <= 40
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && t.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        };
        if ok {
            Ok(Self(t))
        } else {
            Err(IdError::new("CVE id", s))
        }
    }
}

impl TryFrom<String> for CveId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CveId> for String {
    fn from(c: CveId) -> String {
        c.0
    }
}

impl fmt::Display for CveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An MSRC CVRF document id: `2020-Mar`, `2017-May-B`, `Oct-OOB`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocumentId(String);

impl DocumentId {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DocumentId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if !t.is_empty()
            && t.len() <= 40
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(Self(t.to_owned()))
        } else {
            Err(IdError::new("document id", s))
        }
    }
}

impl TryFrom<String> for DocumentId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DocumentId> for String {
    fn from(d: DocumentId) -> String {
        d.0
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A dotted version such as a Windows build `10.0.19045.2604` or a file version `6.3.9600.20821`.
///
/// Only `^\d+(\.\d+){2,3}$` parses; anything else in a FixedBuild field stays raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Build {
    /// `10` of `10.0.19045.2604`.
    pub major: u32,
    /// `0` of `10.0.19045.2604`.
    pub minor: u32,
    /// `19045` of `10.0.19045.2604`: the Windows CurrentBuild.
    pub build: u32,
    /// `2604` of `10.0.19045.2604`: the update build revision (UBR), when known.
    pub revision: Option<u32>,
}

impl Build {
    /// A build with a known revision.
    pub const fn new(major: u32, minor: u32, build: u32, revision: Option<u32>) -> Self {
        Self {
            major,
            minor,
            build,
            revision,
        }
    }
    /// True when this is a Windows NT 10 build (`10.0.B[.R]`), the only kind whose
    /// revision can be compared against an LCU FixedBuild.
    pub fn is_nt10(&self) -> bool {
        self.major == 10 && self.minor == 0
    }
    /// The same build without its revision.
    pub fn without_revision(self) -> Self {
        Self {
            revision: None,
            ..self
        }
    }
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)?;
        if let Some(r) = self.revision {
            write!(f, ".{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Build {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let parts: Vec<&str> = t.split('.').collect();
        if !(3..=4).contains(&parts.len())
            || parts
                .iter()
                .any(|p| p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(IdError::new("build", s));
        }
        let n = |i: usize| {
            parts[i]
                .parse::<u32>()
                .map_err(|_| IdError::new("build", s))
        };
        Ok(Self {
            major: n(0)?,
            minor: n(1)?,
            build: n(2)?,
            revision: if parts.len() == 4 { Some(n(3)?) } else { None },
        })
    }
}

impl TryFrom<String> for Build {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Build> for String {
    fn from(b: Build) -> String {
        b.to_string()
    }
}

/// A device's identity in kbgap and on the Defender API: 40 lowercase hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MachineId([u8; 20]);

impl MachineId {
    /// Wraps 20 raw bytes.
    pub const fn from_bytes(b: [u8; 20]) -> Self {
        Self(b)
    }
    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl FromStr for MachineId {
    type Err = IdError;
    /// Parses 40 hex characters, case-insensitively (the API compares ids that way).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().as_bytes();
        if t.len() != 40 {
            return Err(IdError::new("machine id", s));
        }
        let mut out = [0u8; 20];
        for (i, pair) in t.chunks(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or_else(|| IdError::new("machine id", s))?;
            let lo = hex_val(pair[1]).ok_or_else(|| IdError::new("machine id", s))?;
            out[i] = hi << 4 | lo;
        }
        Ok(Self(out))
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for MachineId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<MachineId> for String {
    fn from(m: MachineId) -> String {
        m.to_string()
    }
}

/// Processor architecture, of an installed OS or in an MSRC product name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Arch {
    /// x64 / AMD64.
    X64,
    /// 32-bit x86.
    X86,
    /// ARM64.
    Arm64,
    /// Itanium (IA-64).
    Itanium,
}

impl Arch {
    /// Parses the architecture words Windows tools print: systeminfo `x64-based PC`,
    /// `X86-based PC`, `ARM64-based PC`, `Itanium-based`, registry/WMI `AMD64`, `64-bit`,
    /// `32-bit`, `x86_64`, `arm64`.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().to_ascii_lowercase();
        if t.contains("arm64") || t.contains("aarch64") || (t.contains("arm") && t.contains("64")) {
            Some(Self::Arm64)
        } else if t.contains("itanium") || t.contains("ia64") {
            Some(Self::Itanium)
        } else if t.contains("x64") || t.contains("amd64") || t.contains("x86_64") || t == "64-bit"
        {
            Some(Self::X64)
        } else if t.contains("x86") || t == "32-bit" || t.contains("i386") || t.contains("i686") {
            Some(Self::X86)
        } else {
            None
        }
    }
    /// The word kbgap's JSON report uses (`x64`, `x86`, `arm64`, `itanium`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X64 => "x64",
            Self::X86 => "x86",
            Self::Arm64 => "arm64",
            Self::Itanium => "itanium",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// MSRC severity ratings, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// "Low".
    Low,
    /// "Moderate" (MSRC) / "Medium" (Defender).
    Moderate,
    /// "Important" (MSRC) / "High" (Defender).
    Important,
    /// "Critical".
    Critical,
}

impl Severity {
    /// Parses MSRC's and Defender's words for a severity, case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Self::Low),
            "moderate" | "medium" => Some(Self::Moderate),
            "important" | "high" => Some(Self::Important),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
    /// MSRC's word.
    pub fn msrc_name(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Moderate => "Moderate",
            Self::Important => "Important",
            Self::Critical => "Critical",
        }
    }
    /// Defender's word (`PublicVulnerabilityDto.severity`).
    pub fn defender_name(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Moderate => "Medium",
            Self::Important => "High",
            Self::Critical => "Critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_parses_with_and_without_prefix() {
        assert_eq!("KB4540673".parse::<KbId>().unwrap(), KbId::new(4540673));
        assert_eq!("4540673".parse::<KbId>().unwrap().to_string(), "4540673");
        assert!("KB45a".parse::<KbId>().is_err());
        assert_eq!(KbId::parse_strict("20.0.1"), None);
        assert_eq!(KbId::parse_strict("123"), None);
        assert_eq!(KbId::parse_strict(" 5022282 "), Some(KbId::new(5022282)));
        assert_eq!(
            KbId::new(4540673).catalog_url(),
            "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB4540673"
        );
    }

    #[test]
    fn build_parses_three_and_four_parts_only() {
        let b: Build = "10.0.19045.2604".parse().unwrap();
        assert_eq!(b, Build::new(10, 0, 19045, Some(2604)));
        assert!(b.is_nt10());
        assert_eq!("6.3.9600".parse::<Build>().unwrap().revision, None);
        assert!("5.15.92.1-1".parse::<Build>().is_err());
        assert!("4.8.9334.0 and 4.8.4802.0".parse::<Build>().is_err());
        assert!("https://aka.ms/OfficeSecurityReleases"
            .parse::<Build>()
            .is_err());
        assert!(Build::new(10, 0, 19045, Some(2604)) > Build::new(10, 0, 19045, Some(2486)));
    }

    #[test]
    fn machine_id_round_trips_lowercase() {
        let m: MachineId = "2339AD14A01BD0299AFB93DFA2550136057BFF96".parse().unwrap();
        assert_eq!(m.to_string(), "2339ad14a01bd0299afb93dfa2550136057bff96");
        assert!("123123123".parse::<MachineId>().is_err());
        assert!("zz39ad14a01bd0299afb93dfa2550136057bff96"
            .parse::<MachineId>()
            .is_err());
    }

    #[test]
    fn compound_product_ids_split() {
        let p = ProductId::new("10486-11713").unwrap();
        assert_eq!(p.compound_parts(), Some(("10486", "11713")));
        assert_eq!(ProductId::new("11713").unwrap().platform(), None);
        assert!(ProductId::new(" ").is_err());
    }

    #[test]
    fn cve_ids_validate() {
        assert!("cve-2020-0796".parse::<CveId>().unwrap().is_cve());
        assert!(!"ADV200005".parse::<CveId>().unwrap().is_cve());
        assert!("CVE-20-1".parse::<CveId>().is_err());
    }

    #[test]
    fn severity_orders_and_maps() {
        assert!(Severity::Critical > Severity::Important);
        assert_eq!(
            Severity::parse("Important").unwrap().defender_name(),
            "High"
        );
        assert_eq!(Severity::parse("medium"), Some(Severity::Moderate));
    }
}
