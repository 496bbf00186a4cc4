//! Which webhooks the state core decides, and when, under the deterministic harness
//! (`harness/mod.rs`): the simulated clock makes the 3-second delay of `channel_vacated` and
//! `member_removed`, and its cancellation by a return, exact and instant to test.

#[allow(unused_imports)]
mod harness;

use std::time::Duration;

use harness::*;
use ringcast::webhook::{EventKind, WebhookConfig};
use ringcast_protocol::Limits;
use serde_json::json;

/// The default app with one webhook of `events`; `counts` turns `subscription_count` on.
fn app_with_hooks(events: &[EventKind], counts: bool) -> ringcast::config::AppConfig {
    let mut app = app_config();
    app.subscription_count = counts;
    app.webhooks = vec![WebhookConfig {
        url: "http://127.0.0.1:9/hook".into(),
        event_types: events.iter().map(|k| k.name().to_string()).collect(),
        ..WebhookConfig::default()
    }];
    app
}

fn sim(workers: usize, events: &[EventKind]) -> Sim {
    Sim::with(
        workers,
        vec![app_with_hooks(events, false)],
        Limits::default(),
    )
}

fn sim_all(workers: usize) -> Sim {
    sim(workers, &EventKind::ALL[..6])
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn no_webhook_is_decided_for_an_app_without_webhooks() {
    let mut sim = Sim::new(2);
    let room = sim.channel_owned_by("presence-r-", 0);
    let a = sim.connect(1);
    sim.subscribe_presence(a, &room, "u");
    sim.subscribe(a, "cache-x");
    sim.deliver_all();
    sim.drop_conn(a);
    sim.deliver_all();
    sim.advance(5 * SEC);
    assert!(sim.hooks.is_empty(), "{:?}", sim.hook_log());
}

#[test]
fn occupied_at_once_and_vacated_three_seconds_after_the_last_subscriber() {
    let mut sim = sim_all(2);
    let room = sim.channel_owned_by("room-", 0);
    let (a, b) = (sim.connect(1), sim.connect(0));
    sim.subscribe(a, &room);
    assert!(
        sim.hooks.is_empty(),
        "the owner has not heard of worker 1's join yet"
    );
    sim.subscribe(b, &room);
    assert_eq!(
        sim.hook_log(),
        [format!("channel_occupied {room}")],
        "b's join, on the owner"
    );
    sim.deliver_all();
    assert_eq!(sim.hook_log(), [format!("channel_occupied {room}")], "once");
    sim.unsubscribe(a, &room);
    sim.deliver_all();
    sim.advance(5 * SEC);
    assert_eq!(
        sim.hooks.len(),
        1,
        "one subscriber is left: {:?}",
        sim.hook_log()
    );
    sim.drop_conn(b);
    sim.deliver_all();
    sim.advance(2 * SEC);
    assert_eq!(sim.hooks.len(), 1, "not before 3 s: {:?}", sim.hook_log());
    sim.advance(SEC);
    assert_eq!(
        sim.hook_log(),
        [
            format!("channel_occupied {room}"),
            format!("channel_vacated {room}")
        ]
    );
    assert_eq!(
        sim.hook_times()[1],
        8 * SEC,
        "3 s after the last leave at 5 s"
    );
}

#[test]
fn leaving_and_coming_back_within_three_seconds_sends_nothing() {
    let mut sim = sim_all(2);
    let room = sim.channel_owned_by("room-", 1);
    let a = sim.connect(0);
    sim.subscribe(a, &room);
    sim.deliver_all();
    sim.unsubscribe(a, &room);
    sim.deliver_all();
    sim.advance(2 * SEC);
    // A page reload: the same client, back on another worker, 2.9 s later.
    sim.advance(Duration::from_millis(900));
    let b = sim.connect(1);
    sim.subscribe(b, &room);
    sim.deliver_all();
    sim.advance(10 * SEC);
    assert_eq!(
        sim.hook_log(),
        [format!("channel_occupied {room}")],
        "neither the vacate nor the second occupy"
    );
    // Gone for longer than 3 s: vacated, then occupied again.
    sim.drop_conn(b);
    sim.deliver_all();
    sim.advance(4 * SEC);
    sim.subscribe(a, &room);
    sim.deliver_all();
    assert_eq!(
        sim.hook_log(),
        [
            format!("channel_occupied {room}"),
            format!("channel_vacated {room}"),
            format!("channel_occupied {room}"),
        ]
    );
}

#[test]
fn members_are_counted_per_user_and_a_quick_return_is_no_leave() {
    let mut sim = sim_all(3);
    let room = sim.channel_owned_by("presence-room-", 2);
    let tab1 = sim.connect(0);
    let tab2 = sim.connect(1);
    sim.subscribe_presence(tab1, &room, "u");
    sim.subscribe_presence(tab2, &room, "u");
    sim.deliver_all();
    assert_eq!(
        sim.hook_log(),
        [
            format!("channel_occupied {room}"),
            format!("member_added {room} u")
        ],
        "a second tab is no second member"
    );
    sim.close(tab1);
    sim.deliver_all();
    sim.advance(5 * SEC);
    assert_eq!(sim.hooks.len(), 2, "{:?}", sim.hook_log());
    // The last tab reloads: gone, and back 1 s later.
    sim.drop_conn(tab2);
    sim.deliver_all();
    sim.advance(SEC);
    let tab3 = sim.connect(2);
    sim.subscribe_presence(tab3, &room, "u");
    sim.deliver_all();
    sim.advance(5 * SEC);
    assert_eq!(
        sim.hooks.len(),
        2,
        "nothing for a reload: {:?}",
        sim.hook_log()
    );
    sim.close(tab3);
    sim.deliver_all();
    sim.advance(3 * SEC);
    assert_eq!(
        sim.hook_log()[2..],
        [
            format!("member_removed {room} u"),
            format!("channel_vacated {room}")
        ]
    );
}

#[test]
fn only_the_kinds_asked_for_are_decided_and_the_pair_still_suppresses() {
    // A webhook of member_added alone: a quick return still sends no second member_added.
    let mut sim = sim(2, &[EventKind::MemberAdded]);
    let room = sim.channel_owned_by("presence-r-", 0);
    let a = sim.connect(1);
    sim.subscribe_presence(a, &room, "u");
    sim.deliver_all();
    sim.drop_conn(a);
    sim.deliver_all();
    sim.advance(SEC);
    let b = sim.connect(1);
    sim.subscribe_presence(b, &room, "u");
    sim.deliver_all();
    sim.advance(10 * SEC);
    assert_eq!(sim.hook_log(), [format!("member_added {room} u")]);
}

#[test]
fn client_events_are_decided_by_the_senders_shard() {
    let mut sim = sim_all(2);
    let private = sim.channel_owned_by("private-chat-", 0);
    let room = sim.channel_owned_by("presence-chat-", 0);
    let (a, b) = (sim.connect(1), sim.connect(0));
    for c in [a, b] {
        sim.subscribe(c, &private);
        sim.subscribe_presence(c, &room, if c == a { "alice" } else { "bob" });
    }
    sim.deliver_all();
    sim.hooks.clear();
    sim.send_json(
        a,
        &json!({"event": "client-typing", "channel": private, "data": {"on": true}}),
    );
    sim.send_json(
        a,
        &json!({"event": "client-typing", "channel": room, "data": "plain"}),
    );
    // Refused (not subscribed): no webhook.
    sim.send_json(
        a,
        &json!({"event": "client-x", "channel": "private-other", "data": {}}),
    );
    let sid = sim.socket_id(a);
    assert_eq!(
        sim.hook_log(),
        [
            format!("client_event {private} client-typing {{\"on\":true}} {sid}"),
            format!("client_event {room} client-typing plain {sid} alice"),
        ],
        "decided at once on the sender's worker, before any delivery"
    );
    sim.deliver_all();
    assert_eq!(sim.hooks.len(), 2, "and by no other worker");
}

#[test]
fn simultaneous_cache_misses_are_one_webhook() {
    let mut sim = sim_all(2);
    let ch = sim.channel_owned_by("cache-prices-", 0);
    let subs: Vec<Conn> = (0..4).map(|i| sim.connect(i % 2)).collect();
    for c in &subs {
        sim.subscribe(*c, &ch);
    }
    sim.deliver_all();
    let misses = |sim: &Sim| {
        sim.hook_log()
            .iter()
            .filter(|l| l.starts_with("cache_miss"))
            .count()
    };
    assert_eq!(misses(&sim), 1, "{:?}", sim.hook_log());
    for c in &subs {
        assert_eq!(sim.events_named(*c, "pusher:cache_miss").len(), 1);
    }
    sim.advance(2 * SEC);
    let late = sim.connect(1);
    sim.subscribe(late, &ch);
    sim.deliver_all();
    assert_eq!(misses(&sim), 2, "a later miss is a new webhook");
    sim.publish(0, &ch, "price", "{}");
    sim.deliver_all();
    let hit = sim.connect(0);
    sim.subscribe(hit, &ch);
    sim.deliver_all();
    assert_eq!(misses(&sim), 2, "a hit is no miss");
}

/// Two subscribers of a channel owned by worker 0, one on each worker, the first of which
/// leaves again, for an app with a `subscription_count` webhook (and the client-facing count
/// events if `counts`): the webhook gets each count, 1, 2, 1, whatever `counts` says.
fn count_webhooks_of_two_subscribers(counts: bool) -> (Sim, Conn, Conn) {
    let mut sim = Sim::with(
        2,
        vec![app_with_hooks(&[EventKind::SubscriptionCount], counts)],
        Limits::default(),
    );
    let ch = sim.channel_owned_by("counted-", 0);
    let a = sim.connect(1);
    let b = sim.connect(0);
    sim.subscribe(a, &ch);
    sim.deliver_all();
    sim.subscribe(b, &ch);
    sim.deliver_all();
    sim.unsubscribe(a, &ch);
    sim.deliver_all();
    assert_eq!(
        sim.hook_log(),
        [
            format!("subscription_count {ch} 1"),
            format!("subscription_count {ch} 2"),
            format!("subscription_count {ch} 1"),
        ]
    );
    (sim, a, b)
}

#[test]
fn subscription_count_webhooks_follow_the_count_events() {
    let (sim, _, b) = count_webhooks_of_two_subscribers(true);
    let last = sim.events_named(b, "pusher_internal:subscription_count");
    assert_eq!(data_of(last.last().unwrap())["subscription_count"], 1);
}

#[test]
fn subscription_count_webhooks_need_no_count_events() {
    // The app sends no `pusher_internal:subscription_count`; its webhook still gets each count.
    let (sim, a, b) = count_webhooks_of_two_subscribers(false);
    for c in [a, b] {
        assert!(
            sim.events_named(c, "pusher_internal:subscription_count")
                .is_empty(),
            "no count event to a subscriber"
        );
    }
}

#[test]
fn subscription_count_webhooks_alone_keep_the_throttle_of_large_channels() {
    let mut sim = Sim::with(
        1,
        vec![app_with_hooks(&[EventKind::SubscriptionCount], false)],
        Limits::default(),
    );
    let ch = sim.channel_owned_by("big-", 0);
    let conns: Vec<_> = (0..102).map(|_| sim.connect(0)).collect();
    for c in &conns {
        sim.subscribe(*c, &ch);
        sim.deliver_all();
    }
    // 1 to 100 go out one by one; above 100, a count within 5 s of the last one waits.
    let log = sim.hook_log();
    assert_eq!(log.len(), 100, "{log:?}");
    assert_eq!(log[99], format!("subscription_count {ch} 100"));
    sim.advance(4 * SEC);
    assert_eq!(sim.hook_log().len(), 100, "held for the throttle interval");
    sim.advance(SEC);
    assert_eq!(
        sim.hook_log()[100..],
        [format!("subscription_count {ch} 102")],
        "the latest count, once, when the interval passed"
    );
    assert!(
        sim.events_named(conns[0], "pusher_internal:subscription_count")
            .is_empty()
    );
}

#[test]
fn a_stopping_worker_sends_its_delayed_webhooks_at_once() {
    let mut sim = sim_all(1);
    let room = "presence-x";
    let a = sim.connect(0);
    sim.subscribe_presence(a, room, "u");
    sim.drop_conn(a);
    assert_eq!(sim.hooks.len(), 2);
    sim.finish(0);
    assert_eq!(
        sim.hook_log()[2..],
        [
            format!("member_removed {room} u"),
            format!("channel_vacated {room}")
        ]
    );
    assert_eq!(sim.hook_times()[3], Duration::ZERO);
}

/// Two tabs of one user on two workers, the owner on a third: in every interleaving of their
/// joins and leaves with the deliveries, the webhooks alternate (added, removed, added, ...),
/// start with the arrival, and once everyone is gone and 3 s passed end with the departure.
#[test]
fn webhooks_alternate_in_every_interleaving() {
    let setup = || {
        let mut sim = sim_all(3);
        let room = sim.channel_owned_by("presence-room-", 0);
        let tab1 = sim.connect(1);
        let tab2 = sim.connect(2);
        let actors = two_tabs_of_u(tab1, tab2, room);
        (sim, actors)
    };
    let mut runs = 0;
    explore(setup, |sim, path| {
        // No time passes in an exploration: the departure is still waiting for its 3 s, and a
        // tab that joined while the other's leave waited cancelled it.
        let log: Vec<String> = sim
            .hook_log()
            .iter()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect();
        assert_eq!(log, ["channel_occupied", "member_added"], "along {path:?}");
        runs += 1;
    });
    assert!(runs >= 10, "{runs}");
}
