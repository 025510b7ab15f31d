//! The engine's view of the catalog: fix rows by product and per-KB facts, built once and shared.

use chrono::{DateTime, Utc};
use kbgap_catalog::{Catalog, Document};
use kbgap_core::{Build, CveId, KbId, ProductId, Severity};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::platform::PlatformModel;

/// One Vendor Fix row with a KB, flattened per product.
#[derive(Debug, Clone)]
pub struct FixRow {
    /// The vulnerability.
    pub cve: CveId,
    /// The fixing KB.
    pub kb: KbId,
    /// Remediation sub-type.
    pub sub_type: Option<Arc<str>>,
    /// FixedBuild, when it is a build.
    pub fixed_build: Option<Build>,
    /// KBs this row says it supersedes.
    pub supersedes: Vec<KbId>,
    /// Severity of the CVE for this product.
    pub severity: Option<Severity>,
    /// Initial release of the document holding the row (for as-of).
    pub doc_release: DateTime<Utc>,
}

/// Per-KB facts the answer shows.
pub use kbgap_catalog::index::KbBrief as KbMeta;

/// What a compound product's first part is: decides whether a device has it without inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// Internet Explorer (in-box).
    InternetExplorer,
    /// Microsoft Edge, EdgeHTML-based (in-box on Windows 10).
    EdgeHtml,
    /// Adobe Flash Player (in-box on Windows 8.1/10).
    Flash,
    /// .NET Framework (needs inventory).
    DotNet,
    /// Anything else (needs inventory).
    Other,
}

impl Component {
    /// Classifies a compound product by the part of its name before " on ".
    pub fn from_name(name: &str) -> Self {
        let n = name.to_ascii_lowercase();
        if n.starts_with("internet explorer") {
            Self::InternetExplorer
        } else if n.starts_with("microsoft edge (edgehtml") || n.starts_with("microsoft edge on") {
            Self::EdgeHtml
        } else if n.starts_with("adobe flash player") {
            Self::Flash
        } else if n.contains(".net framework") {
            Self::DotNet
        } else {
            Self::Other
        }
    }
    /// True for components that ship with the OS and need no inventory to be assumed present.
    pub fn in_box(self) -> bool {
        matches!(self, Self::InternetExplorer | Self::EdgeHtml | Self::Flash)
    }
}

/// The catalog prepared for assessments. Cheap to share; platform models are cached inside.
#[derive(Debug)]
pub struct EngineCatalog {
    pub(crate) catalog: Catalog,
    pub(crate) rows_by_product: HashMap<ProductId, Vec<FixRow>>,
    pub(crate) kb_meta: HashMap<KbId, KbMeta>,
    /// Platform id -> compound products `A-platform` with their component kind.
    pub(crate) compounds_on: HashMap<String, Vec<(ProductId, Component)>>,
    /// Every non-compound Windows OS product with its parsed name, sorted by id: what product
    /// resolution matches devices against (parsed once, not per device).
    pub(crate) os_products: Vec<(ProductId, String, crate::resolve::WinName)>,
    platform_cache: Mutex<HashMap<PlatformKey, Arc<PlatformModel>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PlatformKey {
    pub platform: ProductId,
    pub components: Vec<ProductId>,
    pub as_of: Option<DateTime<Utc>>,
}

impl EngineCatalog {
    /// Prepares a catalog for assessments.
    pub fn new(catalog: Catalog) -> Self {
        let mut rows_by_product: HashMap<ProductId, Vec<FixRow>> = HashMap::new();
        let mut sub_types: HashMap<String, Arc<str>> = HashMap::new();
        for doc in catalog.documents() {
            index_document(doc, &mut rows_by_product, &mut sub_types);
        }
        let mut compounds_on: HashMap<String, Vec<(ProductId, Component)>> = HashMap::new();
        for p in catalog.products() {
            if let Some((_, platform)) = p.id.compound_parts() {
                compounds_on
                    .entry(platform.to_owned())
                    .or_default()
                    .push((p.id.clone(), Component::from_name(&p.name)));
            }
        }
        for v in compounds_on.values_mut() {
            v.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut os_products: Vec<(ProductId, String, crate::resolve::WinName)> = catalog
            .products()
            .filter(|p| p.id.compound_parts().is_none())
            .filter_map(|p| {
                crate::resolve::windows_name(&p.name).map(|w| (p.id.clone(), p.name.clone(), w))
            })
            .collect();
        os_products.sort_by(|a, b| a.0.cmp(&b.0));
        let kb_meta = catalog
            .kbs()
            .filter_map(|kb| catalog.kb_brief(kb).map(|m| (kb, m)))
            .collect();
        Self {
            catalog,
            rows_by_product,
            kb_meta,
            compounds_on,
            os_products,
            platform_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The underlying catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Per-KB facts.
    pub fn kb_meta(&self, kb: KbId) -> Option<&KbMeta> {
        self.kb_meta.get(&kb)
    }

    /// Fix rows of one product.
    pub fn rows(&self, product: &ProductId) -> &[FixRow] {
        self.rows_by_product
            .get(product)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Compound products on a platform.
    pub fn compounds_on(&self, platform: &ProductId) -> &[(ProductId, Component)] {
        self.compounds_on
            .get(platform.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub(crate) fn platform_model(&self, key: PlatformKey) -> Arc<PlatformModel> {
        if let Some(m) = self
            .platform_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return m.clone();
        }
        let model = Arc::new(PlatformModel::build(self, &key));
        self.platform_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, model.clone());
        model
    }
}

fn index_document(
    doc: &Document,
    rows_by_product: &mut HashMap<ProductId, Vec<FixRow>>,
    sub_types: &mut HashMap<String, Arc<str>>,
) {
    for vuln in &doc.vulnerabilities {
        for rem in &vuln.remediations {
            if !rem.is_kb_fix() {
                continue;
            }
            let Some(kb) = rem.kb else { continue };
            let sub_type = rem.sub_type.as_ref().map(|s| {
                sub_types
                    .entry(s.clone())
                    .or_insert_with(|| Arc::from(s.as_str()))
                    .clone()
            });
            for product in &rem.products {
                let severity = vuln
                    .severities
                    .iter()
                    .find(|s| &s.product == product)
                    .map(|s| s.severity);
                rows_by_product
                    .entry(product.clone())
                    .or_default()
                    .push(FixRow {
                        cve: vuln.cve.clone(),
                        kb,
                        sub_type: sub_type.clone(),
                        fixed_build: rem.fixed_build,
                        supersedes: rem.supersedes.clone(),
                        severity,
                        doc_release: doc.initial_release,
                    });
            }
        }
    }
}
