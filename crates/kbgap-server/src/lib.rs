//! The HTTP server: Defender-compatible routes over the fleet, plus kbgap's ingestion endpoints.
//!
//! Build an [`AppState`] from a [`FleetData`] implementation, an [`auth::AuthConfig`] and a
//! [`ServerConfig`], then serve [`router`]. Layers, outermost first: request id + OData
//! headers ([`error::request_context`]), path normalisation ([`routes::normalize_request`]),
//! routing, then per route: authenticate, authorise, throttle, look up.

pub mod api_model;
pub mod auth;
pub mod data;
pub mod error;
pub mod fleet;
pub mod ingest;
pub mod odata;
pub mod routes;
pub mod throttle;

pub use api_model::{
    Machine, MachineReference, PublicAssetVulnerabilityDto, PublicProductFixDto,
    PublicVulnerabilityDto, Software, SoftwareId,
};
pub use auth::{mint_token, AuthConfig, Caller, LocalIssuer, Permission};
pub use data::{DataError, DataResult, FleetData, InMemoryFleet};
pub use error::ApiError;
pub use fleet::{DeviceIngest, IngestError, IngestedDevice, StoreFleet};
pub use throttle::{Clock, Limit, ManualClock, SystemClock, Throttle};

use std::collections::HashMap;
use std::sync::Arc;

/// Server settings that are not authentication.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Base of `@odata.context` and `@odata.nextLink` URLs, e.g. `https://api.security.microsoft.com`.
    pub public_base_url: String,
    /// Reject unknown query parameters (and OData options on routes without them) with `400 ODataError`.
    pub strict_odata: bool,
    /// Rate limit of routes without a documented one (default 100/min, 1,500/h).
    pub default_limit: Limit,
    /// Per-route overrides, keyed by route template (e.g. `/api/machines`).
    pub limit_overrides: HashMap<String, Limit>,
}

impl ServerConfig {
    /// Defaults for a public base URL.
    pub fn new(public_base_url: &str) -> Self {
        Self {
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
            strict_odata: false,
            default_limit: Limit::DEFAULT,
            limit_overrides: HashMap::new(),
        }
    }
}

struct Inner {
    data: Arc<dyn FleetData>,
    auth: AuthConfig,
    config: ServerConfig,
    throttle: Throttle,
    ingest: std::sync::OnceLock<Arc<dyn DeviceIngest>>,
}

/// Shared state of every request.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("auth", &self.0.auth)
            .field("config", &self.0.config)
            .field("throttle", &self.0.throttle)
            .finish()
    }
}

impl AppState {
    /// State with the real-clock throttle.
    pub fn new(data: Arc<dyn FleetData>, auth: AuthConfig, config: ServerConfig) -> Self {
        Self::with_throttle(data, auth, config, Throttle::default())
    }
    /// State with a given throttle (tests pass a [`ManualClock`] one, or [`Throttle::disabled`]).
    pub fn with_throttle(
        data: Arc<dyn FleetData>,
        auth: AuthConfig,
        config: ServerConfig,
        throttle: Throttle,
    ) -> Self {
        Self(Arc::new(Inner {
            data,
            auth,
            config,
            throttle,
            ingest: std::sync::OnceLock::new(),
        }))
    }
    /// State over a store-backed fleet, which also serves ingestion.
    pub fn for_store(fleet: Arc<StoreFleet>, auth: AuthConfig, config: ServerConfig) -> Self {
        let s = Self::new(fleet.clone(), auth, config);
        s.set_ingest(fleet);
        s
    }
    /// Enables the ingestion routes (without it they answer `404 NotFound`). Set once; later
    /// calls are ignored.
    pub fn set_ingest(&self, ingest: Arc<dyn DeviceIngest>) {
        let _ = self.0.ingest.set(ingest);
    }
    /// The ingestion sink, if any.
    pub fn ingest(&self) -> Option<Arc<dyn DeviceIngest>> {
        self.0.ingest.get().cloned()
    }
    /// The data source.
    pub fn data(&self) -> Arc<dyn FleetData> {
        self.0.data.clone()
    }
    /// Authentication settings.
    pub fn auth(&self) -> &AuthConfig {
        &self.0.auth
    }
    /// Server settings.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }
    /// The rate limiter.
    pub fn throttle(&self) -> &Throttle {
        &self.0.throttle
    }
    /// The effective limit of a route.
    pub fn limit_for(&self, route: &routes::RouteSpec) -> Limit {
        if let Some(l) = self.0.config.limit_overrides.get(route.template) {
            *l
        } else if route.limit != Limit::DEFAULT {
            route.limit
        } else {
            self.0.config.default_limit
        }
    }
    /// `{public_base_url}/api/$metadata#{suffix}`.
    pub fn context(&self, suffix: &str) -> String {
        format!("{}/api/$metadata#{suffix}", self.0.config.public_base_url)
    }
}

/// The complete HTTP service.
pub fn router(state: AppState) -> axum::Router {
    use tower::Layer;
    let inner = routes::inner_router(state);
    let normalized = axum::middleware::map_request(|req: axum::extract::Request| async move {
        routes::normalize_request(req)
    })
    .layer(inner);
    axum::Router::new()
        .fallback_service(normalized)
        .layer(axum::middleware::from_fn(error::request_context))
}
