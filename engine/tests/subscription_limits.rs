//! `max_channels_per_connection` holds against a hostile client: subscriptions still waiting
//! for their channel's owner count like confirmed ones.

mod support;

use std::io::Write;
use std::time::Duration;

use support::*;

#[test]
fn three_thousand_cache_subscribes_at_once_get_at_most_the_limit() {
    for workers in ["1", "2"] {
        let server = Server::start(&["--workers", workers], &[]);
        let (mut ws, _) = server.client();
        // Cache channels wait for their owner's answer; all of them are sent in one write, so
        // that every subscribe arrives before any answer.
        let mut burst = Vec::new();
        for i in 0..3000 {
            let msg = serde_json::json!({
                "event": "pusher:subscribe",
                "data": {"auth": "", "channel": format!("cache-c{i}")},
            });
            burst.extend(masked_frame(true, 1, msg.to_string().as_bytes()));
        }
        ws.stream.write_all(&burst).unwrap();
        let (mut ok, mut limited, mut misses) = (0, 0, 0);
        while ok + limited < 3000 {
            let ev = ws.recv_event();
            match ev["event"].as_str().unwrap() {
                "pusher_internal:subscription_succeeded" => ok += 1,
                "pusher:subscription_error" => {
                    let data: serde_json::Value =
                        serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
                    assert_eq!(data["type"], "LimitReached", "{ev}");
                    assert_eq!(data["status"], 429, "{ev}");
                    limited += 1;
                }
                "pusher:cache_miss" => misses += 1,
                other => panic!("unexpected {other}: {ev}"),
            }
        }
        assert_eq!(
            (ok, limited),
            (1000, 2000),
            "with {workers} worker(s): the limit is 1000 channels per connection"
        );
        // What is left are the cache misses of the accepted ones: one each.
        while let Some(Frame::Text(t)) = {
            ws.stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            ws.try_recv_timeout()
        } {
            let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
            assert_eq!(ev["event"], "pusher:cache_miss", "{ev}");
            misses += 1;
        }
        assert_eq!(misses, 1000, "one cache miss per accepted subscription");
    }
}
