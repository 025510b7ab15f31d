//! A fresh PostgreSQL database per test, dropped when the guard goes out of scope (even when
//! the test panics).
//!
//! The server is `KBGAP_TEST_PG` (a URL without a database name, default
//! `postgres://postgres@127.0.0.1:5432`); the `postgres` maintenance database is used to
//! create and drop `kbgap_test_<pid>_<random>`. An unreachable server panics with a message
//! saying how to start it: PostgreSQL tests fail rather than skip, so CI notices.
//!
//! Tests that stop, crash or restart the database server use a [`PrivateCluster`] of their own
//! instead (never the shared server).

mod cluster;

pub use cluster::{PrivateCluster, StopMode};

use postgres::{Client, NoTls};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The server URL (no database name).
pub fn server_url() -> String {
    std::env::var("KBGAP_TEST_PG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

fn admin() -> Client {
    let url = format!("{}/postgres?connect_timeout=5", server_url());
    Client::connect(&url, NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url}: {e}. These tests need a running server \
             (start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main \
             start`, or point KBGAP_TEST_PG at one); they fail rather than skip."
        )
    })
}

/// A database created for one test and dropped on drop.
#[derive(Debug)]
pub struct TempDb {
    name: String,
}

impl TempDb {
    /// Creates `kbgap_test_<pid>_<random>`.
    pub fn create() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos();
        let name = format!(
            "kbgap_test_{}_{:x}",
            std::process::id(),
            (nanos ^ (nanos >> 17)) & 0xffff_ffff_ffff
        );
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        Self { name }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database URL.
    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }

    /// A direct client on the database (for assertions outside the store).
    pub fn client(&self) -> Client {
        Client::connect(&self.url(), NoTls)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()))
    }

    /// Ends every other session on the database (what a server restart does to clients).
    pub fn terminate_sessions(&self) -> u64 {
        admin()
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .map(|rows| rows.len() as u64)
            .unwrap_or(0)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(
            &format!("{}/postgres?connect_timeout=5", server_url()),
            NoTls,
        ) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
