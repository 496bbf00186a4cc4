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
}

fn main() {
    let cli = Cli::parse();
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
    } = cli.command;
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
