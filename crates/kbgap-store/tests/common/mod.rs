//! Test support: builds catalog `Document`s in code (the CVRF parser lands separately) and
//! wraps them as `ImportItem`s.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use kbgap_catalog::{
    CvssScore, Document, ParseIssue, ParsedDocument, Product, ProductImpact, ProductSeverity,
    Remediation, RemediationKind, SourceFormat, Vulnerability,
};
use kbgap_core::{Build, CveId, DocumentId, KbId, ProductId, Severity};
use kbgap_store::ImportItem;

/// A UTC timestamp.
pub fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 7, 0, 0)
        .single()
        .expect("valid date")
}

fn pid(n: usize) -> ProductId {
    ProductId::new(&format!("{}", 10000 + n)).expect("product id")
}

/// Builds a document with explicit control over the facts the store indexes.
#[derive(Debug, Clone)]
pub struct DocBuilder {
    doc: Document,
    issues: Vec<ParseIssue>,
}

impl DocBuilder {
    /// A document `id` released on `initial`, with revision "1" and no vulnerabilities.
    pub fn new(id: &str, initial: DateTime<Utc>) -> Self {
        Self {
            doc: Document {
                id: id.parse().expect("document id"),
                alias: Some(id.to_owned()),
                title: format!("{id} Security Updates"),
                initial_release: initial,
                current_release: initial,
                revision: "1".into(),
                products: (0..3)
                    .map(|n| Product {
                        id: pid(n),
                        name: format!("Windows 10 Version {n} for x64-based Systems"),
                        family: Some("Windows".into()),
                    })
                    .collect(),
                vulnerabilities: Vec::new(),
            },
            issues: Vec::new(),
        }
    }

    /// Sets revision and current release.
    pub fn revision(mut self, revision: &str, current: DateTime<Utc>) -> Self {
        self.doc.revision = revision.into();
        self.doc.current_release = current;
        self
    }

    /// Adds a vulnerability fixed by `kb`, superseding `supersedes`.
    pub fn vuln(mut self, cve: &str, kb: u32, supersedes: &[u32]) -> Self {
        let n = self.doc.vulnerabilities.len();
        self.doc
            .vulnerabilities
            .push(vulnerability(cve, n, kb, supersedes, 3));
        self
    }

    /// Adds a parse issue.
    pub fn issue(
        mut self,
        cve: Option<&str>,
        field: &str,
        message: &str,
        line: Option<u64>,
    ) -> Self {
        self.issues.push(ParseIssue {
            document: Some(self.doc.id.clone()),
            cve: cve.map(str::to_owned),
            field: field.into(),
            message: message.into(),
            skipped: line.is_none(),
            line,
        });
        self
    }

    /// The document.
    pub fn build(self) -> Document {
        self.doc
    }

    /// An import item with a small XML-ish source.
    pub fn item(self) -> ImportItem {
        let source = format!(
            "<cvrfdoc><DocumentTracking><Identification><ID>{}</ID></Identification>\
             <RevisionHistory><Revision><Number>{}</Number></Revision></RevisionHistory>\
             </DocumentTracking></cvrfdoc>",
            self.doc.id, self.doc.revision
        )
        .into_bytes();
        ImportItem {
            origin: format!("test://{}", self.doc.id),
            parsed: ParsedDocument {
                document: self.doc,
                issues: self.issues,
            },
            source,
            format: SourceFormat::Xml,
        }
    }
}

/// A vulnerability with `products` products, each with severity, impact, CVSS, and one Vendor
/// Fix (KB `kb`) plus a Known Issue row; exercises every model field.
pub fn vulnerability(
    cve: &str,
    n: usize,
    kb: u32,
    supersedes: &[u32],
    products: usize,
) -> Vulnerability {
    let prods: Vec<ProductId> = (0..products).map(pid).collect();
    Vulnerability {
        cve: cve.parse::<CveId>().expect("cve id"),
        title: format!("Windows Component {n} Remote Code Execution Vulnerability"),
        description: Some(format!(
            "<p>A remote code execution vulnerability exists in component {n} when it fails to \
             properly handle objects in memory. An attacker who successfully exploited the \
             vulnerability could run arbitrary code.</p>"
        )),
        tag: Some("Microsoft Windows".into()),
        cna: Some("Microsoft".into()),
        cwe: vec!["CWE-416".into()],
        affected: prods.clone(),
        severities: prods
            .iter()
            .map(|p| ProductSeverity {
                product: p.clone(),
                severity: if n % 2 == 1 {
                    Severity::Critical
                } else {
                    Severity::Important
                },
            })
            .collect(),
        impacts: prods
            .iter()
            .map(|p| ProductImpact {
                product: p.clone(),
                impact: "Remote Code Execution".into(),
            })
            .collect(),
        exploited: Some(n % 7 == 3),
        publicly_disclosed: None,
        cvss: prods
            .iter()
            .map(|p| CvssScore {
                base: 8.8,
                temporal: Some(7.7),
                vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C".into()),
                products: vec![p.clone()],
            })
            .collect(),
        remediations: prods
            .iter()
            .flat_map(|p| {
                [
                    Remediation {
                        kind: RemediationKind::VendorFix,
                        description: Some(kb.to_string()),
                        kb: Some(KbId::new(kb)),
                        url: Some(format!("https://support.microsoft.com/help/{kb}")),
                        supersedes: supersedes.iter().copied().map(KbId::new).collect(),
                        supersedence_raw: (!supersedes.is_empty()).then(|| {
                            supersedes
                                .iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join("; ")
                        }),
                        products: vec![p.clone()],
                        restart_required: Some("Yes".into()),
                        sub_type: Some("Security Update".into()),
                        fixed_build_raw: Some("10.0.19041.1415".into()),
                        fixed_build: Some(Build::new(10, 0, 19041, Some(1415))),
                    },
                    Remediation {
                        kind: RemediationKind::KnownIssue,
                        description: Some(kb.to_string()),
                        kb: Some(KbId::new(kb)),
                        url: Some(format!("https://support.microsoft.com/help/{kb}")),
                        supersedes: Vec::new(),
                        supersedence_raw: None,
                        products: vec![p.clone()],
                        restart_required: None,
                        sub_type: None,
                        fixed_build_raw: None,
                        fixed_build: None,
                    },
                ]
            })
            .collect(),
        published: Some(utc(2020, 3, 10)),
        updated: Some(utc(2020, 3, 12)),
    }
}

/// A document of realistic size: ~150 vulnerabilities × 20 products (3000 remediation rows,
/// 3000 CVSS sets, 6000 threats), like a 2020-2024 Patch Tuesday document.
pub fn realistic_document(index: usize, revision: &str) -> Document {
    let year = 2016 + (index / 12) as i32;
    let month = (index % 12) as u32 + 1;
    let id: DocumentId = format!("{year}-M{month:02}").parse().expect("document id");
    let vulns = (0..150)
        .map(|n| {
            let kb = 4_000_000 + (index * 10 + n % 10) as u32;
            vulnerability(
                &format!("CVE-{year}-{:04}", 1000 + n),
                n,
                kb,
                &[kb - 7, kb - 11],
                20,
            )
        })
        .collect();
    Document {
        alias: Some(id.to_string()),
        title: format!("{id} Security Updates"),
        initial_release: utc(year, month, 10),
        current_release: utc(year, month, 12),
        revision: revision.into(),
        products: (0..200)
            .map(|n| Product {
                id: pid(n),
                name: format!("Windows Server 2019 (Server Core installation) variant {n}"),
                family: Some("Windows".into()),
            })
            .collect(),
        vulnerabilities: vulns,
        id,
    }
}

/// Wraps a document with `source_len` bytes of XML-like source whose numbers are pseudo-random,
/// so it compresses several-fold like real CVRF XML rather than to almost nothing.
pub fn item_with_source(doc: Document, source_len: usize) -> ImportItem {
    let mut source = Vec::with_capacity(source_len + 256);
    let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ doc.id.as_str().len() as u64;
    while source.len() < source_len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        source.extend_from_slice(
            format!(
                "<vuln:Remediation Type=\"Vendor Fix\"><vuln:Description>{}</vuln:Description>\
                 <vuln:ProductID>{}</vuln:ProductID><vuln:URL>https://catalog.example/{:x}</vuln:URL>\
                 </vuln:Remediation>\n",
                4_000_000 + state % 997_000,
                10_000 + (state >> 20) % 311,
                state
            )
            .as_bytes(),
        );
    }
    ImportItem {
        origin: format!("synthetic/{}.xml", doc.id),
        parsed: ParsedDocument {
            document: doc,
            issues: Vec::new(),
        },
        source,
        format: SourceFormat::Xml,
    }
}
