//! The HTTP client of `picket ctl`: one node's API, with its token and trust roots, and every
//! failure turned into a sentence an operator can act on.
//!
//! reqwest is already a regular dependency (the webhooks use it, with rustls and ring), so the
//! command line uses it too rather than a second, hand-written client.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::Value;

/// How long a request may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence on the event stream: three of the server's keep-alive intervals.
const STREAM_SILENCE: Duration = picket::http::KEEP_ALIVE.saturating_mul(3);

/// Where the node is and how to talk to it.
pub(super) struct Api {
    client: Client,
    /// The base URL without a trailing slash, for messages.
    base: String,
    url: reqwest::Url,
    token: Option<String>,
}

/// Why a command could not do its work, in words; shown as `picket: <message>` with exit code 1.
#[derive(Debug)]
pub(super) struct CtlError {
    message: String,
    /// The node could not be reached or the connection broke (worth retrying when following).
    pub(super) transport: bool,
}

impl CtlError {
    pub(super) const fn new(message: String) -> Self {
        Self { message, transport: false }
    }

    pub(super) const fn transport(message: String) -> Self {
        Self { message, transport: true }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Api {
    /// A client for the node at `url` (`http://` or `https://`), trusting `cacert` (PEM) instead
    /// of the platform's roots when given.
    pub(super) fn new(
        url: &str,
        token: Option<String>,
        cacert: Option<&[u8]>,
    ) -> Result<Self, CtlError> {
        let base = url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| CtlError::new(format!("bad node URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CtlError::new(format!("bad node URL {url:?}: use http:// or https://")));
        }
        // reqwest is built without a default TLS provider (see Cargo.toml).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(TIMEOUT)
            .read_timeout(STREAM_SILENCE)
            .user_agent(concat!("picket-ctl/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = cacert {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                CtlError::new(format!("--cacert: not a PEM certificate bundle: {e}"))
            })?;
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .build()
            .map_err(|e| CtlError::new(format!("cannot set up the HTTP client: {}", causes(&e))))?;
        Ok(Self { client, base, url: parsed, token })
    }

    /// The node's URL, for messages.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// The URL of the route made of `segments` (each percent-encoded), with `query`.
    pub(super) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> reqwest::Url {
        let mut url = self.url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn request(&self, builder: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => match HeaderValue::from_str(&format!("Bearer {token}")) {
                Ok(value) => builder.header(AUTHORIZATION, value),
                // Checked when the token is read; an unusable one is sent as none.
                Err(_) => builder,
            },
            None => builder,
        }
    }

    /// `GET url`, as JSON.
    pub(super) async fn get(&self, url: reqwest::Url) -> Result<Value, CtlError> {
        let builder = self.request(self.client.get(url).timeout(TIMEOUT));
        let response = self.send(builder).await?;
        json_of(response).await
    }

    /// `POST url` with an empty body, as JSON.
    pub(super) async fn post(&self, url: reqwest::Url) -> Result<Value, CtlError> {
        let builder = self.request(self.client.post(url).timeout(TIMEOUT));
        let response = self.send(builder).await?;
        json_of(response).await
    }

    /// Opens the event stream, resuming after `last_id`.
    pub(super) async fn event_stream(
        &self,
        last_id: Option<u64>,
    ) -> Result<reqwest::Response, CtlError> {
        let mut builder = self.request(self.client.get(self.url(&["v1", "events"], &[])));
        if let Some(id) = last_id {
            builder = builder.header("Last-Event-ID", id.to_string());
        }
        self.send(builder.header("Accept", "text/event-stream")).await
    }

    /// Sends, and turns transport failures and error answers into sentences.
    async fn send(&self, builder: RequestBuilder) -> Result<reqwest::Response, CtlError> {
        let response = builder.send().await.map_err(|e| {
            CtlError::transport(format!("cannot reach the node at {}: {}", self.base, causes(&e)))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = json_or_null(response).await;
        let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
        let message = body["error"]["message"].as_str().unwrap_or_default().to_owned();
        Err(CtlError::new(match (status, code.as_str()) {
            (StatusCode::UNAUTHORIZED, _) if self.token.is_none() => format!(
                "the node at {} needs a token: pass --token-file or set PICKET_TOKEN",
                self.base
            ),
            (StatusCode::UNAUTHORIZED, _) => {
                format!("the node at {} refused the token ({message})", self.base)
            }
            (StatusCode::FORBIDDEN, "admin_disabled") => {
                format!("the node at {} has admin commands disabled: {message}", self.base)
            }
            (_, "no_such_master") => format!("unknown master: {message}"),
            _ if message.is_empty() => format!("the node at {} answered {status}", self.base),
            _ => format!("the node at {} refused: {message} ({status})", self.base),
        }))
    }
}

/// Reads a JSON body.
async fn json_of(response: reqwest::Response) -> Result<Value, CtlError> {
    let text = response.text().await.map_err(|e| {
        CtlError::transport(format!("the node's answer was cut short: {}", causes(&e)))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| CtlError::new(format!("the node answered non-JSON: {e}")))
}

/// A response's JSON body, or `null`.
async fn json_or_null(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// An error with its causes (reqwest shows only the outermost: "error sending request").
pub(super) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}
