//! Shared test helpers: a sample fleet, token minting, a oneshot request helper that checks the
//! wire headers, an order-preserving JSON reader and a validator for the OpenAPI schemas.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use kbgap_core::{CveId, KbId, MachineId};
use kbgap_server::api_model::IpAddress;
use kbgap_server::*;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub const BASE: &str = "https://api.security.microsoft.com";
pub const ISSUER: &str = "https://kbgap.test/issuer";
pub const AUDIENCE: &str = "https://api.securitycenter.microsoft.com";
pub const SECRET: &[u8] = b"kbgap-test-secret-0123456789abcdef";
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const APP: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const M1: &str = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07";
pub const M2: &str = "556b3952acb0bff29816d267822305781cc183ec";

pub fn local_issuer() -> LocalIssuer {
    LocalIssuer {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        secret: SECRET.to_vec(),
    }
}

pub fn auth_config() -> AuthConfig {
    AuthConfig::new(BASE).with_local_issuer(&local_issuer())
}

pub fn token(roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
    mint_token(
        &local_issuer(),
        &roles,
        TENANT,
        APP,
        Duration::from_secs(600),
    )
    .unwrap()
}

/// A token with every read role.
pub fn all_roles() -> String {
    token(&[
        "Machine.Read.All",
        "Software.Read.All",
        "Vulnerability.Read.All",
    ])
}

pub fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn fix(kb: u32, name: &str, products: &[&str], missed: u64, cves: u64) -> PublicProductFixDto {
    PublicProductFixDto {
        id: KbId::new(kb),
        name: name.into(),
        products_names: products.iter().map(|s| s.to_string()).collect(),
        url: KbId::new(kb).catalog_url(),
        machine_missed_on: missed,
        cve_addressed: cves,
        os_build: None,
    }
}

pub fn vuln(id: &str, sev: &str, cvss: f64) -> PublicVulnerabilityDto {
    PublicVulnerabilityDto {
        id: id.parse().unwrap(),
        name: id.into(),
        description: Some(format!("Description of {id}")),
        severity: Some(sev.into()),
        cvss_v3: Some(cvss),
        cvss_vector: None,
        exposed_machines: 1,
        published_on: Some(time("2019-10-08T00:00:00Z")),
        updated_on: Some(time("2019-12-16T16:20:00Z")),
        public_exploit: false,
        exploit_verified: false,
        exploit_in_kit: false,
        exploit_types: vec![],
        exploit_uris: vec![],
        cve_supportability: Some("Supported".into()),
        epss: None,
    }
}

/// Two machines, one software, two CVEs, the §2 example KB on M1, nothing missing on M2.
pub fn sample_fleet() -> InMemoryFleet {
    let m1: MachineId = M1.parse().unwrap();
    let m2: MachineId = M2.parse().unwrap();
    let mut a = Machine::new(m1, Some("se-pov-desktop".into()));
    a.first_seen = Some(time("2023-04-19T13:27:53.1618923Z"));
    a.last_seen = Some(time("2023-05-04T12:47:48.3622932Z"));
    a.os_platform = Some("Windows10".into());
    a.version = Some("21H2".into());
    a.os_build = Some(19044);
    a.health_status = Some("Active".into());
    a.rbac_group_id = Some(0);
    a.machine_tags = vec!["Finance".into()];
    a.ip_addresses = vec![IpAddress {
        ip_address: Some("192.168.12.203".into()),
        mac_address: Some("000C2992A64D".into()),
        kind: Some("Ethernet".into()),
        operational_status: Some("Up".into()),
    }];
    let mut b = Machine::new(m2, Some("dave_desktop".into()));
    b.os_platform = Some("WindowsServer2019".into());
    b.health_status = Some("Inactive".into());
    b.rbac_group_id = Some(7);
    let edge = SoftwareId::new("microsoft", "edge").unwrap();
    let sw = Software {
        id: edge.clone(),
        name: "edge".into(),
        vendor: "microsoft".into(),
        weaknesses: 467,
        public_exploit: true,
        active_alert: false,
        exposed_machines: 1,
        impact_score: 2.39947438,
    };
    let c1: CveId = "CVE-2019-0608".parse().unwrap();
    let c2: CveId = "CVE-2020-0796".parse().unwrap();
    let kb = fix(
        4540673,
        "March 2020 Security Updates",
        &["windows_10", "edge", "internet_explorer"],
        1,
        97,
    );
    let rows = vec![
        PublicAssetVulnerabilityDto {
            id: PublicAssetVulnerabilityDto::make_id(
                m1,
                &c2,
                "microsoft",
                "windows_10",
                Some("10.0.19044.1"),
                Some(KbId::new(4540673)),
            ),
            cve_id: c2.clone(),
            machine_id: m1,
            fixing_kb_id: Some(KbId::new(4540673)),
            product_name: "windows_10".into(),
            product_vendor: "microsoft".into(),
            product_version: Some("10.0.19044.1".into()),
            severity: Some("Critical".into()),
        },
        PublicAssetVulnerabilityDto {
            id: PublicAssetVulnerabilityDto::make_id(m2, &c1, "microsoft", "edge", None, None),
            cve_id: c1.clone(),
            machine_id: m2,
            fixing_kb_id: None,
            product_name: "edge".into(),
            product_vendor: "microsoft".into(),
            product_version: None,
            severity: Some("Medium".into()),
        },
    ];
    InMemoryFleet::new()
        .with_machines(vec![b, a])
        .with_software(vec![sw])
        .with_vulnerabilities(vec![
            vuln("CVE-2020-0796", "Critical", 10.0),
            vuln("CVE-2019-0608", "Medium", 4.3),
        ])
        .with_asset_vulnerabilities(rows)
        .with_missing_kbs(m1, vec![kb.clone()])
        .with_software_missing_kbs(edge.clone(), vec![kb])
        .with_installed(m1, edge.clone())
        .with_machine_vulnerability(m1, c2.clone())
        .with_machine_vulnerability(m2, c1.clone())
        .with_software_vulnerability(edge, c1)
}

pub fn app_with(fleet: InMemoryFleet, config: ServerConfig, throttle: Throttle) -> axum::Router {
    router(AppState::with_throttle(
        Arc::new(fleet),
        auth_config(),
        config,
        throttle,
    ))
}

pub fn app(fleet: InMemoryFleet) -> axum::Router {
    app_with(fleet, ServerConfig::new(BASE), Throttle::disabled())
}

/// A response: status, headers, body text.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn ordered(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    /// Asserts a Defender error with this status and code; returns the message.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["code"], code, "{}", self.body);
        let target = e["target"].as_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(target).is_ok(),
            "target {target} is not a GUID"
        );
        assert_eq!(
            self.headers.get("request-id").unwrap().to_str().unwrap(),
            target
        );
        assert_eq!(v.as_object().unwrap().len(), 1);
        e["message"].as_str().unwrap().to_string()
    }
}

/// Sends one GET (with an optional bearer token) and checks the wire headers every response must carry.
pub async fn get(app: &axum::Router, uri: &str, token: Option<&str>) -> Resp {
    let mut req = Request::builder()
        .uri(uri)
        .header("accept-encoding", "identity");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(app, req.body(Body::empty()).unwrap()).await
}

pub async fn send(app: &axum::Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"
    );
    assert_eq!(headers.get("odata-version").unwrap(), "4.0");
    assert!(headers.get("content-encoding").is_none());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Resp {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// JSON that keeps object key order (serde_json's Value sorts keys).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Json::Obj(kv) => kv.iter().map(|(k, _)| k.as_str()).collect(),
            _ => vec![],
        }
    }
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("json")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Int(n as i64))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Json::Float(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::Str(s.into()))
            }
            fn visit_string<E>(self, s: String) -> Result<Json, E> {
                Ok(Json::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = vec![];
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Json::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = vec![];
                while let Some((k, x)) = a.next_entry::<String, Json>()? {
                    v.push((k, x));
                }
                Ok(Json::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Validates `value` against a schema of the OpenAPI document (the subset it uses:
/// type, nullable, required, properties, items, $ref, allOf, enum). Objects must carry
/// exactly the schema's properties (no extras), and when `required` lists them all the
/// keys must appear in that order. Returns the list of violations.
pub fn validate(
    doc: &serde_json::Value,
    schema: &serde_json::Value,
    value: &Json,
    path: &str,
    errs: &mut Vec<String>,
) {
    if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        // A $ref sibling of nullable is not allowed in 3.0; nullability lives in the target.
        return validate(doc, target, value, path, errs);
    }
    if let Some(all) = schema.get("allOf").and_then(|a| a.as_array()) {
        // allOf of an entity and its @odata.context: validate the entity minus the context.
        let stripped = match value {
            Json::Obj(kv) => {
                if kv.first().map(|(k, _)| k.as_str()) != Some("@odata.context") {
                    errs.push(format!("{path}: @odata.context must come first"));
                }
                Json::Obj(
                    kv.iter()
                        .filter(|(k, _)| k != "@odata.context")
                        .cloned()
                        .collect(),
                )
            }
            other => other.clone(),
        };
        validate(doc, &all[0], &stripped, path, errs);
        return;
    }
    let nullable = schema
        .get("nullable")
        .and_then(|n| n.as_bool())
        .unwrap_or(false);
    if *value == Json::Null {
        if !nullable {
            errs.push(format!("{path}: null not allowed"));
        }
        return;
    }
    if let Some(en) = schema.get("enum").and_then(|e| e.as_array()) {
        if let Json::Str(s) = value {
            if !en.iter().any(|x| x.as_str() == Some(s)) {
                errs.push(format!("{path}: {s:?} not in enum"));
            }
        }
    }
    let ty = schema
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("object");
    match (ty, value) {
        ("string", Json::Str(_)) | ("boolean", Json::Bool(_)) | ("integer", Json::Int(_)) => {}
        ("number", Json::Int(_) | Json::Float(_)) => {}
        ("array", Json::Arr(items)) => {
            for (i, it) in items.iter().enumerate() {
                validate(doc, &schema["items"], it, &format!("{path}[{i}]"), errs);
            }
        }
        ("object", Json::Obj(kv)) => {
            let props = schema.get("properties").and_then(|p| p.as_object());
            let required: Vec<&str> = schema
                .get("required")
                .and_then(|r| r.as_array())
                .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            for r in &required {
                if !kv.iter().any(|(k, _)| k == r) {
                    errs.push(format!("{path}: missing key {r}"));
                }
            }
            if let Some(props) = props {
                for (k, v) in kv {
                    match props.get(k) {
                        Some(s) => validate(doc, s, v, &format!("{path}.{k}"), errs),
                        None => errs.push(format!("{path}: unexpected key {k}")),
                    }
                }
                if required.len() == props.len() {
                    let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
                    if keys != required {
                        errs.push(format!("{path}: key order {keys:?} != {required:?}"));
                    }
                }
            }
        }
        (t, v) => errs.push(format!("{path}: expected {t}, got {v:?}")),
    }
}
