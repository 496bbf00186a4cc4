//! WebSocket framing by payload size: decoding a client's masked frames (header parse,
//! unmasking, UTF-8 validation for text), encoding server frames, the unmasking loop on its
//! own, fast path against the reference, and the load generator's receive path.
//!
//! Throughput is payload bytes, so criterion reports MB/s. Sizes: 16 B (a ping-sized message),
//! 125 B (the largest 7-bit length and the largest control frame), 1 KiB (a typical Pusher
//! event), 16 KiB and 64 KiB (large messages, above Pusher's 10 KB event limit, to show the
//! per-byte cost once per-frame overhead is amortised).
//!
//! `receive_parse` and `receive_event` measure what a load-generator subscriber does with the
//! server's bytes: `ringcast_bench::ws::Inbox` takes a fan-out stream (Pusher channel events
//! carrying a benchmark payload of 100 B, the scenarios' default, or 1000 B) in 16 KiB reads
//! and yields its messages; `receive_event` adds the classification every message gets
//! (`client::classify`, which finds the payload's stamp). Throughput is messages, so criterion
//! reports the receive rate one client thread can sustain.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringcast_bench::client::classify;
use ringcast_bench::payload::{self as stamp, Stamp};
use ringcast_bench::ws::Inbox;
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::ws::decoder::{Decoder, DecoderConfig, MessageRef};
use ringcast_protocol::ws::encode;
use ringcast_protocol::ws::frame::Opcode;
use ringcast_protocol::ws::mask::{apply_mask, apply_mask_reference};

const SIZES: [usize; 5] = [16, 125, 1024, 16 * 1024, 64 * 1024];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Limits large enough for every size measured.
const CONFIG: DecoderConfig = DecoderConfig {
    max_frame_size: 1 << 20,
    max_message_size: 1 << 20,
    require_mask: true,
};

/// JSON-like ASCII text of `len` bytes, the shape of Pusher traffic.
fn payload(len: usize) -> Vec<u8> {
    br#"{"event":"client-typing","channel":"private-chat","data":{"name":"Taylor"}} "#
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn decode(c: &mut Criterion) {
    for (name, opcode) in [
        ("decode_text", Opcode::Text),
        ("decode_binary", Opcode::Binary),
    ] {
        let mut group = c.benchmark_group(name);
        for size in SIZES {
            let frame = encode::masked(opcode, &payload(size), KEY);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::from_parameter(size), &frame, |b, frame| {
                b.iter_batched_ref(
                    || (Decoder::new(CONFIG), BytesMut::from(&frame[..])),
                    |(decoder, buf)| {
                        let msg = decoder.decode(buf).expect("valid frame");
                        black_box(msg.expect("complete frame"))
                    },
                    BatchSize::SmallInput,
                );
            });
        }
        group.finish();
    }
}

fn encode_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_text");
    for size in SIZES {
        let payload = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| encode::text(black_box(p)));
        });
    }
    group.finish();
}

fn unmask(c: &mut Criterion) {
    for (name, f) in [
        ("mask_fast", apply_mask as fn(&mut [u8], [u8; 4])),
        ("mask_reference", apply_mask_reference),
    ] {
        let mut group = c.benchmark_group(name);
        for size in SIZES {
            let mut buf = payload(size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::from_parameter(size), |b| {
                b.iter(|| f(black_box(&mut buf), black_box(KEY)));
            });
        }
        group.finish();
    }
}

/// Frames in one measured stream.
const STREAM_FRAMES: usize = 256;
/// Bytes handed to the inbox at a time, as one socket read would.
const READ_SIZE: usize = 16 * 1024;

/// `STREAM_FRAMES` server frames of a fan-out on channel `bench-0`, payloads of `size` bytes.
fn fanout_stream(size: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    for seq in 0..STREAM_FRAMES as u64 {
        let data = stamp::encode(
            Stamp {
                channel: 0,
                seq,
                sent_ns: 1_700_000_000_000_000_000 + seq,
            },
            size,
        );
        let json = ServerEvent::ChannelEvent {
            event: "bench",
            channel: "bench-0",
            data: &data,
        }
        .to_json();
        wire.extend_from_slice(&encode::text(&json));
    }
    wire
}

fn receive(c: &mut Criterion) {
    for (name, classify_each) in [("receive_parse", false), ("receive_event", true)] {
        let mut group = c.benchmark_group(name);
        for size in [100, 1000] {
            let wire = fanout_stream(size);
            group.throughput(Throughput::Elements(STREAM_FRAMES as u64));
            group.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, wire| {
                let mut inbox = Inbox::with_capacity(READ_SIZE);
                b.iter(|| {
                    let mut messages = 0usize;
                    for read in wire.chunks(READ_SIZE) {
                        inbox.push(read);
                        while let Some(msg) = inbox.next_message().expect("valid stream") {
                            if classify_each {
                                let MessageRef::Text(text) = msg else {
                                    panic!("{msg:?}");
                                };
                                black_box(classify(text).expect("an event"));
                            } else {
                                black_box(&msg);
                            }
                            messages += 1;
                        }
                    }
                    assert_eq!(messages, STREAM_FRAMES);
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, decode, encode_text, unmask, receive);
criterion_main!(benches);
