//! Runs every `ringcast-bench` scenario for about two seconds against a real ringcast server and
//! checks the reports: deliveries happen, and nothing is lost, duplicated or reordered.
//!
//! The server binary comes from `RINGCAST_BIN`, else `target/release/ringcast` (then
//! `target/debug/ringcast`) of this workspace: build it first with
//! `cargo build --release -p ringcast`. It is started by the engine tests' harness, included
//! here by path.

#[path = "../../engine/tests/support/server.rs"]
mod server;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;
use server::Server;

/// Scenarios share two cores; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const APP_ID: &str = "smoke-app";
const KEY: &str = "smoke-key";
const SECRET: &str = "smoke-secret";

fn ringcast_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGCAST_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "RINGCAST_BIN={} does not exist",
            path.display()
        );
        return path;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for profile in ["release", "debug"] {
        let path = root.join("target").join(profile).join("ringcast");
        if path.exists() {
            return path;
        }
    }
    panic!(
        "no ringcast binary: build it with `cargo build --release -p ringcast` \
         or point RINGCAST_BIN at one"
    );
}

fn start_server() -> Server {
    Server::spawn(
        &ringcast_bin(),
        &["--workers", "2"],
        &[
            ("REVERB_APP_ID", APP_ID),
            ("REVERB_APP_KEY", KEY),
            ("REVERB_APP_SECRET", SECRET),
        ],
    )
}

/// Runs a scenario with `--smoke` and returns its JSON report (against `server`'s WebSocket
/// unless `extra` names `--ws-url`).
fn bench(server: &Server, scenario: &str, extra: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!(
        "ringcast-bench-smoke-{}-{scenario}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let svg = dir.join("chart.svg");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringcast-bench"));
    cmd.arg(scenario);
    if !extra.contains(&"--ws-url") {
        cmd.args(["--ws-url", &format!("ws://127.0.0.1:{}", server.port)]);
    }
    let out = cmd
        .args(["--api-url", &format!("http://127.0.0.1:{}", server.port)])
        .args(["--app-id", APP_ID, "--key", KEY, "--secret", SECRET])
        .args(["--pid", &server.child.id().to_string()])
        .args(["--smoke", "--quiet", "--json"])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .args(extra)
        .output()
        .expect("run ringcast-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{scenario} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
    report
}

fn metric(report: &Value, name: &str) -> f64 {
    report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {report:#}"))["value"]
        .as_f64()
        .unwrap()
}

fn assert_clean_delivery(report: &Value) {
    assert!(metric(report, "delivered") > 0.0);
    assert!(metric(report, "subscribers_checked") > 0.0);
    for name in ["lost", "duplicated", "out_of_order", "wrong_channel"] {
        assert_eq!(metric(report, name), 0.0, "{name} in {report:#}");
    }
}

#[test]
fn fanout_delivers_everything_in_order() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_server();
    let r = bench(&server, "fanout", &[]);
    assert!(metric(&r, "deliveries_per_sec") > 0.0);
    assert_clean_delivery(&r);
    assert_eq!(metric(&r, "subscribers_checked"), 50.0);
    let paced = bench(&server, "fanout", &["--channels", "5", "--rate", "500"]);
    assert!(metric(&paced, "delivered") > 0.0);
    assert_clean_delivery(&paced);
    let p99 = paced["latency"][0]["p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0);
}

#[test]
fn idle_holds_connections_and_reads_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_server();
    let r = bench(&server, "idle", &[]);
    assert_eq!(metric(&r, "connections_open"), 50.0);
    assert!(metric(&r, "server_rss_after") > 0.0);
}

#[test]
fn connect_and_trigger_measure_rates() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_server();
    let r = bench(&server, "connect", &[]);
    assert!(metric(&r, "handshakes") > 0.0);
    assert_eq!(metric(&r, "failed"), 0.0);
    let r = bench(&server, "trigger", &[]);
    assert!(metric(&r, "requests") > 0.0);
    assert_eq!(metric(&r, "errors"), 0.0);
}

#[test]
fn presence_joins_and_subscribers_spread_over_several_urls() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_server();
    let r = bench(&server, "connect", &["--presence"]);
    assert!(metric(&r, "handshakes") > 0.0);
    assert_eq!(metric(&r, "failed"), 0.0);
    assert!(
        r["latency"][0]["what"]
            .as_str()
            .unwrap()
            .starts_with("presence join")
    );
    // The same server under two URLs stands for two nodes: the subscribers alternate.
    let url = format!("ws://127.0.0.1:{}", server.port);
    let pid = server.child.id().to_string();
    let spread = bench(
        &server,
        "fanout",
        &["--ws-url", &format!("{url},{url}"), "--cpu-pids", &pid],
    );
    assert_clean_delivery(&spread);
    assert_eq!(spread["params"]["nodes"], 2, "{spread:#}");
    assert!(metric(&spread, "server0_cpu_s") >= 0.0);
    assert!(metric(&spread, "server1_cpu_ms_per_1000_broadcasts") >= 0.0);
}

#[test]
fn ceiling_is_measured_with_the_same_client() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_server();
    let r = bench(&server, "ceiling", &["--channels", "3"]);
    assert!(metric(&r, "deliveries_per_sec") > 0.0);
    assert_clean_delivery(&r);
}

#[test]
fn slow_consumers_are_closed_and_readers_unharmed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_server();
    let r = bench(&server, "slow", &[]);
    assert_clean_delivery(&r);
    assert_eq!(metric(&r, "stalled_closed_4100"), 4.0);
    assert!(metric(&r, "server_rss_peak") <= metric(&r, "server_rss_bound"));
}

#[test]
fn soak_keeps_stable_subscribers_whole() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_server();
    let r = bench(&server, "soak", &[]);
    assert_clean_delivery(&r);
    assert!(metric(&r, "churn_cycles") > 0.0);
    assert!(metric(&r, "published") > 0.0);
}
