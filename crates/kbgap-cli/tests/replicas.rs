//! Two real `kbgap serve` replicas on one fresh PostgreSQL database: started at the same moment
//! (migration race), catalog imported through the CLI, a report ingested through replica A read
//! back through replica B, a later catalog import picked up by B without restart, and a SIGKILL
//! of A in the middle of an ingestion loop losing no acknowledged report. Fails (never skips)
//! when PostgreSQL is not reachable.

mod support;

use kbgap_testdata::pg::TempDb;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{import, report, spawn_serve, wait_listening, Server};

const DESKTOP: &str = "2339ad14a01bd0299afb93dfa2550136057bff96";

/// Starts two replicas at the same moment (both migrate the fresh database concurrently).
fn start_pair(db: &str) -> (Server, Server) {
    let (a, b) = (spawn_serve(db, &[]), spawn_serve(db, &[]));
    (wait_listening(a), wait_listening(b))
}

fn token(db: &str) -> String {
    support::token(
        db,
        &[
            "Machine.Read.All",
            "Software.Read.All",
            "Vulnerability.Read.All",
            "Device.Ingest",
        ],
    )
}

fn agent() -> ureq::Agent {
    support::agent(Duration::from_secs(60))
}

fn get(url: &str, token: &str) -> (u16, serde_json::Value) {
    support::get(&agent(), url, token)
}

fn post(url: &str, token: &str, body: &str) -> Result<(u16, serde_json::Value), ureq::Error> {
    let mut resp = agent()
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send(body)?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or_default()))
}

fn missing_ids(base: &str, token: &str, id: &str) -> Vec<String> {
    let (status, body) = get(&format!("{base}/api/machines/{id}/getmissingkbs"), token);
    assert_eq!(status, 200, "{body}");
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn replicas_share_one_postgres_database() {
    let db = TempDb::create();
    let url = db.url();
    let (a, b) = start_pair(&url);
    let versions: Vec<i64> = db
        .client()
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4],
        "each migration applied exactly once"
    );

    import(&url, &["Feb", "Mar"]);
    let token = token(&url);
    let (status, body) = post(
        &format!("{}/kbgap/v1/devices", a.base),
        &token,
        &report("REPLICA-DESKTOP", DESKTOP, 657),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");

    // Replica B answers for the device ingested through A, at once.
    let (status, body) = get(&format!("{}/api/machines/{DESKTOP}", b.base), &token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["computerDnsName"], "REPLICA-DESKTOP", "{body}");
    // (Feb + Mar: the March OOB cumulative update 4551762, 18363.720, covers the March LCU.)
    let before = missing_ids(&b.base, &token, DESKTOP);
    assert!(before.contains(&"4551762".to_owned()), "{before:?}");

    // A catalog document imported through the CLI reaches B without restart.
    import(&url, &["Apr"]);
    let after = missing_ids(&b.base, &token, DESKTOP);
    assert!(
        after.contains(&"4549951".to_owned()),
        "April's LCU: {after:?}"
    );
    assert!(
        !after.contains(&"4551762".to_owned()),
        "now covered by April's: {after:?}"
    );
    assert_eq!(missing_ids(&a.base, &token, DESKTOP), after);

    // SIGTERM: a clean exit (the PostgreSQL connection is closed outside the async runtime).
    #[cfg(unix)]
    {
        let mut child = b.child.lock().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "replica did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "replica exit on SIGTERM: {status:?}");
    }
}

#[cfg(unix)]
#[test]
fn killing_a_replica_mid_ingest_loses_no_acknowledged_report() {
    let db = TempDb::create();
    let url = db.url();
    let (a, b) = start_pair(&url);
    import(&url, &["Mar"]);
    let token = token(&url);

    const N: usize = 40;
    const KILL_AFTER: usize = 12;
    let sent = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (sent, child) = (sent.clone(), a.child.clone());
        std::thread::spawn(move || {
            while sent.load(Ordering::SeqCst) < KILL_AFTER {
                std::thread::sleep(Duration::from_millis(2));
            }
            // SIGKILL while the loop keeps sending.
            let mut c = child.lock().unwrap();
            c.kill().unwrap();
            c.wait().unwrap();
        })
    };
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    for i in 0..N {
        let id = format!("{:040x}", 0xabc000 + i);
        sent.fetch_add(1, Ordering::SeqCst);
        match post(
            &format!("{}/kbgap/v1/devices", a.base),
            &token,
            &report(&format!("LOOP-{i:03}"), &id, 657),
        ) {
            Ok((status, _)) if (200..300).contains(&status) => acknowledged.push(id),
            Ok((status, body)) => panic!("report {i}: unexpected {status}: {body}"),
            Err(_) => failed += 1,
        }
    }
    killer.join().unwrap();
    assert!(
        acknowledged.len() >= KILL_AFTER - 1,
        "{}",
        acknowledged.len()
    );
    assert!(failed > 0, "the kill should have cut the loop");
    for id in &acknowledged {
        let (status, body) = get(&format!("{}/api/machines/{id}", b.base), &token);
        assert_eq!(status, 200, "acknowledged report {id} missing on B: {body}");
    }
    // The database holds exactly the acknowledged reports (plus at most one in flight).
    let stored: i64 = db
        .client()
        .query_one("SELECT COUNT(*) FROM devices", &[])
        .unwrap()
        .get(0);
    let stored = usize::try_from(stored).unwrap();
    assert!(
        stored == acknowledged.len() || stored == acknowledged.len() + 1,
        "stored {stored}, acknowledged {}",
        acknowledged.len()
    );
}
