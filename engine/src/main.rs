//! The `ringcast` command.

use std::collections::HashMap;

use clap::{Parser, Subcommand};
use ringcast::config::{Config, Overrides};

/// jemalloc, not glibc's allocator: an idle connection's few small long-lived allocations are
/// made between a handshake's transient ones (monoio's timer futures are 128-byte aligned, which
/// glibc serves by splitting chunks), and glibc leaves the freed handshake state as holes it
/// cannot return, up to half again an idle connection's size. jemalloc's size classes keep them
/// apart.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// ringcast: a Pusher-protocol, Laravel Reverb-compatible WebSocket server on io_uring.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the larger variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Start the server.
    ///
    /// Settings come, lowest first, from built-in defaults, the TOML file given with --config,
    /// a Laravel `.env` in the working directory, the environment (Reverb's REVERB_* names),
    /// and these flags. With no app configured, one is generated and its credentials printed.
    Start {
        /// Address to listen on [default: 0.0.0.0, or REVERB_SERVER_HOST]
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on [default: 8080, or REVERB_SERVER_PORT]
        #[arg(long)]
        port: Option<u16>,
        /// Worker threads, each pinned to a core [default: one per available core]
        #[arg(long)]
        workers: Option<usize>,
        /// TOML configuration file (server settings and any number of [[apps]])
        #[arg(long, value_name = "FILE")]
        config: Option<String>,
        /// Path prefix in front of /app and /apps, as REVERB_SERVER_PATH [default: none]
        #[arg(long)]
        path: Option<String>,
        /// Serve a WebSocket echo endpoint at /echo, for protocol conformance tests
        #[arg(long)]
        echo: bool,
        /// Join the cluster of the nodes on the same Redis, as REVERB_SCALING_ENABLED=true
        #[arg(long)]
        scaling: bool,
        /// Prefix of every key kept in Redis, as REVERB_SCALING_CHANNEL [default: reverb]
        #[arg(long, value_name = "PREFIX")]
        scaling_channel: Option<String>,
        /// Redis URL, redis:// or rediss://, as REDIS_URL (its parts win over --redis-host etc.)
        #[arg(long, value_name = "URL")]
        redis_url: Option<String>,
        /// Redis host, as REDIS_HOST [default: 127.0.0.1]
        #[arg(long, value_name = "HOST")]
        redis_host: Option<String>,
        /// Redis port, as REDIS_PORT [default: 6379]
        #[arg(long, value_name = "PORT")]
        redis_port: Option<u16>,
        /// Redis ACL user name, as REDIS_USERNAME [default: none]
        #[arg(long, value_name = "USER")]
        redis_username: Option<String>,
        /// Redis password, as REDIS_PASSWORD (the environment keeps it out of `ps`) [default: none]
        #[arg(long, value_name = "PASSWORD")]
        redis_password: Option<String>,
        /// Redis database number, as REDIS_DB [default: 0]
        #[arg(long, value_name = "N")]
        redis_db: Option<i64>,
        /// Serve the operator dashboard at /dashboard (login with an app's id, key and
        /// secret; also RINGCAST_DASHBOARD=true or `dashboard = true`)
        #[arg(long)]
        dashboard: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of its own
        /// [default: off; also RINGCAST_METRICS_ADDR or `metrics_addr`]
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<String>,
        /// Log every WebSocket message in and out and every HTTP API request, with its
        /// connection and channel, signatures redacted (also RINGCAST_DEBUG=true or `debug`)
        #[arg(long)]
        debug: bool,
        /// TLS on the server's port: the PEM certificate chain (with --tls-key; also
        /// RINGCAST_TLS_CERT or `tls_cert`) [default: plain TCP]
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<String>,
        /// The PEM private key of --tls-cert (also RINGCAST_TLS_KEY or `tls_key`)
        #[arg(long, value_name = "FILE")]
        tls_key: Option<String>,
    },
    /// Restart a running server without dropping its clients, as `php artisan reverb:restart`.
    ///
    /// Signals (SIGUSR2) the ringcast that listens on the configured port (read as `start`
    /// reads it: --config, .env, the environment, --port) or the one given with --pid. That
    /// server starts a new process with its own arguments, which binds the same port; once
    /// the new process serves, the old one stops accepting, closes its clients with 4200
    /// (pusher-js reconnects at once) and exits. Waits until the new process has taken over.
    Restart {
        /// The pid of the server [default: the process listening on the port]
        #[arg(long)]
        pid: Option<u32>,
        /// The port the server listens on [default: as `start` would]
        #[arg(long)]
        port: Option<u16>,
        /// TOML configuration file the server was started with
        #[arg(long, value_name = "FILE")]
        config: Option<String>,
        /// Seconds to wait for the new process to take over
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Command::Restart {
        pid,
        port,
        config,
        timeout,
    } = cli.command
    {
        restart(pid, port, config, timeout);
    }
    let Command::Start {
        host,
        port,
        workers,
        config,
        path,
        echo,
        scaling,
        scaling_channel,
        redis_url,
        redis_host,
        redis_port,
        redis_username,
        redis_password,
        redis_db,
        dashboard,
        metrics_addr,
        debug,
        tls_cert,
        tls_key,
    } = cli.command
    else {
        unreachable!("restart returned above")
    };
    let flags = Overrides {
        host,
        port,
        workers,
        path,
        echo,
        dashboard,
        config_file: config,
        scaling: ringcast::config::ScalingLayer {
            enabled: scaling.then_some(true),
            channel: scaling_channel,
            url: redis_url,
            host: redis_host,
            port: redis_port,
            username: redis_username,
            password: redis_password,
            db: redis_db,
        },
        operations: ringcast::config::FlagOperations {
            metrics_addr,
            debug,
            tls_cert,
            tls_key,
        },
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let config = match Config::load(&flags, &cwd, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringcast: {e}");
            std::process::exit(2);
        }
    };
    ringcast::logging::init(&config.operations);
    if let Err(e) = ringcast::server::run(config) {
        eprintln!("ringcast: {e:#}");
        std::process::exit(1);
    }
}

/// `ringcast restart`: never returns.
fn restart(pid: Option<u32>, port: Option<u16>, config: Option<String>, timeout: u64) -> ! {
    let port = match port {
        Some(p) => p,
        None => {
            let flags = Overrides {
                config_file: config,
                ..Overrides::default()
            };
            let env: HashMap<String, String> = std::env::vars().collect();
            let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
            match Config::load(&flags, &cwd, &env) {
                Ok(c) => c.port,
                Err(e) => {
                    eprintln!("ringcast: {e}");
                    std::process::exit(2);
                }
            }
        }
    };
    match ringcast::restart::command(pid, port, std::time::Duration::from_secs(timeout)) {
        Ok(r) => {
            println!(
                "ringcast restarted: pid {:?} -> pid {:?}",
                r.before, r.after
            );
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("ringcast: restart failed: {e}");
            std::process::exit(1);
        }
    }
}
