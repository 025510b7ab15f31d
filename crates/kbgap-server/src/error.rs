//! The one API error type and its mapping to Defender-shaped HTTP errors, plus the request-id and header middleware.
//!
//! Every error body is `{"error": {"code", "message", "target"}}` with `target` the
//! request's correlation GUID (set by [`request_context`] and also logged). Every response,
//! errors included, carries the OData JSON content type and `OData-Version: 4.0`.

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use serde::Serialize;
use uuid::Uuid;

/// The content type of every response.
pub const CONTENT_TYPE: &str =
    "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8";

/// Default 401 message for a missing, malformed, expired or mis-addressed token.
pub const UNAUTHORIZED_TEXT: &str = "Unauthorized (invalid or expired authorization header).";

tokio::task_local! {
    static REQUEST_ID: Uuid;
}

/// The current request's correlation id (a fresh GUID outside a request).
pub fn current_request_id() -> Uuid {
    REQUEST_ID
        .try_with(|id| *id)
        .unwrap_or_else(|_| Uuid::new_v4())
}

/// Every way a request can fail, mapped to HTTP in [`ApiError::status`] and `IntoResponse`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 401 `Unauthorized`: missing/invalid token, or a licence-state message.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `Forbidden`: valid token without a permission of the route.
    #[error("Missing application roles. API required roles: {}, application roles: {}.", required.join(", "), caller.join(","))]
    Forbidden {
        /// The route's required application roles.
        required: Vec<String>,
        /// The caller's application roles (`roles` claim).
        caller: Vec<String>,
    },
    /// 404 `ResourceNotFound`: unknown entity (message names it).
    #[error("{0}")]
    ResourceNotFound(String),
    /// 404 `NotFound`: unknown route.
    #[error("Resource not found")]
    NotFound,
    /// 405 `MethodNotAllowed`: only GET is served on the Defender routes.
    #[error("The requested method is not allowed on this resource.")]
    MethodNotAllowed,
    /// 400 `ODataError`: bad query options.
    #[error("{0}")]
    OData(String),
    /// 400 `InvalidRequestBody`: an ingestion body that cannot be read (message names the
    /// report and line).
    #[error("{0}")]
    InvalidRequestBody(String),
    /// 413 `PayloadTooLarge`: an ingestion body over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429 `TooManyRequests` with `Retry-After`.
    #[error("Too many requests. Retry after {retry_after_secs} seconds.")]
    TooManyRequests {
        /// Seconds until a call will be accepted again.
        retry_after_secs: u64,
    },
    /// 503 `ServiceUnavailable`: the data store is down.
    #[error("The service is temporarily unavailable: {0}")]
    Unavailable(String),
    /// 500 `InternalServerError`.
    #[error("Internal server error")]
    Internal(String),
}

impl ApiError {
    /// 404 for a machine id or name that resolves to nothing.
    pub fn machine_not_found(id: &str) -> Self {
        Self::ResourceNotFound(format!("Machine {id} was not found"))
    }
    /// 404 for an unknown software id.
    pub fn software_not_found(id: &str) -> Self {
        Self::ResourceNotFound(format!("Software {id} was not found"))
    }
    /// 404 for an unknown vulnerability id.
    pub fn vulnerability_not_found(id: &str) -> Self {
        Self::ResourceNotFound(format!("Vulnerability {id} was not found"))
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::ResourceNotFound(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::OData(_) | Self::InvalidRequestBody(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    /// The Defender error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::ResourceNotFound(_) => "ResourceNotFound",
            Self::NotFound => "NotFound",
            Self::OData(_) => "ODataError",
            Self::InvalidRequestBody(_) => "InvalidRequestBody",
            Self::PayloadTooLarge(_) => "PayloadTooLarge",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::TooManyRequests { .. } => "TooManyRequests",
            Self::Unavailable(_) => "ServiceUnavailable",
            Self::Internal(_) => "InternalServerError",
        }
    }
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    target: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let target = current_request_id();
        let status = self.status();
        match &self {
            Self::Internal(detail) | Self::Unavailable(detail) => {
                tracing::error!(request_id = %target, %status, detail, "request failed")
            }
            _ => {
                tracing::info!(request_id = %target, %status, code = self.code(), message = %self, "request rejected")
            }
        }
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code(),
                message: self.to_string(),
                target: target.to_string(),
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (status, bytes).into_response();
        match self {
            Self::Unauthorized(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests { retry_after_secs } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        resp
    }
}

/// Outermost middleware: assigns the request GUID (task-local, logged, echoed as
/// `request-id`), and stamps the OData headers on every response.
pub async fn request_context(req: Request<Body>, next: Next) -> Response<Body> {
    let id = Uuid::new_v4();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let started = std::time::Instant::now();
    let mut resp = REQUEST_ID.scope(id, next.run(req)).await;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert("odata-version", HeaderValue::from_static("4.0"));
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        headers.insert("request-id", v);
    }
    tracing::info!(request_id = %id, %method, path = uri.path(), status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}
