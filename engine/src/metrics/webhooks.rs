//! The metric families of the webhook senders, present only when an app has webhooks: what was
//! queued, delivered, retried, given up and refused at a full queue, and what waits now. Each
//! app's webhooks have their own senders and counters (`crate::webhook::Counters`), read once
//! per scrape; every family has one sample per app with webhooks, labelled `app`.

use super::text::{Exposition, Kind};
use crate::stats::WebhookReport;

/// Writes the webhook families, one sample per app of `apps` (app id, its counters).
pub fn render(e: &mut Exposition, apps: &[(String, WebhookReport)]) {
    type Field = fn(&WebhookReport) -> u64;
    let families: [(&str, Kind, &str, Field); 7] = [
        (
            "ringcast_webhook_events_queued_total",
            Kind::Counter,
            "Webhook events put into a webhook's queue (once per webhook that wants the event).",
            |w| w.queued,
        ),
        (
            "ringcast_webhook_queue_depth",
            Kind::Gauge,
            "Webhook events waiting in the app's webhook queues now.",
            |w| w.queue_depth,
        ),
        (
            "ringcast_webhook_events_delivered_total",
            Kind::Counter,
            "Webhook events the receiver accepted (2xx).",
            |w| w.delivered,
        ),
        (
            "ringcast_webhook_requests_total",
            Kind::Counter,
            "Webhook requests the receiver accepted (2xx); a batch is one request.",
            |w| w.requests,
        ),
        (
            "ringcast_webhook_failures_total",
            Kind::Counter,
            "Webhook attempts that failed (non-2xx, timeout, refused), whether retried or not.",
            |w| w.failures,
        ),
        (
            "ringcast_webhook_events_dropped_total",
            Kind::Counter,
            "Webhook events given up after 5 minutes of retries, or left at the shutdown deadline.",
            |w| w.dropped,
        ),
        (
            "ringcast_webhook_events_overflowed_total",
            Kind::Counter,
            "Webhook events refused because their webhook's queue was full.",
            |w| w.overflowed,
        ),
    ];
    for (name, kind, help, field) in families {
        e.family(name, kind, help);
        for (app, report) in apps {
            e.sample(name, &[("app", app)], field(report));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_a_family_with_one_sample_per_app() {
        let mut e = Exposition::default();
        let one = WebhookReport {
            queued: 7,
            queue_depth: 2,
            delivered: 4,
            requests: 3,
            failures: 5,
            dropped: 1,
            overflowed: 6,
        };
        let two = WebhookReport {
            queued: 70,
            queue_depth: 20,
            delivered: 40,
            requests: 30,
            failures: 50,
            dropped: 10,
            overflowed: 60,
        };
        render(&mut e, &[("1001".into(), one), ("2002".into(), two)]);
        let text = e.finish();
        for (name, v) in [
            ("ringcast_webhook_events_queued_total", 7),
            ("ringcast_webhook_queue_depth", 2),
            ("ringcast_webhook_events_delivered_total", 4),
            ("ringcast_webhook_requests_total", 3),
            ("ringcast_webhook_failures_total", 5),
            ("ringcast_webhook_events_dropped_total", 1),
            ("ringcast_webhook_events_overflowed_total", 6),
        ] {
            for (app, v) in [("1001", v), ("2002", v * 10)] {
                let line = format!("\n{name}{{app=\"{app}\"}} {v}\n");
                assert!(text.contains(&line), "{line:?} in {text}");
            }
            assert_eq!(
                text.matches(&format!("\n# TYPE {name} ")).count(),
                1,
                "{name}: one family"
            );
        }
    }
}
