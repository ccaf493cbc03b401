//! A small RESP2 client: one command, one reply, no hidden round trips.
//!
//! Client libraries send `HELLO` or `CLIENT SETINFO` when they connect and retry on their own;
//! a stopwatch around "connect, SET" must see exactly one request and its reply, so the benchmark
//! speaks the protocol itself. It parses from its own buffer, so a read timeout in the middle of a
//! reply loses nothing (subscribers poll with short timeouts).

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3\r\nfoo`
    Bulk(Vec<u8>),
    /// `*2\r\n...`
    Array(Vec<Self>),
    /// `$-1` or `*-1`
    Nil,
}

impl Value {
    /// The text of a simple or bulk string.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Simple(s) => Some(s.clone()),
            Self::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// A flat array of field/value pairs (Sentinel's instance maps) as a map.
    pub fn pairs(&self) -> Option<BTreeMap<String, String>> {
        let Self::Array(items) = self else { return None };
        items.chunks_exact(2).map(|kv| Some((kv[0].text()?, kv[1].text()?))).collect()
    }
}

/// Parses one reply from the start of `buf`: the value and how many bytes it took, `None` if
/// `buf` holds only part of it.
pub fn parse(buf: &[u8]) -> io::Result<Option<(Value, usize)>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    let Some((&kind, rest)) = buf[..end].split_first() else { return Err(bad("empty line")) };
    let line = std::str::from_utf8(rest).map_err(|_| bad("not UTF-8"))?;
    let after = end + 2;
    let number = || line.parse::<i64>().map_err(|_| bad(line));
    Ok(match kind {
        b'+' => Some((Value::Simple(line.to_owned()), after)),
        b'-' => Some((Value::Error(line.to_owned()), after)),
        b':' => Some((Value::Int(number()?), after)),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else { return Ok(Some((Value::Nil, after))) };
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            Some((Value::Bulk(buf[after..after + len].to_vec()), after + len + 2))
        }
        b'*' => {
            let Ok(len) = usize::try_from(number()?) else { return Ok(Some((Value::Nil, after))) };
            let mut items = Vec::with_capacity(len.min(4096));
            let mut used = after;
            for _ in 0..len {
                let Some((item, n)) = parse(&buf[used..])? else { return Ok(None) };
                items.push(item);
                used += n;
            }
            Some((Value::Array(items), used))
        }
        _ => return Err(bad(&format!("unexpected type byte {kind:#x}"))),
    })
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad RESP: {what}"))
}

/// One connection to a Redis server or a supervisor.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to 127.0.0.1:`port`; `timeout` bounds the connect and every read and write.
    pub fn open(port: u16, timeout: Duration) -> io::Result<Self> {
        Self::open_addr(&SocketAddr::from(([127, 0, 0, 1], port)), timeout)
    }

    /// Connects to `ip`:`port`, as [`Self::open`].
    pub fn open_at(ip: &str, port: u16, timeout: Duration) -> io::Result<Self> {
        let ip: std::net::IpAddr =
            ip.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Self::open_addr(&SocketAddr::new(ip, port), timeout)
    }

    /// Connects to `addr`, as [`Self::open`].
    pub fn open_addr(addr: &SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::new() })
    }

    /// Changes the read timeout (subscribers wake up often to check whether to stop).
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// Sends one command.
    pub fn send(&mut self, args: &[&str]) -> io::Result<()> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out)
    }

    /// Reads the next reply. A timeout (`WouldBlock`/`TimedOut`) keeps what was read so far.
    pub fn read(&mut self) -> io::Result<Value> {
        loop {
            if let Some((value, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(value);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, args: &[&str]) -> io::Result<Value> {
        self.send(args)?;
        self.read()
    }
}

/// Whether `error` is a read timeout rather than a broken connection.
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// `SENTINEL get-master-addr-by-name <name>` as `host:port`; `None` for an unknown name.
pub fn master_addr(conn: &mut Conn, name: &str) -> io::Result<Option<String>> {
    match conn.call(&["SENTINEL", "get-master-addr-by-name", name])? {
        Value::Array(items) if items.len() == 2 => match (items[0].text(), items[1].text()) {
            (Some(host), Some(port)) => Ok(Some(format!("{host}:{port}"))),
            _ => Err(bad("address items are not strings")),
        },
        Value::Nil => Ok(None),
        other => Err(bad(&format!("get-master-addr-by-name answered {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_and_waits_for_whole_replies() {
        let text = b"*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$3\r\na b\r\n";
        let (v, used) = parse(text).unwrap().unwrap();
        assert_eq!(used, text.len());
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Bulk(b"message".to_vec()),
                Value::Bulk(b"+switch-master".to_vec()),
                Value::Bulk(b"a b".to_vec()),
            ])
        );
        for cut in 0..text.len() {
            assert_eq!(parse(&text[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse(b"+OK\r\n").unwrap(), Some((Value::Simple("OK".into()), 5)));
        assert_eq!(
            parse(b"-READONLY no\r\n").unwrap(),
            Some((Value::Error("READONLY no".into()), 14))
        );
        assert_eq!(parse(b":42\r\n").unwrap(), Some((Value::Int(42), 5)));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Some((Value::Nil, 5)));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some((Value::Nil, 5)));
        assert!(parse(b"?x\r\n").is_err());
    }

    #[test]
    fn pairs_of_an_instance_map() {
        let v = Value::Array(
            ["name", "m", "flags", "master"]
                .iter()
                .map(|s| Value::Bulk(s.as_bytes().to_vec()))
                .collect(),
        );
        let map = v.pairs().unwrap();
        assert_eq!(map["flags"], "master");
        assert_eq!(map.len(), 2);
    }
}
