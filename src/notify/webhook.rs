//! Webhook deliveries: one JSON POST per matching event, signed, retried with bounded backoff.
//!
//! # What a receiver gets
//!
//! `POST <url>` with `Content-Type: application/json` and the event as the HTTP event stream
//! shows it, plus this node's id and address:
//!
//! ```json
//! {"node_id": "…40 hex…", "node_address": "10.0.0.5:26379",
//!  "id": 42, "unix_ms": 1700000000000, "event": "+switch-master", "level": "warning",
//!  "master": "cache",
//!  "payload": "cache 10.0.0.1 6379 10.0.0.2 6379", "subject": null,
//!  "detail": "switch", "name": "cache", "old": "10.0.0.1:6379", "new": "10.0.0.2:6379"}
//! ```
//!
//! Headers:
//! * `X-Picket-Event`: the event name;
//! * `X-Picket-Delivery`: `<node_id>-<unix_ms>-<id>`, the same on every retry (for deduplication);
//! * `X-Picket-Timestamp`: Unix seconds when this attempt was sent;
//! * `X-Picket-Signature`: `sha256=<hex>`, the HMAC-SHA256 under the webhook's `secret` of the
//!   timestamp, a `.`, and the body bytes (`"{timestamp}.{body}"`); absent without a secret.
//!   Receivers recompute it, compare in constant time, and reject stale timestamps (replays).
//!
//! A 2xx answer delivers. Connection errors, timeouts, 5xx and 429 are retried, up to
//! `max_retries` more attempts, with exponential backoff from [`FIRST_BACKOFF`] to
//! [`MAX_BACKOFF`]; any other status abandons the delivery. Redirects are not followed (the
//! signature is for the configured URL). Each endpoint delivers in event order, one at a time,
//! from a queue of [`WEBHOOK_QUEUE`] events that drops its oldest when full.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;
use sha2::Sha256;

use crate::config::WebhookConfig;
use crate::engine::glob;
use crate::engine::{Addr, NodeId};
use crate::hub::{EventJson, EventRecord, Hub};

use super::Queue;

/// Events waiting per endpoint.
pub const WEBHOOK_QUEUE: usize = 1024;
/// Pause before the first retry; it doubles with each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The signature header (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-picket-signature";
/// The timestamp header (Unix seconds), covered by the signature.
pub const TIMESTAMP_HEADER: &str = "x-picket-timestamp";
/// The event name header.
pub const EVENT_HEADER: &str = "x-picket-event";
/// The delivery id header, stable across retries.
pub const DELIVERY_HEADER: &str = "x-picket-delivery";

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex>` of the HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
#[must_use]
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length; the error branch cannot happen.
    let Ok(mac) = HmacSha256::new_from_slice(secret) else { return String::new() };
    let tag = mac.chain_update(timestamp.to_string()).chain_update(b".").chain_update(body);
    let mut out = String::from("sha256=");
    for byte in tag.finalize().into_bytes() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One configured endpoint.
pub(super) struct Endpoint {
    /// The URL without credentials, query or fragment, for logs.
    shown: String,
    url: String,
    patterns: Vec<String>,
    secret: Option<Vec<u8>>,
    timeout: Duration,
    max_retries: u32,
    queue: Queue<Arc<EventRecord>>,
}

impl Endpoint {
    /// Queues `record` if its name matches one of the endpoint's patterns.
    pub(super) fn offer(&self, record: &Arc<EventRecord>) {
        let name = record.event.channel();
        if self.patterns.iter().any(|p| glob::matches(p.as_bytes(), name.as_bytes()))
            && self.queue.push(Arc::clone(record))
        {
            tracing::warn!(webhook = %self.shown, "webhook queue full: dropped its oldest event");
        }
    }
}

/// Starts one delivery task per endpoint. Without a usable HTTP client (which cannot happen
/// short of a broken TLS setup) no webhook is started, and the error is logged.
pub(super) fn start(hub: &Hub, configs: &[WebhookConfig]) -> Vec<Arc<Endpoint>> {
    if configs.is_empty() {
        return Vec::new();
    }
    // reqwest is built without a default TLS provider: install ring's (a second call is a no-op
    // error, as when another part of the process installed one first).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("picket/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client: webhooks disabled");
            return Vec::new();
        }
    };
    configs
        .iter()
        .map(|config| {
            let endpoint = Arc::new(Endpoint {
                shown: shown_url(&config.url),
                url: config.url.clone(),
                patterns: config.events.clone(),
                secret: config
                    .secret
                    .as_ref()
                    .and_then(|s| s.value())
                    .map(|s| s.as_bytes().to_vec()),
                timeout: config.timeout,
                max_retries: config.max_retries,
                queue: Queue::new(
                    WEBHOOK_QUEUE,
                    Arc::clone(&hub.stats),
                    |s| &s.webhooks_queued,
                    |s| &s.webhooks_dropped,
                ),
            });
            tokio::spawn(deliver(Arc::clone(&endpoint), client.clone(), hub.clone()));
            endpoint
        })
        .collect()
}

/// `scheme://host[:port]/path` of `url`: what logs may show.
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}{}", u.scheme(), u.host_str().unwrap_or(""), u.path())
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

/// The POST body.
#[derive(Serialize)]
struct Body<'a> {
    node_id: NodeId,
    node_address: &'a Addr,
    #[serde(flatten)]
    event: EventJson<'a>,
}

/// How one attempt went.
enum Attempt {
    Delivered,
    /// Worth trying again (connection error, timeout, 5xx, 429).
    Retry(String),
    /// Not worth trying again (another status).
    Abandon(String),
}

async fn deliver(endpoint: Arc<Endpoint>, client: reqwest::Client, hub: Hub) {
    let stats = Arc::clone(&hub.stats);
    loop {
        let record = endpoint.queue.pop().await;
        let view = hub.view();
        let body =
            Body { node_id: view.node_id, node_address: &view.client_addr, event: record.json() };
        let Ok(body) = serde_json::to_vec(&body) else { continue };
        let delivery = format!("{}-{}-{}", view.node_id, record.unix_ms, record.id);
        let mut backoff = FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            let timestamp = hub.clock.unix_ms() / 1000;
            let outcome = attempt(&client, &endpoint, &record, &delivery, timestamp, &body).await;
            match outcome {
                Attempt::Delivered => {
                    stats.webhooks_delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(webhook = %endpoint.shown, delivery, "webhook delivered");
                }
                Attempt::Retry(reason) if retries < endpoint.max_retries => {
                    retries += 1;
                    stats.webhook_retries.fetch_add(1, Ordering::Relaxed);
                    let webhook = &endpoint.shown;
                    tracing::info!(webhook, delivery, reason, retries, "webhook attempt failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Attempt::Retry(reason) | Attempt::Abandon(reason) => {
                    stats.webhooks_failed.fetch_add(1, Ordering::Relaxed);
                    let webhook = &endpoint.shown;
                    tracing::warn!(
                        webhook,
                        delivery,
                        reason,
                        retries,
                        "webhook delivery abandoned"
                    );
                }
            }
            break;
        }
    }
}

async fn attempt(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    record: &EventRecord,
    delivery: &str,
    timestamp: u64,
    body: &[u8],
) -> Attempt {
    let mut request = client
        .post(&endpoint.url)
        .timeout(endpoint.timeout)
        .header(CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, record.event.channel())
        .header(DELIVERY_HEADER, delivery)
        .header(TIMESTAMP_HEADER, timestamp.to_string());
    if let Some(secret) = &endpoint.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, timestamp, body));
    }
    match request.body(body.to_vec()).send().await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                Attempt::Delivered
            } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                Attempt::Retry(format!("HTTP {status}"))
            } else {
                Attempt::Abandon(format!("HTTP {status}"))
            }
        }
        Err(e) => Attempt::Retry(error_chain(&e)),
    }
}

/// An error with its causes (`reqwest` shows only the outermost: "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2's key and message, with the timestamp prefix spelled out.
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        let expected = HmacSha256::new_from_slice(b"Jefe")
            .unwrap()
            .chain_update(b"0.what do ya want for nothing?")
            .finalize()
            .into_bytes();
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, format!("sha256={hex}"));
    }

    #[test]
    fn logged_urls_lose_credentials_and_queries() {
        assert_eq!(
            shown_url("https://user:pw@hooks.example:8443/p?token=x#f"),
            "https://hooks.example:8443/p"
        );
        assert_eq!(shown_url("not a url"), "<invalid url>");
    }
}
