//! Database location parsing (`sqlite://`, bare paths, `postgres://`), password redaction and
//! the default database path.

use crate::StoreError;
use std::path::PathBuf;

/// Where a store lives, parsed from `--db` / `KBGAP_DB`.
#[derive(Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// A SQLite database file.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database (`sqlite::memory:`), for tests and one-shot runs.
    SqliteMemory,
    /// A PostgreSQL database: the `postgres://` / `postgresql://` URL as given (it may hold a
    /// password; `Debug` redacts it).
    Postgres(String),
}

impl std::fmt::Debug for DbLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SqliteFile(p) => f.debug_tuple("SqliteFile").field(p).finish(),
            Self::SqliteMemory => f.write_str("SqliteMemory"),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redact_url(url)).finish(),
        }
    }
}

impl DbLocation {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`, a bare path, or a
    /// `postgres://` / `postgresql://` URL. Any other `scheme://` gives
    /// [`StoreError::UnsupportedUrl`] with the password redacted.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(StoreError::UnsupportedUrl {
                url: String::new(),
                reason: "empty database location; expected sqlite://PATH or a file path".into(),
            });
        }
        let lower = t.to_ascii_lowercase();
        if lower == "sqlite::memory:" || lower == "sqlite://:memory:" || t == ":memory:" {
            return Ok(Self::SqliteMemory);
        }
        if let Some(rest) =
            strip_prefix_ci(t, "sqlite://").or_else(|| strip_prefix_ci(t, "sqlite:"))
        {
            if rest.is_empty() {
                return Err(StoreError::UnsupportedUrl {
                    url: t.to_owned(),
                    reason: "no path after the sqlite scheme; expected sqlite://PATH".into(),
                });
            }
            return Ok(Self::SqliteFile(PathBuf::from(rest)));
        }
        if let Some(scheme) = url_scheme(t) {
            let reason = match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => return Ok(Self::Postgres(t.to_owned())),
                other => format!(
                    "unknown scheme `{other}`; expected sqlite://PATH, a file path or \
                     postgres://USER@HOST/DB"
                ),
            };
            return Err(StoreError::UnsupportedUrl {
                url: redact_url(t),
                reason,
            });
        }
        Ok(Self::SqliteFile(PathBuf::from(t)))
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The scheme of `scheme://...` text (RFC 3986 scheme characters), else `None`.
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then_some(scheme)
}

/// Replaces the password of `scheme://user:password@host/...` and any `password=` query
/// parameter with `***`, so URLs can appear in messages and logs.
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://").filter(|_| url_scheme(text).is_some()) else {
        return text.to_owned();
    };
    let auth_start = scheme_end + 3;
    let after = &text[auth_start..];
    let auth_len = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..auth_len];
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..auth_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let rest = &after[auth_len..];
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let redacted: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&redacted.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

/// The default database file: `kbgap.db` in the user's data directory
/// (`~/.local/share/kbgap/kbgap.db` on Linux). The CLI lets `--db` / `KBGAP_DB` override it.
pub fn default_db_path() -> Result<PathBuf, StoreError> {
    directories::ProjectDirs::from("", "", "kbgap")
        .map(|dirs| dirs.data_dir().join("kbgap.db"))
        .ok_or_else(|| StoreError::Open {
            url: "<default>".into(),
            message: "no home directory to put the default database in; pass --db or set KBGAP_DB"
                .into(),
        })
}
