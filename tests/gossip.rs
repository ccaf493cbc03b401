//! The gossip port under abuse: garbage, other protocols, oversize frames and forged frames
//! change nothing, and the node keeps serving its peers.

#![allow(clippy::disallowed_methods)] // forged frames carry a real wall-clock timestamp

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use picket::engine::{Body, MasterReport, NodeId, PeerMessage, Sender, StateVersion};
use picket::wire::frame::{Channel, FrameHeader, FrameKey, seal};
use support::{Cluster, ClusterOptions, Group, wait_for};

const LONG: Duration = Duration::from_secs(60);

fn send(addr: &str, bytes: &[u8]) {
    if let Ok(mut stream) = TcpStream::connect(addr) {
        let _ = stream.write_all(bytes);
        let _ = stream.flush();
    }
}

/// A frame claiming a newer configuration of `master` (a switch to `fake_addr`), sealed with `key`.
fn forged_switch(key: &FrameKey, from: &str, master: &str, fake_addr: &str) -> Vec<u8> {
    let message = PeerMessage {
        from: Sender {
            node_id: NodeId::from_bytes([0xee; 20]),
            announce: from.parse().unwrap(),
            client_addr: from.parse().unwrap(),
            current_epoch: 1000,
        },
        body: Body::State {
            base: None,
            version: StateVersion { incarnation: 1, seq: 1 },
            masters: vec![MasterReport {
                name: master.to_owned(),
                addr: fake_addr.parse().unwrap(),
                config_epoch: 1000,
                sdown: false,
                voted_epoch: 1000,
                failover: None,
                down_replicas: Vec::new(),
                maintenance: picket::engine::gossip::Maintenance::default(),
                lease_set: None,
            }],
        },
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let header = FrameHeader { session: 7, seq: 1, sent_at_unix_ms: u64::try_from(now).unwrap() };
    let mut body = Vec::new();
    // Bound to a channel the receiver never drew: only the MAC would matter anyway.
    seal(key, &Channel([0; 16]), &header, &message, &mut body).unwrap();
    let mut framed = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    framed
}

#[test]
fn garbage_and_unauthenticated_frames_change_nothing() {
    let cluster =
        Cluster::start(3, vec![Group::start("session", 1, None)], &ClusterOptions::default());
    wait_for("ready", LONG, || cluster.pickets.iter().all(|p| p.count("+sentinel ") >= 2));
    let target = cluster.pickets[0].spec.gossip_addr();
    // A peer's real announce address, so only the MAC can give the forgery away.
    let impersonated = cluster.pickets[1].spec.gossip_addr();

    let mut noise: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"*1\r\n$4\r\nPING\r\n".to_vec(),
        vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
        vec![0, 0, 0, 8, b'P', b'K', b'T', 0xa7, 9, 9, 9, 9],
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in [1usize, 7, 64, 4096] {
        let bytes = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[0]
            })
            .collect();
        noise.push(bytes);
    }
    let wrong_key = FrameKey::new(b"not-the-cluster-secret");
    noise.push(forged_switch(&wrong_key, &impersonated, "session", "127.0.0.1:1"));
    for bytes in &noise {
        send(&target, bytes);
    }
    // Many connections at once, some left open.
    let idle: Vec<TcpStream> = (0..200).filter_map(|_| TcpStream::connect(&target).ok()).collect();

    // Still alive, still in touch with its peers, and nothing adopted.
    std::thread::sleep(Duration::from_secs(3));
    let node = &cluster.pickets[0];
    assert!(!node.saw("+config-update-from") && !node.saw("+switch-master"), "{:?}", node.events());
    assert!(!node.saw("+sdown sentinel"), "peers kept in touch: {:?}", node.events());
    assert!(!node.saw("+new-epoch"), "{:?}", node.events());
    // Refusals are logged at most once per interval (with the count held back), so the burst
    // shows as one line.
    let rejected = node.log().matches("refused a gossip connection").count();
    assert!(rejected >= 1, "bad frames are logged and their connections closed:\n{}", node.log());
    drop(idle);
    // And it still acts: a real failover goes through with the abused node taking part.
    let mut cluster = cluster;
    let old = cluster.group("session").master.addr();
    cluster.group_mut("session").master.kill();
    let new = cluster.group("session").replicas[0].addr();
    let switch =
        format!("+switch-master session {} {}", old.replace(':', " "), new.replace(':', " "));
    for picket in &cluster.pickets {
        wait_for("failover seen by every node", LONG, || picket.saw(&switch));
    }
}
