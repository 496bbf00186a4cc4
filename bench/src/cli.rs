//! Command-line interface: one subcommand per scenario, with the target and output options
//! shared by all.
//!
//! Every count and duration has a default that stays under this machine's 20,000 open files
//! per process, and `--smoke` swaps them for values that finish in about two seconds.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `ringcast-bench <scenario> [options]`.
#[derive(Debug, Parser)]
#[command(
    name = "ringcast-bench",
    version,
    about = "Load generator for Pusher-protocol servers (ringcast, Laravel Reverb, ...)"
)]
pub struct Cli {
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Open and subscribe N connections, hold them, report memory per connection.
    Idle(IdleArgs),
    /// Connection + upgrade + connection_established + subscribe per second, and latency.
    Connect(ConnectArgs),
    /// S subscribers over C channels, a publisher on the HTTP API; deliveries/s, latency, loss.
    Fanout(FanoutArgs),
    /// HTTP API trigger requests per second and latency over keep-alive connections.
    Trigger(TriggerArgs),
    /// Physical reference: plain send() of a pre-encoded frame to the same number of sockets.
    Ceiling(CeilingArgs),
    /// Subscribers that never read next to ones that do; server memory and 4100 closes.
    Slow(SlowArgs),
    /// Connections with churn and steady publishing for a long time; memory and no loss.
    Soak(SoakArgs),
    /// The sending side of `ceiling`, run as a child process (not for direct use).
    #[command(hide = true)]
    CeilingSender(CeilingSenderArgs),
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// WebSocket URL of the server (the `/app/{key}` path is added); several, separated by
    /// commas, spread the clients over the nodes of a cluster, round robin.
    #[arg(
        long,
        env = "RINGCAST_BENCH_WS_URL",
        default_value = "ws://127.0.0.1:8080"
    )]
    pub ws_url: String,
    /// HTTP API URL of the server (the `/apps/{id}/...` path is added).
    #[arg(
        long,
        env = "RINGCAST_BENCH_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api_url: String,
    /// PEM certificate authority that signed the server's certificate, for wss:// and https://
    /// URLs (the clients trust it and nothing else).
    #[arg(long, env = "RINGCAST_BENCH_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// App id.
    #[arg(long, env = "REVERB_APP_ID", default_value = "")]
    pub app_id: String,
    /// App key.
    #[arg(long, env = "REVERB_APP_KEY", default_value = "")]
    pub key: String,
    /// App secret.
    #[arg(long, env = "REVERB_APP_SECRET", default_value = "")]
    pub secret: String,
    /// Server process id, to sample its resident memory from /proc/PID/status.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Further server processes (the other nodes of a cluster) and a Redis, by process id,
    /// whose CPU time (/proc/PID/stat) the fan-out reports per 1,000 broadcasts.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,
    /// The Redis server's process id, whose CPU time the fan-out reports per 1,000 broadcasts,
    /// also net of what every process named uses with nothing published (sampled for 2 s
    /// before the run).
    #[arg(long)]
    pub redis_pid: Option<u32>,
    /// The Redis server's address (`host:port`): its CPU time is then read from its
    /// `INFO cpu`, to the microsecond, instead of `/proc/PID/stat`.
    #[arg(long, value_name = "HOST:PORT")]
    pub redis_addr: Option<String>,
    /// Seconds of measurement (per-scenario default; 2 with --smoke).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the timeline chart as SVG here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Small numbers and two seconds: for CI.
    #[arg(long)]
    pub smoke: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Do not pin worker threads to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Bind client sockets to this many source addresses 127.0.0.2, 127.0.0.3, ...
    /// (0: automatic, only when one address's ports are not enough).
    #[arg(long, default_value_t = 0)]
    pub source_addrs: usize,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

impl Common {
    /// The duration in seconds: given, or the smoke or scenario default.
    pub fn duration_or(&self, default: f64) -> f64 {
        self.duration
            .unwrap_or(if self.smoke { 2.0 } else { default })
    }

    /// Worker threads.
    pub fn thread_count(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// Picks `normal` or, with `--smoke`, `smoke`, unless the user gave a value.
pub fn pick<T>(given: Option<T>, smoke: bool, normal: T, smoke_value: T) -> T {
    given.unwrap_or(if smoke { smoke_value } else { normal })
}

/// `idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open and hold [default: 1000; smoke 50].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Channels the connections subscribe to, round robin.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Initial read buffer per connection in bytes.
    #[arg(long, default_value_t = 512)]
    pub read_buffer: usize,
    /// Join presence channels instead of public ones: connection i joins
    /// `presence-bench-{i mod channels}` as user i, signed with the app's secret as an auth
    /// endpoint signs it. A presence channel takes 100 distinct users by default
    /// (`max_presence_members`): give `--channels` at least connections / 100.
    #[arg(long)]
    pub presence: bool,
}

/// `connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Stop after this many connections [default: 1,000,000; smoke 20,000].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Connections in progress at once [default: 64; smoke 8].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Join a presence channel (signed with the app's secret, one channel per loop) instead of
    /// a public one, and report the join's latency alone: from the subscribe to the member
    /// list.
    #[arg(long)]
    pub presence: bool,
}

/// `fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscribers [default: 1000; smoke 50].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Channels; subscriber i joins channel i mod C.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Payload (event data) bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Publishes per second in all (0: as fast as subscribers keep up, see --window).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// With --rate 0: at most this many messages per subscriber published and not yet
    /// delivered.
    #[arg(long, default_value_t = 4)]
    pub window: u64,
    /// Publisher connections (each owns channels c with c mod P = its index, so one
    /// channel's publishes are never concurrent) [default: min(channels, 4)].
    #[arg(long)]
    pub publishers: Option<usize>,
    /// Run the ceiling scenario first with the same sockets and report the fraction.
    #[arg(long)]
    pub ceiling: bool,
    /// Initial read buffer per connection in bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}

/// `trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    pub common: Common,
    /// Keep-alive API connections, one request in flight each [default: 16; smoke 4].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Event data bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
}

/// `ceiling`.
#[derive(Debug, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub common: Common,
    /// Receiving sockets [default: 1000; smoke 50].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Channels (distinct frames per round).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// At most this many frames per socket written and not yet delivered.
    #[arg(long, default_value_t = 4)]
    pub window: u64,
    /// Broadcasts per second in all, as `fanout --rate` publishes (0: as fast as the window
    /// allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Initial read buffer per connection in bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}

/// `slow`.
#[derive(Debug, Args)]
pub struct SlowArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscribers that stop reading after subscribing [default: 10; smoke 4].
    #[arg(long)]
    pub stalled: Option<usize>,
    /// Subscribers that read [default: 100; smoke 20].
    #[arg(long)]
    pub readers: Option<usize>,
    /// Payload bytes.
    #[arg(long, default_value_t = 1024)]
    pub payload: usize,
    /// At most this many messages per reader published and not yet delivered.
    #[arg(long, default_value_t = 8)]
    pub window: u64,
    /// Seconds the stalled clients get to read their close once they read again.
    #[arg(long, default_value_t = 10.0)]
    pub release_timeout: f64,
    /// Seconds the flood may go on after the duration while some stalled client has not yet
    /// been sent enough to come back and read its close.
    #[arg(long, default_value_t = 120.0)]
    pub flood_timeout: f64,
    /// The server's per-connection outbound queue bound (ringcast's
    /// `RINGCAST_MAX_OUTBOUND_BYTES`): the memory bound is derived from it.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_outbound_bytes: u64,
    /// The kernel send buffer of each of the server's sockets (ringcast's
    /// `RINGCAST_SEND_BUFFER_BYTES`, default 64 KiB); 0 for a server that leaves it to the
    /// kernel's autotuning, which grows it up to `tcp_wmem`'s largest size.
    #[arg(long, default_value_t = 64 << 10)]
    pub send_buffer_bytes: u64,
    /// Flood bytes after which a stalled client reads again, like a phone back from a tunnel
    /// (0: only once the flood is over) [default: the outbound bound + the server's send
    /// buffer (`--send-buffer-bytes`, or `tcp_wmem`'s largest for 0) + 64 KiB, the most the
    /// server could hold before closing it].
    #[arg(long)]
    pub stall_bytes: Option<u64>,
}

/// `soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections held in all, churning ones included [default: 1000; smoke 60].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Channels.
    #[arg(long)]
    pub channels: Option<usize>,
    /// Connect/subscribe/unsubscribe/disconnect cycles per second [default: 20; smoke 10].
    #[arg(long)]
    pub churn: Option<f64>,
    /// Connections that churn (the rest stay for the whole run) [default: connections / 10].
    #[arg(long)]
    pub churn_pool: Option<usize>,
    /// Publishes per second [default: 100; smoke 50].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
}

/// `ceiling-sender` (child process of `ceiling`).
#[derive(Debug, Args)]
pub struct CeilingSenderArgs {
    /// Sockets to accept.
    #[arg(long)]
    pub connections: usize,
    /// Channels.
    #[arg(long)]
    pub channels: usize,
    /// Payload bytes.
    #[arg(long)]
    pub payload: usize,
    /// Frames per socket in flight at most.
    #[arg(long)]
    pub window: u64,
    /// Sender threads.
    #[arg(long)]
    pub threads: usize,
    /// Seconds of sending.
    #[arg(long)]
    pub duration: f64,
    /// Broadcasts per second in all (0: as fast as the window allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Do not pin sender threads.
    #[arg(long)]
    pub no_pin: bool,
}
