//! The `/cvrf/v3.0/updates` list: its entries, and the pure parser from the OData JSON body.

use crate::error::{snippet, MsrcError};
use chrono::{DateTime, NaiveDateTime, Utc};
use kbgap_core::DocumentId;
use serde_json::Value;

/// One document in the MSRC updates list (`value[]` of `/cvrf/v3.0/updates`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpdateEntry {
    /// `ID`: `2024-Mar`, `2017-May-B`, `Oct-OOB`.
    pub id: DocumentId,
    /// `Alias` (the same as the id for monthly documents; the id when absent).
    pub alias: String,
    /// `DocumentTitle`, e.g. "March 2024 Security Updates" (empty when absent).
    pub title: String,
    /// `InitialReleaseDate`.
    pub initial_release: DateTime<Utc>,
    /// `CurrentReleaseDate`: changes whenever MSRC re-publishes the document; sync keys on it.
    pub current_release: DateTime<Utc>,
    /// `CvrfUrl` as MSRC published it (informational: documents are fetched by id from the
    /// client's base URL, so a mirror works).
    pub cvrf_url: Option<String>,
}

/// An entry of the updates list that was skipped because a field was missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    /// 0-based position in `value[]`.
    pub index: usize,
    /// The `ID` text, when there was one.
    pub id: Option<String>,
    /// What was wrong ("field `CurrentReleaseDate`: invalid date \"soon\"").
    pub reason: String,
}

/// The parsed updates list: the usable entries and the skipped ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateList {
    /// Entries in the order MSRC listed them.
    pub entries: Vec<UpdateEntry>,
    /// Entries left out, with reasons.
    pub skipped: Vec<SkippedEntry>,
}

/// Parses the OData JSON of `/cvrf/v3.0/updates`.
///
/// Invalid JSON, or JSON without a `value` array, is an error naming `url` and the position.
/// Individual entries with a bad `ID` or date are skipped (logged with `tracing::warn!` and
/// returned in [`UpdateList::skipped`]), not fatal.
pub fn parse_updates(body: &[u8], url: &str) -> Result<UpdateList, MsrcError> {
    let body_no_bom = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let root: Value = serde_json::from_slice(body_no_bom).map_err(|e| MsrcError::InvalidJson {
        url: url.to_owned(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
        snippet: snippet(body, 80),
    })?;
    let Some(values) = root.get("value").and_then(Value::as_array) else {
        return Err(MsrcError::InvalidJson {
            url: url.to_owned(),
            line: 1,
            column: 1,
            message: "expected an object with a `value` array (OData list of updates)".into(),
            snippet: snippet(body, 80),
        });
    };
    let mut list = UpdateList::default();
    for (index, v) in values.iter().enumerate() {
        match parse_entry(v) {
            Ok(entry) => list.entries.push(entry),
            Err(reason) => {
                let id = v.get("ID").and_then(Value::as_str).map(str::to_owned);
                tracing::warn!(%url, index, id = ?id, %reason, "skipping MSRC updates entry");
                list.skipped.push(SkippedEntry { index, id, reason });
            }
        }
    }
    Ok(list)
}

/// serde_json appends " at line L column C"; the error carries those separately.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

fn parse_entry(v: &Value) -> Result<UpdateEntry, String> {
    if !v.is_object() {
        return Err(format!("expected an object, found {}", kind(v)));
    }
    let id_text = text(v, "ID")?.ok_or("missing field `ID`")?;
    let id: DocumentId = id_text.parse().map_err(|e| format!("field `ID`: {e}"))?;
    let alias = text(v, "Alias")?.unwrap_or_else(|| id.as_str().to_owned());
    let title = text(v, "DocumentTitle")?.unwrap_or_default();
    let initial_release = date(v, "InitialReleaseDate")?;
    let current_release = date(v, "CurrentReleaseDate")?;
    let cvrf_url = text(v, "CvrfUrl")?;
    Ok(UpdateEntry {
        id,
        alias,
        title,
        initial_release,
        current_release,
        cvrf_url,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A text field: a string, `{"Value": "..."}` (CVRF JSON style), or absent/null.
fn text(v: &Value, field: &str) -> Result<Option<String>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Object(o)) => match o.get("Value") {
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            _ => Err(format!("field `{field}`: expected a string")),
        },
        Some(other) => Err(format!(
            "field `{field}`: expected a string, found {}",
            kind(other)
        )),
    }
}

fn date(v: &Value, field: &str) -> Result<DateTime<Utc>, String> {
    let t = text(v, field)?.ok_or_else(|| format!("missing field `{field}`"))?;
    parse_date(&t).ok_or_else(|| format!("field `{field}`: invalid date {t:?}"))
}

/// Parses `2024-03-12T07:00:00Z` (any RFC 3339 offset) or the zone-less
/// `2023-02-25T08:00:00` that MSRC also uses, read as UTC.
pub(crate) fn parse_date(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:1/cvrf/v3.0/updates";

    #[test]
    fn parses_odata_list_and_skips_bad_entries() {
        let body = br#"{"@odata.context":"https://api.msrc.microsoft.com/cvrf/v3.0/$metadata#updates",
          "value":[
            {"ID":"2024-Mar","Alias":"2024-Mar","DocumentTitle":"March 2024 Security Updates","Severity":null,
             "InitialReleaseDate":"2024-03-12T07:00:00Z","CurrentReleaseDate":"2024-03-28T07:00:00Z",
             "CvrfUrl":"https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2024-Mar"},
            {"ID":"2023-Feb","InitialReleaseDate":"2023-02-14T08:00:00","CurrentReleaseDate":"2023-02-25T08:00:00"},
            {"ID":"2099-Jan","InitialReleaseDate":"2099-01-01T00:00:00Z","CurrentReleaseDate":"soon"},
            {"ID":"bad id!","InitialReleaseDate":"2020-01-01T00:00:00Z","CurrentReleaseDate":"2020-01-01T00:00:00Z"},
            {"Alias":"x"},
            42
          ]}"#;
        let list = parse_updates(body, URL).unwrap();
        assert_eq!(list.entries.len(), 2);
        let mar = &list.entries[0];
        assert_eq!(mar.id.as_str(), "2024-Mar");
        assert_eq!(mar.title, "March 2024 Security Updates");
        assert_eq!(
            mar.current_release.to_rfc3339(),
            "2024-03-28T07:00:00+00:00"
        );
        assert_eq!(
            mar.cvrf_url.as_deref(),
            Some("https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2024-Mar")
        );
        let feb = &list.entries[1];
        assert_eq!(feb.alias, "2023-Feb");
        assert_eq!(feb.title, "");
        assert_eq!(
            feb.initial_release.to_rfc3339(),
            "2023-02-14T08:00:00+00:00"
        );

        let reasons: Vec<(usize, &str)> = list
            .skipped
            .iter()
            .map(|s| (s.index, s.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4);
        assert_eq!(
            reasons[0],
            (2, "field `CurrentReleaseDate`: invalid date \"soon\"")
        );
        assert_eq!(list.skipped[0].id.as_deref(), Some("2099-Jan"));
        assert!(reasons[1].1.starts_with("field `ID`: invalid document id"));
        assert_eq!(reasons[2], (4, "missing field `ID`"));
        assert_eq!(reasons[3], (5, "expected an object, found a number"));
    }

    #[test]
    fn invalid_json_names_url_and_position() {
        let err = parse_updates(b"{\"value\": [\n  {\"ID\": }", URL).unwrap_err();
        match &err {
            MsrcError::InvalidJson { line, column, .. } => {
                assert_eq!((*line, *column), (2, 10));
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{URL}: invalid updates JSON at line 2 column 10: expected value"
            )),
            "{text}"
        );
    }

    #[test]
    fn json_without_value_array_is_an_error() {
        let err = parse_updates(br#"{"error":{"code":"x"}}"#, URL).unwrap_err();
        assert!(err.to_string().contains("`value` array"), "{err}");
        let err = parse_updates(b"<html><body>Service Unavailable</body></html>", URL).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 1 column 1"), "{text}");
        assert!(text.contains("<html><body>Service Unavailable"), "{text}");
    }
}
