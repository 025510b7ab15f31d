//! Oneshot tests of the Defender-compatible routes over an in-memory fleet: bodies, schemas, auth, OData, paging, throttling, paths.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kbgap_core::MachineId;
use kbgap_server::routes::ROUTES;
use kbgap_server::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CONTRACT_EXAMPLE: &str = r#"{"@odata.context":"https://api.security.microsoft.com/api/$metadata#Collection(microsoft.windowsDefenderATP.api.PublicProductFixDto)","value":[{"id":"4540673","name":"March 2020 Security Updates","productsNames":["windows_10","edge","internet_explorer"],"url":"https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB4540673","machineMissedOn":1,"cveAddressed":97,"osBuild":null}]}"#;

#[tokio::test]
async fn getmissingkbs_matches_the_contract_example_byte_for_byte() {
    let app = app(sample_fleet());
    let r = get(
        &app,
        &format!("/api/machines/{M1}/getmissingkbs"),
        Some(&token(&["Software.Read.All"])),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, CONTRACT_EXAMPLE);
    insta::assert_json_snapshot!("getmissingkbs_machine", r.json());
    // By software: same KB, same machineMissedOn.
    let r = get(
        &app,
        "/api/software/microsoft-_-edge/getmissingkbs",
        Some(&token(&["Software.Read.All"])),
    )
    .await;
    assert_eq!(r.body, CONTRACT_EXAMPLE);
    // Delegated Software.Read is accepted on the device variant too.
    let t = custom_token(
        serde_json::json!({"scp": "Software.Read"}),
        Algorithm::HS256,
        SECRET,
    );
    let r = get(&app, &format!("/api/machines/{M1}/getmissingkbs"), Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn getmissingkbs_empty_unknown_malformed_and_by_name() {
    let app = app(sample_fleet());
    let t = all_roles();
    let r = get(&app, &format!("/api/machines/{M2}/getmissingkbs"), Some(&t)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"], serde_json::json!([]));
    let r = get(&app, "/api/machines/123123123/getmissingkbs", Some(&t)).await;
    assert_eq!(
        r.assert_error(404, "ResourceNotFound"),
        "Machine 123123123 was not found"
    );
    insta::assert_json_snapshot!("machine_not_found", r.json(), {".error.target" => "[request-id]"});
    let unknown = "ffffffffffffffffffffffffffffffffffffffff";
    let r = get(
        &app,
        &format!("/api/machines/{unknown}/getmissingkbs"),
        Some(&t),
    )
    .await;
    assert_eq!(
        r.assert_error(404, "ResourceNotFound"),
        format!("Machine {unknown} was not found")
    );
    // Computer name as id, and upper-case hex.
    let r = get(&app, "/api/machines/SE-POV-DESKTOP/getmissingkbs", Some(&t)).await;
    assert_eq!(r.body, CONTRACT_EXAMPLE);
    let r = get(
        &app,
        &format!("/api/machines/{}/getmissingkbs", M1.to_uppercase()),
        Some(&t),
    )
    .await;
    assert_eq!(r.body, CONTRACT_EXAMPLE);
    let r = get(
        &app,
        "/api/Software/microsoft-_-nothing/getmissingkbs",
        Some(&t),
    )
    .await;
    assert_eq!(
        r.assert_error(404, "ResourceNotFound"),
        "Software microsoft-_-nothing was not found"
    );
    // Repeated calls: same answer.
    let a = get(&app, &format!("/api/machines/{M1}/getmissingkbs"), Some(&t)).await;
    let b = get(&app, &format!("/api/machines/{M1}/getmissingkbs"), Some(&t)).await;
    assert_eq!(a.body, b.body);
}

fn openapi() -> serde_json::Value {
    serde_json::from_str(kbgap_server::routes::OPENAPI_JSON).unwrap()
}

fn response_schema(doc: &serde_json::Value, template: &str) -> serde_json::Value {
    doc["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        .clone()
}

#[tokio::test]
async fn every_route_body_validates_against_its_schema() {
    let app = app(sample_fleet());
    let t = all_roles();
    let doc = openapi();
    let concrete = |tpl: &str| {
        let id = if tpl.starts_with("/api/machines") {
            M1
        } else if tpl.starts_with("/api/Software") {
            "microsoft-_-edge"
        } else {
            "CVE-2019-0608"
        };
        tpl.replace("{id}", id)
    };
    let mut checked_nonempty = 0;
    for route in ROUTES {
        let uri = concrete(route.template);
        let r = get(&app, &uri, Some(&t)).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.body);
        let body = r.ordered();
        let ctx = match body.get("@odata.context") {
            Some(common::Json::Str(s)) => s.clone(),
            other => panic!("{uri}: context {other:?}"),
        };
        assert!(
            ctx.starts_with("https://api.security.microsoft.com/api/$metadata#"),
            "{ctx}"
        );
        let mut errs = vec![];
        validate(
            &doc,
            &response_schema(&doc, route.template),
            &body,
            &uri,
            &mut errs,
        );
        assert!(errs.is_empty(), "{uri}: {errs:#?}");
        if let Some(common::Json::Arr(v)) = body.get("value") {
            if !v.is_empty() {
                checked_nonempty += 1;
            }
        } else {
            checked_nonempty += 1;
        }
    }
    assert_eq!(
        checked_nonempty,
        ROUTES.len(),
        "every route should return data in the sample fleet"
    );
    // Contexts of §3.
    let ctx = |uri: String| {
        let app = app.clone();
        let t = t.clone();
        async move {
            get(&app, &uri, Some(&t)).await.json()["@odata.context"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let m = |s: &str| format!("{BASE}/api/$metadata#{s}");
    assert_eq!(ctx("/api/machines".into()).await, m("Machines"));
    assert_eq!(
        ctx(format!("/api/machines/{M1}")).await,
        m("Machines/$entity")
    );
    assert_eq!(
        ctx(format!("/api/machines/{M1}/vulnerabilities")).await,
        m("Collection(Analytics.Contracts.PublicAPI.PublicVulnerabilityDto)")
    );
    assert_eq!(
        ctx("/api/Software/microsoft-_-edge".into()).await,
        m("Software/$entity")
    );
    assert_eq!(
        ctx("/api/vulnerabilities/CVE-2019-0608".into()).await,
        m("Vulnerabilities/$entity")
    );
    assert_eq!(
        ctx("/api/vulnerabilities/CVE-2019-0608/machineReferences".into()).await,
        m("MachineReferences")
    );
    assert_eq!(
        ctx("/api/vulnerabilities/machinesVulnerabilities".into()).await,
        m("Collection(microsoft.windowsDefenderATP.api.PublicAssetVulnerabilityDto)")
    );
}

#[tokio::test]
async fn machine_entity_has_live_key_set_and_seven_digit_times() {
    let app = app(sample_fleet());
    let r = get(&app, &format!("/api/machines/{M1}"), Some(&all_roles())).await;
    let body = r.ordered();
    let keys = body.keys();
    assert_eq!(keys[0], "@odata.context");
    assert_eq!(
        &keys[1..],
        <Machine as kbgap_server::api_model::ApiEntity>::KEYS
    );
    assert_eq!(
        body.get("firstSeen"),
        Some(&common::Json::Str("2023-04-19T13:27:53.1618923Z".into()))
    );
    assert_eq!(body.get("vmMetadata"), Some(&common::Json::Null));
    assert_eq!(body.get("rbacGroupId"), Some(&common::Json::Int(0)));
    // By computer name too.
    let r = get(&app, "/api/machines/dave_desktop", Some(&all_roles())).await;
    assert_eq!(r.json()["id"], M2);
}

#[test]
fn openapi_lists_exactly_the_routes() {
    let doc = openapi();
    let documented: HashSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let mut served: HashSet<String> = kbgap_server::routes::all_routes()
        .map(|r| r.template.to_string())
        .collect();
    served.insert(kbgap_server::routes::OPENAPI_PATH.to_string());
    assert_eq!(documented, served);
}

#[tokio::test]
async fn openapi_is_served_without_a_token() {
    let app = app(sample_fleet());
    let r = get(&app, "/api/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["openapi"], "3.0.3");
}

// ---------- auth ----------

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token with default valid claims, overridden/extended by `extra`.
fn custom_token(extra: serde_json::Value, alg: Algorithm, key: &[u8]) -> String {
    let mut claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() - 10,
        "tid": TENANT, "appid": APP,
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let ek = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(key),
        _ => EncodingKey::from_rsa_pem(key).unwrap(),
    };
    let mut h = Header::new(alg);
    if alg == Algorithm::RS256 {
        h.kid = Some("kbgap-test-1".into());
    }
    jsonwebtoken::encode(&h, &claims, &ek).unwrap()
}

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

fn rsa_app() -> axum::Router {
    let auth = AuthConfig::new(BASE)
        .with_issuer(ISSUER)
        .with_entra_tenant(TENANT)
        .with_jwks_file(std::path::Path::new(&format!("{KEYS}/test-jwks.json")))
        .unwrap();
    router(AppState::with_throttle(
        Arc::new(sample_fleet()),
        auth,
        ServerConfig::new(BASE),
        Throttle::disabled(),
    ))
}

#[tokio::test]
async fn rs256_via_jwks_and_entra_issuers() {
    let app = rsa_app();
    let pem = std::fs::read(format!("{KEYS}/test-rsa-private.pem")).unwrap();
    let uri = format!("/api/machines/{M1}/getmissingkbs");
    for iss in [
        format!("https://sts.windows.net/{TENANT}/"),
        format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
    ] {
        for aud in [
            "https://securitycenter.onmicrosoft.com/windowsatpservice",
            "fc780465-2017-40d4-a0c5-307022471b92",
            BASE,
        ] {
            let t = custom_token(
                serde_json::json!({"iss": iss, "aud": aud, "roles": ["Software.Read.All"]}),
                Algorithm::RS256,
                &pem,
            );
            let r = get(&app, &uri, Some(&t)).await;
            assert_eq!(r.status, 200, "{iss} {aud}: {}", r.body);
        }
    }
    // v2 token with azp and an audience array.
    let t = custom_token(
        serde_json::json!({"aud": ["https://example.org", AUDIENCE], "appid": null, "azp": APP, "roles": ["Software.Read.All"]}),
        Algorithm::RS256,
        &pem,
    );
    assert_eq!(get(&app, &uri, Some(&t)).await.status, 200);
    // HS/RS confusion: HS256 "signed" with the RSA public key must fail when the key is RS.
    let public = std::fs::read(format!("{KEYS}/test-rsa-public.pem")).unwrap();
    let t = custom_token(
        serde_json::json!({"roles": ["Software.Read.All"]}),
        Algorithm::HS256,
        &public,
    );
    let r = get(&app, &uri, Some(&t)).await;
    assert_eq!(
        r.assert_error(401, "Unauthorized"),
        "Unauthorized (invalid or expired authorization header)."
    );
    // A local HS256 token is not accepted by an RS-only configuration either.
    let r = get(&app, &uri, Some(&all_roles())).await;
    r.assert_error(401, "Unauthorized");
}

#[tokio::test]
async fn auth_negative_cases() {
    let app = app(sample_fleet());
    let uri = format!("/api/machines/{M1}/getmissingkbs");
    let roles = serde_json::json!(["Software.Read.All"]);
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            custom_token(
                serde_json::json!({"roles": roles, "exp": now() - 3600}),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "not yet valid",
            custom_token(
                serde_json::json!({"roles": roles, "nbf": now() + 3600}),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "wrong aud",
            custom_token(
                serde_json::json!({"roles": roles, "aud": "https://graph.microsoft.com"}),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "wrong iss",
            custom_token(
                serde_json::json!({"roles": roles, "iss": "https://sts.windows.net/evil/"}),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "bad signature",
            custom_token(
                serde_json::json!({"roles": roles}),
                Algorithm::HS256,
                b"another-secret-another-secret-xx",
            ),
        ),
        ("alg none", {
            use base64_like::encode;
            format!("{}.{}.", encode(br#"{"alg":"none","typ":"JWT"}"#), encode(serde_json::to_string(&serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "roles": roles})).unwrap().as_bytes()))
        }),
        ("garbage", "not.a.token".to_string()),
    ];
    for (what, t) in cases {
        let r = get(&app, &uri, Some(&t)).await;
        assert_eq!(
            r.assert_error(401, "Unauthorized"),
            "Unauthorized (invalid or expired authorization header).",
            "{what}"
        );
        assert_eq!(
            r.headers.get("www-authenticate").unwrap(),
            "Bearer",
            "{what}"
        );
    }
    // No header, and a non-Bearer scheme.
    let r = get(&app, &uri, None).await;
    r.assert_error(401, "Unauthorized");
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
    let req = Request::builder()
        .uri(&uri)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .unwrap();
    send(&app, req).await.assert_error(401, "Unauthorized");
    // Missing role: 403 with Defender's parseable text.
    let t = token(&["Vulnerability.Read.All", "Machine.Read.All"]);
    let r = get(&app, &uri, Some(&t)).await;
    assert_eq!(
        r.assert_error(403, "Forbidden"),
        "Missing application roles. API required roles: Software.Read.All, application roles: Vulnerability.Read.All,Machine.Read.All."
    );
    // Authenticate and authorise before looking up: no 404 for an unknown id without rights.
    let r = get(&app, "/api/machines/123/getmissingkbs", Some(&t)).await;
    r.assert_error(403, "Forbidden");
    let r = get(&app, "/api/machines/123/getmissingkbs", None).await;
    r.assert_error(401, "Unauthorized");
    // ReadWrite satisfies Read.
    let r = get(
        &app,
        "/api/machines",
        Some(&token(&["Machine.ReadWrite.All"])),
    )
    .await;
    assert_eq!(r.status, 200);
}

/// Minimal base64url for the hand-made `alg: none` token.
mod base64_like {
    pub fn encode(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

// ---------- OData ----------

#[tokio::test]
async fn odata_filter_select_orderby_count() {
    let app = app(sample_fleet());
    let t = all_roles();
    let r = get(
        &app,
        "/api/machines?$filter=computerDnsName%20eq%20'SE-POV-DESKTOP'&$select=id",
        Some(&t),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        format!(
            r#"{{"@odata.context":"{BASE}/api/$metadata#Machines","value":[{{"id":"{M1}"}}]}}"#
        )
    );
    let r = get(&app, "/api/machines?$filter=startswith(computerDnsName,'dave')%20or%20healthStatus%20eq%20'Active'&$orderby=computerDnsName%20desc&$select=computerDnsName,id&$count=true", Some(&t)).await;
    let v = r.json();
    assert_eq!(v["@odata.count"], 2);
    assert_eq!(v["value"][0]["computerDnsName"], "se-pov-desktop");
    assert_eq!(
        r.ordered().get("value").map(|v| match v {
            common::Json::Arr(a) => a[0].keys().len(),
            _ => 0,
        }),
        Some(2)
    );
    assert_eq!(
        r.ordered().get("value").map(|v| match v {
            common::Json::Arr(a) => a[0].keys()[0].to_string(),
            _ => String::new(),
        }),
        Some("id".into())
    );
    let r = get(
        &app,
        "/api/machines?$filter=rbacGroupId%20gt%200%20and%20lastSeen%20eq%20null",
        Some(&t),
    )
    .await;
    assert_eq!(r.json()["value"][0]["id"], M2);
    let r = get(
        &app,
        "/api/machines?$filter=machineTags%20eq%20'finance'",
        Some(&t),
    )
    .await;
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 1);
    let r = get(
        &app,
        "/api/machines?$filter=lastSeen%20gt%202023-05-01T00:00:00Z",
        Some(&t),
    )
    .await;
    assert_eq!(r.json()["value"][0]["id"], M1);
    let r = get(
        &app,
        "/api/vulnerabilities?$filter=cvssV3%20ge%207%20and%20severity%20eq%20'Critical'",
        Some(&t),
    )
    .await;
    assert_eq!(r.json()["value"][0]["id"], "CVE-2020-0796");
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 1);
    // machinesVulnerabilities agrees with getmissingkbs and supports the Kenna order.
    let r = get(&app, &format!("/api/vulnerabilities/machinesVulnerabilities?$filter=machineId%20eq%20'{M1}'&$orderby=machineId"), Some(&t)).await;
    let rows = r.json()["value"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["fixingKbId"], "4540673");
    let r = get(
        &app,
        "/api/Software?$filter=vendor%20eq%20'microsoft'",
        Some(&t),
    )
    .await;
    assert_eq!(r.json()["value"][0]["id"], "microsoft-_-edge");
}

#[tokio::test]
async fn odata_errors_are_400_naming_the_problem() {
    let app = app(sample_fleet());
    let t = all_roles();
    for (uri, needle) in [
        ("/api/machines?$filter=osBuild%20eq%2019044", "'osBuild'"),
        ("/api/machines?$filter=id%20eq%20'abc", "unterminated"),
        (
            "/api/machines?$filter=rbacGroupId%20eq%20'x'",
            "rbacGroupId",
        ),
        ("/api/machines?$orderby=osBuild", "'osBuild'"),
        ("/api/machines?$select=nope", "'nope'"),
        ("/api/machines?$top=-1", "$top"),
        ("/api/Software?$filter=weaknesses%20gt%201", "'weaknesses'"),
        ("/api/vulnerabilities?$filter=id%20like%20'x'", "like"),
    ] {
        let r = get(&app, uri, Some(&t)).await;
        let msg = r.assert_error(400, "ODataError");
        assert!(msg.contains(needle), "{uri}: {msg}");
    }
    // Unknown parameters are ignored by default, rejected in strict mode.
    assert_eq!(
        get(&app, "/api/machines?foo=bar", Some(&t)).await.status,
        200
    );
    assert_eq!(
        get(
            &app,
            &format!("/api/machines/{M1}/getmissingkbs?$top=1"),
            Some(&t)
        )
        .await
        .status,
        200
    );
    let mut cfg = ServerConfig::new(BASE);
    cfg.strict_odata = true;
    let strict = app_with(sample_fleet(), cfg, Throttle::disabled());
    get(
        &strict,
        &format!("/api/machines/{M1}/getmissingkbs?$top=1"),
        Some(&t),
    )
    .await
    .assert_error(400, "ODataError");
}

fn big_fleet(n: u32) -> InMemoryFleet {
    // Ids in scrambled order so the server's default ordering matters.
    let machines = (0..n)
        .map(|i| {
            let k = i.wrapping_mul(2_654_435_761);
            let mut b = [0u8; 20];
            b[..4].copy_from_slice(&k.to_be_bytes());
            b[16..].copy_from_slice(&i.to_be_bytes());
            Machine::new(MachineId::from_bytes(b), Some(format!("host-{i}")))
        })
        .collect();
    InMemoryFleet::new().with_machines(machines)
}

#[tokio::test]
async fn paging_walks_25000_machines_exactly_once() {
    let app = app(big_fleet(25_000));
    let t = all_roles();
    // Via nextLink.
    let mut seen = HashSet::new();
    let mut uri = "/api/machines?$select=id".to_string();
    let mut pages = 0;
    let mut prev_last = String::new();
    loop {
        let r = get(&app, &uri, Some(&t)).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        let rows = v["value"].as_array().unwrap();
        pages += 1;
        assert!(rows.len() <= 10_000);
        for row in rows {
            let id = row["id"].as_str().unwrap().to_string();
            assert!(id > prev_last, "ids ascending across pages");
            prev_last = id.clone();
            assert!(seen.insert(id));
        }
        match v.get("@odata.nextLink").and_then(|l| l.as_str()) {
            Some(link) => {
                assert!(
                    link.starts_with(&format!("{BASE}/api/machines?$select=id&$skip=")),
                    "{link}"
                );
                uri = link.trim_start_matches(BASE).to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25_000);
    // Via $skip/$top until empty; no nextLink with $top.
    let mut seen2 = HashSet::new();
    let mut skip = 0;
    loop {
        let r = get(
            &app,
            &format!("/api/machines?$top=7000&$skip={skip}&$select=id"),
            Some(&t),
        )
        .await;
        let v = r.json();
        assert!(v.get("@odata.nextLink").is_none());
        let rows = v["value"].as_array().unwrap();
        if rows.is_empty() {
            break;
        }
        for row in rows {
            assert!(seen2.insert(row["id"].as_str().unwrap().to_string()));
        }
        skip += 7000;
    }
    assert_eq!(seen2, seen);
    // $top above the cap is capped; $skip past the end is 200 [].
    let r = get(&app, "/api/machines?$top=20000&$select=id", Some(&t)).await;
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 10_000);
    let r = get(&app, "/api/machines?$skip=90000", Some(&t)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"], serde_json::json!([]));
    // A filter is kept in the nextLink.
    let r = get(
        &app,
        "/api/machines?$filter=startswith(computerDnsName,'host-1')",
        Some(&t),
    )
    .await;
    let v = r.json();
    assert_eq!(v["value"].as_array().unwrap().len(), 10_000);
    assert_eq!(
        v["@odata.nextLink"],
        format!("{BASE}/api/machines?$filter=startswith(computerDnsName,'host-1')&$skip=10000")
    );
}

#[tokio::test]
async fn empty_fleet_lists_are_200_empty() {
    let app = app(InMemoryFleet::new());
    let r = get(&app, "/api/machines", Some(&all_roles())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"], serde_json::json!([]));
}

#[tokio::test]
async fn store_down_is_503() {
    let mut fleet = sample_fleet();
    fleet.down = true;
    let app = app(fleet);
    get(&app, "/api/machines", Some(&all_roles()))
        .await
        .assert_error(503, "ServiceUnavailable");
}

// ---------- throttling ----------

#[tokio::test]
async fn throttling_429_with_retry_after_then_recovers() {
    let clock = Arc::new(ManualClock::default());
    let mut cfg = ServerConfig::new(BASE);
    cfg.limit_overrides.insert(
        "/api/machines".into(),
        Limit {
            per_minute: 2,
            per_hour: 100,
        },
    );
    let app = app_with(sample_fleet(), cfg, Throttle::new(clock.clone()));
    let t = all_roles();
    assert_eq!(get(&app, "/api/machines", Some(&t)).await.status, 200);
    assert_eq!(get(&app, "/api/machines", Some(&t)).await.status, 200);
    let r = get(&app, "/api/machines", Some(&t)).await;
    r.assert_error(429, "TooManyRequests");
    assert_eq!(r.headers.get("retry-after").unwrap(), "30");
    // Other routes and other apps have their own buckets.
    assert_eq!(
        get(&app, &format!("/api/machines/{M1}"), Some(&t))
            .await
            .status,
        200
    );
    let other = mint_token(
        &local_issuer(),
        &["Machine.Read.All".to_string()],
        TENANT,
        "other-app",
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(get(&app, "/api/machines", Some(&other)).await.status, 200);
    clock.advance(Duration::from_secs(30));
    assert_eq!(get(&app, "/api/machines", Some(&t)).await.status, 200);
}

// ---------- paths ----------

#[tokio::test]
async fn path_case_whitespace_and_version_prefix() {
    let app = app(sample_fleet());
    let t = all_roles();
    for uri in [
        format!("/api/machines/{M1}/getmissingkbs%20"),
        format!("/api/machines/{M1}/getmissingkbs%20%20"),
        format!("/API/V1.0/Machines/{M1}/GetMissingKbs"),
        format!("/api/v1.0/machines/{M1}/getmissingkbs/"),
    ] {
        let r = get(&app, &uri, Some(&t)).await;
        assert_eq!(r.body, CONTRACT_EXAMPLE, "{uri}");
    }
    for uri in [
        "/api/software/microsoft-_-edge",
        "/api/SOFTWARE/microsoft-_-edge",
        "/api/v1.0/Software/Microsoft-_-Edge",
    ] {
        assert_eq!(
            get(&app, uri, Some(&t)).await.json()["id"],
            "microsoft-_-edge",
            "{uri}"
        );
    }
    assert_eq!(
        get(&app, "/api/Vulnerabilities/cve-2019-0608", Some(&t))
            .await
            .json()["id"],
        "CVE-2019-0608"
    );
    // Literal segments beat {id}; unknown routes are NotFound, not ResourceNotFound.
    let r = get(
        &app,
        "/api/vulnerabilities/MachinesVulnerabilities",
        Some(&t),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 2);
    for uri in [
        "/api/machines/SoftwareVulnerabilitiesByMachine",
        "/api/alerts",
        "/api/exposureScore",
        "/api/machines/x/y/z",
        "/nothing",
    ] {
        get(&app, uri, Some(&t)).await.assert_error(404, "NotFound");
    }
    // Unknown route without a token: 401 (no probing).
    get(&app, "/api/alerts", None)
        .await
        .assert_error(401, "Unauthorized");
    // Only GET.
    let req = Request::builder()
        .method("POST")
        .uri("/api/machines")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status, 405);
}

#[tokio::test]
async fn hundred_thousand_machines_page_quickly() {
    let app = app(big_fleet(100_000));
    let t = all_roles();
    let started = std::time::Instant::now();
    let r = get(&app, "/api/machines?$filter=startswith(computerDnsName,'host-9')&$orderby=computerDnsName%20desc", Some(&t)).await;
    let elapsed = started.elapsed();
    let v = r.json();
    assert_eq!(v["value"].as_array().unwrap().len(), 10_000);
    assert_eq!(v["value"][0]["computerDnsName"], "host-99999");
    eprintln!("100k machines, filter+sort+page: {elapsed:?}");
}
