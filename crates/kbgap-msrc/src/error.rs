//! The one error type of the MSRC client: each value prints as a single line naming the URL and the cause.

/// Hint appended to "cannot reach" errors: syncing needs the network, importing does not.
pub const OFFLINE_HINT: &str = "are you offline? use `kbgap catalog import` with downloaded files";

/// Why a request to the MSRC API (or a mirror of it) failed.
///
/// Every variant names the URL; `Display` is one line suitable for a CLI error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsrcError {
    /// The configured base URL is not an `http://` or `https://` URL.
    #[error("invalid MSRC base URL {url:?}: {reason}")]
    BadBaseUrl {
        /// The base URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// DNS failure, connection refused/reset, network unreachable: the host could not be reached.
    #[error("cannot reach {url}: {cause} (after {attempts} attempt{}) — {OFFLINE_HINT}", plural(*.attempts))]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The network cause ("connection refused", "host not found (DNS)", ...).
        cause: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A connect, read or overall timeout expired.
    #[error("{url}: timed out ({what}) after {attempts} attempt{}", plural(*.attempts))]
    Timeout {
        /// The URL requested.
        url: String,
        /// Which timeout expired.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The server answered with a non-success HTTP status.
    #[error("{url}: HTTP {status} after {attempts} attempt{}{}", plural(*.attempts), body_suffix(.snippet))]
    Http {
        /// The URL requested.
        url: String,
        /// The last HTTP status received.
        status: u16,
        /// The start of the response body, whitespace-collapsed (may be empty).
        snippet: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The updates list is not valid JSON or lacks the OData `value` array.
    #[error("{url}: invalid updates JSON at line {line} column {column}: {message} (body starts: {snippet:?})")]
    InvalidJson {
        /// The URL requested.
        url: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The parser's message.
        message: String,
        /// The start of the body.
        snippet: String,
    },
    /// A document request answered 2xx with something that is not CVRF XML (an HTML error page, JSON, ...).
    #[error("{url}: response is not a CVRF XML document ({found}); body starts: {snippet:?}")]
    NotCvrf {
        /// The URL requested.
        url: String,
        /// What the body looked like instead ("an HTML page", "JSON", "XML root <foo>").
        found: String,
        /// The start of the body.
        snippet: String,
    },
    /// The response body exceeded the configured size limit.
    #[error("{url}: response body exceeds the {limit}-byte limit")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Any other transport failure (TLS, protocol error, bad redirect, ...).
    #[error("{url}: {cause} (after {attempts} attempt{})", plural(*.attempts))]
    Transport {
        /// The URL requested.
        url: String,
        /// The underlying cause.
        cause: String,
        /// How many attempts were made.
        attempts: u32,
    },
}

fn body_suffix(snippet: &str) -> String {
    if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl MsrcError {
    /// The URL the failing request was for.
    pub fn url(&self) -> &str {
        match self {
            Self::BadBaseUrl { url, .. }
            | Self::Unreachable { url, .. }
            | Self::Timeout { url, .. }
            | Self::Http { url, .. }
            | Self::InvalidJson { url, .. }
            | Self::NotCvrf { url, .. }
            | Self::TooLarge { url, .. }
            | Self::Transport { url, .. } => url,
        }
    }

    /// True when the host could not be reached at all, so further requests to it are pointless.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// The HTTP status, for [`MsrcError::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Sets the attempt count on variants that carry one.
    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        match &mut self {
            Self::Unreachable { attempts, .. }
            | Self::Timeout { attempts, .. }
            | Self::Http { attempts, .. }
            | Self::Transport { attempts, .. } => *attempts = n,
            _ => {}
        }
        self
    }
}

/// The first `max` characters of `body` as lossy UTF-8, BOM dropped, whitespace runs collapsed.
pub(crate) fn snippet(body: &[u8], max: usize) -> String {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let head = &body[..body.len().min(max * 4)];
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        if count == max {
            out.push('…');
            break;
        }
        if c.is_whitespace() {
            if last_space {
                continue;
            }
            out.push(' ');
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
        count += 1;
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_collapses_whitespace_and_truncates() {
        assert_eq!(
            snippet(b"\xEF\xBB\xBF  <html>\r\n <body>x", 100),
            "<html> <body>x"
        );
        assert_eq!(snippet(b"abcdef", 3), "abc…");
        assert_eq!(snippet(b"", 10), "");
    }

    #[test]
    fn messages_are_one_line_and_name_the_url() {
        let e = MsrcError::Unreachable {
            url: "https://api.msrc.microsoft.com/cvrf/v3.0/updates".into(),
            cause: "connection refused".into(),
            attempts: 1,
        };
        let text = e.to_string();
        assert_eq!(
            text,
            "cannot reach https://api.msrc.microsoft.com/cvrf/v3.0/updates: connection refused \
             (after 1 attempt) — are you offline? use `kbgap catalog import` with downloaded files"
        );
        let e = MsrcError::Http {
            url: "http://x/y".into(),
            status: 503,
            snippet: "busy".into(),
            attempts: 4,
        };
        assert_eq!(e.to_string(), "http://x/y: HTTP 503 after 4 attempts: busy");
        assert!(!e.to_string().contains('\n'));
    }
}
