//! Streaming parser for CVRF 1.1 XML exactly as MSRC serves it (quick-xml, namespaces matched by URI).
//!
//! One pass over the bytes, no DOM: a stack of recognised element tags gives each text node its
//! context, and only leaf elements the model keeps have their text collected. Oddities become
//! [`ParseIssue`](crate::model::ParseIssue)s; only malformed XML or a missing document identity
//! is fatal.

use std::cell::OnceCell;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use kbgap_core::{CveId, DocumentId, ProductId, Severity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::common::{
    collapse_ws, non_blank, parse_date, parse_exploit_status, Issues, RawRemediation,
};
use super::CvrfError;
use crate::model::{
    CvssScore, Document, DocumentHead, ParsedDocument, Product, ProductImpact, ProductSeverity,
    RemediationKind, Vulnerability,
};

const NS_CVRF: &[u8] = b"http://www.icasi.org/CVRF/schema/cvrf/1.1";
const NS_PROD: &[u8] = b"http://www.icasi.org/CVRF/schema/prod/1.1";
const NS_VULN: &[u8] = b"http://www.icasi.org/CVRF/schema/vuln/1.1";

/// The elements the parser recognises; everything else is [`Tag::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Cvrfdoc,
    DocumentTitle,
    DocumentTracking,
    Identification,
    Id,
    Alias,
    CRevision,
    Number,
    Date,
    InitialReleaseDate,
    CurrentReleaseDate,
    Branch,
    FullProductName,
    Vulnerability,
    Title,
    Note,
    Cve,
    Cwe,
    Status,
    ProductId,
    Threat,
    VDescription,
    ScoreSet,
    BaseScore,
    TemporalScore,
    Vector,
    Remediation,
    Url,
    Supercedence,
    RestartRequired,
    SubType,
    FixedBuild,
    VRevision,
    Other,
}

impl Tag {
    fn classify(ns: &ResolveResult<'_>, local: &[u8]) -> Tag {
        let ns = match ns {
            ResolveResult::Bound(n) => n.as_ref(),
            _ => return Tag::Other,
        };
        if ns == NS_VULN {
            match local {
                b"ProductID" => Tag::ProductId,
                b"Description" => Tag::VDescription,
                b"Threat" => Tag::Threat,
                b"URL" => Tag::Url,
                b"Remediation" => Tag::Remediation,
                b"ScoreSet" => Tag::ScoreSet,
                b"BaseScore" => Tag::BaseScore,
                b"TemporalScore" => Tag::TemporalScore,
                b"Vector" => Tag::Vector,
                b"SubType" => Tag::SubType,
                b"RestartRequired" => Tag::RestartRequired,
                b"Supercedence" => Tag::Supercedence,
                b"FixedBuild" => Tag::FixedBuild,
                b"Note" => Tag::Note,
                b"Revision" => Tag::VRevision,
                b"Vulnerability" => Tag::Vulnerability,
                b"Title" => Tag::Title,
                b"CVE" => Tag::Cve,
                b"CWE" => Tag::Cwe,
                b"Status" => Tag::Status,
                _ => Tag::Other,
            }
        } else if ns == NS_CVRF {
            match local {
                b"Number" => Tag::Number,
                b"Date" => Tag::Date,
                b"cvrfdoc" => Tag::Cvrfdoc,
                b"DocumentTitle" => Tag::DocumentTitle,
                b"DocumentTracking" => Tag::DocumentTracking,
                b"Identification" => Tag::Identification,
                b"ID" => Tag::Id,
                b"Alias" => Tag::Alias,
                b"Revision" => Tag::CRevision,
                b"InitialReleaseDate" => Tag::InitialReleaseDate,
                b"CurrentReleaseDate" => Tag::CurrentReleaseDate,
                _ => Tag::Other,
            }
        } else if ns == NS_PROD {
            match local {
                b"FullProductName" => Tag::FullProductName,
                b"Branch" => Tag::Branch,
                _ => Tag::Other,
            }
        } else {
            Tag::Other
        }
    }

    /// Leaf elements whose text the model keeps.
    fn wants_text(self) -> bool {
        matches!(
            self,
            Tag::DocumentTitle
                | Tag::Id
                | Tag::Alias
                | Tag::Number
                | Tag::Date
                | Tag::InitialReleaseDate
                | Tag::CurrentReleaseDate
                | Tag::FullProductName
                | Tag::Title
                | Tag::Note
                | Tag::Cve
                | Tag::Cwe
                | Tag::ProductId
                | Tag::VDescription
                | Tag::BaseScore
                | Tag::TemporalScore
                | Tag::Vector
                | Tag::Url
                | Tag::Supercedence
                | Tag::RestartRequired
                | Tag::SubType
                | Tag::FixedBuild
        )
    }
}

/// Byte offsets to 1-based line/column, computed only when something needs a position.
struct Lines<'a> {
    bytes: &'a [u8],
    newlines: OnceCell<Vec<usize>>,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            newlines: OnceCell::new(),
        }
    }
    fn line_col(&self, pos: u64) -> (u64, u64) {
        let pos = usize::try_from(pos)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let nl = self.newlines.get_or_init(|| {
            self.bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i)
                .collect()
        });
        let before = nl.partition_point(|&i| i < pos);
        let line_start = if before == 0 { 0 } else { nl[before - 1] + 1 };
        (before as u64 + 1, (pos - line_start) as u64 + 1)
    }
    fn line(&self, pos: u64) -> u64 {
        self.line_col(pos).0
    }
}

#[derive(Default)]
struct VulnState {
    cve_raw: String,
    title: String,
    description: Option<String>,
    tag: Option<String>,
    cna: Option<String>,
    cwe: Vec<String>,
    affected: Vec<ProductId>,
    severities: Vec<ProductSeverity>,
    impacts: Vec<ProductImpact>,
    exploited: Option<bool>,
    publicly_disclosed: Option<bool>,
    cvss: Vec<CvssScore>,
    raw_remediations: Vec<RawRemediation>,
    published: Option<DateTime<Utc>>,
    updated: Option<DateTime<Utc>>,
    start: u64,
}

#[derive(Default)]
struct ThreatState {
    kind: String,
    description: String,
    products: Vec<String>,
}

#[derive(Default)]
struct ScoreState {
    base: Option<String>,
    temporal: Option<String>,
    vector: Option<String>,
    products: Vec<String>,
}

/// Parser state for one document.
struct Parser<'a> {
    source: &'a str,
    lines: Lines<'a>,
    offset: u64,
    issues: Issues,
    title: Option<String>,
    id: Option<String>,
    alias: Option<String>,
    initial: Option<String>,
    current: Option<String>,
    /// Document revisions (number, date text).
    revisions: Vec<(String, String)>,
    rev_number: Option<String>,
    rev_date: Option<String>,
    products: Vec<Product>,
    product_index: HashMap<ProductId, usize>,
    /// One entry per open `Branch`: its name when it is a Product Family.
    branches: Vec<Option<String>>,
    pending_product_id: Option<String>,
    vulns: Vec<Vulnerability>,
    vuln: Option<VulnState>,
    note_type: Option<String>,
    cwe_id: Option<String>,
    status_known_affected: bool,
    threat: Option<ThreatState>,
    score: Option<ScoreState>,
    remediation: Option<RawRemediation>,
    vrev_date: Option<String>,
}

/// Strips a UTF-8 byte order mark.
fn strip_bom(bytes: &[u8]) -> (&[u8], u64) {
    match bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        Some(rest) => (rest, 3),
        None => (bytes, 0),
    }
}

fn attr(e: &BytesStart<'_>, key: &[u8]) -> Option<String> {
    e.attributes()
        .with_checks(false)
        .flatten()
        .find(|a| a.key.local_name().as_ref() == key)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// Parses a whole XML document.
pub(crate) fn parse(bytes: &[u8], source_name: &str) -> Result<ParsedDocument, CvrfError> {
    let mut p = Parser::new(bytes, source_name);
    p.run(bytes, false)?;
    p.finish()
}

/// Reads `DocumentTracking` only and stops.
pub(crate) fn head(bytes: &[u8], source_name: &str) -> Result<DocumentHead, CvrfError> {
    let mut p = Parser::new(bytes, source_name);
    p.run(bytes, true)?;
    let (id, revision, _initial, current) = p.identity()?;
    Ok(DocumentHead {
        id,
        revision,
        current_release: current,
    })
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8], source: &'a str) -> Self {
        Self {
            source,
            lines: Lines::new(bytes),
            offset: 0,
            issues: Issues::default(),
            title: None,
            id: None,
            alias: None,
            initial: None,
            current: None,
            revisions: Vec::new(),
            rev_number: None,
            rev_date: None,
            products: Vec::new(),
            product_index: HashMap::new(),
            branches: Vec::new(),
            pending_product_id: None,
            vulns: Vec::new(),
            vuln: None,
            note_type: None,
            cwe_id: None,
            status_known_affected: false,
            threat: None,
            score: None,
            remediation: None,
            vrev_date: None,
        }
    }

    fn error_at(&self, pos: u64, message: String) -> CvrfError {
        let (l, c) = self.lines.line_col(pos + self.offset);
        CvrfError {
            source_name: self.source.to_owned(),
            line: Some(l),
            column: Some(c),
            message,
        }
    }

    fn line(&self, pos: u64) -> Option<u64> {
        Some(self.lines.line(pos + self.offset))
    }

    fn cve(&self) -> Option<&str> {
        self.vuln
            .as_ref()
            .map(|v| v.cve_raw.as_str())
            .filter(|s| !s.is_empty())
    }

    fn run(&mut self, all: &'a [u8], head_only: bool) -> Result<(), CvrfError> {
        let (bytes, off) = strip_bom(all);
        self.offset = off;
        let mut reader = NsReader::from_reader(bytes);
        reader.config_mut().expand_empty_elements = true;
        let mut stack: Vec<Tag> = Vec::with_capacity(16);
        let mut text = String::with_capacity(4096);
        let mut want_text = false;
        let mut seen_root = false;
        loop {
            let pos = reader.buffer_position();
            let ev = reader.read_resolved_event();
            match ev {
                Err(e) => {
                    let at = reader.error_position();
                    return Err(self.error_at(at, format!("malformed XML: {e}")));
                }
                Ok((ns, Event::Start(e))) => {
                    let tag = Tag::classify(&ns, e.local_name().as_ref());
                    if !seen_root {
                        if tag != Tag::Cvrfdoc {
                            let ns_text = match ns {
                                ResolveResult::Bound(n) => {
                                    String::from_utf8_lossy(n.as_ref()).into_owned()
                                }
                                _ => String::new(),
                            };
                            let name =
                                String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                            return Err(self.error_at(
                                pos,
                                format!(
                                    "not a CVRF 1.1 document: root element is {{{ns_text}}}{name}, expected cvrfdoc in namespace {}",
                                    String::from_utf8_lossy(NS_CVRF)
                                ),
                            ));
                        }
                        seen_root = true;
                    }
                    self.start(tag, &e, pos, stack.last().copied());
                    stack.push(tag);
                    text.clear();
                    want_text = tag.wants_text();
                }
                Ok((_, Event::End(_))) => {
                    let tag = stack.pop().unwrap_or(Tag::Other);
                    if want_text || tag != Tag::Other {
                        self.end(tag, stack.last().copied(), &mut text, pos);
                    }
                    want_text = false;
                    text.clear();
                    if head_only && tag == Tag::DocumentTracking {
                        return Ok(());
                    }
                }
                Ok((_, Event::Text(t))) => {
                    if want_text {
                        let s = t.decode().map_err(|e| {
                            self.error_at(pos, format!("text is not valid UTF-8: {e}"))
                        })?;
                        text.push_str(&s);
                    }
                }
                Ok((_, Event::CData(t))) => {
                    if want_text {
                        let s = t.decode().map_err(|e| {
                            self.error_at(pos, format!("CDATA is not valid UTF-8: {e}"))
                        })?;
                        text.push_str(&s);
                    }
                }
                Ok((_, Event::GeneralRef(r))) => {
                    if want_text {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => text.push(c),
                            Ok(None) => {
                                let name = r.decode().map_err(|e| {
                                    self.error_at(pos, format!("entity is not valid UTF-8: {e}"))
                                })?;
                                match quick_xml::escape::resolve_predefined_entity(&name) {
                                    Some(s) => text.push_str(s),
                                    None => {
                                        return Err(self
                                            .error_at(pos, format!("undefined entity &{name};")))
                                    }
                                }
                            }
                            Err(e) => {
                                return Err(
                                    self.error_at(pos, format!("bad character reference: {e}"))
                                )
                            }
                        }
                    }
                }
                Ok((_, Event::Eof)) => {
                    if !seen_root {
                        return Err(
                            self.error_at(pos, "not a CVRF 1.1 document: no root element".into())
                        );
                    }
                    if !stack.is_empty() {
                        return Err(self.error_at(
                            pos,
                            format!(
                                "truncated XML: document ends with {} element(s) still open",
                                stack.len()
                            ),
                        ));
                    }
                    return Ok(());
                }
                Ok(_) => {}
            }
        }
    }

    fn start(&mut self, tag: Tag, e: &BytesStart<'_>, pos: u64, parent: Option<Tag>) {
        match tag {
            Tag::Branch => {
                let family = if attr(e, b"Type").as_deref() == Some("Product Family") {
                    attr(e, b"Name").map(|n| collapse_ws(&n))
                } else {
                    None
                };
                self.branches.push(family);
            }
            Tag::FullProductName => self.pending_product_id = attr(e, b"ProductID"),
            Tag::Vulnerability => {
                self.vuln = Some(VulnState {
                    start: pos,
                    ..Default::default()
                })
            }
            Tag::Note => self.note_type = attr(e, b"Type"),
            Tag::Cwe => self.cwe_id = attr(e, b"ID"),
            Tag::Status => {
                self.status_known_affected = attr(e, b"Type").as_deref() == Some("Known Affected")
            }
            Tag::Threat => {
                self.threat = Some(ThreatState {
                    kind: attr(e, b"Type").unwrap_or_default(),
                    ..Default::default()
                })
            }
            Tag::ScoreSet => self.score = Some(ScoreState::default()),
            Tag::Remediation => {
                let line = self.line(pos);
                self.remediation = Some(RawRemediation {
                    kind: Some(RemediationKind::from_xml(
                        &attr(e, b"Type").unwrap_or_default(),
                    )),
                    line,
                    ..Default::default()
                })
            }
            Tag::CRevision if parent.is_some() => {
                self.rev_number = None;
                self.rev_date = None;
            }
            Tag::VRevision => self.vrev_date = None,
            _ => {}
        }
    }

    fn end(&mut self, tag: Tag, parent: Option<Tag>, text: &mut String, pos: u64) {
        let take = |t: &mut String| std::mem::take(t);
        match (tag, parent) {
            (Tag::DocumentTitle, _) => self.title = Some(collapse_ws(text)),
            (Tag::Id, Some(Tag::Identification)) => self.id = Some(text.trim().to_owned()),
            (Tag::Alias, Some(Tag::Identification)) => self.alias = non_blank(Some(take(text))),
            (Tag::InitialReleaseDate, Some(Tag::DocumentTracking)) => {
                self.initial = Some(text.trim().to_owned())
            }
            (Tag::CurrentReleaseDate, Some(Tag::DocumentTracking)) => {
                self.current = Some(text.trim().to_owned())
            }
            (Tag::Number, Some(Tag::CRevision)) => self.rev_number = Some(text.trim().to_owned()),
            (Tag::Date, Some(Tag::CRevision)) => self.rev_date = Some(text.trim().to_owned()),
            (Tag::CRevision, _) => {
                if let Some(n) = self.rev_number.take() {
                    self.revisions
                        .push((n, self.rev_date.take().unwrap_or_default()));
                }
            }
            (Tag::Branch, _) => {
                self.branches.pop();
            }
            (Tag::FullProductName, _) => self.end_product(text, pos),
            (Tag::Title, Some(Tag::Vulnerability)) => {
                if let Some(v) = &mut self.vuln {
                    v.title = collapse_ws(text);
                }
            }
            (Tag::Note, _) => {
                if let (Some(v), Some(kind)) = (&mut self.vuln, self.note_type.take()) {
                    let slot = match kind.as_str() {
                        "Description" => &mut v.description,
                        "Tag" => &mut v.tag,
                        "CNA" => &mut v.cna,
                        _ => return,
                    };
                    if slot.is_none() {
                        *slot = non_blank(Some(take(text)));
                    }
                }
            }
            (Tag::Cve, Some(Tag::Vulnerability)) => {
                if let Some(v) = &mut self.vuln {
                    v.cve_raw = text.trim().to_owned();
                }
            }
            (Tag::Cwe, _) => {
                let id = self.cwe_id.take().or_else(|| non_blank(Some(take(text))));
                if let (Some(v), Some(id)) = (&mut self.vuln, id) {
                    v.cwe.push(id);
                }
            }
            (Tag::ProductId, Some(parent)) => self.end_product_id(parent, text, pos),
            (Tag::VDescription, Some(Tag::Threat)) => {
                if let Some(t) = &mut self.threat {
                    t.description = take(text);
                }
            }
            (Tag::Threat, _) => self.end_threat(pos),
            (Tag::BaseScore, _) => {
                if let Some(s) = &mut self.score {
                    s.base = Some(take(text));
                }
            }
            (Tag::TemporalScore, _) => {
                if let Some(s) = &mut self.score {
                    s.temporal = Some(take(text));
                }
            }
            (Tag::Vector, _) => {
                if let Some(s) = &mut self.score {
                    s.vector = Some(take(text));
                }
            }
            (Tag::ScoreSet, _) => self.end_score(pos),
            (Tag::VDescription, Some(Tag::Remediation)) => {
                if let Some(r) = &mut self.remediation {
                    r.description = Some(take(text));
                }
            }
            (Tag::Url, Some(Tag::Remediation)) => {
                if let Some(r) = &mut self.remediation {
                    r.url = Some(take(text));
                }
            }
            (Tag::Supercedence, Some(Tag::Remediation)) => {
                if let Some(r) = &mut self.remediation {
                    r.supercedence = Some(take(text));
                }
            }
            (Tag::RestartRequired, Some(Tag::Remediation)) => {
                if let Some(r) = &mut self.remediation {
                    r.restart_required = Some(take(text));
                }
            }
            (Tag::SubType, Some(Tag::Remediation)) => {
                if let Some(r) = &mut self.remediation {
                    r.sub_type = Some(take(text));
                }
            }
            (Tag::FixedBuild, Some(Tag::Remediation)) => {
                if let Some(r) = &mut self.remediation {
                    r.fixed_build = Some(take(text));
                }
            }
            (Tag::Remediation, _) => {
                if let (Some(v), Some(r)) = (&mut self.vuln, self.remediation.take()) {
                    v.raw_remediations.push(r);
                }
            }
            (Tag::Date, Some(Tag::VRevision)) => self.vrev_date = Some(take(text)),
            (Tag::VRevision, _) => self.end_vuln_revision(pos),
            (Tag::Vulnerability, _) => self.end_vulnerability(),
            _ => {}
        }
    }

    fn end_product(&mut self, text: &str, pos: u64) {
        let raw_id = self.pending_product_id.take().unwrap_or_default();
        let Ok(id) = ProductId::new(&raw_id) else {
            let line = self.line(pos);
            self.issues.push(
                None,
                "ProductTree/FullProductName/@ProductID",
                format!("unparseable product id {raw_id:?}: product skipped"),
                true,
                line,
            );
            return;
        };
        let family = self.branches.iter().rev().find_map(Clone::clone);
        if let Some(&i) = self.product_index.get(&id) {
            let existing = &mut self.products[i];
            if existing.family.is_none() {
                existing.family = family;
            }
            return;
        }
        self.product_index.insert(id.clone(), self.products.len());
        self.products.push(Product {
            id,
            name: collapse_ws(text),
            family,
        });
    }

    fn end_product_id(&mut self, parent: Tag, text: &mut String, pos: u64) {
        match parent {
            Tag::Remediation => {
                if let Some(r) = &mut self.remediation {
                    r.products.push(std::mem::take(text));
                }
            }
            Tag::Threat => {
                if let Some(t) = &mut self.threat {
                    t.products.push(std::mem::take(text));
                }
            }
            Tag::ScoreSet => {
                if let Some(s) = &mut self.score {
                    s.products.push(std::mem::take(text));
                }
            }
            Tag::Status if self.status_known_affected => match ProductId::new(text) {
                Ok(id) => {
                    if let Some(v) = &mut self.vuln {
                        v.affected.push(id);
                    }
                }
                Err(_) => {
                    let (line, cve) = (self.line(pos), self.cve().map(str::to_owned));
                    self.issues.push(
                        cve.as_deref(),
                        "ProductStatuses/Status/ProductID",
                        format!("unparseable product id {text:?} dropped"),
                        false,
                        line,
                    );
                }
            },
            _ => {}
        }
    }

    /// Parses product id texts, reporting and dropping bad ones.
    fn product_ids(&mut self, raw: Vec<String>, field: &str, pos: u64) -> Vec<ProductId> {
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            match ProductId::new(&r) {
                Ok(id) => out.push(id),
                Err(_) => {
                    let (line, cve) = (self.line(pos), self.cve().map(str::to_owned));
                    self.issues.push(
                        cve.as_deref(),
                        field,
                        format!("unparseable product id {r:?} dropped"),
                        false,
                        line,
                    );
                }
            }
        }
        out
    }

    fn end_threat(&mut self, pos: u64) {
        let Some(t) = self.threat.take() else { return };
        match t.kind.as_str() {
            "Exploit Status" => {
                let (exploited, disclosed) = parse_exploit_status(&t.description);
                if let Some(v) = &mut self.vuln {
                    v.exploited = exploited.or(v.exploited);
                    v.publicly_disclosed = disclosed.or(v.publicly_disclosed);
                }
            }
            "Severity" => {
                let word = t.description.trim();
                if word.is_empty() {
                    return;
                }
                let Some(sev) = Severity::parse(word) else {
                    let (line, cve) = (self.line(pos), self.cve().map(str::to_owned));
                    self.issues.push(
                        cve.as_deref(),
                        "Threats/Threat[Severity]",
                        format!("unknown severity word {word:?}: rating dropped"),
                        false,
                        line,
                    );
                    return;
                };
                let ids = self.product_ids(t.products, "Threats/Threat/ProductID", pos);
                if let Some(v) = &mut self.vuln {
                    v.severities
                        .extend(ids.into_iter().map(|product| ProductSeverity {
                            product,
                            severity: sev,
                        }));
                }
            }
            "Impact" => {
                let impact = collapse_ws(&t.description);
                if impact.is_empty() {
                    return;
                }
                let ids = self.product_ids(t.products, "Threats/Threat/ProductID", pos);
                if let Some(v) = &mut self.vuln {
                    v.impacts
                        .extend(ids.into_iter().map(|product| ProductImpact {
                            product,
                            impact: impact.clone(),
                        }));
                }
            }
            _ => {}
        }
    }

    fn end_score(&mut self, pos: u64) {
        let Some(s) = self.score.take() else { return };
        let base_text = s.base.as_deref().unwrap_or("").trim();
        let Ok(base) = base_text.parse::<f32>() else {
            let (line, cve) = (self.line(pos), self.cve().map(str::to_owned));
            self.issues.push(
                cve.as_deref(),
                "CVSSScoreSets/ScoreSet/BaseScore",
                format!("unparseable base score {base_text:?}: score set skipped"),
                true,
                line,
            );
            return;
        };
        let temporal = s
            .temporal
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .and_then(|t| t.parse::<f32>().ok());
        let products = self.product_ids(s.products, "CVSSScoreSets/ScoreSet/ProductID", pos);
        if let Some(v) = &mut self.vuln {
            v.cvss.push(CvssScore {
                base,
                temporal,
                vector: non_blank(s.vector),
                products,
            });
        }
    }

    fn end_vuln_revision(&mut self, pos: u64) {
        let Some(text) = self.vrev_date.take() else {
            return;
        };
        match parse_date(&text) {
            Some(d) => {
                if let Some(v) = &mut self.vuln {
                    v.published = Some(v.published.map_or(d, |p| p.min(d)));
                    v.updated = Some(v.updated.map_or(d, |p| p.max(d)));
                }
            }
            None => {
                let (line, cve) = (self.line(pos), self.cve().map(str::to_owned));
                self.issues.push(
                    cve.as_deref(),
                    "RevisionHistory/Revision/Date",
                    format!("unparseable date {:?} ignored", text.trim()),
                    false,
                    line,
                );
            }
        }
    }

    fn end_vulnerability(&mut self) {
        let Some(v) = self.vuln.take() else { return };
        let line = self.line(v.start);
        let cve: CveId = match v.cve_raw.parse() {
            Ok(c) => c,
            Err(_) => {
                self.issues.push(
                    Some(&v.cve_raw)
                        .filter(|s| !s.is_empty())
                        .map(String::as_str),
                    "Vulnerability/CVE",
                    format!(
                        "missing or invalid CVE {:?}: vulnerability skipped",
                        v.cve_raw
                    ),
                    true,
                    line,
                );
                return;
            }
        };
        let mut remediations = Vec::with_capacity(v.raw_remediations.len());
        for r in v.raw_remediations {
            if let Some(r) = r.finish(cve.as_str(), &mut self.issues) {
                remediations.push(r);
            }
        }
        self.vulns.push(Vulnerability {
            cve,
            title: v.title,
            description: v.description,
            tag: v.tag,
            cna: v.cna,
            cwe: v.cwe,
            affected: v.affected,
            severities: v.severities,
            impacts: v.impacts,
            exploited: v.exploited,
            publicly_disclosed: v.publicly_disclosed,
            cvss: v.cvss,
            remediations,
            published: v.published,
            updated: v.updated,
        });
    }

    fn missing(&self, what: &str) -> CvrfError {
        CvrfError {
            source_name: self.source.to_owned(),
            line: None,
            column: None,
            message: format!("not a usable CVRF document: {what}"),
        }
    }

    /// Document identity: id, newest revision, initial and current release dates.
    fn identity(&self) -> Result<(DocumentId, String, DateTime<Utc>, DateTime<Utc>), CvrfError> {
        let id_text = self
            .id
            .as_deref()
            .ok_or_else(|| self.missing("missing DocumentTracking/Identification/ID"))?;
        let id: DocumentId = id_text.parse().map_err(|_| {
            self.missing(&format!(
                "invalid DocumentTracking/Identification/ID {id_text:?}"
            ))
        })?;
        let date = |v: &Option<String>, field: &str| -> Result<DateTime<Utc>, CvrfError> {
            let t = v
                .as_deref()
                .ok_or_else(|| self.missing(&format!("missing DocumentTracking/{field}")))?;
            parse_date(t)
                .ok_or_else(|| self.missing(&format!("unparseable DocumentTracking/{field} {t:?}")))
        };
        let initial = date(&self.initial, "InitialReleaseDate")?;
        let current = date(&self.current, "CurrentReleaseDate")?;
        let revision = newest_revision(&self.revisions).ok_or_else(|| {
            self.missing("missing DocumentTracking/RevisionHistory/Revision/Number")
        })?;
        Ok((id, revision, initial, current))
    }

    fn finish(self) -> Result<ParsedDocument, CvrfError> {
        let (id, revision, initial_release, current_release) = self.identity()?;
        let document = Document {
            id: id.clone(),
            alias: self.alias,
            title: self.title.unwrap_or_default(),
            initial_release,
            current_release,
            revision,
            products: self.products,
            vulnerabilities: self.vulns,
        };
        Ok(ParsedDocument {
            document,
            issues: self.issues.finish(&id),
        })
    }
}

/// The newest revision number: the one with the latest date, the last listed on ties.
pub(crate) fn newest_revision(revisions: &[(String, String)]) -> Option<String> {
    revisions
        .iter()
        .enumerate()
        .max_by_key(|(i, (_, d))| (parse_date(d), *i))
        .map(|(_, (n, _))| n.clone())
}
