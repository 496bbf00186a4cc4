//! Fan-out planning without sockets: what a worker does for one publish before its first
//! `sendmsg`, for a channel of 1 to 100,000 local subscribers.
//!
//! The engine encodes a broadcast once into a `Bytes`; the worker then looks the channel up in
//! its [`Registry`], walks the channel's dense subscriber list, checks each key's generation
//! against its connection slot (and skips the excluded socket), and hands every subscriber a
//! clone of the same `Bytes` (a reference-count increment, never a copy). This bench measures
//! exactly that loop, with the per-subscriber handoff collected into a plan vector that is
//! cleared (dropping the clones) each iteration, so the figure is the fixed cost per subscriber
//! the syscalls come on top of. Throughput is in subscribers, so criterion reports the rate.
//!
//! `registry_churn` measures a subscribe plus an unsubscribe on a channel that already has N
//! subscribers: both must stay O(1) however large the channel.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringcast::ids::{AppIdx, ConnKey};
use ringcast::registry::Registry;
use ringcast_protocol::pusher::{ServerEvent, SocketId};

const SUBSCRIBERS: [u32; 4] = [1, 100, 10_000, 100_000];
const APP: AppIdx = AppIdx(0);
const CHANNEL: &str = "presence-stadium";

/// The part of a connection the fan-out loop reads.
struct Slot {
    generation: u32,
    socket_id: SocketId,
}

/// A registry with `n` subscribers on [`CHANNEL`] (and a few other channels, so the lookup is
/// not into a one-entry map), and the matching connection slots.
fn world(n: u32) -> (Registry, Vec<Slot>) {
    let mut registry = Registry::new(1);
    let mut slots = Vec::with_capacity(n as usize);
    for i in 0..n {
        let key = ConnKey {
            slot: i,
            generation: 1,
        };
        registry.add(APP, CHANNEL, key);
        if i % 100 == 0 {
            registry.add(APP, &format!("private-user.{i}"), key);
        }
        slots.push(Slot {
            generation: 1,
            socket_id: SocketId::new(u64::from(i), 7),
        });
    }
    (registry, slots)
}

fn frame() -> Bytes {
    ServerEvent::ChannelEvent {
        event: r"App\Events\GoalScored",
        channel: CHANNEL,
        data: r#"{"team":"home","minute":87,"score":{"home":2,"away":1}}"#,
    }
    .to_frame()
}

/// The worker's loop: find, walk, check, clone.
fn plan(
    registry: &Registry,
    slots: &[Slot],
    frame: &Bytes,
    except: Option<SocketId>,
    out: &mut Vec<(ConnKey, Bytes)>,
) {
    let Some(ci) = registry.find(APP, CHANNEL) else {
        return;
    };
    for &key in &registry.get(ci).subs {
        let Some(slot) = slots.get(key.slot as usize) else {
            continue;
        };
        if slot.generation != key.generation || except == Some(slot.socket_id) {
            continue;
        }
        out.push((key, frame.clone()));
    }
}

fn fanout_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_plan");
    let frame = frame();
    for n in SUBSCRIBERS {
        let (registry, slots) = world(n);
        let mut out = Vec::with_capacity(n as usize);
        // Laravel's `toOthers()`: the publisher's own connection is skipped.
        let except = Some(SocketId::new(0, 7));
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                plan(&registry, &slots, &frame, except, &mut out);
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
        let (mut registry, _) = world(n);
        let newcomer = ConnKey {
            slot: n,
            generation: 1,
        };
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let (ci, pos) = registry.add(APP, black_box(CHANNEL), newcomer);
                black_box(registry.remove(ci, pos));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout_plan, registry_churn);
criterion_main!(benches);
