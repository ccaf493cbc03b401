//! A tiny HTTP/1.1 client (requests, server-sent event streams) and a webhook receiver, on std
//! sockets, so that the tests see exactly the bytes on the wire.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest a test waits on one socket read.
const READ_TIMEOUT: Duration = Duration::from_secs(90);

/// A complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {}", self.status, self.text()))
    }

    /// The `error.code` of a JSON error answer.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

fn write_request(
    stream: &mut TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let declares_length = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    if !declares_length && (!body.is_empty() || method == "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

fn connect(addr: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    Ok(stream)
}

/// Splits a raw response into status, headers and (de-chunked) body.
fn parse(raw: &[u8]) -> io::Result<Response> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty response"))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut decoded = Vec::new();
        Chunked::new(BufReader::new(&body[..])).read_to_end(&mut decoded)?;
        body = decoded;
    }
    Ok(Response { status, headers, body })
}

/// Sends one request and reads the whole response.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = connect(addr)?;
    // A server refusing a large body may close before reading it all: the answer still counts.
    let _ = write_request(&mut stream, addr, method, path, headers, body);
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw)
        && raw.is_empty()
    {
        return Err(e);
    }
    parse(&raw)
}

/// `GET`, panicking on a transport error.
pub fn get(addr: &str, path: &str) -> Response {
    get_with(addr, path, &[])
}

/// `GET` with headers.
pub fn get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, b"").unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"))
}

/// `POST`, panicking on a transport error.
pub fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    request(addr, "POST", path, headers, body).unwrap_or_else(|e| panic!("POST {addr}{path}: {e}"))
}

/// Decodes `Transfer-Encoding: chunked`.
struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: usize,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Self {
        Self { inner, left: 0, done: false }
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                self.done = true;
                return Ok(0);
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.done = true;
            return Ok(0);
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

/// One server-sent event.
#[derive(Clone, Debug)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// A server-sent event stream being read.
pub struct SseStream {
    reader: BufReader<Chunked<BufReader<TcpStream>>>,
}

impl SseStream {
    /// Opens `GET path` as an event stream, resuming after `last_event_id`.
    pub fn open(addr: &str, path: &str, last_event_id: Option<u64>) -> io::Result<Self> {
        let mut stream = connect(addr)?;
        let id = last_event_id.map(|id| id.to_string());
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(id) = &id {
            headers.push(("Last-Event-ID", id));
        }
        write_request(&mut stream, addr, "GET", path, &headers, b"")?;
        let mut reader = BufReader::new(stream);
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no response head"));
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let status = head.first().map(String::as_str).unwrap_or_default();
        if !status.contains(" 200 ") {
            return Err(io::Error::other(format!("event stream refused: {head:?}")));
        }
        let event_stream =
            head.iter().any(|l| l.to_ascii_lowercase().contains("text/event-stream"));
        assert!(event_stream, "not an event stream: {head:?}");
        Ok(Self { reader: BufReader::new(Chunked::new(reader)) })
    }

    /// The next event (comments skipped); `None` when the stream ends.
    pub fn next(&mut self) -> Option<SseEvent> {
        let mut event = SseEvent { id: None, event: "message".to_owned(), data: String::new() };
        let mut seen = false;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if seen {
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            seen = true;
            match field {
                "id" => event.id = value.parse().ok(),
                "event" => value.clone_into(&mut event.event),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

/// One request a [`WebhookReceiver`] got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A local HTTP server that records every request and answers the n-th one with the n-th of a
/// list of statuses (200 once the list is used up).
pub struct WebhookReceiver {
    pub addr: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    pub fn start(statuses: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = serve_one(stream, &log, &statuses);
            }
        });
        Self { addr, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn serve_one(stream: TcpStream, log: &Mutex<Vec<Received>>, statuses: &[u16]) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut headers = Vec::new();
    let mut line = String::new();
    reader.read_line(&mut line)?; // request line
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let status = {
        let mut log = log.lock().unwrap();
        let status = statuses.get(log.len()).copied().unwrap_or(200);
        log.push(Received { headers, body, status });
        status
    };
    let mut stream = stream;
    write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    stream.flush()
}

/// `promtool check <what>` on `input` (stdin) or on `args`, when promtool is installed:
/// `Some(Ok(()))` if it accepts, `Some(Err(output))` if not, `None` without promtool.
pub fn promtool(args: &[&str], stdin: Option<&str>) -> Option<Result<(), String>> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut input = child.stdin.take().expect("piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("promtool reads stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("promtool runs");
    if out.status.success() {
        Some(Ok(()))
    } else {
        Some(Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Checks a `/metrics` exposition with `promtool check metrics`; without promtool, with the
/// Python `prometheus_client` parser; without either, says loudly that the check was skipped.
pub fn check_metrics(text: &str) {
    match promtool(&["check", "metrics"], Some(text)) {
        Some(Ok(())) => return,
        Some(Err(output)) => panic!("promtool check metrics refused /metrics:\n{output}\n{text}"),
        None => {}
    }
    use std::process::{Command, Stdio};
    let script = "import sys\n\
                  from prometheus_client.parser import text_string_to_metric_families as parse\n\
                  list(parse(sys.stdin.read()))\n";
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    if let Ok(mut child) = child {
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(text.as_bytes());
        }
        if let Ok(out) = child.wait_with_output() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                eprintln!("no promtool: /metrics checked with prometheus_client's parser instead");
                return;
            }
            if !stderr.contains("No module named") {
                panic!("prometheus_client's parser refused /metrics:\n{stderr}\n{text}");
            }
        }
    }
    eprintln!(
        "SKIPPED: /metrics not validated: neither promtool (apt-get install prometheus) nor \
         Python's prometheus_client (pip install prometheus-client) is installed"
    );
}

/// The value of the sample `name{labels}` in a `/metrics` exposition, if present. `labels` must
/// all be on the sample (others may be too).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let wanted =
            metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        if wanted { value.parse().ok() } else { None }
    })
}

/// `GET /metrics` of the node whose HTTP API is at `addr`; empty while it does not answer (it
/// is starting), so that waits can poll it.
pub fn metrics(addr: &str) -> String {
    request(addr, "GET", "/metrics", &[], b"").map(|r| r.text()).unwrap_or_default()
}
