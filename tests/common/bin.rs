//! Driving the real `meshwork` binary, on this host or inside a network
//! namespace the test created.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_meshwork");

/// Where a command runs: this host's network, or a namespace.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    pub netns: Option<&'a str>,
}

pub const LOCAL: Host<'static> = Host { netns: None };

impl Host<'_> {
    fn command(&self, home: &Path) -> Command {
        let mut c = match self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        c.arg("--home").arg(home).env_remove("MESHWORK_HOME");
        c
    }

    pub fn run(&self, home: &Path, args: &[&str]) -> Output {
        self.command(home)
            .args(args)
            .output()
            .expect("the meshwork binary runs")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, home: &Path, args: &[&str]) -> String {
        let out = self.run(home, args);
        assert!(
            out.status.success(),
            "meshwork {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn json(&self, home: &Path, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(home, args)).expect("exactly one JSON document")
    }

    /// Starts `meshwork daemon ARGS` and waits for its "ready" line.
    pub fn daemon(&self, home: &Path, args: &[&str]) -> Daemon {
        self.until_ready(home, "daemon", args).0
    }

    /// Starts `meshwork up ARGS`, waits for its "ready" line, and returns
    /// what it printed before it.
    pub fn up(&self, home: &Path, args: &[&str]) -> (Daemon, String) {
        self.until_ready(home, "up", args)
    }

    fn until_ready(&self, home: &Path, sub: &str, args: &[&str]) -> (Daemon, String) {
        let mut child = self
            .command(home)
            .arg(sub)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("MESHWORK_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("the daemon starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut printed = String::new();
        for line in lines.by_ref() {
            let line = line.expect("daemon output");
            if line == "ready" {
                // Keep draining so the daemon never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return (Daemon(child), printed);
            }
            printed += &line;
            printed.push('\n');
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the daemon exited before it was ready");
    }
}

pub fn meshwork(home: &Path, args: &[&str]) -> Output {
    LOCAL.run(home, args)
}

pub fn ok(home: &Path, args: &[&str]) -> String {
    LOCAL.ok(home, args)
}

pub fn json(home: &Path, args: &[&str]) -> Value {
    LOCAL.json(home, args)
}

/// Where the daemon of `home` serves its API and web app (from api.json).
pub fn api_addr(home: &Path) -> String {
    let api: Value = serde_json::from_slice(&std::fs::read(home.join("api.json")).unwrap())
        .expect("api.json is JSON");
    api["addr"]
        .as_str()
        .expect("api.json names an address")
        .to_owned()
}

/// A daemon's flags for loopback with mDNS off.
pub const LOOPBACK_ARGS: &[&str] = &["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"];

/// A daemon on loopback with mDNS off.
pub fn daemon(home: &Path) -> Daemon {
    LOCAL.daemon(home, LOOPBACK_ARGS)
}

/// A running daemon, killed and reaped when dropped.
pub struct Daemon(pub Child);

impl Daemon {
    /// `kill -9`, and wait for it to be gone.
    pub fn kill9(&mut self) {
        self.0.kill().expect("kill");
        self.0.wait().expect("wait");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 50 ms for up to 20 s.
pub fn until(what: &str, cond: impl FnMut() -> bool) {
    until_within(std::time::Duration::from_secs(20), what, cond)
}

/// Polls `cond` every 50 ms for up to `timeout`.
pub fn until_within(timeout: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
