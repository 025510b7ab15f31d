//! Bearer-token authentication (Entra ID v1/v2 or a local HS256 issuer) and the route permission table of §7.
//!
//! Verification: the header's `alg` picks the key family (HS256 → shared secrets, RS256 →
//! RSA keys from a JWKS, matched by `kid` when present); any other alg, `none` included,
//! is rejected, so an HS256 token "signed" with the RSA public key never meets an RSA key.
//! Then `iss` ∈ issuers, `aud` ∈ audiences, `exp`/`nbf` with a small leeway. Permissions
//! are `roles` (array) ∪ `scp` (space-separated); `ReadWrite` satisfies `Read`.

use crate::error::{ApiError, UNAUTHORIZED_TEXT};
use axum::http::{header, HeaderMap};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The WindowsDefenderATP first-party application id (an accepted audience).
pub const DEFENDER_APP_ID: &str = "fc780465-2017-40d4-a0c5-307022471b92";

/// Defender's audience aliases (§7, §9), accepted by default.
pub const DEFENDER_AUDIENCES: &[&str] = &[
    "https://api.securitycenter.microsoft.com",
    "https://securitycenter.onmicrosoft.com/windowsatpservice",
    "https://api.security.microsoft.com",
    "https://api.securitycenter.windows.com",
    "https://us.api.security.microsoft.com",
    "https://eu.api.security.microsoft.com",
    "https://uk.api.security.microsoft.com",
    "https://au.api.security.microsoft.com",
    "https://swa.api.security.microsoft.com",
    "https://ina.api.security.microsoft.com",
    "https://api-us.securitycenter.microsoft.com",
    "https://api-eu.securitycenter.microsoft.com",
    "https://api-uk.securitycenter.microsoft.com",
    "https://api-gcc.securitycenter.microsoft.us",
    "https://api-gov.securitycenter.microsoft.us",
    DEFENDER_APP_ID,
];

/// A problem setting up authentication (bad JWKS, unreadable key file...).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JWKS document was not valid.
    #[error("JWKS from {origin}: {message}")]
    Jwks {
        /// File path or URL.
        origin: String,
        /// What was wrong.
        message: String,
    },
    /// A token could not be signed.
    #[error("minting a token: {0}")]
    Mint(String),
}

struct RsaKey {
    kid: Option<String>,
    key: DecodingKey,
}

/// What the server accepts as a valid bearer token.
#[derive(Clone)]
pub struct AuthConfig {
    /// Accepted `iss` values (exact match).
    pub issuers: Vec<String>,
    /// Accepted `aud` values (exact match).
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`, seconds.
    pub leeway_secs: u64,
    hs256: Vec<std::sync::Arc<DecodingKey>>,
    rsa: Vec<std::sync::Arc<RsaKey>>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway_secs", &self.leeway_secs)
            .field("hs256_secrets", &self.hs256.len())
            .field(
                "rsa_kids",
                &self.rsa.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Issuer v1 (`https://sts.windows.net/{tid}/`) of an Entra tenant.
pub fn entra_issuer_v1(tenant: &str) -> String {
    format!("https://sts.windows.net/{tenant}/")
}

/// Issuer v2 (`https://login.microsoftonline.com/{tid}/v2.0`) of an Entra tenant.
pub fn entra_issuer_v2(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

impl AuthConfig {
    /// No issuers or keys yet; audiences = Defender's aliases plus `public_base_url`
    /// (with and without a trailing `/`); leeway 60 s.
    pub fn new(public_base_url: &str) -> Self {
        let mut audiences: Vec<String> = DEFENDER_AUDIENCES.iter().map(|s| s.to_string()).collect();
        let base = public_base_url.trim_end_matches('/');
        if !base.is_empty() {
            audiences.push(base.to_string());
        }
        let with_slash: Vec<String> = audiences
            .iter()
            .filter(|a| a.starts_with("https://") || a.starts_with("http://"))
            .map(|a| format!("{a}/"))
            .collect();
        audiences.extend(with_slash);
        Self {
            issuers: Vec::new(),
            audiences,
            leeway_secs: 60,
            hs256: Vec::new(),
            rsa: Vec::new(),
        }
    }
    /// Accepts tokens of an Entra tenant (v1 and v2 issuers). Keys come from its JWKS.
    pub fn with_entra_tenant(mut self, tenant: &str) -> Self {
        self.issuers.push(entra_issuer_v1(tenant));
        self.issuers.push(entra_issuer_v2(tenant));
        self
    }
    /// Accepts one more issuer.
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        self.issuers.push(issuer.to_string());
        self
    }
    /// Accepts one more audience.
    pub fn with_audience(mut self, aud: &str) -> Self {
        self.audiences.push(aud.to_string());
        self
    }
    /// Accepts HS256 tokens signed with this secret.
    pub fn with_hs256_secret(mut self, secret: &[u8]) -> Self {
        self.hs256
            .push(std::sync::Arc::new(DecodingKey::from_secret(secret)));
        self
    }
    /// Accepts tokens minted by a local issuer (its issuer, audience and secret).
    pub fn with_local_issuer(self, local: &LocalIssuer) -> Self {
        self.with_issuer(&local.issuer)
            .with_audience(&local.audience)
            .with_hs256_secret(&local.secret)
    }
    /// Adds the RSA keys of a JWKS document (`{"keys": [...]}`); non-RSA keys are skipped.
    pub fn with_jwks_json(mut self, json: &str, origin: &str) -> Result<Self, AuthSetupError> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| AuthSetupError::Jwks {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let mut added = 0;
        for jwk in &set.keys {
            if !matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
            ) {
                continue;
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| AuthSetupError::Jwks {
                origin: origin.into(),
                message: format!("key {:?}: {e}", jwk.common.key_id),
            })?;
            self.rsa.push(std::sync::Arc::new(RsaKey {
                kid: jwk.common.key_id.clone(),
                key,
            }));
            added += 1;
        }
        if added == 0 {
            return Err(AuthSetupError::Jwks {
                origin: origin.into(),
                message: "no RSA key in the set".into(),
            });
        }
        Ok(self)
    }
    /// Adds the RSA keys of a JWKS file.
    pub fn with_jwks_file(self, path: &Path) -> Result<Self, AuthSetupError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthSetupError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.with_jwks_json(&text, &path.display().to_string())
    }
    /// Fetches a JWKS URL once (blocking; call at startup) and adds its RSA keys.
    pub fn with_jwks_url(self, url: &str) -> Result<Self, AuthSetupError> {
        let err = |message: String| AuthSetupError::Jwks {
            origin: url.into(),
            message,
        };
        let text = ureq::get(url)
            .call()
            .map_err(|e| err(e.to_string()))?
            .body_mut()
            .read_to_string()
            .map_err(|e| err(e.to_string()))?;
        self.with_jwks_json(&text, url)
    }

    /// Verifies a bearer token and returns the caller it names.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let unauthorized = |why: String| {
            tracing::debug!(reason = %why, "token rejected");
            ApiError::Unauthorized(UNAUTHORIZED_TEXT.into())
        };
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| unauthorized(format!("header: {e}")))?;
        let keys: Vec<&DecodingKey> = match header.alg {
            Algorithm::HS256 => self.hs256.iter().map(|k| k.as_ref()).collect(),
            Algorithm::RS256 => self
                .rsa
                .iter()
                .filter(|k| match (&header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                })
                .map(|k| &k.key)
                .collect(),
            other => return Err(unauthorized(format!("algorithm {other:?} not accepted"))),
        };
        if keys.is_empty() {
            return Err(unauthorized(format!("no key for {:?}", header.alg)));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_audience(&self.audiences);
        validation.set_issuer(&self.issuers);
        let mut last = String::from("no key");
        for key in keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(Caller::from_claims(data.claims)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(unauthorized(last))
    }

    /// Reads `Authorization: Bearer …` and verifies it.
    pub fn verify_headers(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized(UNAUTHORIZED_TEXT.into()))?;
        let (scheme, token) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| ApiError::Unauthorized(UNAUTHORIZED_TEXT.into()))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::Unauthorized(UNAUTHORIZED_TEXT.into()));
        }
        self.verify(token.trim())
    }
}

/// The claims kbgap reads (aud/iss/exp/nbf are checked by the validator).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Claims {
    /// Tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// Caller app id (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// Caller app id (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Application permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Delegated permissions, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Tenant id (`tid`), empty when absent.
    pub tenant: String,
    /// Application id (`appid` or `azp`), empty when absent.
    pub app: String,
    /// Application roles (`roles`).
    pub roles: Vec<String>,
    /// Delegated scopes (`scp`, split).
    pub scopes: Vec<String>,
}

impl Caller {
    fn from_claims(c: Claims) -> Self {
        Self {
            tenant: c.tid.unwrap_or_default(),
            app: c.appid.or(c.azp).unwrap_or_default(),
            roles: c.roles,
            scopes: c
                .scp
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }
}

/// The kbgap application role that allows device ingestion.
pub const INGEST_ROLE: &str = "Device.Ingest";

/// The permission families of §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// M: machines.
    Machine,
    /// S: software and both getmissingkbs.
    Software,
    /// V: vulnerabilities.
    Vulnerability,
    /// R: recommendations.
    Recommendation,
    /// kbgap ingestion (`POST /kbgap/v1/devices`): role `Device.Ingest`, or a
    /// `Machine.ReadWrite[.All]` role/scope.
    DeviceIngest,
}

impl Permission {
    fn stem(self) -> &'static str {
        match self {
            Self::Machine => "Machine",
            Self::Software => "Software",
            Self::Vulnerability => "Vulnerability",
            Self::Recommendation => "SecurityRecommendation",
            Self::DeviceIngest => "Device",
        }
    }
    /// The application role named in 403 messages (`Software.Read.All`).
    pub fn required_role(self) -> String {
        if self == Self::DeviceIngest {
            return INGEST_ROLE.to_owned();
        }
        format!("{}.Read.All", self.stem())
    }
    /// True when any of `perms` grants this family: `X.Read.All`, `X.ReadWrite.All`
    /// (application) or `X.Read`, `X.ReadWrite` (delegated).
    pub fn granted_by<'a>(self, perms: impl IntoIterator<Item = &'a String>) -> bool {
        if self == Self::DeviceIngest {
            return perms.into_iter().any(|p| {
                [
                    "Device.Ingest",
                    "Machine.ReadWrite.All",
                    "Machine.ReadWrite",
                ]
                .iter()
                .any(|r| p.eq_ignore_ascii_case(r))
            });
        }
        let stem = self.stem();
        perms.into_iter().any(|p| {
            let Some(rest) = p
                .get(..stem.len())
                .filter(|s| s.eq_ignore_ascii_case(stem))
                .map(|_| &p[stem.len()..])
            else {
                return false;
            };
            [".Read.All", ".ReadWrite.All", ".Read", ".ReadWrite"]
                .iter()
                .any(|suffix| rest.eq_ignore_ascii_case(suffix))
        })
    }
}

/// Authorises a caller for a permission family (403 with Defender's text otherwise).
pub fn authorise(caller: &Caller, perm: Permission) -> Result<(), ApiError> {
    if perm.granted_by(caller.roles.iter().chain(caller.scopes.iter())) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            required: vec![perm.required_role()],
            caller: caller.roles.clone(),
        })
    }
}

/// A local token issuer (for `kbgap token` and tests): HS256 with a shared secret.
#[derive(Clone)]
pub struct LocalIssuer {
    /// `iss` of minted tokens.
    pub issuer: String,
    /// `aud` of minted tokens.
    pub audience: String,
    /// HS256 secret.
    pub secret: Vec<u8>,
}

impl fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Serialize)]
struct MintClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    tid: &'a str,
    appid: &'a str,
    roles: &'a [String],
}

/// Mints an HS256 token from a local issuer with application `roles`, valid for `ttl`.
pub fn mint_token(
    issuer: &LocalIssuer,
    roles: &[String],
    tenant: &str,
    app: &str,
    ttl: Duration,
) -> Result<String, AuthSetupError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| AuthSetupError::Mint(e.to_string()))?
        .as_secs();
    let claims = MintClaims {
        iss: &issuer.issuer,
        aud: &issuer.audience,
        iat: now,
        nbf: now,
        exp: now + ttl.as_secs(),
        tid: tenant,
        appid: app,
        roles,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&issuer.secret),
    )
    .map_err(|e| AuthSetupError::Mint(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_satisfies_read_and_scopes_count() {
        let c = Caller {
            tenant: "t".into(),
            app: "a".into(),
            roles: vec!["Machine.ReadWrite.All".into()],
            scopes: vec!["Software.Read".into()],
        };
        assert!(authorise(&c, Permission::Machine).is_ok());
        assert!(authorise(&c, Permission::Software).is_ok());
        let e = authorise(&c, Permission::Vulnerability).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Missing application roles. API required roles: Vulnerability.Read.All, application roles: Machine.ReadWrite.All."
        );
        assert!(!Permission::Machine.granted_by(&["Machine.Readx".to_string()]));
    }
}
