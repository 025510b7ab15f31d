//! End-to-end: the real `kbgap` binary in `serve --demo` mode on 127.0.0.1:0, called over a real
//! socket with the token it prints; ingestion through the API; graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEMO_MACHINE: &str = "2339ad14a01bd0299afb93dfa2550136057bff96";

struct Server {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kbgap"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kbgap");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut base, mut token) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while base.is_none() || token.is_none() {
        assert!(Instant::now() < deadline, "demo server did not start");
        let line = lines
            .next()
            .expect("server exited before printing its address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("kbgap listening on ") {
            base = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("token: ") {
            token = Some(rest.trim().to_owned());
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base: base.unwrap(),
        token: token.unwrap(),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn get(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn post(url: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let mut resp = agent()
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send(body)
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn demo_serves_missing_kbs_over_a_real_socket() {
    let s = start_demo();
    let url = format!("{}/api/machines/{DEMO_MACHINE}/getmissingkbs", s.base);
    let (status, body) = get(&url, Some(&s.token));
    assert_eq!(status, 200, "{body}");
    let v = &body["value"];
    assert_eq!(v.as_array().unwrap().len(), 1, "{body}");
    let fix = &v[0];
    assert_eq!(fix["id"], "4540673");
    assert_eq!(fix["name"], "March 2020 Security Updates");
    assert_eq!(
        fix["productsNames"],
        serde_json::json!(["windows_10", "edge", "internet_explorer"])
    );
    assert_eq!(
        fix["url"],
        "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB4540673"
    );
    assert_eq!(fix["machineMissedOn"], 1);
    assert_eq!(fix["cveAddressed"], 32);
    assert_eq!(fix["osBuild"], 18363);

    // No token: 401 with the Defender error envelope.
    let (status, body) = get(&url, None);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "Unauthorized");

    // The patched laptop misses nothing; by name works too.
    let (status, body) = get(
        &format!("{}/api/machines/DEMO-LAPTOP-1909/getmissingkbs", s.base),
        Some(&s.token),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], serde_json::json!([]));

    // Ingest a third unpatched 1909 device: machineMissedOn becomes 2 on every route.
    let report = r#"{"schema":"kbgap.device/1","hostName":"DEMO-NEW","collectedAt":"2020-03-21T08:00:00Z",
        "os":{"productName":"Windows 10 Pro","currentBuild":"18363","ubr":657,"currentMajorVersionNumber":10,
        "currentMinorVersionNumber":0,"architecture":"x64"},"hotfixes":[]}"#;
    let (status, body) = post(&format!("{}/kbgap/v1/devices", s.base), &s.token, report);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["devices"][0]["action"], "added");
    let (status, body) = post(&format!("{}/kbgap/v1/devices", s.base), &s.token, report);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["devices"][0]["action"], "unchanged");
    let (_, body) = get(&url, Some(&s.token));
    assert_eq!(body["value"][0]["machineMissedOn"], 2, "{body}");
    let (_, body) = get(
        &format!(
            "{}/api/Software/microsoft-_-windows_10/getmissingkbs",
            s.base
        ),
        Some(&s.token),
    );
    assert_eq!(body["value"][0]["machineMissedOn"], 2, "{body}");
}

#[cfg(unix)]
#[test]
fn demo_stops_gracefully_on_sigterm() {
    let mut s = start_demo();
    let (status, _) = get(&format!("{}/api/machines", s.base), Some(&s.token));
    assert_eq!(status, 200);
    let pid = s.child.id().to_string();
    let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(code) = s.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}
