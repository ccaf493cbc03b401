//! A raw RESP client for tests of the Sentinel port: exact bytes out, exact frames back.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different part of this module

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use picket::wire::resp::{Frame, Limits};

/// How long a reply may take.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// One connection.
pub struct Resp {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Resp {
    pub fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        Self { stream, buf: Vec::new() }
    }

    /// A connection that said `HELLO 3`.
    pub fn resp3(addr: &str) -> Self {
        let mut c = Self::connect(addr);
        assert!(matches!(c.call(&["HELLO", "3"]), Frame::Map(_)));
        c
    }

    pub fn send(&mut self, parts: &[&str]) {
        let mut out = format!("*{}\r\n", parts.len()).into_bytes();
        for p in parts {
            out.extend_from_slice(format!("${}\r\n{p}\r\n", p.len()).as_bytes());
        }
        self.raw(&out);
    }

    /// Writes `bytes`; a write to a connection the server closed is ignored.
    pub fn raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next value, or `None` once the server closed the connection.
    pub fn next(&mut self) -> Option<Frame> {
        let limits = Limits { max_array_len: 100_000, ..Limits::DEFAULT };
        loop {
            if let Some((frame, used)) = Frame::parse(&self.buf, &limits).expect("valid RESP") {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no reply: {e}"),
            }
        }
    }

    pub fn read(&mut self) -> Frame {
        self.next().expect("the connection is open")
    }

    pub fn call(&mut self, parts: &[&str]) -> Frame {
        self.send(parts);
        self.read()
    }
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec())
}

/// The text of a bulk, simple, error or verbatim string.
pub fn text(frame: &Frame) -> String {
    match frame {
        Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        Frame::Simple(s) | Frame::Error(s) => s.clone(),
        Frame::Verbatim { text, .. } => String::from_utf8_lossy(text).into_owned(),
        other => panic!("not text: {other:?}"),
    }
}

/// The pairs of a map reply (a flat array in RESP2, a map in RESP3), checking that every
/// value is a bulk string as in Sentinel's instance maps.
pub fn pairs(frame: &Frame) -> Vec<(String, String)> {
    let list: Vec<(Frame, Frame)> = match frame {
        Frame::Array(items) => {
            assert_eq!(items.len() % 2, 0, "a flat map has pairs: {items:?}");
            items.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect()
        }
        Frame::Map(entries) => entries.clone(),
        other => panic!("not a map: {other:?}"),
    };
    list.iter()
        .map(|(k, v)| {
            assert!(matches!(v, Frame::Bulk(_)), "{k:?} is not a bulk string: {v:?}");
            (text(k), text(v))
        })
        .collect()
}

/// `key`'s value in `pairs`.
pub fn get<'p>(pairs: &'p [(String, String)], key: &str) -> &'p str {
    &pairs.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key} in {pairs:?}")).1
}

/// The elements of an array reply.
pub fn items(frame: Frame) -> Vec<Frame> {
    match frame {
        Frame::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
