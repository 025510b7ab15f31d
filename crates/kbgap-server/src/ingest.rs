//! kbgap's ingestion endpoints: `POST /kbgap/v1/devices` (one report, raw body, any inventory
//! format) and `POST /kbgap/v1/devices:batch` (JSON), see docs/ingestion.md.
//!
//! Bodies are capped at [`MAX_BODY_BYTES`] (413 `PayloadTooLarge`); a body that cannot be read
//! is a 400 `InvalidRequestBody` naming the report and line; a batch is stored in one
//! transaction, so a bad report stores nothing.

use crate::error::ApiError;
use crate::fleet::{IngestError, IngestedDevice};
use crate::routes::Authorized;
use crate::AppState;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kbgap_inventory::Device;
use kbgap_store::UpsertAction;
use serde::{Deserialize, Serialize};

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The header that names the host of a KB-list-only report.
pub const HOST_HEADER: &str = "x-kbgap-host";

fn too_large(len: Option<u64>) -> ApiError {
    ApiError::PayloadTooLarge(match len {
        Some(n) => format!("request body of {n} bytes exceeds the {MAX_BODY_BYTES}-byte limit"),
        None => format!("request body exceeds the {MAX_BODY_BYTES}-byte limit"),
    })
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large(declared));
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large(declared))
}

/// Response body of both routes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestResponse {
    /// Devices newly stored.
    pub added: usize,
    /// Devices whose report was replaced.
    pub replaced: usize,
    /// Devices whose report was the same (only lastSeen moved).
    pub unchanged: usize,
    /// One row per stored device, in request order (after folding KB lists into their host).
    pub devices: Vec<IngestedDevice>,
}

fn respond(rows: Vec<IngestedDevice>) -> Response {
    let count = |a: UpsertAction| rows.iter().filter(|r| r.action == a).count();
    let body = IngestResponse {
        added: count(UpsertAction::Added),
        replaced: count(UpsertAction::Replaced),
        unchanged: count(UpsertAction::Unchanged),
        devices: rows,
    };
    let status = if body.added > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, serde_json::to_vec(&body).unwrap_or_default()).into_response()
}

async fn store(state: &AppState, devices: Vec<Device>) -> Result<Response, ApiError> {
    let Some(sink) = state.ingest() else {
        return Err(ApiError::NotFound);
    };
    let rows = tokio::task::spawn_blocking(move || sink.ingest(devices))
        .await
        .map_err(|e| ApiError::Internal(format!("ingest task failed: {e}")))?
        .map_err(|e| match e {
            IngestError::Invalid(m) => ApiError::InvalidRequestBody(m),
            IngestError::Data(d) => match d {
                crate::DataError::Unavailable(m) => ApiError::Unavailable(m),
                crate::DataError::Internal(m) => ApiError::Internal(m),
            },
        })?;
    Ok(respond(rows))
}

/// Gives a report without a host name the one the caller named; refuses a conflicting one.
fn apply_host(device: &mut Device, host: Option<&str>, source: &str) -> Result<(), ApiError> {
    let Some(h) = host.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    match &device.host_name {
        None => {
            device.host_name = Some(h.to_owned());
            Ok(())
        }
        Some(own) if own.eq_ignore_ascii_case(h) => Ok(()),
        Some(own) => Err(ApiError::InvalidRequestBody(format!(
            "{source}: the report names host {own:?} but the request names {h:?}"
        ))),
    }
}

fn parse_report(bytes: &[u8], source: &str, host: Option<&str>) -> Result<Device, ApiError> {
    let mut d = kbgap_inventory::parse_any(bytes, source)
        .map_err(|e| ApiError::InvalidRequestBody(e.to_string()))?;
    apply_host(&mut d, host, source)?;
    Ok(d)
}

/// `POST /kbgap/v1/devices[?hostName=H][&name=N]`: one report as the raw body.
pub async fn ingest_one(
    State(state): State<AppState>,
    _auth: Authorized,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut host: Option<String> = headers
        .get(HOST_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut name = "body".to_owned();
    for (k, v) in form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "hostName" => host = Some(v.into_owned()),
            "name" => name = v.into_owned(),
            other => {
                return Err(ApiError::InvalidRequestBody(format!(
                    "unknown query parameter {other:?} (allowed: hostName, name)"
                )))
            }
        }
    }
    let bytes = read_body(&headers, body).await?;
    let device = parse_report(&bytes, &name, host.as_deref())?;
    store(&state, vec![device]).await
}

/// One entry of the `{"reports": [...]}` batch form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BatchItem {
    /// Report text (systeminfo, qfe, Get-HotFix, osquery or kbgap JSON as a string).
    content: String,
    /// Optional format check: `auto` (default), `systeminfo`, `qfe`, `gethotfix`, `osquery`, `kbgap`.
    #[serde(default)]
    format: Option<String>,
    /// Name used in messages (and to pair `X_qfe.txt` with `X_systeminfo.txt`).
    #[serde(default)]
    name: Option<String>,
    /// Host of a KB-list-only report.
    #[serde(default)]
    host_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchEnvelope {
    reports: Vec<BatchItem>,
}

fn format_matches(wanted: &str, got: kbgap_inventory::SourceFormat) -> Option<bool> {
    use kbgap_inventory::SourceFormat as F;
    let ok = match wanted.to_ascii_lowercase().as_str() {
        "auto" => true,
        "systeminfo" => matches!(got, F::Systeminfo | F::SysteminfoCsv),
        "qfe" | "wmic" => got == F::WmicQfe,
        "gethotfix" | "get-hotfix" => matches!(got, F::GetHotFixCsv | F::GetHotFixTable),
        "osquery" => got == F::Osquery,
        "kbgap" => got == F::KbgapReport,
        _ => return None,
    };
    Some(ok)
}

/// `POST /kbgap/v1/devices:batch`: a JSON array of kbgap reports, or
/// `{"reports": [{"content": "...", "format"?, "name"?, "hostName"?}]}`. All or nothing.
pub async fn ingest_batch(
    State(state): State<AppState>,
    _auth: Authorized,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body).await?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::InvalidRequestBody(format!(
            "batch:{}: not JSON: {e} (expected an array of kbgap reports or {{\"reports\": [...]}})",
            e.line()
        ))
    })?;
    let mut parsed: Vec<(String, Device)> = Vec::new();
    match value {
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let source = format!("batch[{i}]");
                let text = serde_json::to_vec_pretty(item)
                    .map_err(|e| ApiError::Internal(format!("re-serialising: {e}")))?;
                parsed.push((source.clone(), parse_report(&text, &source, None)?));
            }
        }
        other => {
            let env: BatchEnvelope = serde_json::from_value(other).map_err(|e| {
                ApiError::InvalidRequestBody(format!(
                    "batch: {e} (expected an array of kbgap reports or {{\"reports\": [{{\"content\": ...}}]}})"
                ))
            })?;
            for (i, item) in env.reports.into_iter().enumerate() {
                let source = item.name.clone().unwrap_or_else(|| format!("reports[{i}]"));
                let d = parse_report(item.content.as_bytes(), &source, item.host_name.as_deref())?;
                if let Some(f) = item.format.as_deref() {
                    match format_matches(f, d.source_format) {
                        None => {
                            return Err(ApiError::InvalidRequestBody(format!(
                                "reports[{i}].format: unknown format {f:?} (allowed: auto, systeminfo, qfe, gethotfix, osquery, kbgap)"
                            )))
                        }
                        Some(false) => {
                            return Err(ApiError::InvalidRequestBody(format!(
                                "reports[{i}].format: declared {f:?} but the content reads as {:?}",
                                d.source_format
                            )))
                        }
                        Some(true) => {}
                    }
                }
                parsed.push((source, d));
            }
        }
    }
    if parsed.is_empty() {
        return Err(ApiError::InvalidRequestBody("batch: no reports".into()));
    }
    let devices = kbgap_inventory::merge::fold_kb_lists(parsed)
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    store(&state, devices).await
}
