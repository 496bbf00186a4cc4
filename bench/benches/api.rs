//! HTTP API requests: authenticating a publish (query decoding, MD5 of the body, HMAC-SHA256
//! of the string to sign) and then parsing its body, as the engine does for every
//! `POST /apps/{id}/events` and `batch_events`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ringcast_protocol::Limits;
use ringcast_protocol::api::body::{parse_batch, parse_event};
use ringcast_protocol::api::query::Query;
use ringcast_protocol::api::signature::{Credentials, signed_query, verify};

const CREDS: Credentials<'static> = Credentials {
    key: "278d425bdf160c739803",
    secret: "7ad3773142a6692b25b8",
};
const NOW: u64 = 1_700_000_000;
/// What Laravel's Pusher broadcaster posts for one event on one private channel.
const EVENT: &str = r#"{"name":"App\\Events\\OrderShipped","data":"{\"order\":{\"id\":1234,\"status\":\"shipped\"},\"user\":{\"id\":42}}","channels":["private-orders.42"],"socket_id":"1234.5678"}"#;

fn batch_body() -> String {
    let items: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"name":"App\\Events\\Tick","data":"{{\"n\":{i}}}","channel":"ticker-{i}"}}"#
            )
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, items.join(","))
}

fn bench_request(c: &mut Criterion, name: &str, path: &str, body: &str, parse_body: bool) {
    let limits = Limits::default();
    let query = signed_query("POST", path, body.as_bytes(), CREDS, NOW, &[]);
    let batch = path.ends_with("batch_events");
    c.bench_function(name, |b| {
        b.iter_batched_ref(
            || body.as_bytes().to_vec(),
            |body| {
                let q = Query::parse(black_box(&query)).expect("query");
                verify("POST", path, &q, body, CREDS, NOW, &limits).expect("signed");
                if parse_body {
                    if batch {
                        black_box(parse_batch(body, &limits).expect("batch").len());
                    } else {
                        black_box(parse_event(body, &limits).expect("event"));
                    }
                }
            },
            BatchSize::SmallInput,
        );
    });
}

fn api(c: &mut Criterion) {
    let batch = batch_body();
    bench_request(c, "api_verify_signature", "/apps/1/events", EVENT, false);
    bench_request(
        c,
        "api_verify_and_parse_event",
        "/apps/1/events",
        EVENT,
        true,
    );
    bench_request(
        c,
        "api_verify_and_parse_batch10",
        "/apps/1/batch_events",
        &batch,
        true,
    );
}

criterion_group!(benches, api);
criterion_main!(benches);
