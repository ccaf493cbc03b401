//! `picket ctl events [-f]`: the node's events, one line each, in local time and coloured by
//! level. Without `-f`, the events the node still keeps (a long poll that does not wait); with
//! `-f`, the server-sent event stream from the oldest kept event on, resumed with
//! `Last-Event-ID` after every disconnection until interrupted.

use std::io::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::client::{Api, CtlError, causes};
use super::localtime::Zone;
use super::text::{Colour, Style, items, s};

/// Longest line accepted from the event stream (events are far smaller).
const MAX_LINE: usize = 1 << 20;
/// Pause before reconnecting a followed stream.
const RECONNECT: Duration = Duration::from_secs(1);

/// One event as a line.
pub(super) fn line(event: &Value, zone: &Zone, style: Style) -> String {
    let level = s(&event["level"]);
    let colour = match level {
        "warning" => Some(Colour::Red),
        "verbose" => Some(Colour::Dim),
        _ => None,
    };
    let time = event["unix_ms"].as_u64().map(|ms| zone.time(ms)).unwrap_or_default();
    let text = format!("{time}  {level:<7}  {:<22} {}", s(&event["event"]), s(&event["payload"]));
    style.paint(text.trim_end(), colour)
}

/// Prints the events the node keeps and returns.
pub(super) async fn list(api: &Api, zone: &Zone, style: Style) -> Result<(), CtlError> {
    let body = api.get(api.url(&["v1", "events"], &[("after", "0"), ("wait", "0")])).await?;
    let mut out = std::io::stdout().lock();
    if body["gap"] == true {
        let _ = writeln!(
            out,
            "{}",
            style.paint("(older events are no longer kept)", Some(Colour::Dim))
        );
    }
    for event in items(&body["events"]) {
        let _ = writeln!(out, "{}", line(event, zone, style));
    }
    Ok(())
}

/// Follows the event stream until interrupted; reconnects after errors, resuming after the last
/// event printed.
pub(super) async fn follow(api: &Api, zone: &Zone, style: Style) -> Result<(), CtlError> {
    let mut last_id = Some(0);
    let mut connected_once = false;
    loop {
        match stream(api, &mut last_id, &mut connected_once, zone, style).await {
            Ok(()) => eprintln!("picket: the event stream of {} ended; reconnecting", api.base()),
            // A wrong token or a disabled route will not fix itself, and a node that cannot be
            // reached at all is more likely a wrong URL than a restart.
            Err(Failure::Refused(e)) => return Err(e),
            Err(Failure::Lost(e)) if !connected_once => return Err(e),
            Err(Failure::Lost(e)) => eprintln!("picket: {e}; reconnecting"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Why a stream stopped.
enum Failure {
    /// The node answered with an error.
    Refused(CtlError),
    /// The connection could not be made or broke.
    Lost(CtlError),
}

/// One connection's worth of events.
async fn stream(
    api: &Api,
    last_id: &mut Option<u64>,
    connected: &mut bool,
    zone: &Zone,
    style: Style,
) -> Result<(), Failure> {
    let mut response = api
        .event_stream(*last_id)
        .await
        .map_err(|e| if e.transport { Failure::Lost(e) } else { Failure::Refused(e) })?;
    *connected = true;
    let mut parser = Parser::default();
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            Failure::Lost(CtlError::transport(format!("the event stream broke: {}", causes(&e))))
        })?;
        let Some(chunk) = chunk else { return Ok(()) };
        for event in parser.feed(&chunk).map_err(Failure::Lost)? {
            let mut out = std::io::stdout().lock();
            if event.kind == "gap" {
                let text = "(some events were lost: the node no longer keeps them, or restarted)";
                let _ = writeln!(out, "{}", style.paint(text, Some(Colour::Dim)));
                continue;
            }
            if let Some(id) = event.id {
                *last_id = Some(id);
            }
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            let _ = writeln!(out, "{}", line(&data, zone, style));
            let _ = out.flush();
        }
    }
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
struct SseEvent {
    id: Option<u64>,
    kind: String,
    data: String,
}

/// The server-sent events format, fed in chunks (WHATWG HTML, "event stream interpretation").
#[derive(Default)]
struct Parser {
    pending: Vec<u8>,
    event: SseEvent,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, CtlError> {
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                done.push(std::mem::take(&mut self.event));
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.event.id = value.parse().ok(),
                "event" => value.clone_into(&mut self.event.kind),
                "data" => {
                    if !self.event.data.is_empty() {
                        self.event.data.push('\n');
                    }
                    self.event.data.push_str(value);
                }
                // Comments (keep-alives) and unknown fields.
                _ => {}
            }
        }
        if self.pending.len() > MAX_LINE {
            return Err(CtlError::new(format!(
                "the event stream sent a line over {MAX_LINE} bytes"
            )));
        }
        // Keep-alive comments leave an empty event: not an event.
        done.retain(|e| !e.data.is_empty() || !e.kind.is_empty());
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut parser = Parser::default();
        assert_eq!(parser.feed(b": keep-alive\n\nid: 7\nevent: +sdown\nda").unwrap(), vec![]);
        let events = parser.feed(b"ta: {\"a\":1}\r\n\r\n").unwrap();
        let want = SseEvent { id: Some(7), kind: "+sdown".into(), data: "{\"a\":1}".into() };
        assert_eq!(events, vec![want]);
    }

    #[test]
    fn refuses_endless_lines() {
        let mut parser = Parser::default();
        assert!(parser.feed(&vec![b'x'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn lines_show_level_event_and_payload() {
        let event = serde_json::json!({
            "unix_ms": 1_796_517_045_123_u64, "level": "warning", "event": "+odown",
            "payload": "master cache 10.0.0.1 6379 #quorum 2/2"
        });
        assert_eq!(
            line(&event, &Zone::default(), Style { colour: false }),
            "00:30:45.123  warning  +odown                 master cache 10.0.0.1 6379 #quorum 2/2"
        );
    }
}
