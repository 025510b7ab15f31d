//! The `kbgap` command line: argument parsing, logging set-up and dispatch to the commands.

mod bench_cmd;
mod catalog_cmd;
mod fleetgen;
mod progress;
mod scan_cmd;
mod serve_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Which security updates is each Windows device missing, and why.
#[derive(Debug, Parser)]
#[command(name = "kbgap", version, about, long_about = None)]
struct Cli {
    /// Database: a file path or `sqlite://PATH` (default: kbgap.db in the user's data directory).
    #[arg(long, global = true, env = "KBGAP_DB")]
    db: Option<String>,

    /// More log output (-v info, -vv debug); logs go to stderr. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The security-update catalog (MSRC CVRF documents).
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Which security updates each device is missing (exit 0 none, 1 some, 2 errors).
    Scan {
        /// Device files: systeminfo, wmic qfe, Get-HotFix CSV, osquery JSON or kbgap JSON.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Evaluate against the catalog as it stood on this date (YYYY-MM-DD).
        #[arg(long)]
        as_of: Option<String>,
        /// JSON output (Defender PublicProductFixDto fields plus kbgap's).
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV output, one row per device and KB.
        #[arg(long)]
        csv: bool,
    },
    /// Serve the Defender-compatible HTTP API (and device ingestion) over the database.
    Serve {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8080", env = "KBGAP_LISTEN")]
        listen: String,
        /// Public base URL used in @odata links and accepted as token audience.
        #[arg(long, env = "KBGAP_PUBLIC_URL")]
        public_url: Option<String>,
        /// HS256 secret file for local tokens (default: jwt-secret in the data directory).
        #[arg(long)]
        jwt_secret_file: Option<PathBuf>,
        /// JWKS file with RS256 keys to accept.
        #[arg(long)]
        jwks_file: Option<PathBuf>,
        /// JWKS URL with RS256 keys to accept (fetched at start-up).
        #[arg(long)]
        jwks_url: Option<String>,
        /// Extra accepted token issuer (repeatable).
        #[arg(long = "issuer")]
        issuers: Vec<String>,
        /// Accept tokens of this Entra tenant (v1 and v2 issuers).
        #[arg(long)]
        entra_tenant: Option<String>,
        /// Tenant used to derive machine ids of reports without one.
        #[arg(long, default_value = "", env = "KBGAP_TENANT")]
        tenant: String,
        /// Serve the built-in offline demo (temporary database, prints a token).
        #[arg(long)]
        demo: bool,
        /// Turn off the per-(route, app, tenant) rate limits (load tests only).
        #[arg(long, hide = true, env = "KBGAP_NO_RATE_LIMIT")]
        no_rate_limit: bool,
    },
    /// Device reports stored in the database.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Mint an HS256 token signed with the local secret.
    Token {
        /// Application role (repeatable), e.g. Software.Read.All, Device.Ingest.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// `tid` claim.
        #[arg(long, default_value = "local")]
        tenant: String,
        /// `appid` claim.
        #[arg(long, default_value = "kbgap-cli")]
        app: String,
        /// Lifetime: 90s, 30m, 1h, 2d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// HS256 secret file (default: jwt-secret in the data directory).
        #[arg(long)]
        jwt_secret_file: Option<PathBuf>,
        /// `iss` claim.
        #[arg(long, default_value = serve_cmd::LOCAL_ISSUER)]
        issuer: String,
    },
    /// Fleet-scale benchmark helpers (synthetic fleets, assessment timing).
    #[command(subcommand, hide = true)]
    Bench(BenchCommand),
    /// Why one KB is or is not reported for a device.
    Explain {
        /// Device file.
        file: PathBuf,
        /// KB number.
        kb: String,
        /// Evaluate against the catalog as it stood on this date (YYYY-MM-DD).
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DevicesCommand {
    /// Store device reports (systeminfo, wmic qfe, Get-HotFix, osquery, kbgap JSON).
    Import {
        /// Device files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Tenant used to derive machine ids of reports without one (must match `serve`).
        #[arg(long, default_value = "", env = "KBGAP_TENANT")]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Generate a deterministic synthetic fleet from the catalog in --db (kbgap JSON reports).
    Fleet {
        /// Number of devices.
        #[arg(long)]
        devices: u64,
        /// Seed: the same seed and catalog give the same reports.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write one `<host>.json` per device into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write one report per line into this file.
        #[arg(long)]
        jsonl: Option<PathBuf>,
        /// Write the machine ids, one per line, into this file.
        #[arg(long)]
        ids: Option<PathBuf>,
        /// Store the devices into --db (the default when neither --out nor --jsonl is given).
        #[arg(long)]
        ingest: bool,
    },
    /// Time the full-fleet assessment over the devices stored in --db.
    Assess {
        /// Timed runs (medians are reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Also time the engine on every device one by one (no sharing of setups), over the
        /// first SAMPLE stored reports: the baseline the setup sharing is measured against.
        /// Decodes every stored report first.
        #[arg(long)]
        sample: Option<usize>,
        /// Time the engine only, not the server snapshot build.
        #[arg(long)]
        engine_only: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Import CVRF documents (XML or JSON) from files or directories.
    Import {
        /// Files or directories (searched recursively for *.xml and *.json).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Import the good documents even when some files cannot be parsed.
        #[arg(long)]
        keep_going: bool,
        /// Print the import report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch new or revised documents from the MSRC API.
    Sync {
        /// Oldest month to fetch, like 2016-Apr.
        #[arg(long)]
        from: Option<String>,
        /// API base URL (a mirror, or a local server in tests).
        #[arg(
            long,
            default_value = "https://api.msrc.microsoft.com",
            env = "KBGAP_MSRC_URL"
        )]
        base_url: String,
        /// Attempts per request before giving up.
        #[arg(long, default_value_t = 4)]
        retries: u32,
    },
    /// Everything about one KB.
    Show {
        /// KB number, with or without the KB prefix.
        kb: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Counts: documents, KBs, products, CVEs, date range.
    Stats {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve { .. });
    init_logging(cli.verbose, serving);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let db = cli.db.clone();
    match cli.command {
        Command::Catalog(cmd) => match cmd {
            CatalogCommand::Import {
                paths,
                keep_going,
                json,
            } => catalog_cmd::import(db.as_deref(), &paths, keep_going, json),
            CatalogCommand::Sync {
                from,
                base_url,
                retries,
            } => catalog_cmd::sync(db.as_deref(), from.as_deref(), &base_url, retries),
            CatalogCommand::Show { kb, json } => catalog_cmd::show(db.as_deref(), &kb, json),
            CatalogCommand::Stats { json } => catalog_cmd::stats(db.as_deref(), json),
        },
        Command::Scan {
            files,
            as_of,
            json,
            csv,
        } => {
            let format = if json {
                scan_cmd::Format::Json
            } else if csv {
                scan_cmd::Format::Csv
            } else {
                scan_cmd::Format::Table
            };
            scan_cmd::scan(db.as_deref(), &files, as_of.as_deref(), format)
        }
        Command::Serve {
            listen,
            public_url,
            jwt_secret_file,
            jwks_file,
            jwks_url,
            issuers,
            entra_tenant,
            tenant,
            demo,
            no_rate_limit,
        } => serve_cmd::serve(
            db.as_deref(),
            serve_cmd::ServeOptions {
                listen,
                public_url,
                secret: secret_source(jwt_secret_file),
                jwks_file,
                jwks_url,
                issuers,
                entra_tenant,
                tenant,
                demo,
                no_rate_limit,
            },
        ),
        Command::Devices(DevicesCommand::Import { files, tenant }) => {
            serve_cmd::devices_import(db.as_deref(), &files, &tenant)
        }
        Command::Token {
            roles,
            tenant,
            app,
            ttl,
            jwt_secret_file,
            issuer,
        } => serve_cmd::token(
            &secret_source(jwt_secret_file),
            &issuer,
            &roles,
            &tenant,
            &app,
            &ttl,
        ),
        Command::Bench(cmd) => {
            let url = serve_cmd::db_url(db.as_deref())?;
            match cmd {
                BenchCommand::Fleet {
                    devices,
                    seed,
                    out,
                    jsonl,
                    ids,
                    ingest,
                } => {
                    let ingest = ingest || (out.is_none() && jsonl.is_none());
                    let outputs = bench_cmd::FleetOutputs {
                        out_dir: out,
                        jsonl,
                        ids,
                        db: ingest.then(|| url.clone()),
                    };
                    bench_cmd::fleet(&url, devices, seed, &outputs)
                }
                BenchCommand::Assess {
                    runs,
                    sample,
                    engine_only,
                } => bench_cmd::assess_fleet(&url, runs, sample, engine_only),
            }
        }
        Command::Explain { file, kb, as_of } => {
            scan_cmd::explain(db.as_deref(), &file, &kb, as_of.as_deref())
        }
    }
}

fn secret_source(file: Option<PathBuf>) -> serve_cmd::SecretSource {
    serve_cmd::SecretSource {
        file,
        env: std::env::var("KBGAP_JWT_SECRET").ok(),
    }
}

fn init_logging(verbose: u8, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 if serving => "info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// `kbgap ... | head` closes stdout early; Rust's `println!` then panics. Treat that as the reader
/// having seen enough: exit quietly instead of printing a panic and a backtrace.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
