//! The real `ringcast` binary, started on a free port for one test and killed when the test is
//! done.
//!
//! One harness for both crates that start the server: the engine's integration tests reach it
//! through `support/mod.rs`, and the load generator's smoke tests include this file by path
//! (`#[path = "../../engine/tests/support/server.rs"]`). Integration tests of two packages can
//! share code only through a library crate or a module file; this needs nothing but `std`, so a
//! file is enough and neither package gains a dependency for it. The caller names the binary:
//! the engine's tests have Cargo's `CARGO_BIN_EXE_ringcast`, the load generator finds a built
//! one (`RINGCAST_BIN`, else the workspace's `target/`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server, killed on drop.
pub struct Server {
    pub port: u16,
    pub child: Child,
    /// The lines the server printed after its listening line.
    pub stdout: mpsc::Receiver<String>,
    /// Its stderr lines, when started with `capture_stderr` (otherwise stderr is the test's).
    pub stderr: Option<mpsc::Receiver<String>>,
}

/// The lines of `from`, sent on a channel by a thread of their own.
fn lines(from: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Runs `bin start --host 127.0.0.1 --port <free port> <args>` with `RINGCAST_LOG=warn` and
    /// `env` on top of this process's environment, in the temporary directory (so that no
    /// `.env` file of the working tree is read), and waits for its `ringcast listening on`
    /// line. The server's stderr is the test's.
    pub fn spawn(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn_with(bin, args, env, false)
    }

    /// [`Server::spawn`], keeping the server's stderr lines in `stderr` when `capture_stderr`.
    pub fn spawn_with(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        capture_stderr: bool,
    ) -> Server {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("start")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .current_dir(std::env::temp_dir())
            .env("RINGCAST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(if capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stderr = child.stderr.take().map(lines);
        let rx = lines(child.stdout.take().unwrap());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("ringcast listening on") => break,
                Ok(_) => continue,
                Err(_) => panic!("ringcast did not print its listening line"),
            }
        }
        Server {
            port,
            child,
            stdout: rx,
            stderr,
        }
    }

    /// Sends SIGTERM (with `kill`, which keeps this file free of `unsafe`) and waits for the
    /// exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM: {sent}");
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
