//! `kbgap serve` (the HTTP API over the store, or the offline demo), `kbgap devices import` and
//! `kbgap token` (HS256 tokens from the local secret).

use anyhow::{bail, Context, Result};
use kbgap_server::{AppState, AuthConfig, LocalIssuer, ServerConfig, StoreFleet};
use kbgap_store::{machine_id_for, DeviceUpsert};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `iss` of locally minted tokens (default of `--issuer`).
pub const LOCAL_ISSUER: &str = "https://kbgap.local/";
/// `aud` of locally minted tokens.
pub const LOCAL_AUDIENCE: &str = "https://api.securitycenter.microsoft.com";

/// Where the local HS256 secret comes from.
#[derive(Debug, Clone, Default)]
pub struct SecretSource {
    /// `--jwt-secret-file`.
    pub file: Option<PathBuf>,
    /// `KBGAP_JWT_SECRET`.
    pub env: Option<String>,
}

fn default_secret_path() -> Result<PathBuf> {
    let db = kbgap_store::default_db_path()?;
    Ok(db
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join("jwt-secret"))
}

fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The local secret: `KBGAP_JWT_SECRET`, else the file (`--jwt-secret-file` or `jwt-secret` in
/// the data directory), created with a random secret and 0600 permissions on first use.
pub fn load_secret(src: &SecretSource) -> Result<Vec<u8>> {
    if let Some(s) = src.env.as_deref().filter(|s| !s.is_empty()) {
        return Ok(s.as_bytes().to_vec());
    }
    let path = match &src.file {
        Some(p) => p.clone(),
        None => default_secret_path()?,
    };
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading JWT secret {}", path.display()))?;
        let t = text.trim();
        if t.len() < 16 {
            bail!(
                "JWT secret in {} is shorter than 16 characters",
                path.display()
            );
        }
        return Ok(t.as_bytes().to_vec());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let secret = random_secret();
    write_private(&path, &secret)?;
    eprintln!("created a new JWT secret in {}", path.display());
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating JWT secret {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing JWT secret {}", path.display()))?;
    Ok(())
}

/// Parses `90s`, `30m`, `1h`, `2d` (a bare number is seconds).
pub fn parse_ttl(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        Some((i, 'd')) => (&t[..i], 86_400),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("--ttl {text:?}: expected a number with s, m, h or d"))?;
    if n == 0 {
        bail!("--ttl {text:?}: must be positive");
    }
    Ok(Duration::from_secs(n * mult))
}

/// `kbgap token`.
pub fn token(
    secret: &SecretSource,
    issuer: &str,
    roles: &[String],
    tenant: &str,
    app: &str,
    ttl: &str,
) -> Result<ExitCode> {
    let ttl = parse_ttl(ttl)?;
    let local = LocalIssuer {
        issuer: issuer.to_owned(),
        audience: LOCAL_AUDIENCE.to_owned(),
        secret: load_secret(secret)?,
    };
    let t = kbgap_server::mint_token(&local, roles, tenant, app, ttl)?;
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

/// Resolves `--db` (default: the data directory's kbgap.db).
/// The database URL: `--db`, else the default file in the user's data directory.
pub fn db_url(db: Option<&str>) -> Result<String> {
    Ok(match db {
        Some(u) => u.to_owned(),
        None => kbgap_store::default_db_path()?
            .to_string_lossy()
            .into_owned(),
    })
}

/// Parses device files, folds KB lists into their host's report and stores them in one
/// transaction. Returns one line per stored device.
pub fn import_devices(url: &str, files: &[PathBuf], tenant: &str) -> Result<Vec<String>> {
    let mut parsed = Vec::new();
    for path in files {
        let d = kbgap_inventory::file::parse_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        parsed.push((path.display().to_string(), d));
    }
    let folded = kbgap_inventory::merge::fold_kb_lists(parsed);
    let mut batch = Vec::new();
    let mut sources = Vec::new();
    for (source, device) in folded {
        let machine_id = machine_id_for(&device, tenant)?;
        sources.push((source, device.host_name.clone()));
        batch.push(DeviceUpsert { machine_id, device });
    }
    let mut store = kbgap_store::open_store(url)?;
    let done = store.upsert_devices(batch, chrono::Utc::now())?;
    Ok(done
        .iter()
        .zip(&sources)
        .map(|((id, action), (source, host))| {
            format!(
                "{:<10} {id}  {:<20} {source}",
                format!("{action:?}").to_lowercase(),
                host.as_deref().unwrap_or("-")
            )
        })
        .collect())
}

/// `kbgap devices import PATH...`.
pub fn devices_import(db: Option<&str>, files: &[PathBuf], tenant: &str) -> Result<ExitCode> {
    let url = db_url(db)?;
    for line in import_devices(&url, files, tenant)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Options of `kbgap serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to bind (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: String,
    /// Public base URL for `@odata.context` links (default `http://<listen>`).
    pub public_url: Option<String>,
    /// Local secret.
    pub secret: SecretSource,
    /// Extra RS256 keys.
    pub jwks_file: Option<PathBuf>,
    /// Extra RS256 keys fetched at start-up.
    pub jwks_url: Option<String>,
    /// Accepted issuers (the local one is always accepted).
    pub issuers: Vec<String>,
    /// Entra tenant whose tokens are accepted.
    pub entra_tenant: Option<String>,
    /// Tenant for derived machine ids.
    pub tenant: String,
    /// Serve the built-in demo set from a temporary database.
    pub demo: bool,
    /// Turn off Defender's per-(route, app, tenant) rate limits (load tests only).
    pub no_rate_limit: bool,
}

const DEMO_XML: &[u8] = include_bytes!("../../kbgap-server/demo/2020-Mar-demo.xml");
const DEMO_DEVICES: &[(&str, &[u8])] = &[
    (
        "desktop-1909.json",
        include_bytes!("../../kbgap-server/demo/desktop-1909.json"),
    ),
    (
        "laptop-1909-patched.json",
        include_bytes!("../../kbgap-server/demo/laptop-1909-patched.json"),
    ),
];
/// The demo machine that misses KB4540673.
pub const DEMO_MACHINE: &str = "2339ad14a01bd0299afb93dfa2550136057bff96";

/// Creates and fills the demo database in `dir`; returns its path.
fn build_demo_db(dir: &Path, tenant: &str) -> Result<PathBuf> {
    let path = dir.join("kbgap-demo.db");
    let url = path.to_string_lossy().into_owned();
    let mut store = kbgap_store::open_store(&url)?;
    let (parsed, format) = kbgap_catalog::parse_document(DEMO_XML, "demo/2020-Mar-demo.xml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store.import(vec![kbgap_store::ImportItem {
        parsed,
        source: DEMO_XML.to_vec(),
        format,
        origin: "demo/2020-Mar-demo.xml".into(),
    }])?;
    let mut batch = Vec::new();
    for (name, bytes) in DEMO_DEVICES {
        let device = kbgap_inventory::parse_any(bytes, name).map_err(|e| anyhow::anyhow!("{e}"))?;
        batch.push(DeviceUpsert {
            machine_id: machine_id_for(&device, tenant)?,
            device,
        });
    }
    store.upsert_devices(batch, chrono::Utc::now())?;
    Ok(path)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

/// `kbgap serve`.
pub fn serve(db: Option<&str>, opts: ServeOptions) -> Result<ExitCode> {
    let demo_dir;
    let (url, secret) = if opts.demo {
        let dir = std::env::temp_dir().join(format!(
            "kbgap-demo-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = build_demo_db(&dir, &opts.tenant)?;
        demo_dir = Some(dir);
        let secret = if opts.secret.file.is_some() || opts.secret.env.is_some() {
            load_secret(&opts.secret)?
        } else {
            random_secret().into_bytes()
        };
        (path.to_string_lossy().into_owned(), secret)
    } else {
        demo_dir = None;
        (db_url(db)?, load_secret(&opts.secret)?)
    };
    let result = serve_at(&url, secret, &opts);
    if let Some(dir) = demo_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn serve_at(url: &str, secret: Vec<u8>, opts: &ServeOptions) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&opts.listen))
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let public = opts
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let local = LocalIssuer {
        issuer: LOCAL_ISSUER.to_owned(),
        audience: LOCAL_AUDIENCE.to_owned(),
        secret,
    };
    let mut auth = AuthConfig::new(&public).with_local_issuer(&local);
    for iss in &opts.issuers {
        auth = auth.with_issuer(iss);
    }
    if let Some(t) = &opts.entra_tenant {
        auth = auth.with_entra_tenant(t);
    }
    if let Some(f) = &opts.jwks_file {
        auth = auth.with_jwks_file(f)?;
    }
    if let Some(u) = &opts.jwks_url {
        auth = auth.with_jwks_url(u)?;
    }
    let started = std::time::Instant::now();
    let fleet = Arc::new(StoreFleet::open(url, &opts.tenant)?);
    tracing::info!(
        db = %kbgap_store::redact_url(url),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "fleet loaded"
    );
    let state = if opts.no_rate_limit {
        tracing::warn!("rate limits are off (--no-rate-limit)");
        let s = AppState::with_throttle(
            fleet.clone(),
            auth,
            ServerConfig::new(&public),
            kbgap_server::Throttle::disabled(),
        );
        s.set_ingest(fleet);
        s
    } else {
        AppState::for_store(fleet, auth, ServerConfig::new(&public))
    };
    let app = kbgap_server::router(state);
    println!("kbgap listening on http://{addr}");
    if opts.demo {
        let roles: Vec<String> = [
            "Software.Read.All",
            "Machine.Read.All",
            "Vulnerability.Read.All",
            "Device.Ingest",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let token = kbgap_server::mint_token(
            &local,
            &roles,
            "demo-tenant",
            "kbgap-demo",
            Duration::from_secs(12 * 3600),
        )?;
        println!("token: {token}");
        println!(
            "try: curl -H \"Authorization: Bearer {token}\" http://{addr}/api/machines/{DEMO_MACHINE}/getmissingkbs"
        );
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    runtime.block_on(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    })?;
    Ok(ExitCode::SUCCESS)
}
