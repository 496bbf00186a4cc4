//! The `ringcast` command.

use std::collections::HashMap;

use clap::{Parser, Subcommand};
use ringcast::config::{Config, Overrides};

/// ringcast: a Pusher-protocol, Laravel Reverb-compatible WebSocket server on io_uring.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
        dashboard,
        metrics_addr,
        debug,
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
        operations: ringcast::config::FlagOperations {
            metrics_addr,
            debug,
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
