//! The metric families of the webhook senders, present only when an app has webhooks: what was
//! queued, delivered, retried, given up and refused at a full queue, and what waits now. The
//! senders' counters are shared atomics (`crate::webhook::Counters`), read once per scrape.

use super::text::{Exposition, Kind};
use crate::stats::WebhookReport;

/// Writes the webhook families.
pub fn render(e: &mut Exposition, w: &WebhookReport) {
    let families: [(&str, Kind, &str, u64); 7] = [
        (
            "ringcast_webhook_events_queued_total",
            Kind::Counter,
            "Webhook events put into a webhook's queue (once per webhook that wants the event).",
            w.queued,
        ),
        (
            "ringcast_webhook_queue_depth",
            Kind::Gauge,
            "Webhook events waiting in every webhook's queue now.",
            w.queue_depth,
        ),
        (
            "ringcast_webhook_events_delivered_total",
            Kind::Counter,
            "Webhook events the receiver accepted (2xx).",
            w.delivered,
        ),
        (
            "ringcast_webhook_requests_total",
            Kind::Counter,
            "Webhook requests the receiver accepted (2xx); a batch is one request.",
            w.requests,
        ),
        (
            "ringcast_webhook_failures_total",
            Kind::Counter,
            "Webhook attempts that failed (non-2xx, timeout, refused), whether retried or not.",
            w.failures,
        ),
        (
            "ringcast_webhook_events_dropped_total",
            Kind::Counter,
            "Webhook events given up after 5 minutes of retries, or left at the shutdown deadline.",
            w.dropped,
        ),
        (
            "ringcast_webhook_events_overflowed_total",
            Kind::Counter,
            "Webhook events refused because their webhook's queue was full.",
            w.overflowed,
        ),
    ];
    for (name, kind, help, value) in families {
        e.family(name, kind, help);
        e.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_a_family_with_its_value() {
        let mut e = Exposition::default();
        render(
            &mut e,
            &WebhookReport {
                queued: 7,
                queue_depth: 2,
                delivered: 4,
                requests: 3,
                failures: 5,
                dropped: 1,
                overflowed: 6,
            },
        );
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
            assert!(
                text.contains(&format!("\n{name} {v}\n")),
                "{name} in {text}"
            );
        }
    }
}
