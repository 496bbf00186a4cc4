//! Fan-out planning without sockets: what a worker does for one publish before its first
//! `sendmsg`, for a channel of 1 to 100,000 local subscribers.
//!
//! The engine encodes a broadcast once into a `Bytes`; the worker's state core
//! ([`Shard::for_each_subscriber`]) then looks the channel up in its registry, walks the
//! channel's dense subscriber list, checks each key's generation against its connection slot
//! (and skips the excluded socket), and hands every subscriber to the shell, which offers it
//! the same `Bytes`. This bench runs that very loop, with the shell's part a plan vector of
//! `Bytes` clones that is cleared (dropping the clones) each iteration, so the figure is the
//! fixed cost per subscriber the syscalls come on top of. Throughput is in subscribers, so
//! criterion reports the rate.
//!
//! `registry_churn` measures a subscribe plus an unsubscribe on a channel that already has N
//! subscribers: both must stay O(1) however large the channel.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringcast::app::Apps;
use ringcast::config::AppConfig;
use ringcast::ids::{AppIdx, ConnKey, ShardId};
use ringcast::state::Shard;
use ringcast::state::msg::Channel;
use ringcast::state::registry::Registry;
use ringcast_protocol::Limits;
use ringcast_protocol::pusher::channel::ChannelName;
use ringcast_protocol::pusher::{ServerEvent, SocketId};

const SUBSCRIBERS: [u32; 4] = [1, 100, 10_000, 100_000];
const APP: AppIdx = AppIdx(0);
const CHANNEL: &str = "stadium";

fn limits() -> Limits {
    Limits {
        max_channels_per_connection: 10,
        ..Limits::default()
    }
}

/// A shard with `n` connections subscribed to [`CHANNEL`] (every hundredth also to a channel
/// of its own, so the lookup is not into a one-entry map).
fn world(n: u32) -> Shard<()> {
    let apps = Arc::new(Apps::new(&[AppConfig {
        id: "1".into(),
        key: "k".into(),
        secret: "s".into(),
        ..AppConfig::default()
    }]));
    let now = Instant::now();
    let mut shard = Shard::new(ShardId(0), apps, limits(), now);
    let subscribe = |c: &str| {
        format!(r#"{{"event":"pusher:subscribe","data":{{"auth":"","channel":"{c}"}}}}"#)
            .into_bytes()
    };
    for i in 0..n {
        let key = shard.connect(Some(APP), SocketId::new(u64::from(i), 7), ());
        shard.handle_text(key, subscribe(CHANNEL), now);
        if i % 100 == 0 {
            shard.handle_text(key, subscribe(&format!("user.{i}")), now);
        }
        while shard.poll_effect().is_some() {}
    }
    shard
}

fn frame() -> Bytes {
    ServerEvent::ChannelEvent {
        event: r"App\Events\GoalScored",
        channel: CHANNEL,
        data: r#"{"team":"home","minute":87,"score":{"home":2,"away":1}}"#,
    }
    .to_frame()
}

/// The worker's loop: find, walk, check, hand over.
fn plan(
    shard: &mut Shard<()>,
    frame: &Bytes,
    except: Option<SocketId>,
    out: &mut Vec<(ConnKey, Bytes)>,
) {
    shard.for_each_subscriber(APP, CHANNEL, except, |key, _| {
        out.push((key, frame.clone()))
    });
}

fn fanout_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_plan");
    let frame = frame();
    for n in SUBSCRIBERS {
        let mut shard = world(n);
        let mut out = Vec::with_capacity(n as usize);
        // Laravel's `toOthers()`: the publisher's own connection is skipped.
        let except = Some(SocketId::new(0, 7));
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                plan(&mut shard, &frame, except, &mut out);
                black_box(out.len());
                out.clear();
            });
        });
    }
    group.finish();
}

fn registry_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry_churn");
    for n in SUBSCRIBERS {
        let channel: Channel = Arc::new(ChannelName::parse(CHANNEL, &limits()).unwrap());
        let mut registry = Registry::new(1);
        for i in 0..n {
            let key = ConnKey {
                slot: i,
                generation: 1,
            };
            registry.add(APP, &channel, key);
        }
        let newcomer = ConnKey {
            slot: n,
            generation: 1,
        };
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let (ci, pos) = registry.add(APP, black_box(&channel), newcomer);
                black_box(registry.remove(ci, pos));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout_plan, registry_churn);
criterion_main!(benches);
