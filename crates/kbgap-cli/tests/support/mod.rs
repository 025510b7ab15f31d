//! Shared by the tests that run real `kbgap serve` processes: the binary with a test secret,
//! starting a server and reading its address, tokens, catalog import, HTTP calls and a kbgap
//! JSON device report.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The JWT secret every process of a test shares.
pub const SECRET: &str = "server-test-secret-0123456789abcdef";

/// The `kbgap` binary on `db`, with the test secret and quiet logs.
pub fn kbgap(db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kbgap"));
    c.args(["--db", db])
        .env("KBGAP_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn");
    c
}

/// A running `kbgap serve`, killed on drop. The child is shared so a test can kill it from
/// another thread.
pub struct Server {
    pub child: Arc<Mutex<Child>>,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `kbgap serve` on a free loopback port with `extra` arguments; see [`wait_listening`].
pub fn spawn_serve(db: &str, extra: &[&str]) -> Child {
    kbgap(db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kbgap serve")
}

/// Waits for a spawned server's `kbgap listening on URL` line.
pub fn wait_listening(mut child: Child) -> Server {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let base = loop {
        assert!(Instant::now() < deadline, "kbgap serve did not start");
        let line = lines
            .next()
            .expect("kbgap serve exited before printing its address (see stderr)")
            .unwrap();
        if let Some(rest) = line.strip_prefix("kbgap listening on ") {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server {
        child: Arc::new(Mutex::new(child)),
        base,
    }
}

/// A token with `roles`, signed with the test secret.
pub fn token(db: &str, roles: &[&str]) -> String {
    let mut cmd = kbgap(db);
    cmd.arg("token");
    for r in roles {
        cmd.args(["--role", r]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Imports the 2020 MSRC fixture documents of `months` (`"Mar"`, ...) through the CLI.
pub fn import(db: &str, months: &[&str]) {
    let files: Vec<_> = months
        .iter()
        .map(|m| kbgap_testdata::msrc_fixture(&format!("cvrfDocument-2020-{m}.xml")))
        .collect();
    let out = kbgap(db)
        .args(["catalog", "import"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "catalog import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An HTTP client that returns error statuses as responses and gives up after `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// `GET url` with a bearer token: status and JSON body (null when not JSON).
pub fn get(agent: &ureq::Agent, url: &str, token: &str) -> (u16, serde_json::Value) {
    let mut resp = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// A kbgap JSON report of a Windows 10 1909 desktop at revision `ubr` with KB4532693 installed.
pub fn report(host: &str, machine_id: &str, ubr: u32) -> String {
    format!(
        r#"{{"schema":"kbgap.device/1","hostName":"{host}","machineId":"{machine_id}",
        "collectedAt":"2020-03-21T08:00:00Z","os":{{"productName":"Windows 10 Pro",
        "currentBuild":"18363","ubr":{ubr},"currentMajorVersionNumber":10,
        "currentMinorVersionNumber":0,"architecture":"x64"}},
        "hotfixes":[{{"id":"KB4532693","installedOn":"2/11/2020"}}]}}"#
    )
}
