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
    start_server_with(&[])
}

fn start_server_with(args: &[&str]) -> Server {
    Server::spawn(
        &ringcast_bin(),
        &[&["--workers", "2"], args].concat(),
        &[
            ("REVERB_APP_ID", APP_ID),
            ("REVERB_APP_KEY", KEY),
            ("REVERB_APP_SECRET", SECRET),
        ],
    )
}

/// Runs a scenario with `--smoke` and returns its JSON report.
fn bench(server: &Server, scenario: &str, extra: &[&str]) -> Value {
    let ws = format!("ws://127.0.0.1:{}", server.port);
    let api = format!("http://127.0.0.1:{}", server.port);
    bench_at(server, &ws, &api, scenario, extra)
}

/// [`bench`] against the URLs `ws` and `api`.
fn bench_at(server: &Server, ws: &str, api: &str, scenario: &str, extra: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!(
        "ringcast-bench-smoke-{}-{scenario}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let svg = dir.join("chart.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast-bench"))
        .arg(scenario)
        .args(["--ws-url", ws, "--api-url", api])
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
fn ceiling_is_measured_with_the_same_client() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start_server();
    let r = bench(&server, "ceiling", &["--channels", "3"]);
    assert!(metric(&r, "deliveries_per_sec") > 0.0);
    assert_clean_delivery(&r);
    // Paced: 20 broadcasts a second over 2 channels is 10 rounds a second, each thread sending
    // its share of both channels' broadcasts per round, for the 2 seconds of a smoke run.
    let paced = bench(&server, "ceiling", &["--channels", "2", "--rate", "20"]);
    assert_clean_delivery(&paced);
    let threads = paced["params"]["threads"].as_f64().unwrap();
    let broadcasts = metric(&paced, "broadcasts");
    assert!(broadcasts > 0.0);
    assert!(
        broadcasts <= threads * 2.0 * 21.0,
        "{broadcasts} broadcasts at 20 a second for 2 s"
    );
    // fanout --ceiling at a fixed rate sets ringcast's latency beside the raw sender's.
    let r = bench(&server, "fanout", &["--rate", "50", "--ceiling"]);
    assert_clean_delivery(&r);
    assert!(metric(&r, "ceiling_end_to_end_p99") > 0.0);
    assert!(metric(&r, "end_to_end_p99_over_ceiling") > 0.0);
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

#[test]
fn tls_handshakes_and_fanout_run_over_wss_and_https() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("ringcast-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let server = start_server_with(&["--tls-cert", &cert, "--tls-key", &key]);
    let ws = format!("wss://localhost:{}", server.port);
    let api = format!("https://localhost:{}", server.port);
    let trust = ["--ca-file", &cert];
    let r = bench_at(&server, &ws, &api, "connect", &trust);
    assert!(metric(&r, "handshakes") > 0.0);
    assert_eq!(metric(&r, "failed"), 0.0);
    let r = bench_at(&server, &ws, &api, "fanout", &trust);
    assert_clean_delivery(&r);
    assert_eq!(metric(&r, "subscribers_checked"), 50.0);
    // Without the authority the clients trust nothing: every handshake fails.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let wrong = dir.join("other.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast-bench"))
        .args([
            "connect",
            "--ws-url",
            &ws,
            "--api-url",
            &api,
            "--smoke",
            "--quiet",
        ])
        .args(["--app-id", APP_ID, "--key", KEY, "--secret", SECRET])
        .arg("--ca-file")
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TLS: invalid peer certificate"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
