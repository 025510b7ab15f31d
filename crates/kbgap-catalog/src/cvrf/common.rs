//! Rules shared by the XML and JSON parsers: dates, supersedence, exploit status, remediation
//! assembly and issue collection, so both forms yield the same model facts.

use chrono::{DateTime, NaiveDateTime, Utc};
use kbgap_core::{Build, DocumentId, KbId, ProductId};

use crate::model::{ParseIssue, Remediation, RemediationKind};

/// Collects [`ParseIssue`]s for one document.
#[derive(Debug, Default)]
pub(crate) struct Issues {
    pub list: Vec<ParseIssue>,
}

impl Issues {
    /// Records an issue; the document id is filled in by [`Issues::finish`].
    pub fn push(
        &mut self,
        cve: Option<&str>,
        field: &str,
        message: String,
        skipped: bool,
        line: Option<u64>,
    ) {
        self.list.push(ParseIssue {
            document: None,
            cve: cve.map(str::to_owned),
            field: field.to_owned(),
            message,
            skipped,
            line,
        });
    }

    /// The issues, each naming `doc`.
    pub fn finish(self, doc: &DocumentId) -> Vec<ParseIssue> {
        let mut list = self.list;
        for i in &mut list {
            i.document = Some(doc.clone());
        }
        list
    }
}

/// Parses an MSRC date: RFC 3339 (`2020-04-01T07:00:00Z`) or zone-less (`2023-02-25T08:00:00`,
/// taken as UTC), optionally with fractional seconds.
pub(crate) fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|n| n.and_utc())
}

/// Collapses runs of whitespace to one space and trims.
pub(crate) fn collapse_ws(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// `Some(trimmed)` for non-blank text.
pub(crate) fn non_blank(text: Option<String>) -> Option<String> {
    text.and_then(|t| {
        let trimmed = t.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == t.len() {
            Some(t)
        } else {
            Some(trimmed.to_owned())
        }
    })
}

/// Parses `Publicly Disclosed:No;Exploited:Yes;Latest Software Release:...` into
/// `(exploited, publicly_disclosed)`.
pub(crate) fn parse_exploit_status(text: &str) -> (Option<bool>, Option<bool>) {
    let mut exploited = None;
    let mut disclosed = None;
    for part in text.split(';') {
        let Some((k, v)) = part.split_once(':') else {
            continue;
        };
        let v = match v.trim().to_ascii_lowercase().as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "exploited" => exploited = v.or(exploited),
            "publicly disclosed" => disclosed = v.or(disclosed),
            _ => {}
        }
    }
    (exploited, disclosed)
}

/// A remediation as read, before validation.
#[derive(Debug, Default)]
pub(crate) struct RawRemediation {
    pub kind: Option<RemediationKind>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub supercedence: Option<String>,
    pub products: Vec<String>,
    pub restart_required: Option<String>,
    pub sub_type: Option<String>,
    pub fixed_build: Option<String>,
    pub line: Option<u64>,
}

impl RawRemediation {
    /// Validates and converts; a remediation with an unparseable product id is skipped (and
    /// reported), junk supersedence tokens are dropped (and reported).
    pub fn finish(self, cve: &str, issues: &mut Issues) -> Option<Remediation> {
        let mut products = Vec::with_capacity(self.products.len());
        for p in &self.products {
            match ProductId::new(p) {
                Ok(id) => products.push(id),
                Err(_) => {
                    issues.push(
                        Some(cve),
                        "Remediation/ProductID",
                        format!("unparseable product id {p:?}: remediation skipped"),
                        true,
                        self.line,
                    );
                    return None;
                }
            }
        }
        let description = non_blank(self.description);
        let kb = description.as_deref().and_then(KbId::parse_strict);
        let supercedence_raw = non_blank(self.supercedence);
        let mut supersedes = Vec::new();
        if let Some(raw) = &supercedence_raw {
            for tok in raw
                .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
            {
                match KbId::parse_strict(tok) {
                    Some(k) => {
                        if !supersedes.contains(&k) {
                            supersedes.push(k);
                        }
                    }
                    None => issues.push(
                        Some(cve),
                        "Remediation/Supercedence",
                        format!("junk token {tok:?} dropped"),
                        false,
                        self.line,
                    ),
                }
            }
        }
        let fixed_build_raw = non_blank(self.fixed_build);
        let fixed_build = fixed_build_raw
            .as_deref()
            .filter(|t| is_dotted_build(t))
            .and_then(|t| t.parse::<Build>().ok());
        Some(Remediation {
            kind: self
                .kind
                .unwrap_or_else(|| RemediationKind::Other(String::new())),
            description,
            kb,
            url: non_blank(self.url),
            supersedes,
            supersedence_raw: supercedence_raw,
            products,
            restart_required: non_blank(self.restart_required),
            sub_type: non_blank(self.sub_type),
            fixed_build_raw,
            fixed_build,
        })
    }
}

/// `^\d+(\.\d+){2,3}$`.
fn is_dotted_build(t: &str) -> bool {
    let n = t.split('.').count();
    (3..=4).contains(&n)
        && t.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_with_and_without_zone_are_utc() {
        let a = parse_date("2020-04-01T07:00:00Z").unwrap();
        let b = parse_date("2020-04-01T07:00:00").unwrap();
        assert_eq!(a, b);
        assert!(parse_date("2020-04-01T07:00:00.123").is_some());
        assert!(parse_date("yesterday").is_none());
    }

    #[test]
    fn exploit_status_parses() {
        assert_eq!(
            parse_exploit_status(
                "Publicly Disclosed:No;Exploited:Yes;Latest Software Release:Exploitation Detected"
            ),
            (Some(true), Some(false))
        );
        assert_eq!(parse_exploit_status("DOS:N/A"), (None, None));
    }

    #[test]
    fn supersedence_keeps_kbs_and_reports_junk() {
        let raw = RawRemediation {
            kind: Some(RemediationKind::VendorFix),
            description: Some(" 5022834 ".into()),
            supercedence: Some("5018545, 5021088;5022476 20.0.1".into()),
            products: vec!["11568".into()],
            fixed_build: Some("10.0.19045.2604".into()),
            ..Default::default()
        };
        let mut issues = Issues::default();
        let r = raw.finish("CVE-2023-0001", &mut issues).unwrap();
        assert_eq!(r.kb, Some(KbId::new(5022834)));
        assert_eq!(
            r.supersedes,
            vec![KbId::new(5018545), KbId::new(5021088), KbId::new(5022476)]
        );
        assert_eq!(issues.list.len(), 1);
        assert_eq!(issues.list[0].field, "Remediation/Supercedence");
        assert_eq!(r.fixed_build, Some(Build::new(10, 0, 19045, Some(2604))));
    }

    #[test]
    fn bad_product_id_skips_remediation() {
        let raw = RawRemediation {
            products: vec!["11568".into(), "bad id".into()],
            ..Default::default()
        };
        let mut issues = Issues::default();
        assert!(raw.finish("CVE-2023-0001", &mut issues).is_none());
        assert!(issues.list[0].skipped);
    }

    #[test]
    fn non_build_fixed_builds_stay_raw() {
        for t in [
            "4.8.9334.0 and 4.8.4802.0",
            "5.15.92.1-1",
            "https://aka.ms/x",
            "1.2",
            "1.2.3.4.5",
        ] {
            assert!(!is_dotted_build(t), "{t}");
        }
        assert!(is_dotted_build("6.3.9600.20821"));
        assert!(is_dotted_build("1.1.0"));
    }
}
