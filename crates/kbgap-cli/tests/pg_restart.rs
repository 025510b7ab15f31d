//! PostgreSQL restarted under load (issue 5): one real `kbgap serve` on a private PostgreSQL
//! cluster takes a continuous stream of device reports while the database is killed
//! (`pg_ctl stop -m immediate`), kept down ~2 s and started again. Requests meanwhile get 503
//! with the Defender error body (never 500, never a hang), the server reconnects by itself
//! (same process), and every report acknowledged with 2xx, before or after, is there afterwards
//! (read back through the API, and counted in the database). The private cluster never touches
//! the shared server at 127.0.0.1:5432. Fails (never skips) when PostgreSQL's server binaries
//! are missing.

mod support;

use kbgap_testdata::pg::{PrivateCluster, StopMode};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{get, import, spawn_serve, wait_listening, Server};
/// Client threads posting reports at the same time.
const CLIENTS: u64 = 3;
/// Acknowledged requests wanted before the kill and after the restart.
const ACKS_PER_SIDE: usize = 25;
/// How long the database stays down.
const DOWNTIME: Duration = Duration::from_secs(2);
/// No request may take longer than this (a hang is a failure, not a pass).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the database is while a request is sent or answered.
const UP: u8 = 0;
/// `pg_ctl stop -m immediate` is running.
const KILLING: u8 = 1;
/// Killed (pg_ctl stop has returned: no server process is left).
const DOWN: u8 = 2;
/// `pg_ctl start` is running (crash recovery).
const STARTING: u8 = 3;
/// `pg_ctl start` has returned: the server accepts connections.
const RESTARTED: u8 = 4;

fn start_server(db: &str) -> Server {
    // Rate limits off: the client threads and the read-back exceed Defender's per-minute limits.
    wait_listening(spawn_serve(db, &["--no-rate-limit"]))
}

fn token(db: &str) -> String {
    support::token(db, &["Machine.Read.All", "Device.Ingest"])
}

fn agent() -> ureq::Agent {
    support::agent(REQUEST_TIMEOUT)
}

fn report(host: &str, machine_id: &str) -> String {
    support::report(host, machine_id, 657)
}

/// Whether `body` is the Defender-style 503 error envelope.
fn is_unavailable_body(body: &serde_json::Value) -> bool {
    body["error"]["code"] == "ServiceUnavailable"
        && body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("The service is temporarily unavailable"))
        && body["error"]["target"].is_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// 2xx.
    Acked,
    /// 503 with the Defender error body.
    Unavailable,
    /// Anything else: another status, a malformed 503, a transport error or a timeout.
    Failed(String),
}

#[derive(Debug, Clone)]
struct Outcome {
    /// (machine id, host name) of each report in the request.
    devices: Vec<(String, String)>,
    kind: Kind,
    sent_in: u8,
    answered_in: u8,
    started: Instant,
    elapsed: Duration,
}

#[derive(Clone)]
struct Shared {
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
}

impl Shared {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| f(o))
            .count()
    }
}

/// One client: posts one report, then a batch of three, and so on, until told to stop.
fn client(t: u64, base: String, token: String, shared: Shared) {
    let agent = agent();
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let batch = seq % 2 == 1;
        let devices: Vec<(String, String)> = (0..if batch { 3 } else { 1 })
            .map(|j| {
                let n = (t + 1) << 32 | (seq * 4 + j);
                (format!("{n:040x}"), format!("PGR-{t}-{seq}-{j}"))
            })
            .collect();
        let (url, body) = if batch {
            let reports: Vec<String> = devices.iter().map(|(id, h)| report(h, id)).collect();
            (
                format!("{base}/kbgap/v1/devices:batch"),
                format!("[{}]", reports.join(",")),
            )
        } else {
            let (id, h) = &devices[0];
            (format!("{base}/kbgap/v1/devices"), report(h, id))
        };
        let sent_in = shared.phase.load(Ordering::SeqCst);
        let started = Instant::now();
        let result = agent
            .post(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .send(&body)
            .and_then(|mut r| {
                let status = r.status().as_u16();
                r.body_mut().read_to_string().map(|text| (status, text))
            });
        let elapsed = started.elapsed();
        let answered_in = shared.phase.load(Ordering::SeqCst);
        let kind = match result {
            Ok((status, text)) => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                match status {
                    200..=299 => {
                        let stored = json["devices"].as_array().map_or(0, Vec::len);
                        if stored == devices.len() {
                            Kind::Acked
                        } else {
                            Kind::Failed(format!("{status} naming {stored} devices: {text}"))
                        }
                    }
                    503 if is_unavailable_body(&json) => Kind::Unavailable,
                    _ => Kind::Failed(format!("{status}: {text}")),
                }
            }
            Err(e) => Kind::Failed(format!("transport error after {elapsed:?}: {e}")),
        };
        shared.outcomes.lock().unwrap().push(Outcome {
            devices,
            kind,
            sent_in,
            answered_in,
            started,
            elapsed,
        });
        seq += 1;
        // Steady load without flooding two shared cores.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn postgres_killed_and_restarted_under_load_loses_no_acknowledged_report() {
    let test_started = Instant::now();
    let cluster = PrivateCluster::new();
    let db = cluster.create_database("kbgap");
    import(&db, &["Mar"]);
    let token = token(&db);
    let server = start_server(&db);
    let base = server.base.clone();
    let reader = agent();
    let (status, body) = get(&reader, &format!("{base}/api/machines"), &token);
    assert_eq!(status, 200, "{body}");

    let shared = Shared {
        phase: Arc::new(AtomicU8::new(UP)),
        stop: Arc::new(AtomicBool::new(false)),
        outcomes: Arc::new(Mutex::new(Vec::new())),
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (base, token, shared) = (base.clone(), token.clone(), shared.clone());
            std::thread::spawn(move || client(t, base, token, shared))
        })
        .collect();

    // 1. Load on a healthy database.
    wait_for(
        "acknowledged reports before the kill",
        Duration::from_secs(30),
        || shared.count(|o| o.kind == Kind::Acked) >= ACKS_PER_SIDE,
    );

    // 2. Kill the database under load; keep posting while it is down.
    shared.phase.store(KILLING, Ordering::SeqCst);
    cluster.stop(StopMode::Immediate);
    let killed_at = Instant::now();
    shared.phase.store(DOWN, Ordering::SeqCst);
    // Reads fail the same way (the request checks the store's generations first).
    let some_acked = shared
        .outcomes
        .lock()
        .unwrap()
        .iter()
        .find(|o| o.kind == Kind::Acked)
        .map(|o| o.devices[0].0.clone())
        .unwrap();
    let machine_url = format!("{base}/api/machines/{some_acked}");
    let (status, body) = get(&reader, &machine_url, &token);
    assert_eq!(status, 503, "GET while the database is down: {body}");
    assert!(is_unavailable_body(&body), "{body}");
    std::thread::sleep(DOWNTIME.saturating_sub(killed_at.elapsed()));

    // 3. Start the database again; the same server process must recover by itself.
    shared.phase.store(STARTING, Ordering::SeqCst);
    let start_began = Instant::now();
    cluster.start();
    let start_took = start_began.elapsed();
    shared.phase.store(RESTARTED, Ordering::SeqCst);
    let first_ack_after = wait_for(
        "a report acknowledged after the restart (the server never reconnected)",
        Duration::from_secs(30),
        || shared.count(|o| o.sent_in == RESTARTED && o.kind == Kind::Acked) > 0,
    );
    wait_for(
        "acknowledged reports after the restart",
        Duration::from_secs(30),
        || shared.count(|o| o.sent_in == RESTARTED && o.kind == Kind::Acked) >= ACKS_PER_SIDE,
    );
    shared.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client thread panicked");
    }
    assert!(
        server.child.lock().unwrap().try_wait().unwrap().is_none(),
        "kbgap serve exited: the test never restarts it"
    );

    let outcomes = shared.outcomes.lock().unwrap().clone();
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();

    // Never a 500, a malformed error, a dropped connection or a hang.
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match &o.kind {
            Kind::Failed(m) => Some(format!(
                "[sent {} answered {} after {:?} at +{:?}] {m}",
                o.sent_in,
                o.answered_in,
                o.elapsed,
                o.started.duration_since(killed_at)
            )),
            _ => None,
        })
        .take(10)
        .collect();
    assert!(
        failed.is_empty(),
        "requests neither acknowledged nor 503 (first 10): {failed:#?}\n--- PostgreSQL log ---\n{}",
        cluster.log()
    );
    let slowest = outcomes.iter().map(|o| o.elapsed).max().unwrap();
    assert!(slowest < REQUEST_TIMEOUT, "slowest request {slowest:?}");

    // While the database was down (sent and answered then), every request got 503.
    let while_down = count(&|o| o.sent_in == DOWN && o.answered_in == DOWN);
    let unavailable_down =
        count(&|o| o.sent_in == DOWN && o.answered_in == DOWN && o.kind == Kind::Unavailable);
    assert!(
        unavailable_down > 0 && unavailable_down == while_down,
        "{unavailable_down} of {while_down} requests made while the database was down got 503"
    );
    // Before the kill, everything was acknowledged.
    assert_eq!(
        count(&|o| o.answered_in == UP && o.kind != Kind::Acked),
        0,
        "failures on a healthy database"
    );

    // Reads recover too.
    let (status, body) = get(&reader, &machine_url, &token);
    assert_eq!(status, 200, "GET after the restart: {body}");

    // No acknowledged report is lost: each one is served by the API, and stored.
    let acked: HashMap<String, String> = outcomes
        .iter()
        .filter(|o| o.kind == Kind::Acked)
        .flat_map(|o| o.devices.iter().cloned())
        .collect();
    for (id, host) in &acked {
        let (status, body) = get(&reader, &format!("{base}/api/machines/{id}"), &token);
        assert_eq!(
            status, 200,
            "acknowledged report {id} ({host}) lost: {body}"
        );
        assert_eq!(body["computerDnsName"], host.as_str(), "{body}");
    }
    let stored: BTreeSet<String> = cluster
        .client("kbgap")
        .query("SELECT machine_id FROM devices", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sent: BTreeSet<&String> = outcomes
        .iter()
        .flat_map(|o| o.devices.iter().map(|(id, _)| id))
        .collect();
    assert!(acked.keys().all(|id| stored.contains(id)));
    assert!(
        stored.iter().all(|id| sent.contains(id)),
        "stored a report never sent"
    );
    // A 503 may hide a commit (the connection died before the answer): such reports are "in
    // doubt", and can only come from requests sent before the database was gone.
    let in_doubt: BTreeSet<&String> = stored
        .iter()
        .filter(|id| !acked.contains_key(*id))
        .collect();
    let maybe_committed: BTreeSet<&String> = outcomes
        .iter()
        .filter(|o| o.sent_in < DOWN && o.kind == Kind::Unavailable)
        .flat_map(|o| o.devices.iter().map(|(id, _)| id))
        .collect();
    assert!(
        in_doubt.is_subset(&maybe_committed),
        "stored though answered 503 after the kill: {:?}",
        in_doubt.difference(&maybe_committed).collect::<Vec<_>>()
    );
    let in_flight_at_kill = count(&|o| o.sent_in < DOWN && o.answered_in >= KILLING);

    eprintln!(
        "pg_restart: {} requests ({} reports acknowledged, {} stored), {} x 503 \
         ({unavailable_down} while down), {in_flight_at_kill} in flight at the kill, {} in doubt; \
         {} x 503 after the restart; downtime {:?}, pg_ctl start {start_took:?}, first ack \
         {first_ack_after:?} after start; slowest request {slowest:?}; test {:?}",
        outcomes.len(),
        acked.len(),
        stored.len(),
        count(&|o| o.kind == Kind::Unavailable),
        in_doubt.len(),
        count(&|o| o.sent_in == RESTARTED && o.kind == Kind::Unavailable),
        start_began.duration_since(killed_at),
        test_started.elapsed()
    );
}
