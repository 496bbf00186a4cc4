//! The kernel's share of a subscriber that stops reading.
//!
//! Left to itself, Linux grows a TCP socket's send buffer towards `tcp_wmem`'s maximum (4 MiB),
//! so a stalled subscriber could hold megabytes of the host's memory in the kernel before its
//! out-queue, which ringcast bounds, even starts to fill. ringcast caps every connection's send
//! buffer at `send_buffer_bytes`. The same flood is sent to a stalled subscriber of a server
//! with a small cap and of one with a large one: the bytes the kernel holds for the first stay
//! within its cap, and the second shows that the cap is what bounds them.

mod support;

use serde_json::json;
use support::*;

/// Slack over the send buffer: Linux appends a write to the socket's last unsent segment
/// without checking the buffer (up to one segment of 64 KiB, the loopback's largest), and
/// only refuses the write after that.
const SEGMENT_SLACK: u64 = 64 * 1024;

/// The most bytes the server's socket to a stalled subscriber held while 2 MB were published
/// to its channel, with the server's send buffer at `send_buffer_bytes`.
fn stalled_peak(send_buffer_bytes: usize) -> u64 {
    let config = std::env::temp_dir().join(format!(
        "ringcast-sndbuf-{}-{send_buffer_bytes}.toml",
        std::process::id()
    ));
    // An out-queue large enough for the whole flood, so the stalled subscriber stays
    // connected and the kernel's part is what is measured.
    std::fs::write(
        &config,
        format!("send_buffer_bytes = {send_buffer_bytes}\nmax_outbound_bytes = 8388608\n"),
    )
    .unwrap();
    let server = Server::start(
        &["--workers", "1", "--config", config.to_str().unwrap()],
        &[("REVERB_APP_PING_INTERVAL", "3600")],
    );
    let (mut stalled, _) = small_window_client(server.port);
    stalled.subscribe("flood");
    let client_port = stalled.stream.local_addr().unwrap().port();
    // A subscriber that reads, after the stalled one in the channel: once it has a request's
    // events, that request's fan-out has been offered to the stalled one too.
    let (mut probe, _) = server.client();
    probe.subscribe("flood");
    let mut http = Http::connect(server.port);
    let data = "d".repeat(10_000);
    let batch = json!({"batch": (0..10)
        .map(|_| json!({"name": "fill", "channel": "flood", "data": data}))
        .collect::<Vec<_>>()})
    .to_string();
    let path = format!("/apps/{APP_ID}/batch_events");
    let mut peak = 0;
    for _ in 0..20 {
        let r = http.signed("POST", &path, &[], &batch);
        assert_eq!(r.status, 200, "{}", r.body);
        for _ in 0..10 {
            assert_eq!(probe.recv_event()["event"], "fill");
        }
        let (tx, _) = kernel_queues(server.port, client_port);
        peak = peak.max(tx);
    }
    let _ = std::fs::remove_file(&config);
    peak
}

#[test]
fn a_stalled_subscriber_holds_no_more_than_its_send_buffer_in_the_kernel() {
    let capped = stalled_peak(16 * 1024);
    let wide = stalled_peak(4 << 20);
    eprintln!(
        "server socket's send queue to a stalled subscriber: {capped} bytes with 16 KiB, \
         {wide} bytes with 4 MiB"
    );
    assert!(capped > 0, "the stalled subscriber was sent nothing");
    assert!(
        capped <= 16 * 1024 + SEGMENT_SLACK,
        "with a 16 KiB send buffer the kernel held {capped} bytes for a stalled subscriber"
    );
    assert!(
        wide > 16 * 1024 + SEGMENT_SLACK,
        "a 4 MiB send buffer held only {wide} bytes: the flood does not show the cap"
    );
}
