//! End-to-end: a real TCP listener on 127.0.0.1:0 served by axum, called with ureq, then shut down gracefully.

mod common;

use common::*;
use kbgap_server::*;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_tcp_and_shuts_down_gracefully() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(
        Arc::new(sample_fleet()),
        auth_config(),
        ServerConfig::new(BASE),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let token = token(&["Software.Read.All"]);
    let url = format!("http://{addr}/api/machines/{M1}/getmissingkbs%20");
    let (status, ctype, odata, body) = tokio::task::spawn_blocking(move || {
        let mut resp = ureq::get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Accept", "application/json")
            .header("Accept-Encoding", "identity")
            .call()
            .unwrap();
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let (ctype, odata) = (h("content-type"), h("odata-version"));
        (
            resp.status().as_u16(),
            ctype,
            odata,
            resp.body_mut().read_to_string().unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(ctype.as_deref(), Some(kbgap_server::error::CONTENT_TYPE));
    assert_eq!(odata.as_deref(), Some("4.0"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["value"][0]["id"], "4540673");
    assert_eq!(v["value"][0]["machineMissedOn"], 1);

    // A 401 over the wire carries the Defender error body and WWW-Authenticate.
    let url = format!("http://{addr}/api/machines");
    let (status, www, body) = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent.get(&url).call().unwrap();
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        (
            resp.status().as_u16(),
            www,
            resp.body_mut().read_to_string().unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 401);
    assert_eq!(www.as_deref(), Some("Bearer"));
    assert!(body.contains("\"code\":\"Unauthorized\""), "{body}");

    stop_tx.send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("server stops within 10 s")
        .unwrap();
    assert!(result.is_ok());
    // After shutdown nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
