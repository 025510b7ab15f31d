//! The in-memory catalog: documents indexed by KB, product and CVE for `catalog show`, stats and the engine.
//!
//! Built from whatever documents the caller loaded (all of them, or those released by an as-of
//! date). Everything here is derived; nothing is stored.

use crate::model::{Document, Product, Remediation, RemediationKind, Vulnerability};
use crate::products::normalized_name;
use chrono::{DateTime, Utc};
use kbgap_core::{Build, CveId, DocumentId, KbId, ProductId, Severity};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where one remediation row sits: document, vulnerability and remediation indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    /// Index into [`Catalog::documents`].
    pub doc: u32,
    /// Index into that document's vulnerabilities.
    pub vuln: u32,
    /// Index into that vulnerability's remediations.
    pub rem: u32,
}

/// The facts every answer about a KB shows (Defender's `PublicProductFixDto` plus its month).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KbBrief {
    /// The title of the document holding most of its rows ("March 2020 Security Updates").
    pub name: String,
    /// That document's id.
    pub document: DocumentId,
    /// That document's initial release date: the KB's month.
    pub month: DateTime<Utc>,
    /// Update Catalog URL.
    pub url: String,
    /// Normalised product names, Defender style, operating systems first.
    pub products_names: Vec<String>,
    /// Distinct CVEs it addresses as a Vendor Fix (Defender's `cveAddressed`).
    pub cve_count: usize,
}

/// A catalog of documents with indexes over them.
#[derive(Debug, Default)]
pub struct Catalog {
    documents: Vec<Document>,
    /// Vendor Fix rows naming each KB.
    kb_rows: HashMap<KbId, Vec<RowRef>>,
    /// KB -> KBs that list it in Supercedence (Vendor Fix rows only).
    superseded_by: HashMap<KbId, BTreeSet<KbId>>,
    /// Newest name and family of every product id (from the newest document naming it).
    products: HashMap<ProductId, Product>,
}

/// Everything `catalog show` says about one KB.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KbSummary {
    /// The KB.
    pub kb: KbId,
    /// The title of the document holding most of its rows ("March 2020 Security Updates").
    pub name: String,
    /// That document's id.
    pub document: DocumentId,
    /// That document's initial release date: the KB's month.
    pub release_date: DateTime<Utc>,
    /// Every document with a Vendor Fix row for it.
    pub documents: Vec<DocumentId>,
    /// Normalised product names, Defender style, operating systems first.
    pub products_names: Vec<String>,
    /// The MSRC products it fixes.
    pub products: Vec<KbProduct>,
    /// Distinct CVEs it addresses as a Vendor Fix.
    pub cves: Vec<CveId>,
    /// `cves.len()`, the Defender `cveAddressed`.
    pub cve_count: usize,
    /// Highest severity over its CVE rows, when rated.
    pub max_severity: Option<Severity>,
    /// KBs it supersedes (from its own rows).
    pub supersedes: Vec<KbId>,
    /// KBs whose rows list it as superseded.
    pub superseded_by: Vec<KbId>,
    /// FixedBuild values of its rows, parsed where they are builds.
    pub fixed_builds: Vec<String>,
    /// Remediation sub-types of its rows ("Security Update", "Monthly Rollup"...).
    pub sub_types: Vec<String>,
    /// RestartRequired values seen.
    pub restart_required: Vec<String>,
    /// Update Catalog URL.
    pub url: String,
    /// How many Known Issue / Release Notes duplicate rows name it (never findings).
    pub duplicate_rows: usize,
}

/// One MSRC product a KB fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KbProduct {
    /// MSRC ProductID.
    pub id: ProductId,
    /// MSRC full name (newest spelling).
    pub name: String,
    /// Normalised name, when known.
    pub normalized: Option<String>,
}

/// Counts for `catalog stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogStats {
    /// Documents.
    pub documents: usize,
    /// Distinct KBs with Vendor Fix rows.
    pub kbs: usize,
    /// Distinct product ids.
    pub products: usize,
    /// Distinct CVE / advisory ids.
    pub cves: usize,
    /// Vulnerability entries over all documents.
    pub vulnerabilities: usize,
    /// Remediation rows by type.
    pub remediations: BTreeMap<String, usize>,
    /// Vendor Fix rows whose description is not a KB.
    pub non_kb_vendor_fixes: usize,
    /// Earliest initial release.
    pub first_release: Option<DateTime<Utc>>,
    /// Latest current release.
    pub last_release: Option<DateTime<Utc>>,
}

impl Catalog {
    /// Indexes documents. Documents are kept in the order given.
    pub fn from_documents(documents: Vec<Document>) -> Self {
        let mut kb_rows: HashMap<KbId, Vec<RowRef>> = HashMap::new();
        let mut superseded_by: HashMap<KbId, BTreeSet<KbId>> = HashMap::new();
        let mut products: HashMap<ProductId, (DateTime<Utc>, Product)> = HashMap::new();
        for (d, doc) in documents.iter().enumerate() {
            for p in &doc.products {
                match products.get(&p.id) {
                    Some((when, _)) if *when > doc.initial_release => {}
                    _ => {
                        products.insert(p.id.clone(), (doc.initial_release, p.clone()));
                    }
                }
            }
            for (v, vuln) in doc.vulnerabilities.iter().enumerate() {
                for (r, rem) in vuln.remediations.iter().enumerate() {
                    if !rem.is_kb_fix() {
                        continue;
                    }
                    let Some(kb) = rem.kb else { continue };
                    kb_rows.entry(kb).or_default().push(RowRef {
                        doc: d as u32,
                        vuln: v as u32,
                        rem: r as u32,
                    });
                    for old in &rem.supersedes {
                        if *old != kb {
                            superseded_by.entry(*old).or_default().insert(kb);
                        }
                    }
                }
            }
        }
        Self {
            documents,
            kb_rows,
            superseded_by,
            products: products.into_iter().map(|(k, (_, p))| (k, p)).collect(),
        }
    }

    /// The documents, in load order.
    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    /// Resolves a row reference.
    pub fn row(&self, r: RowRef) -> (&Document, &Vulnerability, &Remediation) {
        let doc = &self.documents[r.doc as usize];
        let vuln = &doc.vulnerabilities[r.vuln as usize];
        (doc, vuln, &vuln.remediations[r.rem as usize])
    }

    /// Vendor Fix rows naming `kb`.
    pub fn kb_rows(&self, kb: KbId) -> &[RowRef] {
        self.kb_rows.get(&kb).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every KB with Vendor Fix rows.
    pub fn kbs(&self) -> impl Iterator<Item = KbId> + '_ {
        self.kb_rows.keys().copied()
    }

    /// KBs whose rows list `kb` in Supercedence.
    pub fn superseded_by(&self, kb: KbId) -> impl Iterator<Item = KbId> + '_ {
        self.superseded_by.get(&kb).into_iter().flatten().copied()
    }

    /// The newest name of a product id.
    pub fn product(&self, id: &ProductId) -> Option<&Product> {
        self.products.get(id)
    }

    /// Every product id with its newest name.
    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }

    /// The document that holds most of a KB's rows (ties: the earliest), which gives the KB its
    /// name and month. Documents are rewritten, so a KB may appear in several.
    pub fn primary_document(&self, kb: KbId) -> Option<&Document> {
        let rows = self.kb_rows.get(&kb)?;
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for r in rows {
            *counts.entry(r.doc).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by(|(da, ca), (db, cb)| {
                ca.cmp(cb).then_with(|| {
                    // Prefer the earlier document on ties (reverse order for max_by).
                    let a = &self.documents[*da as usize];
                    let b = &self.documents[*db as usize];
                    b.initial_release.cmp(&a.initial_release)
                })
            })
            .map(|(d, _)| &self.documents[d as usize])
    }

    /// The short facts about one KB, or `None` when no Vendor Fix row names it.
    pub fn kb_brief(&self, kb: KbId) -> Option<KbBrief> {
        let rows = self.kb_rows.get(&kb)?;
        let primary = self.primary_document(kb)?;
        let mut cves = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut urls: BTreeMap<&str, usize> = BTreeMap::new();
        for &r in rows {
            let (_, vuln, rem) = self.row(r);
            cves.insert(&vuln.cve);
            for p in &rem.products {
                if let Some(n) = self.product(p).and_then(|prod| normalized_name(&prod.name)) {
                    names.insert(n.name);
                }
            }
            if let Some(u) = rem.url.as_deref() {
                *urls.entry(u).or_default() += 1;
            }
        }
        // The Update Catalog link is canonical; rows sometimes carry support-article links.
        let url = urls
            .into_iter()
            .filter(|(u, _)| u.contains("catalog.update.microsoft.com"))
            .max_by_key(|(_, n)| *n)
            .map(|(u, _)| u.to_owned())
            .unwrap_or_else(|| kb.catalog_url());
        Some(KbBrief {
            name: primary.title.clone(),
            document: primary.id.clone(),
            month: primary.initial_release,
            url,
            products_names: order_product_names(names),
            cve_count: cves.len(),
        })
    }

    /// Everything known about one KB, or `None` when no Vendor Fix row names it.
    pub fn kb_summary(&self, kb: KbId) -> Option<KbSummary> {
        let rows = self.kb_rows.get(&kb)?;
        let brief = self.kb_brief(kb)?;
        let mut documents = BTreeSet::new();
        let mut product_ids = BTreeSet::new();
        let mut cves = BTreeSet::new();
        let mut supersedes = BTreeSet::new();
        let mut fixed_builds = BTreeSet::new();
        let mut sub_types = BTreeSet::new();
        let mut restart = BTreeSet::new();
        let mut max_severity: Option<Severity> = None;
        for &r in rows {
            let (doc, vuln, rem) = self.row(r);
            documents.insert(doc.id.clone());
            cves.insert(vuln.cve.clone());
            product_ids.extend(rem.products.iter().cloned());
            supersedes.extend(rem.supersedes.iter().copied().filter(|k| *k != kb));
            if let Some(fb) = &rem.fixed_build_raw {
                fixed_builds.insert(fb.clone());
            }
            if let Some(s) = &rem.sub_type {
                sub_types.insert(s.clone());
            }
            if let Some(s) = &rem.restart_required {
                restart.insert(s.clone());
            }
            for s in &vuln.severities {
                if rem.products.contains(&s.product) {
                    max_severity = max_severity.max(Some(s.severity));
                }
            }
        }
        let duplicate_rows = self.duplicate_rows(kb);
        let products: Vec<KbProduct> = product_ids
            .into_iter()
            .map(|id| {
                let name = self
                    .product(&id)
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                let normalized = normalized_name(&name).map(|n| n.name);
                KbProduct {
                    id,
                    name,
                    normalized,
                }
            })
            .collect();
        let mut fixed: Vec<String> = fixed_builds.into_iter().collect();
        fixed.sort_by(|a, b| match (a.parse::<Build>(), b.parse::<Build>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        });
        let superseded_by: Vec<KbId> = self.superseded_by(kb).collect();
        Some(KbSummary {
            kb,
            name: brief.name,
            document: brief.document,
            release_date: brief.month,
            documents: documents.into_iter().collect(),
            products_names: brief.products_names,
            products,
            cve_count: cves.len(),
            cves: cves.into_iter().collect(),
            max_severity,
            supersedes: supersedes.into_iter().collect(),
            superseded_by,
            fixed_builds: fixed,
            sub_types: sub_types.into_iter().collect(),
            restart_required: restart.into_iter().collect(),
            url: brief.url,
            duplicate_rows,
        })
    }

    fn duplicate_rows(&self, kb: KbId) -> usize {
        let text = kb.to_string();
        let mut n = 0;
        for doc in &self.documents {
            for vuln in &doc.vulnerabilities {
                for rem in &vuln.remediations {
                    let dup = matches!(
                        rem.kind,
                        RemediationKind::KnownIssue | RemediationKind::ReleaseNotes
                    );
                    if dup
                        && (rem.kb == Some(kb)
                            || rem.sub_type.as_deref().map(str::trim) == Some(text.as_str())
                            || rem.description.as_deref().map(str::trim) == Some(text.as_str()))
                    {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// Counts over the whole catalog.
    pub fn stats(&self) -> CatalogStats {
        let mut cves = BTreeSet::new();
        let mut vulnerabilities = 0;
        let mut remediations: BTreeMap<String, usize> = BTreeMap::new();
        let mut non_kb = 0;
        for doc in &self.documents {
            for vuln in &doc.vulnerabilities {
                vulnerabilities += 1;
                cves.insert(vuln.cve.clone());
                for rem in &vuln.remediations {
                    *remediations
                        .entry(rem.kind.as_str().to_owned())
                        .or_default() += 1;
                    if rem.kind == RemediationKind::VendorFix && rem.kb.is_none() {
                        non_kb += 1;
                    }
                }
            }
        }
        CatalogStats {
            documents: self.documents.len(),
            kbs: self.kb_rows.len(),
            products: self.products.len(),
            cves: cves.len(),
            vulnerabilities,
            remediations,
            non_kb_vendor_fixes: non_kb,
            first_release: self.documents.iter().map(|d| d.initial_release).min(),
            last_release: self.documents.iter().map(|d| d.current_release).max(),
        }
    }
}

/// Orders normalised product names as Defender lists them: operating systems first, then the
/// rest alphabetically (`windows_10`, `edge`, `internet_explorer`).
pub fn order_product_names(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = names.into_iter().collect();
    let (mut os, rest): (Vec<String>, Vec<String>) =
        set.into_iter().partition(|n| n.starts_with("windows"));
    os.extend(rest);
    os
}
