//! A one-request HTTP/1.0 client for Picket's API and `/metrics`: HTTP/1.0 so the server sends
//! the body as is and closes the connection (no chunked encoding to decode).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// `GET http://127.0.0.1:<port><path>`: the body of a 200 response, an error otherwise.
pub fn get(port: u16, path: &str, timeout: Duration) -> Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("reading GET {path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        bail!("GET {path} on port {port}: status {status}: {}", body.trim());
    }
    Ok(body.to_owned())
}

/// The sum of every sample of `metric` (all label sets) in a Prometheus text exposition.
pub fn metric_sum(exposition: &str, metric: &str) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(metric) else { continue };
        // The name must end here: `foo` must not match `foo_total`.
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_over_its_labels() {
        let text = "# HELP x_total X\n# TYPE x_total counter\nx_total 5\nx_total_other 7\n\
                    y{a=\"1\"} 2\ny{a=\"2 3\"} 3.5\n";
        assert_eq!(metric_sum(text, "x_total"), Some(5.0));
        assert_eq!(metric_sum(text, "y"), Some(5.5));
        assert_eq!(metric_sum(text, "z"), None);
    }
}
