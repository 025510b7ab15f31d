//! Wire DTOs of the Defender API: exact camelCase names in the contract's order, every key always emitted.
//!
//! Field order in each struct IS the wire order (serde serialises struct fields in
//! declaration order), so do not reorder fields. `Option` fields serialise as `null`,
//! never as a missing key. Each entity also lists its keys in [`ApiEntity::KEYS`] (same
//! order) and exposes its `$filter`-able properties through [`ApiEntity::field`], which the
//! OData layer evaluates without serialising rows.

use chrono::{DateTime, Utc};
use kbgap_core::{CveId, KbId, MachineId};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Serialises machine timestamps as UTC with exactly 7 fractional digits (`2023-04-19T13:27:53.1618923Z`).
pub mod machine_time {
    use super::*;

    /// Formats one timestamp the Defender machine way.
    pub fn format(t: &DateTime<Utc>) -> String {
        format!(
            "{}.{:07}Z",
            t.format("%Y-%m-%dT%H:%M:%S"),
            t.timestamp_subsec_nanos() / 100
        )
    }

    /// serde `serialize_with` for `Option<DateTime<Utc>>`.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(t)),
            None => s.serialize_none(),
        }
    }

    /// serde `deserialize_with` for `Option<DateTime<Utc>>` (any RFC 3339 text).
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

/// Serialises vulnerability timestamps as UTC seconds with `Z` (`2019-10-08T00:00:00Z`).
pub mod second_time {
    use super::*;

    /// serde `serialize_with` for `Option<DateTime<Utc>>`.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            None => s.serialize_none(),
        }
    }

    /// serde `deserialize_with` for `Option<DateTime<Utc>>`.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        super::machine_time::deserialize(d)
    }
}

/// The type of a `$filter`-able property, used to validate literals before evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `Edm.String` (compared case-insensitively).
    String,
    /// `Edm.Int64` / `Edm.Double`.
    Number,
    /// `Edm.Boolean`.
    Bool,
    /// `Edm.DateTimeOffset`.
    DateTime,
    /// `Collection(Edm.String)`: `eq` means "contains".
    StringList,
}

/// The value of one property of one row, borrowed from the row.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// Unknown.
    Null,
    /// Text.
    Str(std::borrow::Cow<'a, str>),
    /// Any number.
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// A timestamp.
    Time(DateTime<Utc>),
    /// A string collection.
    List(&'a [String]),
}

impl<'a> FieldValue<'a> {
    fn opt_str(s: &'a Option<String>) -> Self {
        s.as_deref().map_or(Self::Null, |s| Self::Str(s.into()))
    }
    fn opt_num<N: Into<f64> + Copy>(n: Option<N>) -> Self {
        n.map_or(Self::Null, |n| Self::Num(n.into()))
    }
    fn opt_time(t: Option<DateTime<Utc>>) -> Self {
        t.map_or(Self::Null, Self::Time)
    }
}

/// A wire entity that the OData layer can filter, sort and project.
pub trait ApiEntity: Serialize + Send + Sync + 'static {
    /// Every wire key, in wire order (what `$select` may name).
    const KEYS: &'static [&'static str];
    /// The `$filter`/`$orderby`-able properties with their kinds (§3 of the contract).
    const FILTERABLE: &'static [(&'static str, FieldKind)];
    /// The value of `FILTERABLE[index]` for this row.
    fn field(&self, index: usize) -> FieldValue<'_>;
}

/// One update a device (or the fleet, for a software) is missing: `PublicProductFixDto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicProductFixDto {
    /// KB digits without `KB`.
    pub id: KbId,
    /// Update title, e.g. `March 2020 Security Updates`.
    pub name: String,
    /// lower_snake product names; never null.
    pub products_names: Vec<String>,
    /// Catalog search URL (`KbId::catalog_url`).
    pub url: String,
    /// Devices in the fleet missing this KB.
    pub machine_missed_on: u64,
    /// Number of CVEs the KB fixes.
    pub cve_addressed: u64,
    /// Undocumented; integer or null, always present.
    pub os_build: Option<u32>,
}

impl ApiEntity for PublicProductFixDto {
    const KEYS: &'static [&'static str] = &[
        "id",
        "name",
        "productsNames",
        "url",
        "machineMissedOn",
        "cveAddressed",
        "osBuild",
    ];
    const FILTERABLE: &'static [(&'static str, FieldKind)] = &[("id", FieldKind::String)];
    fn field(&self, _index: usize) -> FieldValue<'_> {
        FieldValue::Str(self.id.to_string().into())
    }
}

/// One network interface of a [`Machine`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddress {
    /// The address.
    pub ip_address: Option<String>,
    /// MAC address, 12 upper-case hex digits.
    pub mac_address: Option<String>,
    /// `Ethernet`, `Wireless80211`, ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `Up`, `Down`, ...
    pub operational_status: Option<String>,
}

/// Virtual-machine metadata of a [`Machine`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmMetadata {
    /// VM id.
    pub vm_id: Option<String>,
    /// Cloud provider name.
    pub cloud_provider: Option<String>,
    /// Cloud resource id.
    pub resource_id: Option<String>,
    /// Subscription id.
    pub subscription_id: Option<String>,
}

/// A device, with the full key set of a live `GET /api/machines/{id}` response (§4), in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// 40 lowercase hex.
    pub id: MachineId,
    /// Id of the machine this one was merged into.
    pub merged_into_machine_id: Option<MachineId>,
    /// Possible duplicate device.
    pub is_potential_duplication: bool,
    /// Excluded from the inventory.
    pub is_excluded: bool,
    /// Why it was excluded.
    pub exclusion_reason: Option<String>,
    /// Computer DNS name (lowercase in Defender).
    pub computer_dns_name: Option<String>,
    /// First seen (7 fractional digits on the wire).
    #[serde(with = "machine_time")]
    pub first_seen: Option<DateTime<Utc>>,
    /// Last seen (7 fractional digits on the wire).
    #[serde(with = "machine_time")]
    pub last_seen: Option<DateTime<Utc>>,
    /// `Windows10`, `WindowsServer2019`, ...
    pub os_platform: Option<String>,
    /// OS version text (Kenna requires the key).
    pub os_version: Option<String>,
    /// `x64`, `x86`, `ARM64`.
    pub os_processor: Option<String>,
    /// Display version, e.g. `21H2`.
    pub version: Option<String>,
    /// Last internal IP.
    pub last_ip_address: Option<String>,
    /// Last external IP.
    pub last_external_ip_address: Option<String>,
    /// Sensor agent version (Kenna requires the key).
    pub agent_version: Option<String>,
    /// Windows CurrentBuild, e.g. 19044.
    pub os_build: Option<u32>,
    /// `Active`, `Inactive`, ...
    pub health_status: Option<String>,
    /// `Normal`, `Low`, `High`.
    pub device_value: Option<String>,
    /// Device group id (an integer on the wire).
    pub rbac_group_id: Option<i64>,
    /// Device group name.
    pub rbac_group_name: Option<String>,
    /// `None`, `Informational`, `Low`, `Medium`, `High`.
    pub risk_score: Option<String>,
    /// `None`, `Low`, `Medium`, `High`.
    pub exposure_level: Option<String>,
    /// Entra-joined.
    pub is_aad_joined: Option<bool>,
    /// Entra device id (GUID).
    pub aad_device_id: Option<String>,
    /// Tags; never null.
    pub machine_tags: Vec<String>,
    /// `Updated`, ...
    pub defender_av_status: Option<String>,
    /// `Onboarded`, `CanBeOnboarded`, `Unsupported`, `InsufficientInfo`.
    pub onboarding_status: Option<String>,
    /// `32-bit` or `64-bit`.
    pub os_architecture: Option<String>,
    /// `Intune`, ...
    pub managed_by: Option<String>,
    /// `Unknown`, ...
    pub managed_by_status: Option<String>,
    /// Network interfaces; never null.
    pub ip_addresses: Vec<IpAddress>,
    /// VM metadata or null.
    pub vm_metadata: Option<VmMetadata>,
}

impl Machine {
    /// A machine with only an id and a name; every other property unknown.
    pub fn new(id: MachineId, computer_dns_name: Option<String>) -> Self {
        Self {
            id,
            merged_into_machine_id: None,
            is_potential_duplication: false,
            is_excluded: false,
            exclusion_reason: None,
            computer_dns_name,
            first_seen: None,
            last_seen: None,
            os_platform: None,
            os_version: None,
            os_processor: None,
            version: None,
            last_ip_address: None,
            last_external_ip_address: None,
            agent_version: None,
            os_build: None,
            health_status: None,
            device_value: None,
            rbac_group_id: None,
            rbac_group_name: None,
            risk_score: None,
            exposure_level: None,
            is_aad_joined: None,
            aad_device_id: None,
            machine_tags: Vec::new(),
            defender_av_status: None,
            onboarding_status: None,
            os_architecture: None,
            managed_by: None,
            managed_by_status: None,
            ip_addresses: Vec::new(),
            vm_metadata: None,
        }
    }

    /// The four-key reference form of this machine.
    pub fn reference(&self) -> MachineReference {
        MachineReference {
            id: self.id,
            computer_dns_name: self.computer_dns_name.clone(),
            os_platform: self.os_platform.clone(),
            rbac_group_name: self.rbac_group_name.clone(),
        }
    }
}

impl ApiEntity for Machine {
    const KEYS: &'static [&'static str] = &[
        "id",
        "mergedIntoMachineId",
        "isPotentialDuplication",
        "isExcluded",
        "exclusionReason",
        "computerDnsName",
        "firstSeen",
        "lastSeen",
        "osPlatform",
        "osVersion",
        "osProcessor",
        "version",
        "lastIpAddress",
        "lastExternalIpAddress",
        "agentVersion",
        "osBuild",
        "healthStatus",
        "deviceValue",
        "rbacGroupId",
        "rbacGroupName",
        "riskScore",
        "exposureLevel",
        "isAadJoined",
        "aadDeviceId",
        "machineTags",
        "defenderAvStatus",
        "onboardingStatus",
        "osArchitecture",
        "managedBy",
        "managedByStatus",
        "ipAddresses",
        "vmMetadata",
    ];
    const FILTERABLE: &'static [(&'static str, FieldKind)] = &[
        ("computerDnsName", FieldKind::String),
        ("id", FieldKind::String),
        ("version", FieldKind::String),
        ("deviceValue", FieldKind::String),
        ("aadDeviceId", FieldKind::String),
        ("machineTags", FieldKind::StringList),
        ("lastSeen", FieldKind::DateTime),
        ("exposureLevel", FieldKind::String),
        ("onboardingStatus", FieldKind::String),
        ("lastIpAddress", FieldKind::String),
        ("healthStatus", FieldKind::String),
        ("osPlatform", FieldKind::String),
        ("riskScore", FieldKind::String),
        ("rbacGroupId", FieldKind::Number),
    ];
    fn field(&self, index: usize) -> FieldValue<'_> {
        match index {
            0 => FieldValue::opt_str(&self.computer_dns_name),
            1 => FieldValue::Str(self.id.to_string().into()),
            2 => FieldValue::opt_str(&self.version),
            3 => FieldValue::opt_str(&self.device_value),
            4 => FieldValue::opt_str(&self.aad_device_id),
            5 => FieldValue::List(&self.machine_tags),
            6 => FieldValue::opt_time(self.last_seen),
            7 => FieldValue::opt_str(&self.exposure_level),
            8 => FieldValue::opt_str(&self.onboarding_status),
            9 => FieldValue::opt_str(&self.last_ip_address),
            10 => FieldValue::opt_str(&self.health_status),
            11 => FieldValue::opt_str(&self.os_platform),
            12 => FieldValue::opt_str(&self.risk_score),
            13 => FieldValue::opt_num(self.rbac_group_id.map(|n| n as f64)),
            _ => FieldValue::Null,
        }
    }
}

/// A device as listed under a software or a vulnerability: exactly four keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineReference {
    /// 40 lowercase hex.
    pub id: MachineId,
    /// Computer DNS name.
    pub computer_dns_name: Option<String>,
    /// `Windows10`, ...
    pub os_platform: Option<String>,
    /// Device group name.
    pub rbac_group_name: Option<String>,
}

impl ApiEntity for MachineReference {
    const KEYS: &'static [&'static str] = &["id", "computerDnsName", "osPlatform", "rbacGroupName"];
    const FILTERABLE: &'static [(&'static str, FieldKind)] = &[("id", FieldKind::String)];
    fn field(&self, _index: usize) -> FieldValue<'_> {
        FieldValue::Str(self.id.to_string().into())
    }
}

/// A software id: `{vendor}-_-{product}`, lowercase (`microsoft-_-edge`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SoftwareId {
    vendor: String,
    product: String,
}

/// Error for text that is not `{vendor}-_-{product}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid software id {0:?}: expected {{vendor}}-_-{{product}}")]
pub struct SoftwareIdError(pub String);

impl SoftwareId {
    /// Builds an id from its parts (lower-cased).
    pub fn new(vendor: &str, product: &str) -> Result<Self, SoftwareIdError> {
        format!("{vendor}-_-{product}").parse()
    }
    /// The vendor part (`microsoft`).
    pub fn vendor(&self) -> &str {
        &self.vendor
    }
    /// The product part (`edge`).
    pub fn product(&self) -> &str {
        &self.product
    }
}

impl FromStr for SoftwareId {
    type Err = SoftwareIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_lowercase();
        match t.split_once("-_-") {
            Some((v, p))
                if !v.is_empty()
                    && !p.is_empty()
                    && !p.contains("-_-")
                    && !t.chars().any(|c| c.is_whitespace() || c == '/') =>
            {
                Ok(Self {
                    vendor: v.to_owned(),
                    product: p.to_owned(),
                })
            }
            _ => Err(SoftwareIdError(s.chars().take(80).collect())),
        }
    }
}

impl fmt::Display for SoftwareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-_-{}", self.vendor, self.product)
    }
}

impl TryFrom<String> for SoftwareId {
    type Error = SoftwareIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SoftwareId> for String {
    fn from(s: SoftwareId) -> String {
        s.to_string()
    }
}

/// A software product in the fleet: the eight keys the Sentinel playbook requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Software {
    /// `{vendor}-_-{product}`.
    pub id: SoftwareId,
    /// Product part of the id.
    pub name: String,
    /// Vendor part of the id.
    pub vendor: String,
    /// Number of known vulnerabilities.
    pub weaknesses: u64,
    /// A public exploit exists.
    pub public_exploit: bool,
    /// An active alert is linked.
    pub active_alert: bool,
    /// Devices exposed.
    pub exposed_machines: u64,
    /// Impact score.
    pub impact_score: f64,
}

impl ApiEntity for Software {
    const KEYS: &'static [&'static str] = &[
        "id",
        "name",
        "vendor",
        "weaknesses",
        "publicExploit",
        "activeAlert",
        "exposedMachines",
        "impactScore",
    ];
    const FILTERABLE: &'static [(&'static str, FieldKind)] = &[
        ("id", FieldKind::String),
        ("name", FieldKind::String),
        ("vendor", FieldKind::String),
    ];
    fn field(&self, index: usize) -> FieldValue<'_> {
        match index {
            0 => FieldValue::Str(self.id.to_string().into()),
            1 => FieldValue::Str(self.name.as_str().into()),
            2 => FieldValue::Str(self.vendor.as_str().into()),
            _ => FieldValue::Null,
        }
    }
}

/// A vulnerability: `PublicVulnerabilityDto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicVulnerabilityDto {
    /// CVE id.
    pub id: CveId,
    /// Same as the id.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `Low`, `Medium`, `High`, `Critical`.
    pub severity: Option<String>,
    /// CVSS v3 base score.
    pub cvss_v3: Option<f64>,
    /// CVSS vector.
    pub cvss_vector: Option<String>,
    /// Devices exposed.
    pub exposed_machines: u64,
    /// Publication time (seconds, `Z`).
    #[serde(with = "second_time")]
    pub published_on: Option<DateTime<Utc>>,
    /// Last update time (seconds, `Z`).
    #[serde(with = "second_time")]
    pub updated_on: Option<DateTime<Utc>>,
    /// A public exploit exists.
    pub public_exploit: bool,
    /// The exploit is verified.
    pub exploit_verified: bool,
    /// The exploit is in a kit.
    pub exploit_in_kit: bool,
    /// Exploit types; never null.
    pub exploit_types: Vec<String>,
    /// Exploit URIs; never null.
    pub exploit_uris: Vec<String>,
    /// `Supported`, `Not Supported`, `SupportedInPremium`.
    pub cve_supportability: Option<String>,
    /// EPSS 0..1 or null.
    pub epss: Option<f64>,
}

impl ApiEntity for PublicVulnerabilityDto {
    const KEYS: &'static [&'static str] = &[
        "id",
        "name",
        "description",
        "severity",
        "cvssV3",
        "cvssVector",
        "exposedMachines",
        "publishedOn",
        "updatedOn",
        "publicExploit",
        "exploitVerified",
        "exploitInKit",
        "exploitTypes",
        "exploitUris",
        "cveSupportability",
        "epss",
    ];
    const FILTERABLE: &'static [(&'static str, FieldKind)] = &[
        ("id", FieldKind::String),
        ("name", FieldKind::String),
        ("description", FieldKind::String),
        ("cvssV3", FieldKind::Number),
        ("publishedOn", FieldKind::DateTime),
        ("severity", FieldKind::String),
        ("updatedOn", FieldKind::DateTime),
    ];
    fn field(&self, index: usize) -> FieldValue<'_> {
        match index {
            0 => FieldValue::Str(self.id.as_str().into()),
            1 => FieldValue::Str(self.name.as_str().into()),
            2 => FieldValue::opt_str(&self.description),
            3 => FieldValue::opt_num(self.cvss_v3),
            4 => FieldValue::opt_time(self.published_on),
            5 => FieldValue::opt_str(&self.severity),
            6 => FieldValue::opt_time(self.updated_on),
            _ => FieldValue::Null,
        }
    }
}

/// One (machine, CVE, product, fixing KB) row: `PublicAssetVulnerabilityDto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicAssetVulnerabilityDto {
    /// `{machineId}-_-{cveId}-_-{vendor}-_-{product}-_-{version}-_-{fixingKbId}` (see [`Self::make_id`]).
    pub id: String,
    /// CVE id.
    pub cve_id: CveId,
    /// Device id.
    pub machine_id: MachineId,
    /// KB digits or null.
    pub fixing_kb_id: Option<KbId>,
    /// lower_snake product name.
    pub product_name: String,
    /// Vendor.
    pub product_vendor: String,
    /// Installed version.
    pub product_version: Option<String>,
    /// `Low`, `Medium`, `High`, `Critical`.
    pub severity: Option<String>,
}

impl PublicAssetVulnerabilityDto {
    /// The row id: ends `-_-` when there is no fixing KB.
    pub fn make_id(
        machine: MachineId,
        cve: &CveId,
        vendor: &str,
        product: &str,
        version: Option<&str>,
        kb: Option<KbId>,
    ) -> String {
        format!(
            "{machine}-_-{cve}-_-{vendor}-_-{product}-_-{}-_-{}",
            version.unwrap_or(""),
            kb.map(|k| k.to_string()).unwrap_or_default()
        )
    }
}

impl ApiEntity for PublicAssetVulnerabilityDto {
    const KEYS: &'static [&'static str] = &[
        "id",
        "cveId",
        "machineId",
        "fixingKbId",
        "productName",
        "productVendor",
        "productVersion",
        "severity",
    ];
    const FILTERABLE: &'static [(&'static str, FieldKind)] = &[
        ("id", FieldKind::String),
        ("cveId", FieldKind::String),
        ("machineId", FieldKind::String),
        ("fixingKbId", FieldKind::String),
        ("productName", FieldKind::String),
        ("productVersion", FieldKind::String),
        ("severity", FieldKind::String),
        ("productVendor", FieldKind::String),
    ];
    fn field(&self, index: usize) -> FieldValue<'_> {
        match index {
            0 => FieldValue::Str(self.id.as_str().into()),
            1 => FieldValue::Str(self.cve_id.as_str().into()),
            2 => FieldValue::Str(self.machine_id.to_string().into()),
            3 => self
                .fixing_kb_id
                .map_or(FieldValue::Null, |k| FieldValue::Str(k.to_string().into())),
            4 => FieldValue::Str(self.product_name.as_str().into()),
            5 => FieldValue::opt_str(&self.product_version),
            6 => FieldValue::opt_str(&self.severity),
            7 => FieldValue::Str(self.product_vendor.as_str().into()),
            _ => FieldValue::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_time_has_seven_fraction_digits() {
        let t = DateTime::parse_from_rfc3339("2023-04-19T13:27:53.1618923Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(machine_time::format(&t), "2023-04-19T13:27:53.1618923Z");
        let t0 = DateTime::parse_from_rfc3339("2023-04-19T13:27:53Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(machine_time::format(&t0), "2023-04-19T13:27:53.0000000Z");
    }

    #[test]
    fn keys_match_serialised_order() {
        let m = Machine::new(
            "556b3952acb0bff29816d267822305781cc183ec".parse().unwrap(),
            None,
        );
        let text = serde_json::to_string(&m).unwrap();
        let mut pos = 0;
        for k in Machine::KEYS {
            let at = text[pos..]
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing or out of order"));
            pos += at;
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), Machine::KEYS.len());
    }

    #[test]
    fn software_id_parses() {
        let s: SoftwareId = "Microsoft-_-Edge".parse().unwrap();
        assert_eq!(s.to_string(), "microsoft-_-edge");
        assert_eq!(s.vendor(), "microsoft");
        assert!("edge".parse::<SoftwareId>().is_err());
        assert!("-_-edge".parse::<SoftwareId>().is_err());
    }

    #[test]
    fn asset_row_id_ends_with_separator_without_kb() {
        let m: MachineId = "7a704e17d1c2977c0e7b665fb18ae6e1fe7f3283".parse().unwrap();
        let c: CveId = "CVE-2016-3348".parse().unwrap();
        let id = PublicAssetVulnerabilityDto::make_id(
            m,
            &c,
            "microsoft",
            "windows_server_2012_r2",
            Some("6.3.9600.19728"),
            None,
        );
        assert!(id.ends_with("-_-6.3.9600.19728-_-"));
    }
}
