//! Pusher messages: parsing what pusher-js sends most (a `pusher:subscribe` and a client
//! event), encoding the channel event every publish sends, and checking a private channel's
//! subscription signature.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ringcast_protocol::Limits;
use ringcast_protocol::pusher::ServerEvent;
use ringcast_protocol::pusher::auth::{channel_auth, verify_channel};
use ringcast_protocol::pusher::parse_client_message;

/// pusher-js's subscribe to a private channel, with the auth its endpoint returned.
const SUBSCRIBE: &str = r#"{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}"#;
/// Laravel Echo's `whisper('typing', {...})` on a private channel.
const CLIENT_EVENT: &str = r#"{"event":"client-typing","channel":"private-chat.42","data":{"name":"Taylor Otwell","typing":true,"at":1700000000}}"#;
/// A broadcast Laravel event's data: the JSON its queue worker posts, as one string.
const EVENT_DATA: &str = r#"{"order":{"id":1234,"status":"shipped","total":"99.95","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}]},"user":{"id":42,"name":"Taylor"}}"#;

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, msg) in [
        ("parse_subscribe", SUBSCRIBE),
        ("parse_client_event", CLIENT_EVENT),
    ] {
        c.bench_function(name, |b| {
            b.iter_batched_ref(
                || msg.as_bytes().to_vec(),
                |buf| black_box(parse_client_message(buf, &limits).expect("valid")),
                BatchSize::SmallInput,
            );
        });
    }
}

fn encode_channel_event(c: &mut Criterion) {
    c.bench_function("encode_channel_event", |b| {
        b.iter(|| {
            ServerEvent::ChannelEvent {
                event: black_box(r"App\Events\OrderShipped"),
                channel: black_box("private-orders.42"),
                data: black_box(EVENT_DATA),
            }
            .to_frame()
        });
    });
}

fn verify_subscription(c: &mut Criterion) {
    let (key, secret, socket) = ("278d425bdf160c739803", "7ad3773142a6692b25b8", "1234.1234");
    let auth = channel_auth(key, secret, socket, "private-foobar", None);
    c.bench_function("verify_channel_signature", |b| {
        b.iter(|| {
            verify_channel(
                key,
                secret,
                socket,
                black_box("private-foobar"),
                None,
                &auth,
            )
            .expect("valid signature");
        });
    });
}

criterion_group!(benches, parse, encode_channel_event, verify_subscription);
criterion_main!(benches);
