//! A cheap check that a response body is a CVRF XML document (root `cvrfdoc`), not an HTML error page or JSON.

use crate::error::{snippet, MsrcError};

/// How far into the body the root element is looked for.
const SCAN_LIMIT: usize = 64 * 1024;

/// Accepts `body` if its first element (after an optional BOM, XML declaration, comments and
/// doctype) is `cvrfdoc` in any namespace prefix; otherwise says what it looked like instead.
pub fn check_cvrf_xml(body: &[u8], url: &str) -> Result<(), MsrcError> {
    match root_kind(body) {
        Root::Cvrf => Ok(()),
        Root::Other(found) => Err(MsrcError::NotCvrf {
            url: url.to_owned(),
            found,
            snippet: snippet(body, 120),
        }),
    }
}

enum Root {
    Cvrf,
    Other(String),
}

fn root_kind(body: &[u8]) -> Root {
    let mut rest = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    rest = &rest[..rest.len().min(SCAN_LIMIT)];
    loop {
        rest = trim_start(rest);
        if rest.is_empty() {
            return Root::Other(if body.is_empty() {
                "an empty body".into()
            } else {
                "no root element".into()
            });
        }
        if rest.starts_with(b"<?") {
            match find(rest, b"?>") {
                Some(i) => rest = &rest[i + 2..],
                None => return Root::Other("an unterminated XML declaration".into()),
            }
        } else if rest.starts_with(b"<!--") {
            match find(rest, b"-->") {
                Some(i) => rest = &rest[i + 3..],
                None => return Root::Other("an unterminated comment".into()),
            }
        } else if rest.starts_with(b"<!") {
            let end = find(rest, b">").unwrap_or(rest.len());
            if rest[..end]
                .to_ascii_lowercase()
                .windows(4)
                .any(|w| w == b"html")
            {
                return Root::Other("an HTML page".into());
            }
            rest = &rest[(end + 1).min(rest.len())..];
        } else if let Some(tag) = rest.strip_prefix(b"<") {
            let name_len = tag
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
                .unwrap_or(tag.len());
            let name = String::from_utf8_lossy(&tag[..name_len]).into_owned();
            let local = name.rsplit(':').next().unwrap_or(&name);
            return if local == "cvrfdoc" {
                Root::Cvrf
            } else if local.eq_ignore_ascii_case("html") {
                Root::Other("an HTML page".into())
            } else {
                Root::Other(format!("XML whose root element is <{name}>"))
            };
        } else if rest[0] == b'{' || rest[0] == b'[' {
            return Root::Other("JSON".into());
        } else {
            return Root::Other("text that is not XML".into());
        }
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(body: &[u8]) -> String {
        match check_cvrf_xml(body, "http://h/cvrf/v3.0/cvrf/2020-Mar") {
            Ok(()) => "ok".into(),
            Err(MsrcError::NotCvrf { found, .. }) => found,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn accepts_cvrf_roots_with_any_prefix() {
        assert_eq!(
            found(b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<cvrf:cvrfdoc xmlns:cvrf=\"x\">"),
            "ok"
        );
        assert_eq!(found(b"<!-- mirror --><cvrfdoc>"), "ok");
    }

    #[test]
    fn rejects_html_json_and_other_xml() {
        assert_eq!(
            found(b"<!DOCTYPE html><html><body>Oops</body></html>"),
            "an HTML page"
        );
        assert_eq!(found(b"\n<HTML><HEAD>"), "an HTML page");
        assert_eq!(found(br#"{"DocumentTitle":{}}"#), "JSON");
        assert_eq!(
            found(b"<?xml version=\"1.0\"?><error/>"),
            "XML whose root element is <error>"
        );
        assert_eq!(found(b""), "an empty body");
        assert_eq!(found(b"Service Unavailable"), "text that is not XML");
        assert_eq!(found(b"<?xml version"), "an unterminated XML declaration");
    }

    #[test]
    fn error_names_url_and_shows_body_start() {
        let e = check_cvrf_xml(b"<html>\n<title>Sign in</title>", "http://h/x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "http://h/x: response is not a CVRF XML document (an HTML page); body starts: \"<html> <title>Sign in</title>\""
        );
    }
}
