//! A private, throw-away PostgreSQL cluster for tests that must stop, crash or restart the
//! database server (which the shared server of [`super::TempDb`] must never be).
//!
//! [`PrivateCluster::new`] runs `initdb` (trust authentication, superuser `postgres`) into a
//! fresh directory under the system temp dir and starts it with `pg_ctl` on a free loopback
//! port, listening on 127.0.0.1 only, its Unix socket inside that directory. Drop stops it
//! (immediate mode) and removes the directory.
//!
//! Binaries: `KBGAP_PG_BINDIR` if set, else the newest `/usr/lib/postgresql/<version>/bin` holding
//! `initdb`, else `pg_config --bindir`. Missing binaries panic with a message saying what to
//! install: tests using a private cluster fail rather than skip. `initdb` and `postgres` refuse
//! to run as root, so under root (as in CI containers) every server command runs as the
//! `postgres` OS user (`runuser -u postgres --`, or `su` where `runuser` is missing) and the
//! directory is handed to that user.
//!
//! A test process killed outright (SIGKILL, a harness timeout) leaves its cluster running: the
//! directory name (`kbgap-pgcluster-<pid>-...`) and the log say whose it was.

use postgres::{Client, NoTls};
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The OS user that runs the server when the test runs as root.
const SERVER_OS_USER: &str = "postgres";

/// How `pg_ctl stop` ends the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `-m fast`: sessions are terminated, a clean shutdown checkpoint is written.
    Fast,
    /// `-m immediate`: every server process is killed at once, no checkpoint; the next start
    /// runs crash recovery (what a crash or `kill -9` of the server looks like to clients).
    Immediate,
}

impl StopMode {
    fn arg(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// A PostgreSQL cluster owned by one test. See the module documentation.
#[derive(Debug)]
pub struct PrivateCluster {
    root: PathBuf,
    bindir: PathBuf,
    port: u16,
    /// Run server commands as [`SERVER_OS_USER`] (the test runs as root).
    as_server_user: bool,
}

impl PrivateCluster {
    /// Creates the cluster (`initdb`) and starts it. Panics with the command's output when a
    /// step fails.
    pub fn new() -> Self {
        let bindir = bindir();
        let as_server_user = running_as_root();
        let root = make_root();
        let mut cluster = Self {
            root,
            bindir,
            port: 0,
            as_server_user,
        };
        if as_server_user {
            let out = Command::new("chown")
                .arg(format!("{SERVER_OS_USER}:"))
                .arg(&cluster.root)
                .output()
                .unwrap_or_else(|e| panic!("run chown: {e}"));
            check(&out, "chown of the cluster directory to the postgres user");
        }
        fs::create_dir_all(cluster.socket_dir()).ok();
        if as_server_user {
            let out = Command::new("chown")
                .arg(format!("{SERVER_OS_USER}:"))
                .arg(cluster.socket_dir())
                .output()
                .unwrap_or_else(|e| panic!("run chown: {e}"));
            check(&out, "chown of the socket directory");
        }
        let mut args: Vec<OsString> = vec!["-D".into(), cluster.data_dir().into()];
        args.extend(
            ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]
                .iter()
                .map(OsString::from),
        );
        let out = cluster.server_command("initdb", &args);
        check(&out, "initdb");
        cluster.append_conf(&format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 30\nshared_buffers = 16MB\n",
            cluster.socket_dir().display()
        ));
        // A port free now may be taken before the server binds it: retry with another.
        let mut last = None;
        for _ in 0..5 {
            let port = free_port();
            cluster.append_conf(&format!("port = {port}\n"));
            cluster.port = port;
            match cluster.try_start() {
                Ok(()) => return cluster,
                Err(e) => last = Some(e),
            }
        }
        panic!(
            "could not start the private PostgreSQL cluster: {}",
            last.unwrap_or_default()
        );
    }

    /// The TCP port (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The Unix socket directory.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("sock")
    }

    /// The server URL without a database name (`postgres://postgres@127.0.0.1:<port>`).
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.server_url())
    }

    /// A client on database `name` (panics when the server does not answer).
    pub fn client(&self, name: &str) -> Client {
        let url = format!("{}?connect_timeout=5", self.url(name));
        Client::connect(&url, NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        self.url(name)
    }

    /// Starts the (stopped) server on the same port and waits until it accepts connections
    /// (after crash recovery, when the last stop was immediate).
    pub fn start(&self) {
        if let Err(e) = self.try_start() {
            panic!("pg_ctl start: {e}");
        }
    }

    /// Stops the server and waits until every server process has exited.
    pub fn stop(&self, mode: StopMode) {
        let out = self.pg_ctl(&["stop", "-w", "-t", "60", "-m", mode.arg()]);
        check(&out, &format!("pg_ctl stop -m {}", mode.arg()));
    }

    /// Stops the server in `mode` and starts it again.
    pub fn restart(&self, mode: StopMode) {
        self.stop(mode);
        self.start();
    }

    /// Whether the server is running (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.pg_ctl(&["status"]).status.success()
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn try_start(&self) -> Result<(), String> {
        let out = self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &self.log_file().to_string_lossy(),
        ]);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}\n--- server log ---\n{}",
                describe(&out),
                tail(&self.log(), 40)
            ))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut all: Vec<OsString> = vec!["-D".into(), self.data_dir().into()];
        all.extend(args.iter().map(OsString::from));
        self.server_command("pg_ctl", &all)
    }

    /// Runs `<bindir>/<program> args`, as the server OS user under root.
    fn server_command(&self, program: &str, args: &[OsString]) -> Output {
        let exe = self.bindir.join(program);
        let mut cmd = if self.as_server_user {
            if Path::new("/usr/sbin/runuser").exists() || Path::new("/sbin/runuser").exists() {
                let mut c = Command::new("runuser");
                c.args(["-u", SERVER_OS_USER, "--"]).arg(&exe).args(args);
                c
            } else {
                let mut line = shell_quote(&exe.to_string_lossy());
                for a in args {
                    line.push(' ');
                    line.push_str(&shell_quote(&a.to_string_lossy()));
                }
                let mut c = Command::new("su");
                c.args(["-s", "/bin/sh", SERVER_OS_USER, "-c", &line]);
                c
            }
        } else {
            let mut c = Command::new(&exe);
            c.args(args);
            c
        };
        // The server must not inherit a client-side PG* environment aimed elsewhere.
        for var in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGDATABASE"] {
            cmd.env_remove(var);
        }
        cmd.current_dir(&self.root);
        cmd.output()
            .unwrap_or_else(|e| panic!("run {} ({program}): {e}", exe.display()))
    }

    fn append_conf(&self, text: &str) {
        let path = self.data_dir().join("postgresql.conf");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        f.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

impl Default for PrivateCluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let out = self.pg_ctl(&["stop", "-w", "-t", "30", "-m", "immediate"]);
            if !out.status.success() {
                // Last resort: kill the postmaster by the pid in its lock file.
                if let Some(pid) = fs::read_to_string(self.data_dir().join("postmaster.pid"))
                    .ok()
                    .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
                    .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                {
                    let _ = Command::new("kill").args(["-KILL", &pid]).status();
                }
            }
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn bindir() -> PathBuf {
    let has_tools = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| d.join(p).is_file())
    };
    if let Some(d) = std::env::var_os("KBGAP_PG_BINDIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        assert!(
            has_tools(&d),
            "KBGAP_PG_BINDIR={} does not hold initdb, pg_ctl and postgres",
            d.display()
        );
        return d;
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_tools(&d) {
            return d;
        }
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under \
         /usr/lib/postgresql/<version>/bin nor by `pg_config --bindir`: install the server \
         (apt-get install postgresql) or set KBGAP_PG_BINDIR. This test starts its own \
         private cluster; it fails rather than skips."
    );
}

/// Whether the effective user is root (initdb and postgres refuse to run as root).
fn running_as_root() -> bool {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .unwrap_or_else(|e| panic!("run `id -u`: {e}"));
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn make_root() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    for attempt in 0u32..100 {
        let dir = std::env::temp_dir().join(format!(
            "kbgap-pgcluster-{}-{:x}",
            std::process::id(),
            (nanos as u64).wrapping_add(u64::from(attempt)) & 0xff_ffff_ffff
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
    panic!("could not create a fresh cluster directory under the temp dir");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("find a free loopback port: {e}"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

fn check(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", describe(out));
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_sh() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
