//! `PrivateCluster`: a private PostgreSQL cluster is created, survives an immediate (crash-like)
//! stop with its committed rows, restarts on the same port, and is removed on drop. Fails
//! (never skips) when the PostgreSQL server binaries are missing.

use kbgap_testdata::pg::{PrivateCluster, StopMode};

#[test]
fn private_cluster_survives_immediate_stop_and_is_removed_on_drop() {
    let cluster = PrivateCluster::new();
    let port = cluster.port();
    let url = cluster.create_database("probe");
    assert_eq!(url, format!("postgres://postgres@127.0.0.1:{port}/probe"));
    assert!(cluster.is_running());
    cluster
        .client("probe")
        .batch_execute("CREATE TABLE t (v INT); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();

    cluster.stop(StopMode::Immediate);
    assert!(!cluster.is_running());
    assert!(
        postgres::Client::connect(&format!("{url}?connect_timeout=2"), postgres::NoTls).is_err(),
        "the server should be down"
    );

    cluster.start();
    assert_eq!(cluster.port(), port);
    let n: i64 = cluster
        .client("probe")
        .query_one("SELECT COUNT(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3, "committed rows survive crash recovery");

    cluster.restart(StopMode::Fast);
    assert!(cluster.is_running());

    let dir = cluster.data_dir();
    assert!(dir.is_dir());
    drop(cluster);
    assert!(!dir.exists(), "the cluster directory is removed on drop");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server is stopped on drop"
    );
}
