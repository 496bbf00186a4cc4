//! Restart without downtime: `ringcast restart`, `SIGUSR2`, `systemctl reload`.
//!
//! A restart starts a new process of the same binary with the same arguments, environment
//! and working directory (so it reads the configuration anew, and runs a binary that was
//! replaced on disk). The new process binds the same port next to this one (`SO_REUSEPORT`:
//! each worker of either process has a listener in the port's group, and the kernel spreads
//! new connections over all of them) and says when it serves, on a socket it was given as
//! descriptor 3. Only then does this process stop accepting, deliver what it accepted, close
//! every client with 4200 (pusher-js reconnects at once, to the new process, the only one
//! still listening) and let its workers go. A new process that fails to start, or is not
//! ready within [`READY_TIMEOUT`], is stopped and this one keeps serving: a bad binary or a
//! bad configuration never takes the service down.
//!
//! Connections that wait in this process's accept queues when it stops listening are moved
//! to the new process's listeners by the kernel with `net.ipv4.tcp_migrate_req = 1` (Linux
//! 5.14; `tuning/apply.sh` sets it). Without it they are reset, and their clients retry.
//!
//! The process a service manager started keeps its pid: after its first hand-over it stays
//! as a small supervisor of its successor ([`supervise`]) and relays signals to it: `SIGTERM`
//! and `SIGINT` (drain and stop), `SIGHUP` (reload). A later `SIGUSR2` starts the next process
//! from there, and the one serving is told `SIGTERM` once the next is ready; it exits when
//! its clients have gone. The supervisor exits with the status of the process it supervises.
//! So systemd (`ExecReload=/bin/kill -USR2 $MAINPID`) and supervisor (`supervisorctl signal
//! USR2 ringcast`) keep tracking one pid, and neither starts a second server by mistake. A
//! serving process that is itself a successor passes a `SIGUSR2` it receives on to its
//! supervisor, so any of the processes may be signalled.

use std::io::{self, BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;

use crate::sys;
use crate::worker::Shared;

/// How long a new process has to start serving before the restart is given up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The descriptor a new process reports readiness on.
const READY_FD: i32 = 3;
/// Set for a new process: the descriptor it reports readiness on.
const READY_ENV: &str = "RINGCAST_READY_FD";
/// Set for a new process: the pid of the supervisor, to which it passes `SIGUSR2` on.
const SUPERVISOR_ENV: &str = "RINGCAST_SUPERVISOR_PID";

/// Why a restart did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error("cannot start the new process: {0}")]
    Spawn(io::Error),
    #[error("the new process (pid {pid}) did not start serving: {why}")]
    NotReady { pid: u32, why: String },
}

/// A new process that reported that it serves.
#[derive(Debug)]
pub struct Successor {
    child: Child,
}

impl Successor {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// What the signal loop decided.
#[derive(Debug)]
pub enum Step {
    /// Stop: drain and exit.
    Stop,
    /// A successor serves: drain, then supervise it.
    HandOver(Successor),
}

/// Tells the process that started this one for a restart that it serves (a no-op for a
/// process started otherwise).
pub fn announce_ready() {
    if std::env::var(READY_ENV).ok().as_deref() != Some("3") {
        return;
    }
    if let Some(mut s) = sys::inherited_stream(READY_FD) {
        let _ = io::Write::write_all(&mut s, b"ready\n");
    }
}

/// The supervisor of this process, when it is a successor.
fn supervisor() -> Option<u32> {
    std::env::var(SUPERVISOR_ENV).ok()?.parse().ok()
}

/// Waits for signals until this process must stop serving: `SIGTERM`/`SIGINT` stop it;
/// `SIGUSR2` restarts (or is passed to the supervisor); `SIGHUP` reloads the configuration
/// (`crate::reload`), and `shared` becomes the reloaded one.
pub fn wait(shared: &mut Arc<Shared>, signals: &mut Signals) -> Step {
    for sig in signals.forever() {
        match sig {
            SIGUSR2 => {
                if let Some(pid) = supervisor() {
                    tracing::info!(
                        supervisor = pid,
                        "restart asked; passing it to the supervisor"
                    );
                    if let Err(e) = sys::kill(pid, SIGUSR2) {
                        tracing::error!(error = %e, "cannot signal the supervisor");
                    }
                    continue;
                }
                tracing::info!("restart asked: starting a new process");
                match spawn(shared, std::process::id()) {
                    Ok(next) => {
                        tracing::info!(pid = next.pid(), "the new process serves; handing over");
                        return Step::HandOver(next);
                    }
                    Err(e) => tracing::error!("restart refused, still serving: {e}"),
                }
            }
            SIGHUP => {
                if let Some(next) = crate::reload::reload(shared) {
                    *shared = next;
                }
            }
            _ => {
                tracing::info!(signal = sig, "shutting down");
                return Step::Stop;
            }
        }
    }
    Step::Stop
}

/// Starts a new process of this binary with this process's arguments, and waits until it
/// serves.
pub fn spawn(shared: &Shared, supervisor: u32) -> Result<Successor, RestartError> {
    let exe = std::env::current_exe().map_err(RestartError::Spawn)?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(READY_ENV, READY_FD.to_string())
        .env(SUPERVISOR_ENV, supervisor.to_string())
        .stdin(Stdio::null());
    // A generated app must survive the restart, or every client would need a new key.
    if shared.config.generated
        && let Some(app) = shared.config.apps.first()
    {
        cmd.env("REVERB_APP_ID", &app.id)
            .env("REVERB_APP_KEY", &app.key)
            .env("REVERB_APP_SECRET", &app.secret);
    }
    let (ours, theirs) = UnixStream::pair().map_err(RestartError::Spawn)?;
    let mut child =
        sys::spawn_successor(&mut cmd, theirs.as_raw_fd()).map_err(RestartError::Spawn)?;
    drop(theirs);
    let pid = child.id();
    let _ = ours.set_read_timeout(Some(READY_TIMEOUT));
    let mut line = String::new();
    let answer = BufReader::new(&ours).read_line(&mut line);
    match answer {
        Ok(_) if line.trim() == "ready" => Ok(Successor { child }),
        other => {
            let why = match other {
                Ok(0) => match child.try_wait() {
                    Ok(Some(status)) => format!("it exited ({status})"),
                    _ => "it closed its readiness socket".to_string(),
                },
                Ok(_) => format!("it said {:?}", line.trim()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    format!("not ready within {} s", READY_TIMEOUT.as_secs())
                }
                Err(e) => e.to_string(),
            };
            let _ = sys::kill(pid, SIGTERM);
            let _ = child.wait();
            Err(RestartError::NotReady { pid, why })
        }
    }
}

/// Supervises `first` (and the processes later restarts start) after this process handed its
/// clients over, until the one serving exits; then exits with its status. `served_out` says
/// that every worker thread has ended: the TCP sockets their tasks left open (kept-alive
/// HTTP connections) are then closed, so that their clients reconnect to the new process.
pub fn supervise(shared: &Shared, first: Successor, signals: &mut Signals, served_out: bool) -> ! {
    if served_out {
        let closed = sys::close_inet_sockets();
        tracing::debug!(closed, "closed the sockets the workers left");
    }
    sys::release_free_memory();
    let _ = signals.add_signal(SIGCHLD);
    let mut current = first.child;
    let mut retiring: Vec<Child> = Vec::new();
    let mut stopping = false;
    println!("ringcast handed over to pid {}", current.id());
    loop {
        retiring.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        if let Ok(Some(status)) = current.try_wait() {
            for mut c in retiring {
                let _ = c.wait();
            }
            let code = status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            std::process::exit(code);
        }
        let pending: Vec<i32> = signals.wait().collect();
        for sig in pending {
            let pid = current.id();
            match sig {
                SIGTERM | SIGINT => {
                    stopping = true;
                    let _ = sys::kill(pid, SIGTERM);
                    for c in &retiring {
                        let _ = sys::kill(c.id(), SIGTERM);
                    }
                }
                SIGHUP => {
                    let _ = sys::kill(pid, SIGHUP);
                }
                SIGUSR2 if !stopping => match spawn(shared, std::process::id()) {
                    Ok(next) => {
                        tracing::info!(
                            old = pid,
                            new = next.pid(),
                            "the new process serves; the old one drains"
                        );
                        let _ = sys::kill(pid, SIGTERM);
                        retiring.push(std::mem::replace(&mut current, next.child));
                        println!("ringcast handed over to pid {}", current.id());
                    }
                    Err(e) => {
                        tracing::error!("restart refused, the current process keeps serving: {e}")
                    }
                },
                _ => {}
            }
        }
    }
}

/// What `ringcast restart` found and did.
#[derive(Debug, PartialEq, Eq)]
pub struct Restarted {
    /// The processes that listened before.
    pub before: Vec<u32>,
    /// The processes that listen now.
    pub after: Vec<u32>,
}

/// `ringcast restart`: signals the server that listens on `port` (or `pid`) and waits until
/// another process has taken over its listeners, for at most `timeout`.
pub fn command(pid: Option<u32>, port: u16, timeout: Duration) -> Result<Restarted, CommandError> {
    let before = listeners(port);
    let target = match pid {
        Some(p) => p,
        None => match before.as_slice() {
            [] => return Err(CommandError::NotRunning(port)),
            [one] => *one,
            many => return Err(CommandError::Ambiguous(port, many.to_vec())),
        },
    };
    sys::kill(target, SIGUSR2).map_err(|e| CommandError::Signal(target, e))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = listeners(port);
        if !now.is_empty() && now.iter().all(|p| !before.contains(p)) {
            return Ok(Restarted { before, after: now });
        }
        if std::time::Instant::now() >= deadline {
            return Err(CommandError::Timeout(timeout.as_secs(), target));
        }
    }
}

/// Why `ringcast restart` failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "no process listens on port {0} (give --pid if it runs as another user or on another port)"
    )]
    NotRunning(u16),
    #[error(
        "several processes listen on port {0} (pids {1:?}): a restart is under way, or give --pid"
    )]
    Ambiguous(u16, Vec<u32>),
    #[error("cannot signal pid {0}: {1}")]
    Signal(u32, io::Error),
    #[error("no new process took over within {0} s; see the log of pid {1}")]
    Timeout(u64, u32),
}

/// The pids that hold a listening TCP socket on `port` (from `/proc/net/tcp` and `tcp6`, and
/// the descriptors in `/proc/PID/fd` that this user may read).
pub fn listeners(port: u16) -> Vec<u32> {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let listening = *state == "0A";
            let on_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if listening && on_port {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    let mut pids = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| l.to_str().map(|l| inodes.contains(l)))
                .unwrap_or(false)
        });
        if holds {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}
