//! The blocking MSRC API client: lists the updates and fetches CVRF XML by id, with retries and backoff.

use crate::error::{snippet, MsrcError};
use crate::sniff::check_cvrf_xml;
use crate::updates::{parse_updates, UpdateEntry, UpdateList};
use kbgap_core::DocumentId;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The public MSRC API.
pub const DEFAULT_BASE_URL: &str = "https://api.msrc.microsoft.com";

/// Tuning for [`MsrcClient`]. `Default` suits the public API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Overall time for one attempt (connect + headers + body). Connecting alone is limited
    /// to the smaller of this and 20 s.
    pub timeout: Duration,
    /// Retries after the first attempt on connect errors, timeouts, 429 and 5xx (so `retries + 1`
    /// attempts at most). 4xx other than 429 is never retried.
    pub retries: u32,
    /// First backoff delay; attempt `n` waits about `backoff_base * 2^(n-1)`, with jitter,
    /// capped at `max_backoff`.
    pub backoff_base: Duration,
    /// Cap on any single wait, including a server's `Retry-After`.
    pub max_backoff: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Largest response body accepted, in bytes (monthly documents are 2-10 MB).
    pub max_body_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            retries: 3,
            backoff_base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            user_agent: format!("kbgap/{}", env!("CARGO_PKG_VERSION")),
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A client for `{base}/cvrf/v3.0/...`: the public MSRC API or any mirror serving the same paths.
pub struct MsrcClient {
    base: String,
    options: ClientOptions,
    agent: ureq::Agent,
}

impl std::fmt::Debug for MsrcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsrcClient")
            .field("base", &self.base)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One failed attempt, and whether another may help.
struct Attempt {
    error: MsrcError,
    retry: bool,
    retry_after: Option<Duration>,
}

impl Attempt {
    fn fatal(error: MsrcError) -> Self {
        Self {
            error,
            retry: false,
            retry_after: None,
        }
    }
    fn retry(error: MsrcError) -> Self {
        Self {
            error,
            retry: true,
            retry_after: None,
        }
    }
}

impl MsrcClient {
    /// A client for `base_url` (e.g. [`DEFAULT_BASE_URL`] or `http://127.0.0.1:8080`; a trailing
    /// `/` is ignored). Fails only if the URL is not `http://` or `https://`.
    pub fn new(base_url: &str, options: ClientOptions) -> Result<Self, MsrcError> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"));
        match rest {
            None => {
                return Err(MsrcError::BadBaseUrl {
                    url: base_url.to_owned(),
                    reason: "must start with http:// or https://",
                })
            }
            Some("") => {
                return Err(MsrcError::BadBaseUrl {
                    url: base_url.to_owned(),
                    reason: "no host",
                })
            }
            Some(_) => {}
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(options.user_agent.as_str())
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(options.timeout.min(Duration::from_secs(20))))
            .build()
            .new_agent();
        Ok(Self {
            base,
            options,
            agent,
        })
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// `{base}/cvrf/v3.0/updates`.
    pub fn updates_url(&self) -> String {
        format!("{}/cvrf/v3.0/updates", self.base)
    }

    /// `{base}/cvrf/v3.0/cvrf/{id}`: where [`Self::fetch_document`] fetches `id`.
    pub fn document_url(&self, id: &DocumentId) -> String {
        format!("{}/cvrf/v3.0/cvrf/{}", self.base, id)
    }

    /// Lists the documents MSRC publishes. Entries with bad fields are skipped (and warned
    /// about); use [`Self::list_updates_detailed`] to see them.
    pub fn list_updates(&self) -> Result<Vec<UpdateEntry>, MsrcError> {
        self.list_updates_detailed().map(|l| l.entries)
    }

    /// Lists the documents, returning skipped entries with their reasons too.
    pub fn list_updates_detailed(&self) -> Result<UpdateList, MsrcError> {
        let url = self.updates_url();
        let body = self.get_with_retries(&url, "application/json")?;
        let list = parse_updates(&body, &url)?;
        if !list.skipped.is_empty() {
            tracing::warn!(
                %url,
                skipped = list.skipped.len(),
                listed = list.entries.len(),
                "some MSRC updates entries were unusable and skipped"
            );
        }
        Ok(list)
    }

    /// Fetches one CVRF document as XML bytes, exactly as served, from
    /// `{base}/cvrf/v3.0/cvrf/{id}` (never from the entry's `CvrfUrl` host, so a mirror or a
    /// test server works). A 2xx body that is not CVRF XML (an HTML page, JSON) is an error.
    pub fn fetch_document(&self, id: &DocumentId) -> Result<Vec<u8>, MsrcError> {
        let url = self.document_url(id);
        let body = self.get_with_retries(&url, "application/xml")?;
        check_cvrf_xml(&body, &url)?;
        Ok(body)
    }

    fn get_with_retries(&self, url: &str, accept: &str) -> Result<Vec<u8>, MsrcError> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let failed = match self.get_once(url, accept) {
                Ok(body) => return Ok(body),
                Err(failed) => failed,
            };
            if !failed.retry || attempt > self.options.retries {
                return Err(failed.error.with_attempts(attempt));
            }
            let delay = match failed.retry_after {
                Some(d) => d.min(self.options.max_backoff),
                None => backoff_delay(
                    attempt,
                    self.options.backoff_base,
                    self.options.max_backoff,
                    jitter_seed(attempt),
                ),
            };
            tracing::warn!(
                %url,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %failed.error,
                "MSRC request failed, retrying"
            );
            std::thread::sleep(delay);
        }
    }

    fn get_once(&self, url: &str, accept: &str) -> Result<Vec<u8>, Attempt> {
        let response = self
            .agent
            .get(url)
            .header("Accept", accept)
            .call()
            .map_err(|e| classify(e, url, self.options.max_body_bytes))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let is_success = response.status().is_success();
        let limit = if is_success {
            self.options.max_body_bytes
        } else {
            64 * 1024
        };
        let body = response
            .into_body()
            .into_with_config()
            .limit(limit)
            .read_to_vec();
        if is_success {
            return body.map_err(|e| classify(e, url, limit));
        }
        // A truncated or unreadable error body still leaves the status to report.
        let body = body.unwrap_or_default();
        let error = MsrcError::Http {
            url: url.to_owned(),
            status,
            snippet: snippet(&body, 200),
            attempts: 1,
        };
        Err(Attempt {
            error,
            retry: status == 429 || (500..=599).contains(&status),
            retry_after: if status == 429 || status == 503 {
                retry_after
            } else {
                None
            },
        })
    }
}

/// Maps a ureq error to an [`MsrcError`] and decides whether it is worth retrying.
fn classify(e: ureq::Error, url: &str, limit: u64) -> Attempt {
    let url = url.to_owned();
    let unreachable = |cause: String| {
        Attempt::retry(MsrcError::Unreachable {
            url: url.clone(),
            cause,
            attempts: 1,
        })
    };
    let transport = |cause: String| MsrcError::Transport {
        url: url.clone(),
        cause,
        attempts: 1,
    };
    match e {
        ureq::Error::HostNotFound => unreachable("host not found (DNS lookup failed)".into()),
        ureq::Error::ConnectionFailed => unreachable("connection failed".into()),
        ureq::Error::Timeout(t) => Attempt::retry(MsrcError::Timeout {
            url: url.clone(),
            what: timeout_name(t).into(),
            attempts: 1,
        }),
        ureq::Error::BodyExceedsLimit(_) => Attempt::fatal(MsrcError::TooLarge {
            url: url.clone(),
            limit,
        }),
        ureq::Error::Io(io) => match io.kind() {
            io::ErrorKind::ConnectionRefused => unreachable("connection refused".into()),
            io::ErrorKind::NetworkUnreachable => unreachable("network unreachable".into()),
            io::ErrorKind::HostUnreachable => unreachable("host unreachable".into()),
            io::ErrorKind::AddrNotAvailable => unreachable("address not available".into()),
            io::ErrorKind::NetworkDown => unreachable("network down".into()),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                Attempt::retry(MsrcError::Timeout {
                    url: url.clone(),
                    what: "socket".into(),
                    attempts: 1,
                })
            }
            // Reset/aborted/EOF mid-response: the server or a middlebox dropped us; try again.
            _ => Attempt::retry(transport(format!("I/O error: {io}"))),
        },
        ureq::Error::Protocol(p) => Attempt::retry(transport(format!("HTTP protocol error: {p}"))),
        ureq::Error::BadUri(u) => Attempt::fatal(transport(format!("bad URL: {u}"))),
        other => Attempt::fatal(transport(other.to_string())),
    }
}

fn timeout_name(t: ureq::Timeout) -> &'static str {
    match t {
        ureq::Timeout::Resolve => "DNS lookup",
        ureq::Timeout::Connect => "connect",
        ureq::Timeout::SendRequest | ureq::Timeout::SendBody => "sending request",
        ureq::Timeout::RecvResponse => "waiting for response",
        ureq::Timeout::RecvBody => "reading body",
        ureq::Timeout::PerRead => "read",
        _ => "overall request",
    }
}

/// Parses a `Retry-After` value: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, relative to `now`; a past date means no wait).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let now = chrono::DateTime::<chrono::Utc>::from(now);
    let delta = when.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Exponential backoff with "equal jitter": attempt `n` (1-based) waits between half and all of
/// `base * 2^(n-1)`, capped at `max`; `seed` picks the point in that range.
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration, seed: u64) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let half = exp / 2;
    let span = (exp - half).as_nanos() as u64;
    let jitter = if span == 0 { 0 } else { mix(seed) % (span + 1) };
    half + Duration::from_nanos(jitter)
}

/// A seed for jitter without a random-number crate: clock nanoseconds mixed with the attempt.
fn jitter_seed(attempt: u32) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    nanos ^ ((attempt as u64) << 32)
}

/// splitmix64 finaliser: spreads nearby seeds over the whole range.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for seed in [0u64, 1, 42, u64::MAX] {
            let d1 = backoff_delay(1, base, max, seed);
            assert!(d1 >= Duration::from_millis(50) && d1 <= base, "{d1:?}");
            let d3 = backoff_delay(3, base, max, seed);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d10 = backoff_delay(10, base, max, seed);
            assert!(d10 >= max / 2 && d10 <= max, "{d10:?}");
            assert!(backoff_delay(u32::MAX, base, max, seed) <= max);
        }
        // Jitter actually varies with the seed.
        let spread: std::collections::BTreeSet<Duration> =
            (0..20).map(|s| backoff_delay(4, base, max, s)).collect();
        assert!(spread.len() > 10);
        assert_eq!(backoff_delay(3, Duration::ZERO, max, 7), Duration::ZERO);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21T07:28:00Z
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn base_url_is_validated_and_normalised() {
        let c = MsrcClient::new("http://127.0.0.1:9/", ClientOptions::default()).unwrap();
        assert_eq!(c.updates_url(), "http://127.0.0.1:9/cvrf/v3.0/updates");
        let id: DocumentId = "2017-May-B".parse().unwrap();
        assert_eq!(
            c.document_url(&id),
            "http://127.0.0.1:9/cvrf/v3.0/cvrf/2017-May-B"
        );
        let e = MsrcClient::new("api.msrc.microsoft.com", ClientOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid MSRC base URL \"api.msrc.microsoft.com\": must start with http:// or https://"
        );
        assert!(MsrcClient::new("https://", ClientOptions::default()).is_err());
        assert!(ClientOptions::default().user_agent.starts_with("kbgap/"));
    }
}
