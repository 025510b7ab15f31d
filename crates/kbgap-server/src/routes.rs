//! The Defender GET routes (§3): route table, path normalisation, the auth+throttle extractor and the handlers.
//!
//! [`ROUTES`] is the single source of the router and of the OpenAPI consistency test.
//! Paths are normalised before routing ([`normalize_path`]): literal segments match
//! case-insensitively and are rewritten to their canonical case, trailing whitespace
//! (literal or `%20`) and slashes are trimmed, `/api/v1.0/...` becomes `/api/...`, and a
//! literal segment beats a `{param}` one.

use crate::api_model::{ApiEntity, Machine, SoftwareId};
use crate::auth::{authorise, Caller, Permission};
use crate::data::{DataError, DataResult, FleetData};
use crate::error::ApiError;
use crate::odata::{self, QueryMode, QueryOptions};
use crate::throttle::Limit;
use crate::AppState;
use axum::extract::{FromRequestParts, MatchedPath, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{Request, Uri};
use axum::response::{IntoResponse, Response};
use kbgap_core::{CveId, MachineId};

/// What a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `GET /api/machines`
    Machines,
    /// `GET /api/machines/{id}`
    Machine,
    /// `GET /api/machines/{id}/software`
    MachineSoftware,
    /// `GET /api/machines/{id}/vulnerabilities`
    MachineVulnerabilities,
    /// `GET /api/machines/{id}/getmissingkbs`
    MachineMissingKbs,
    /// `GET /api/Software`
    SoftwareList,
    /// `GET /api/Software/{id}`
    Software,
    /// `GET /api/Software/{id}/machineReferences`
    SoftwareMachineReferences,
    /// `GET /api/Software/{id}/vulnerabilities`
    SoftwareVulnerabilities,
    /// `GET /api/Software/{id}/getmissingkbs`
    SoftwareMissingKbs,
    /// `GET /api/vulnerabilities`
    Vulnerabilities,
    /// `GET /api/vulnerabilities/{id}`
    Vulnerability,
    /// `GET /api/vulnerabilities/{id}/machineReferences`
    VulnerabilityMachineReferences,
    /// `GET /api/vulnerabilities/machinesVulnerabilities`
    MachinesVulnerabilities,
    /// `POST /kbgap/v1/devices` (one report, any inventory format)
    IngestDevice,
    /// `POST /kbgap/v1/devices:batch` (JSON)
    IngestBatch,
}

/// One GET route: its template (axum syntax, canonical case), permission and rate limit.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// Path template, e.g. `/api/machines/{id}/getmissingkbs`.
    pub template: &'static str,
    /// The handler.
    pub kind: RouteKind,
    /// Permission family (§7).
    pub permission: Permission,
    /// Documented rate limit (§3).
    pub limit: Limit,
}

const fn spec(template: &'static str, kind: RouteKind, permission: Permission) -> RouteSpec {
    RouteSpec {
        template,
        kind,
        permission,
        limit: Limit::DEFAULT,
    }
}

/// Every route the router serves.
pub const ROUTES: &[RouteSpec] = &[
    spec("/api/machines", RouteKind::Machines, Permission::Machine),
    spec(
        "/api/machines/{id}",
        RouteKind::Machine,
        Permission::Machine,
    ),
    spec(
        "/api/machines/{id}/software",
        RouteKind::MachineSoftware,
        Permission::Software,
    ),
    RouteSpec {
        limit: Limit {
            per_minute: 50,
            per_hour: 1500,
        },
        ..spec(
            "/api/machines/{id}/vulnerabilities",
            RouteKind::MachineVulnerabilities,
            Permission::Vulnerability,
        )
    },
    spec(
        "/api/machines/{id}/getmissingkbs",
        RouteKind::MachineMissingKbs,
        Permission::Software,
    ),
    spec(
        "/api/Software",
        RouteKind::SoftwareList,
        Permission::Software,
    ),
    spec(
        "/api/Software/{id}",
        RouteKind::Software,
        Permission::Software,
    ),
    spec(
        "/api/Software/{id}/machineReferences",
        RouteKind::SoftwareMachineReferences,
        Permission::Software,
    ),
    spec(
        "/api/Software/{id}/vulnerabilities",
        RouteKind::SoftwareVulnerabilities,
        Permission::Vulnerability,
    ),
    spec(
        "/api/Software/{id}/getmissingkbs",
        RouteKind::SoftwareMissingKbs,
        Permission::Software,
    ),
    spec(
        "/api/vulnerabilities",
        RouteKind::Vulnerabilities,
        Permission::Vulnerability,
    ),
    spec(
        "/api/vulnerabilities/{id}",
        RouteKind::Vulnerability,
        Permission::Vulnerability,
    ),
    spec(
        "/api/vulnerabilities/{id}/machineReferences",
        RouteKind::VulnerabilityMachineReferences,
        Permission::Vulnerability,
    ),
    spec(
        "/api/vulnerabilities/machinesVulnerabilities",
        RouteKind::MachinesVulnerabilities,
        Permission::Vulnerability,
    ),
];

/// kbgap's own POST routes (device ingestion). Kept apart from [`ROUTES`], which are the GET
/// routes of the Defender contract.
pub const INGEST_ROUTES: &[RouteSpec] = &[
    RouteSpec {
        limit: INGEST_LIMIT,
        ..spec(
            "/kbgap/v1/devices",
            RouteKind::IngestDevice,
            Permission::DeviceIngest,
        )
    },
    RouteSpec {
        limit: INGEST_LIMIT,
        ..spec(
            "/kbgap/v1/devices:batch",
            RouteKind::IngestBatch,
            Permission::DeviceIngest,
        )
    },
];

/// Ingestion rate limit per (route, app, tenant): fleets report in bursts.
const INGEST_LIMIT: Limit = Limit {
    per_minute: 6_000,
    per_hour: 200_000,
};

/// Every route: the Defender GET routes then kbgap's ingestion routes.
pub fn all_routes() -> impl Iterator<Item = &'static RouteSpec> {
    ROUTES.iter().chain(INGEST_ROUTES.iter())
}

/// The OpenAPI document's path (served without authentication).
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// A constant-cost liveness route (`{"ok":true}`, no authentication, no data access): the
/// ceiling the HTTP benchmarks compare real routes against.
pub const PING_PATH: &str = "/kbgap/v1/ping";

/// Defender routes kbgap does not serve; their literal segments must still beat `{id}`
/// so they answer `404 NotFound` instead of "Machine … was not found".
const RESERVED: &[&str] = &[
    "/api/machines/SoftwareVulnerabilitiesByMachine",
    "/api/machines/SoftwareVulnerabilitiesExport",
    "/api/machines/SoftwareVulnerabilityChangesByMachine",
    "/api/machines/{id}/recommendations",
    "/api/recommendations",
    "/api/Software/{id}/distributions",
];

/// Where reserved routes are sent: nothing is routed there, so the fallback answers.
const UNROUTED: &str = "/api/~not-served";

fn trim_trailing(path: &str) -> &str {
    let mut p = path;
    loop {
        let before = p.len();
        p = p.trim_end();
        for enc in ["%20", "%09", "%0A", "%0D", "%0a", "%0d"] {
            if let Some(s) = p.strip_suffix(enc) {
                p = s;
            }
        }
        if p.len() > 1 {
            p = p.strip_suffix('/').unwrap_or(p);
        }
        if p.len() == before {
            return p;
        }
    }
}

/// Normalises a request path to the canonical route path (see the module doc).
pub fn normalize_path(path: &str) -> String {
    let trimmed = trim_trailing(path);
    let mut segs: Vec<&str> = trimmed.split('/').skip(1).collect();
    if segs.len() >= 2
        && segs[0].eq_ignore_ascii_case("api")
        && segs[1].eq_ignore_ascii_case("v1.0")
    {
        segs.remove(1);
    }
    let templates = all_routes()
        .map(|r| (r.template, false))
        .chain(RESERVED.iter().map(|t| (*t, true)))
        .chain(std::iter::once((OPENAPI_PATH, false)))
        .chain(std::iter::once((PING_PATH, false)));
    let mut best: Option<(usize, &str, bool)> = None;
    for (t, reserved) in templates {
        let tsegs: Vec<&str> = t.split('/').skip(1).collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut literals = 0;
        let ok = tsegs.iter().zip(&segs).all(|(ts, s)| {
            if ts.starts_with('{') {
                !s.is_empty()
            } else if ts.eq_ignore_ascii_case(s) {
                literals += 1;
                true
            } else {
                false
            }
        });
        if ok && best.is_none_or(|(n, _, _)| literals > n) {
            best = Some((literals, t, reserved));
        }
    }
    match best {
        Some((_, _, true)) => UNROUTED.to_string(),
        Some((_, t, false)) => {
            let out: Vec<&str> = t
                .split('/')
                .skip(1)
                .zip(&segs)
                .map(|(ts, s)| if ts.starts_with('{') { *s } else { ts })
                .collect();
            format!("/{}", out.join("/"))
        }
        None => format!("/{}", segs.join("/")),
    }
}

/// Rewrites the request URI with [`normalize_path`], keeping the query.
pub fn normalize_request<B>(mut req: Request<B>) -> Request<B> {
    let uri = req.uri();
    let path = normalize_path(uri.path());
    if path != uri.path() {
        let pq = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(new) = pq.parse::<Uri>() {
            *req.uri_mut() = new;
        }
    }
    req
}

/// An authenticated, authorised and not-throttled caller of the matched route.
#[derive(Debug, Clone)]
pub struct Authorized(pub Caller);

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = state.auth().verify_headers(&parts.headers)?;
        let matched = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let route = all_routes()
            .find(|r| r.template == matched)
            .ok_or(ApiError::NotFound)?;
        authorise(&caller, route.permission)?;
        let limit = state.limit_for(route);
        state
            .throttle()
            .check(route.template, limit, &caller.app, &caller.tenant)
            .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
        Ok(Self(caller))
    }
}

fn data_err(e: DataError) -> ApiError {
    match e {
        DataError::Unavailable(m) => ApiError::Unavailable(m),
        DataError::Internal(m) => ApiError::Internal(m),
    }
}

/// Runs a data call on the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn FleetData) -> DataResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    let data = state.data();
    tokio::task::spawn_blocking(move || f(data.as_ref()))
        .await
        .map_err(|e| ApiError::Internal(format!("data task failed: {e}")))?
        .map_err(data_err)
}

fn json_response(body: Vec<u8>) -> Response {
    body.into_response()
}

fn entity_response<T: ApiEntity>(
    state: &AppState,
    suffix: &str,
    row: &T,
) -> Result<Response, ApiError> {
    let row_bytes =
        serde_json::to_vec(row).map_err(|e| ApiError::Internal(format!("serialising: {e}")))?;
    let ctx = serde_json::to_string(&state.context(suffix))
        .map_err(|e| ApiError::Internal(format!("serialising: {e}")))?;
    let mut out = Vec::with_capacity(row_bytes.len() + ctx.len() + 24);
    out.extend_from_slice(b"{\"@odata.context\":");
    out.extend_from_slice(ctx.as_bytes());
    if row_bytes.len() > 2 {
        out.push(b',');
        out.extend_from_slice(&row_bytes[1..]);
    } else {
        out.push(b'}');
    }
    Ok(json_response(out))
}

/// A collection with full OData options, capped at `cap` rows per page.
fn odata_response<T: ApiEntity>(
    state: &AppState,
    suffix: &str,
    path: &str,
    rows: &[T],
    opts: &QueryOptions,
    cap: usize,
) -> Result<Response, ApiError> {
    let page = odata::apply(rows, opts, cap);
    let link = page
        .next_skip
        .map(|n| odata::next_link(&state.config().public_base_url, path, opts, n));
    let body = odata::render_collection(
        &state.context(suffix),
        &page.rows,
        opts.select.as_deref(),
        opts.count.then_some(page.total),
        link.as_deref(),
    )?;
    Ok(json_response(body))
}

/// A small collection returned whole (query options ignored, or rejected in strict mode).
fn plain_response<T: ApiEntity>(
    state: &AppState,
    suffix: &str,
    rows: &[T],
) -> Result<Response, ApiError> {
    let refs: Vec<&T> = rows.iter().collect();
    Ok(json_response(odata::render_collection(
        &state.context(suffix),
        &refs,
        None,
        None,
        None,
    )?))
}

fn check_plain_query<T: ApiEntity>(state: &AppState, q: &Option<String>) -> Result<(), ApiError> {
    odata::parse_query::<T>(q.as_deref(), QueryMode::None, state.config().strict_odata).map(|_| ())
}

/// Resolves a machine path id: 40-hex id first, else a computer name.
async fn resolve_machine(state: &AppState, text: &str) -> Result<MachineId, ApiError> {
    if let Ok(id) = text.parse::<MachineId>() {
        return Ok(id);
    }
    let name = text.to_owned();
    blocking(state, move |d| d.machine_by_name(&name))
        .await?
        .map(|m| m.id)
        .ok_or_else(|| ApiError::machine_not_found(text))
}

fn parse_software(text: &str) -> Result<SoftwareId, ApiError> {
    text.parse().map_err(|_| ApiError::software_not_found(text))
}

fn parse_cve(text: &str) -> Result<CveId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::vulnerability_not_found(text))
}

const VULN_P: &str = "Collection(Analytics.Contracts.PublicAPI.PublicVulnerabilityDto)";
const FIX_C: &str = "Collection(microsoft.windowsDefenderATP.api.PublicProductFixDto)";

async fn machines(
    State(state): State<AppState>,
    _auth: Authorized,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let opts =
        odata::parse_query::<Machine>(q.as_deref(), QueryMode::Full, state.config().strict_odata)?;
    let rows = blocking(&state, |d| d.machines()).await?;
    odata_response(&state, "Machines", "/api/machines", &rows, &opts, 10_000)
}

async fn machine(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<Machine>(&state, &q)?;
    let text = id.clone();
    let found = blocking(&state, move |d| match text.parse::<MachineId>() {
        Ok(mid) => d.machine_by_id(mid),
        Err(_) => d.machine_by_name(&text),
    })
    .await?
    .ok_or_else(|| ApiError::machine_not_found(&id))?;
    entity_response(&state, "Machines/$entity", &found)
}

async fn machine_software(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::Software>(&state, &q)?;
    let mid = resolve_machine(&state, &id).await?;
    let rows = blocking(&state, move |d| d.machine_software(mid))
        .await?
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    plain_response(&state, "Software", &rows)
}

async fn machine_vulnerabilities(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::PublicVulnerabilityDto>(&state, &q)?;
    let mid = resolve_machine(&state, &id).await?;
    let rows = blocking(&state, move |d| d.machine_vulnerabilities(mid))
        .await?
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    plain_response(&state, VULN_P, &rows)
}

async fn machine_missing_kbs(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::PublicProductFixDto>(&state, &q)?;
    let mid = resolve_machine(&state, &id).await?;
    let rows = blocking(&state, move |d| d.missing_kbs_for_machine(mid))
        .await?
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    plain_response(&state, FIX_C, &rows)
}

async fn software_list(
    State(state): State<AppState>,
    _auth: Authorized,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let opts = odata::parse_query::<crate::api_model::Software>(
        q.as_deref(),
        QueryMode::Full,
        state.config().strict_odata,
    )?;
    let rows = blocking(&state, |d| d.software_list()).await?;
    odata_response(&state, "Software", "/api/Software", &rows, &opts, 10_000)
}

async fn software(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::Software>(&state, &q)?;
    let sid = parse_software(&id)?;
    let row = blocking(&state, move |d| d.software(&sid))
        .await?
        .ok_or_else(|| ApiError::software_not_found(&id))?;
    entity_response(&state, "Software/$entity", &row)
}

async fn software_machine_refs(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::MachineReference>(&state, &q)?;
    let sid = parse_software(&id)?;
    let rows = blocking(&state, move |d| d.software_machine_refs(&sid))
        .await?
        .ok_or_else(|| ApiError::software_not_found(&id))?;
    plain_response(&state, "MachineReferences", &rows)
}

async fn software_vulnerabilities(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::PublicVulnerabilityDto>(&state, &q)?;
    let sid = parse_software(&id)?;
    let rows = blocking(&state, move |d| d.software_vulnerabilities(&sid))
        .await?
        .ok_or_else(|| ApiError::software_not_found(&id))?;
    plain_response(&state, VULN_P, &rows)
}

async fn software_missing_kbs(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::PublicProductFixDto>(&state, &q)?;
    let sid = parse_software(&id)?;
    let rows = blocking(&state, move |d| d.missing_kbs_for_software(&sid))
        .await?
        .ok_or_else(|| ApiError::software_not_found(&id))?;
    plain_response(&state, FIX_C, &rows)
}

async fn vulnerabilities(
    State(state): State<AppState>,
    _auth: Authorized,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let opts = odata::parse_query::<crate::api_model::PublicVulnerabilityDto>(
        q.as_deref(),
        QueryMode::Full,
        state.config().strict_odata,
    )?;
    let rows = blocking(&state, |d| d.vulnerabilities()).await?;
    odata_response(
        &state,
        "Vulnerabilities",
        "/api/vulnerabilities",
        &rows,
        &opts,
        8_000,
    )
}

async fn vulnerability(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::PublicVulnerabilityDto>(&state, &q)?;
    let cve = parse_cve(&id)?;
    let row = blocking(&state, move |d| d.vulnerability(&cve))
        .await?
        .ok_or_else(|| ApiError::vulnerability_not_found(&id))?;
    entity_response(&state, "Vulnerabilities/$entity", &row)
}

async fn vulnerability_machine_refs(
    State(state): State<AppState>,
    _auth: Authorized,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_plain_query::<crate::api_model::MachineReference>(&state, &q)?;
    let cve = parse_cve(&id)?;
    let rows = blocking(&state, move |d| d.vulnerability_machine_refs(&cve))
        .await?
        .ok_or_else(|| ApiError::vulnerability_not_found(&id))?;
    plain_response(&state, "MachineReferences", &rows)
}

async fn machines_vulnerabilities(
    State(state): State<AppState>,
    _auth: Authorized,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    type Row = crate::api_model::PublicAssetVulnerabilityDto;
    let opts =
        odata::parse_query::<Row>(q.as_deref(), QueryMode::Full, state.config().strict_odata)?;
    let machine_idx = Row::FILTERABLE
        .iter()
        .position(|(p, _)| *p == "machineId")
        .unwrap_or(0);
    let hint = opts
        .filter
        .as_ref()
        .and_then(|f| f.eq_hint(machine_idx))
        .and_then(|s| s.parse::<MachineId>().ok());
    let rows = blocking(&state, move |d| d.machines_vulnerabilities(hint)).await?;
    odata_response(
        &state,
        "Collection(microsoft.windowsDefenderATP.api.PublicAssetVulnerabilityDto)",
        "/api/vulnerabilities/machinesVulnerabilities",
        &rows,
        &opts,
        10_000,
    )
}

/// Unknown routes: authenticate first (no probing without a token), then `404 NotFound`.
pub async fn fallback(State(state): State<AppState>, headers: axum::http::HeaderMap) -> ApiError {
    match state.auth().verify_headers(&headers) {
        Err(e) => e,
        Ok(_) => ApiError::NotFound,
    }
}

/// The OpenAPI document kept in the crate (`openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    OPENAPI_JSON.as_bytes().to_vec().into_response()
}

async fn ping() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true}"#,
    )
        .into_response()
}

/// Builds the inner (already-normalised) router from [`ROUTES`].
pub fn inner_router(state: AppState) -> axum::Router {
    use axum::routing::get;
    let mut r = axum::Router::new()
        .route(OPENAPI_PATH, get(openapi))
        .route(PING_PATH, get(ping));
    for route in ROUTES {
        let mr = match route.kind {
            RouteKind::Machines => get(machines),
            RouteKind::Machine => get(machine),
            RouteKind::MachineSoftware => get(machine_software),
            RouteKind::MachineVulnerabilities => get(machine_vulnerabilities),
            RouteKind::MachineMissingKbs => get(machine_missing_kbs),
            RouteKind::SoftwareList => get(software_list),
            RouteKind::Software => get(software),
            RouteKind::SoftwareMachineReferences => get(software_machine_refs),
            RouteKind::SoftwareVulnerabilities => get(software_vulnerabilities),
            RouteKind::SoftwareMissingKbs => get(software_missing_kbs),
            RouteKind::Vulnerabilities => get(vulnerabilities),
            RouteKind::Vulnerability => get(vulnerability),
            RouteKind::VulnerabilityMachineReferences => get(vulnerability_machine_refs),
            RouteKind::MachinesVulnerabilities => get(machines_vulnerabilities),
            RouteKind::IngestDevice | RouteKind::IngestBatch => continue,
        };
        r = r.route(route.template, mr);
    }
    r = r
        .route(
            INGEST_ROUTES[0].template,
            axum::routing::post(crate::ingest::ingest_one),
        )
        .route(
            INGEST_ROUTES[1].template,
            axum::routing::post(crate::ingest::ingest_batch),
        );
    r.fallback(fallback)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}
