//! Parser for the MSRC API's JSON form of a CVRF document (integer enums, `{"Value": ...}` text nodes).
//!
//! The JSON is deserialised leniently into mirror structs (unknown fields ignored, every field
//! optional) and then mapped with the same rules as the XML parser ([`super::common`]).
//! Unknown enum integers become [`ParseIssue`](crate::model::ParseIssue)s; a missing document id
//! or date is an error naming its JSON path.

use chrono::{DateTime, Utc};
use kbgap_core::{CveId, DocumentId, ProductId, Severity};
use serde::Deserialize;
use serde_json::Value as Json;

use super::common::{
    collapse_ws, non_blank, parse_date, parse_exploit_status, Issues, RawRemediation,
};
use super::CvrfError;
use crate::model::{
    CvssScore, Document, DocumentHead, ParsedDocument, Product, ProductImpact, ProductSeverity,
    RemediationKind, Vulnerability,
};

/// `{"Value": "..."}`.
#[derive(Debug, Default, Deserialize)]
struct Text {
    #[serde(rename = "Value", default)]
    value: Option<String>,
}

fn text(t: &Option<Text>) -> Option<String> {
    t.as_ref().and_then(|t| t.value.clone())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Root {
    document_title: Option<Text>,
    document_tracking: Option<Tracking>,
    product_tree: Option<ProductTree>,
    #[serde(default)]
    vulnerability: Vec<Vuln>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tracking {
    identification: Option<Identification>,
    #[serde(default)]
    revision_history: Vec<Revision>,
    initial_release_date: Option<String>,
    current_release_date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Identification {
    #[serde(rename = "ID")]
    id: Option<Text>,
    alias: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Revision {
    number: Option<Json>,
    date: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProductTree {
    #[serde(default)]
    branch: Vec<Branch>,
    #[serde(default)]
    full_product_name: Vec<FullProductName>,
}

/// A branch or, inside `Items`, a product (`ProductID` + `Value`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Branch {
    #[serde(default)]
    items: Vec<Branch>,
    name: Option<String>,
    #[serde(rename = "ProductID")]
    product_id: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FullProductName {
    #[serde(rename = "ProductID")]
    product_id: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vuln {
    title: Option<Text>,
    #[serde(default)]
    notes: Vec<Note>,
    #[serde(rename = "CVE")]
    cve: Option<String>,
    #[serde(rename = "CWE", default)]
    cwe: Vec<Cwe>,
    #[serde(default)]
    product_statuses: Vec<Status>,
    #[serde(default)]
    threats: Vec<Threat>,
    #[serde(rename = "CVSSScoreSets", default)]
    cvss_score_sets: Vec<ScoreSet>,
    #[serde(default)]
    remediations: Vec<Remediation>,
    #[serde(default)]
    revision_history: Vec<Revision>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Note {
    title: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<Json>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Cwe {
    #[serde(rename = "ID")]
    id: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Status {
    #[serde(rename = "ProductID", default)]
    product_id: Vec<String>,
    #[serde(rename = "Type")]
    kind: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Threat {
    description: Option<Text>,
    #[serde(rename = "ProductID", default)]
    product_id: Vec<String>,
    #[serde(rename = "Type")]
    kind: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScoreSet {
    base_score: Option<Json>,
    temporal_score: Option<Json>,
    vector: Option<String>,
    #[serde(rename = "ProductID", default)]
    product_id: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Remediation {
    description: Option<Text>,
    #[serde(rename = "URL")]
    url: Option<String>,
    supercedence: Option<String>,
    #[serde(rename = "ProductID", default)]
    product_id: Vec<String>,
    #[serde(rename = "Type")]
    kind: Option<Json>,
    sub_type: Option<String>,
    fixed_build: Option<String>,
    restart_required: Option<Text>,
}

/// An enum field: an integer (the API's form) or, leniently, its XML word.
enum EnumVal<'a> {
    Int(i64),
    Word(&'a str),
    Missing,
}

fn enum_val(v: &Option<Json>) -> EnumVal<'_> {
    match v {
        Some(Json::Number(n)) => n.as_i64().map_or(EnumVal::Missing, EnumVal::Int),
        Some(Json::String(s)) => s.trim().parse().map_or(EnumVal::Word(s), EnumVal::Int),
        _ => EnumVal::Missing,
    }
}

fn json_number(v: &Option<Json>) -> Option<f32> {
    match v {
        Some(Json::Number(n)) => n.as_f64().map(|f| f as f32),
        Some(Json::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

fn json_text(v: &Option<Json>) -> Option<String> {
    match v {
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn err(source: &str, line: Option<u64>, column: Option<u64>, message: String) -> CvrfError {
    CvrfError {
        source_name: source.to_owned(),
        line,
        column,
        message,
    }
}

fn load(bytes: &[u8], source: &str) -> Result<Root, CvrfError> {
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    serde_json::from_slice(body).map_err(|e| {
        err(
            source,
            Some(e.line() as u64),
            Some(e.column() as u64),
            format!("malformed CVRF JSON: {e}"),
        )
    })
}

/// A document's identity facts.
struct Identity {
    id: DocumentId,
    alias: Option<String>,
    revision: String,
    initial: DateTime<Utc>,
    current: DateTime<Utc>,
}

/// Adds one product (id, name, family) to the tree being built.
type AddProduct<'a> = dyn FnMut(Option<&str>, Option<&str>, Option<&str>, &mut Issues) + 'a;

/// Identity: id, newest revision, initial and current release.
fn identity(root: &Root, source: &str) -> Result<Identity, CvrfError> {
    let missing = |path: &str| err(source, None, None, format!("missing {path}"));
    let tracking = root
        .document_tracking
        .as_ref()
        .ok_or_else(|| missing("DocumentTracking"))?;
    let ident = tracking
        .identification
        .as_ref()
        .ok_or_else(|| missing("DocumentTracking.Identification"))?;
    let id_text =
        text(&ident.id).ok_or_else(|| missing("DocumentTracking.Identification.ID.Value"))?;
    let id: DocumentId = id_text.parse().map_err(|_| {
        err(
            source,
            None,
            None,
            format!("invalid DocumentTracking.Identification.ID.Value {id_text:?}"),
        )
    })?;
    let date = |v: &Option<String>, path: &str| -> Result<DateTime<Utc>, CvrfError> {
        let t = v.as_deref().ok_or_else(|| missing(path))?;
        parse_date(t).ok_or_else(|| err(source, None, None, format!("unparseable {path} {t:?}")))
    };
    let initial = date(
        &tracking.initial_release_date,
        "DocumentTracking.InitialReleaseDate",
    )?;
    let current = date(
        &tracking.current_release_date,
        "DocumentTracking.CurrentReleaseDate",
    )?;
    let revs: Vec<(String, String)> = tracking
        .revision_history
        .iter()
        .filter_map(|r| json_text(&r.number).map(|n| (n, r.date.clone().unwrap_or_default())))
        .collect();
    let revision = super::xml::newest_revision(&revs)
        .ok_or_else(|| missing("DocumentTracking.RevisionHistory[].Number"))?;
    Ok(Identity {
        id,
        alias: non_blank(text(&ident.alias)),
        revision,
        initial,
        current,
    })
}

/// Reads the head facts (the JSON is parsed whole).
pub(crate) fn head(bytes: &[u8], source: &str) -> Result<DocumentHead, CvrfError> {
    let root = load(bytes, source)?;
    let Identity {
        id,
        revision,
        current: current_release,
        ..
    } = identity(&root, source)?;
    Ok(DocumentHead {
        id,
        revision,
        current_release,
    })
}

/// Parses a whole JSON document.
pub(crate) fn parse(bytes: &[u8], source: &str) -> Result<ParsedDocument, CvrfError> {
    let root = load(bytes, source)?;
    let Identity {
        id,
        alias,
        revision,
        initial: initial_release,
        current: current_release,
    } = identity(&root, source)?;
    let mut issues = Issues::default();

    let mut products: Vec<Product> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut add =
        |raw_id: Option<&str>, name: Option<&str>, family: Option<&str>, issues: &mut Issues| {
            let raw_id = raw_id.unwrap_or("");
            let Ok(pid) = ProductId::new(raw_id) else {
                issues.push(
                    None,
                    "ProductTree.FullProductName.ProductID",
                    format!("unparseable product id {raw_id:?}: product skipped"),
                    true,
                    None,
                );
                return;
            };
            if let Some(&i) = index.get(&pid) {
                let p: &mut Product = &mut products[i];
                if p.family.is_none() {
                    p.family = family.map(collapse_ws);
                }
                return;
            }
            index.insert(pid.clone(), products.len());
            products.push(Product {
                id: pid,
                name: collapse_ws(name.unwrap_or("")),
                family: family.map(collapse_ws),
            });
        };
    if let Some(tree) = &root.product_tree {
        // Branches: top level is the vendor; the branch directly holding products is the family.
        fn walk(
            b: &Branch,
            depth: usize,
            family: Option<&str>,
            add: &mut AddProduct<'_>,
            issues: &mut Issues,
        ) {
            if b.product_id.is_some() && b.items.is_empty() {
                add(b.product_id.as_deref(), b.value.as_deref(), family, issues);
                return;
            }
            let fam = if depth >= 1 {
                b.name.as_deref().or(family)
            } else {
                family
            };
            for item in &b.items {
                walk(item, depth + 1, fam, add, issues);
            }
        }
        for b in &tree.branch {
            walk(b, 0, None, &mut add, &mut issues);
        }
        for f in &tree.full_product_name {
            add(
                f.product_id.as_deref(),
                f.value.as_deref(),
                None,
                &mut issues,
            );
        }
    }

    let mut vulnerabilities = Vec::with_capacity(root.vulnerability.len());
    for v in &root.vulnerability {
        if let Some(vuln) = vulnerability(v, &mut issues) {
            vulnerabilities.push(vuln);
        }
    }

    let document = Document {
        id: id.clone(),
        alias,
        title: collapse_ws(&text(&root.document_title).unwrap_or_default()),
        initial_release,
        current_release,
        revision,
        products,
        vulnerabilities,
    };
    Ok(ParsedDocument {
        document,
        issues: issues.finish(&id),
    })
}

fn ids(raw: &[String], cve: &str, field: &str, issues: &mut Issues) -> Vec<ProductId> {
    raw.iter()
        .filter_map(|r| match ProductId::new(r) {
            Ok(p) => Some(p),
            Err(_) => {
                issues.push(
                    Some(cve),
                    field,
                    format!("unparseable product id {r:?} dropped"),
                    false,
                    None,
                );
                None
            }
        })
        .collect()
}

fn vulnerability(v: &Vuln, issues: &mut Issues) -> Option<Vulnerability> {
    let cve_raw = v.cve.as_deref().unwrap_or("").trim();
    let Ok(cve) = cve_raw.parse::<CveId>() else {
        issues.push(
            Some(cve_raw).filter(|s| !s.is_empty()),
            "Vulnerability[].CVE",
            format!("missing or invalid CVE {cve_raw:?}: vulnerability skipped"),
            true,
            None,
        );
        return None;
    };
    let c = cve.as_str();
    let (mut description, mut tag, mut cna) = (None, None, None);
    for n in &v.notes {
        let slot = match enum_val(&n.kind) {
            EnumVal::Int(7) | EnumVal::Word("Tag") => &mut tag,
            EnumVal::Int(8) | EnumVal::Word("CNA") => &mut cna,
            EnumVal::Int(1) | EnumVal::Word("Description") => &mut description,
            EnumVal::Int(2) if n.title.as_deref() == Some("Description") => &mut description,
            EnumVal::Int(0..=6) | EnumVal::Word(_) => continue,
            EnumVal::Int(k) => {
                issues.push(
                    Some(c),
                    "Notes[].Type",
                    format!("unknown note type {k}: note ignored"),
                    false,
                    None,
                );
                continue;
            }
            EnumVal::Missing => continue,
        };
        if slot.is_none() {
            *slot = non_blank(n.value.clone());
        }
    }
    let cwe = v
        .cwe
        .iter()
        .filter_map(|w| non_blank(w.id.clone()).or_else(|| non_blank(w.value.clone())))
        .collect();
    let mut affected = Vec::new();
    for s in &v.product_statuses {
        match enum_val(&s.kind) {
            EnumVal::Int(3) | EnumVal::Word("Known Affected") => {
                affected.extend(ids(&s.product_id, c, "ProductStatuses[].ProductID", issues))
            }
            EnumVal::Int(k) => issues.push(
                Some(c),
                "ProductStatuses[].Type",
                format!("status type {k} is not Known Affected (3): ignored"),
                false,
                None,
            ),
            _ => {}
        }
    }
    let (mut severities, mut impacts) = (Vec::new(), Vec::new());
    let (mut exploited, mut publicly_disclosed) = (None, None);
    for t in &v.threats {
        let desc = text(&t.description).unwrap_or_default();
        match enum_val(&t.kind) {
            EnumVal::Int(0) | EnumVal::Word("Impact") => {
                let impact = collapse_ws(&desc);
                if !impact.is_empty() {
                    impacts.extend(
                        ids(&t.product_id, c, "Threats[].ProductID", issues)
                            .into_iter()
                            .map(|product| ProductImpact {
                                product,
                                impact: impact.clone(),
                            }),
                    );
                }
            }
            EnumVal::Int(1) | EnumVal::Word("Exploit Status") => {
                let (e, d) = parse_exploit_status(&desc);
                exploited = e.or(exploited);
                publicly_disclosed = d.or(publicly_disclosed);
            }
            EnumVal::Int(3) | EnumVal::Word("Severity") => {
                let word = desc.trim();
                if word.is_empty() {
                    continue;
                }
                match Severity::parse(word) {
                    Some(severity) => severities.extend(
                        ids(&t.product_id, c, "Threats[].ProductID", issues)
                            .into_iter()
                            .map(|product| ProductSeverity { product, severity }),
                    ),
                    None => issues.push(
                        Some(c),
                        "Threats[].Description",
                        format!("unknown severity word {word:?}: rating dropped"),
                        false,
                        None,
                    ),
                }
            }
            EnumVal::Int(k) => issues.push(
                Some(c),
                "Threats[].Type",
                format!("unknown threat type {k}: threat ignored"),
                false,
                None,
            ),
            _ => {}
        }
    }
    let mut cvss = Vec::new();
    for s in &v.cvss_score_sets {
        let Some(base) = json_number(&s.base_score) else {
            issues.push(
                Some(c),
                "CVSSScoreSets[].BaseScore",
                "missing or unparseable base score: score set skipped".into(),
                true,
                None,
            );
            continue;
        };
        cvss.push(CvssScore {
            base,
            temporal: json_number(&s.temporal_score),
            vector: non_blank(s.vector.clone()),
            products: ids(&s.product_id, c, "CVSSScoreSets[].ProductID", issues),
        });
    }
    let mut remediations = Vec::new();
    for r in &v.remediations {
        let kind = match enum_val(&r.kind) {
            EnumVal::Int(0) => RemediationKind::Workaround,
            EnumVal::Int(1) => RemediationKind::Mitigation,
            EnumVal::Int(2) => RemediationKind::VendorFix,
            EnumVal::Int(3) => RemediationKind::NoneAvailable,
            EnumVal::Int(4) => RemediationKind::WillNotFix,
            EnumVal::Int(5) => RemediationKind::KnownIssue,
            EnumVal::Int(6) => RemediationKind::ReleaseNotes,
            EnumVal::Word(w) => RemediationKind::from_xml(w),
            EnumVal::Int(k) => {
                issues.push(
                    Some(c),
                    "Remediations[].Type",
                    format!("unknown remediation type {k}: kept as Other"),
                    false,
                    None,
                );
                RemediationKind::Other(k.to_string())
            }
            EnumVal::Missing => RemediationKind::Other(String::new()),
        };
        let raw = RawRemediation {
            kind: Some(kind),
            description: text(&r.description),
            url: r.url.clone(),
            supercedence: r.supercedence.clone(),
            products: r.product_id.clone(),
            restart_required: text(&r.restart_required),
            sub_type: r.sub_type.clone(),
            fixed_build: r.fixed_build.clone(),
            line: None,
        };
        if let Some(rem) = raw.finish(c, issues) {
            remediations.push(rem);
        }
    }
    let (mut published, mut updated): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
    for r in &v.revision_history {
        let Some(t) = r.date.as_deref() else { continue };
        match parse_date(t) {
            Some(d) => {
                published = Some(published.map_or(d, |p| p.min(d)));
                updated = Some(updated.map_or(d, |p| p.max(d)));
            }
            None => issues.push(
                Some(c),
                "RevisionHistory[].Date",
                format!("unparseable date {t:?} ignored"),
                false,
                None,
            ),
        }
    }
    Some(Vulnerability {
        cve: cve.clone(),
        title: collapse_ws(&text(&v.title).unwrap_or_default()),
        description,
        tag,
        cna,
        cwe,
        affected,
        severities,
        impacts,
        exploited,
        publicly_disclosed,
        cvss,
        remediations,
        published,
        updated,
    })
}
