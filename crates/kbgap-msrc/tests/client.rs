//! End-to-end tests of the MSRC client against a local HTTP server serving real CVRF fixtures (no network).

use kbgap_core::DocumentId;
use kbgap_msrc::{plan_sync, run_sync, ClientOptions, MsrcClient, MsrcError, SyncError};
use kbgap_testdata::http::{Reply, TestServer};
use std::time::{Duration, Instant};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn fixture(month: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/msrc/cvrfDocument-{month}.xml");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The list as MSRC serves it; `CvrfUrl` deliberately points at the real host, which the
/// client must not use (the test has no network).
const UPDATES_JSON: &str = r#"{"@odata.context":"https://api.msrc.microsoft.com/cvrf/v3.0/$metadata#updates","value":[
 {"ID":"2020-Feb","Alias":"2020-Feb","DocumentTitle":"February 2020 Security Updates","Severity":null,
  "InitialReleaseDate":"2020-02-11T08:00:00Z","CurrentReleaseDate":"2020-09-22T07:00:00Z",
  "CvrfUrl":"https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2020-Feb"},
 {"ID":"2020-Mar","Alias":"2020-Mar","DocumentTitle":"March 2020 Security Updates","Severity":null,
  "InitialReleaseDate":"2020-03-10T07:00:00Z","CurrentReleaseDate":"2020-04-01T07:00:00Z",
  "CvrfUrl":"https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2020-Mar"},
 {"ID":"2020-Jan","Alias":"2020-Jan","DocumentTitle":"January 2020 Security Updates","Severity":null,
  "InitialReleaseDate":"2020-01-14T08:00:00Z","CurrentReleaseDate":"not a date",
  "CvrfUrl":"https://api.msrc.microsoft.com/cvrf/v3.0/cvrf/2020-Jan"}
]}"#;

/// Fast options: tiny backoff so retry tests take milliseconds.
fn fast(retries: u32) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        retries,
        backoff_base: Duration::from_millis(2),
        max_backoff: Duration::from_secs(3),
        ..ClientOptions::default()
    }
}

fn mirror() -> TestServer {
    let feb = fixture("2020-Feb");
    let mar = fixture("2020-Mar");
    TestServer::start(move |req, _| match req.path.as_str() {
        "/cvrf/v3.0/updates" => Reply::new(200, UPDATES_JSON)
            .header("Content-Type", "application/json; odata.metadata=minimal"),
        "/cvrf/v3.0/cvrf/2020-Feb" => {
            Reply::new(200, feb.clone()).header("Content-Type", "application/xml")
        }
        "/cvrf/v3.0/cvrf/2020-Mar" => {
            Reply::new(200, mar.clone()).header("Content-Type", "application/xml")
        }
        _ => Reply::new(404, "<html><body><h1>404 Not Found</h1></body></html>"),
    })
}

fn id(s: &str) -> DocumentId {
    s.parse().unwrap()
}

#[test]
fn list_and_fetch_return_the_exact_fixture_bytes() {
    let server = mirror();
    let client = MsrcClient::new(&server.base_url(), fast(0)).unwrap();

    let list = client.list_updates_detailed().unwrap();
    let ids: Vec<&str> = list.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["2020-Feb", "2020-Mar"]);
    assert_eq!(list.skipped.len(), 1);
    assert_eq!(list.skipped[0].id.as_deref(), Some("2020-Jan"));
    assert_eq!(client.list_updates().unwrap().len(), 2);

    for month in ["2020-Feb", "2020-Mar"] {
        let body = client.fetch_document(&id(month)).unwrap();
        assert_eq!(body, fixture(month), "{month} bytes differ");
    }

    let reqs = server.requests();
    let list_req = reqs
        .iter()
        .find(|r| r.path == "/cvrf/v3.0/updates")
        .unwrap();
    assert_eq!(list_req.method, "GET");
    assert_eq!(list_req.headers["accept"], "application/json");
    let doc_req = reqs
        .iter()
        .find(|r| r.path == "/cvrf/v3.0/cvrf/2020-Mar")
        .unwrap();
    assert_eq!(doc_req.headers["accept"], "application/xml");
    assert!(doc_req.headers["user-agent"].starts_with("kbgap/"));
}

#[test]
fn sync_fetches_only_what_changed_and_reports_failures() {
    let server = mirror();
    let client = MsrcClient::new(&server.base_url(), fast(0)).unwrap();
    let mut remote = client.list_updates().unwrap();
    // A listed document the mirror does not have: a 404 failure that must not stop the run.
    let mut missing = remote[0].clone();
    missing.id = id("2020-Dec");
    missing.initial_release = "2020-12-08T08:00:00Z".parse().unwrap();
    remote.push(missing);
    let stored = vec![kbgap_catalog::DocumentHead {
        id: id("2020-Feb"),
        revision: "5".into(),
        current_release: "2020-09-22T07:00:00Z".parse().unwrap(),
    }];
    let plan = plan_sync(&remote, &stored, Some("2020-Feb".parse().unwrap()));
    let planned: Vec<&str> = plan.to_fetch.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(planned, ["2020-Mar", "2020-Dec"]);

    let mut stored_bytes = Vec::new();
    let report = run_sync(&client, &plan, |entry, body| {
        stored_bytes.push((entry.id.clone(), body.len()));
        Ok(())
    });
    assert_eq!(report.fetched, [id("2020-Mar")]);
    assert_eq!(stored_bytes, [(id("2020-Mar"), fixture("2020-Mar").len())]);
    assert_eq!(report.unchanged, 1);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].id, id("2020-Dec"));
    assert!(matches!(
        &report.failures[0].error,
        SyncError::Fetch(MsrcError::Http { status: 404, .. })
    ));
    assert!(!report.is_complete());
    assert_eq!(
        server.hits("/cvrf/v3.0/cvrf/2020-Feb"),
        0,
        "up-to-date document was fetched"
    );
}

#[test]
fn server_errors_are_retried_until_success() {
    let mar = fixture("2020-Mar");
    let server = TestServer::start(move |_, n| {
        if n < 2 {
            Reply::new(500, "Internal Server Error")
        } else {
            Reply::new(200, mar.clone())
        }
    });
    let client = MsrcClient::new(&server.base_url(), fast(3)).unwrap();
    let body = client.fetch_document(&id("2020-Mar")).unwrap();
    assert_eq!(body, fixture("2020-Mar"));
    assert_eq!(server.hits("/cvrf/v3.0/cvrf/2020-Mar"), 3);
}

#[test]
fn persistent_server_errors_fail_after_the_retry_budget() {
    let server = TestServer::start(|_, _| Reply::new(503, "upstream   busy\n try later"));
    let client = MsrcClient::new(&server.base_url(), fast(2)).unwrap();
    let err = client.list_updates().unwrap_err();
    let url = format!("{}/cvrf/v3.0/updates", server.base_url());
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.url(), url);
    assert_eq!(
        err.to_string(),
        format!("{url}: HTTP 503 after 3 attempts: upstream busy try later")
    );
    assert_eq!(server.hits("/cvrf/v3.0/updates"), 3);
}

#[test]
fn client_errors_are_not_retried() {
    let server = mirror();
    let client = MsrcClient::new(&server.base_url(), fast(3)).unwrap();
    let err = client.fetch_document(&id("2031-Jan")).unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string().ends_with("/cvrf/v3.0/cvrf/2031-Jan: HTTP 404 after 1 attempt: <html><body><h1>404 Not Found</h1></body></html>"),
        "{err}"
    );
    assert_eq!(server.hits("/cvrf/v3.0/cvrf/2031-Jan"), 1);
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let server = TestServer::start(|_, n| {
        if n == 0 {
            Reply::new(429, "slow down").header("Retry-After", "1")
        } else {
            Reply::new(200, UPDATES_JSON)
        }
    });
    let client = MsrcClient::new(&server.base_url(), fast(2)).unwrap();
    let start = Instant::now();
    let entries = client.list_updates().unwrap();
    let waited = start.elapsed();
    assert_eq!(entries.len(), 2);
    assert_eq!(server.hits("/cvrf/v3.0/updates"), 2);
    // The 2 ms backoff would have retried at once; Retry-After: 1 held it for a second.
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[test]
fn connection_refused_says_offline() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // listener dropped: nothing listens on this port now
    let base = format!("http://127.0.0.1:{port}");
    let client = MsrcClient::new(&base, fast(1)).unwrap();
    let err = client.list_updates().unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach {base}/cvrf/v3.0/updates: connection refused (after 2 attempts) — \
             are you offline? use `kbgap catalog import` with downloaded files"
        )
    );

    // A sync stops at the first unreachable document instead of failing each one.
    let server = mirror();
    let listed = MsrcClient::new(&server.base_url(), fast(0))
        .unwrap()
        .list_updates()
        .unwrap();
    let plan = plan_sync(&listed, &[], None);
    let report = run_sync(&client, &plan, |_, _| Ok(()));
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.not_attempted, [id("2020-Mar")]);
    assert!(report.to_string().contains("not attempted 1"), "{report}");
}

#[test]
fn html_page_with_200_is_not_a_cvrf_document() {
    let server = TestServer::start(|_, _| {
        Reply::new(
            200,
            "<!DOCTYPE html>\n<html><head><title>Service maintenance</title></head></html>",
        )
        .header("Content-Type", "text/html")
    });
    let client = MsrcClient::new(&server.base_url(), fast(3)).unwrap();
    let err = client.fetch_document(&id("2020-Mar")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}/cvrf/v3.0/cvrf/2020-Mar: response is not a CVRF XML document (an HTML page); \
             body starts: \"<!DOCTYPE html> <html><head><title>Service maintenance</title></head></html>\"",
            server.base_url()
        )
    );
    assert_eq!(
        server.hits("/cvrf/v3.0/cvrf/2020-Mar"),
        1,
        "a bad body is not retried"
    );
}

#[test]
fn invalid_updates_json_names_the_position() {
    let server =
        TestServer::start(|_, _| Reply::new(200, "{\"value\": [\n {\"ID\": \"2020-Mar\",,}\n]}"));
    let client = MsrcClient::new(&server.base_url(), fast(0)).unwrap();
    let err = client.list_updates().unwrap_err();
    match &err {
        MsrcError::InvalidJson { line, column, .. } => assert_eq!((*line, *column), (2, 20)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().starts_with(&format!(
            "{}/cvrf/v3.0/updates: invalid updates JSON at line 2 column 20: ",
            server.base_url()
        )),
        "{err}"
    );
}

#[test]
fn oversized_bodies_are_refused() {
    let server = mirror();
    let options = ClientOptions {
        max_body_bytes: 100_000,
        ..fast(2)
    };
    let client = MsrcClient::new(&server.base_url(), options).unwrap();
    let err = client.fetch_document(&id("2020-Mar")).unwrap_err();
    assert_eq!(
        err,
        MsrcError::TooLarge {
            url: format!("{}/cvrf/v3.0/cvrf/2020-Mar", server.base_url()),
            limit: 100_000
        }
    );
    assert_eq!(server.hits("/cvrf/v3.0/cvrf/2020-Mar"), 1);
}

#[test]
fn silent_servers_time_out_and_are_retried() {
    let server = TestServer::start(|_, _| Reply::Hang);
    let options = ClientOptions {
        timeout: Duration::from_millis(200),
        ..fast(1)
    };
    let client = MsrcClient::new(&server.base_url(), options).unwrap();
    let err = client.fetch_document(&id("2020-Mar")).unwrap_err();
    assert!(
        matches!(err, MsrcError::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("/cvrf/v3.0/cvrf/2020-Mar: timed out"),
        "{err}"
    );
    assert_eq!(server.hits("/cvrf/v3.0/cvrf/2020-Mar"), 2);
}
