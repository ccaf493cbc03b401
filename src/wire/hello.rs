//! Sentinel's hello message, `__sentinel__:hello`'s payload: eight comma-separated fields,
//! `ip,port,runid,current_epoch,master,master_ip,master_port,config_epoch`
//! (sentinel-protocol.md 3.5).

use crate::engine::{Addr, Hello, NodeId};

/// Parses a hello; `None` for anything that is not exactly eight well-formed fields (Sentinel
/// drops those silently too).
#[must_use]
pub fn parse_hello(payload: &[u8]) -> Option<Hello> {
    let text = std::str::from_utf8(payload).ok()?;
    let fields: Vec<&str> = text.split(',').collect();
    let [ip, port, run_id, current_epoch, master, master_ip, master_port, config_epoch] =
        fields.as_slice()
    else {
        return None;
    };
    Some(Hello {
        addr: Addr::new(ip, port.parse().ok()?).ok()?,
        run_id: run_id.to_ascii_lowercase().parse().ok()?,
        current_epoch: current_epoch.parse().ok()?,
        master: (*master).to_owned(),
        master_addr: Addr::new(master_ip, master_port.parse().ok()?).ok()?,
        config_epoch: config_epoch.parse().ok()?,
    })
}

/// Formats this node's hello about one master.
#[must_use]
pub fn format_hello(
    addr: &Addr,
    run_id: NodeId,
    current_epoch: u64,
    master: &str,
    master_addr: &Addr,
    config_epoch: u64,
) -> String {
    format!(
        "{},{},{run_id},{current_epoch},{master},{},{},{config_epoch}",
        addr.host(),
        addr.port(),
        master_addr.host(),
        master_addr.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_hello_round_trips() {
        let text =
            "127.0.0.1,26380,f9bca096961ff0eefc2603c25d88d95521d9820b,3,mymaster,127.0.0.1,16379,2";
        let hello = parse_hello(text.as_bytes()).unwrap();
        assert_eq!(hello.addr, Addr::new("127.0.0.1", 26380).unwrap());
        assert_eq!(hello.current_epoch, 3);
        assert_eq!(hello.master, "mymaster");
        assert_eq!(hello.master_addr, Addr::new("127.0.0.1", 16379).unwrap());
        assert_eq!(hello.config_epoch, 2);
        let again = format_hello(
            &hello.addr,
            hello.run_id,
            hello.current_epoch,
            &hello.master,
            &hello.master_addr,
            hello.config_epoch,
        );
        assert_eq!(again, text);
    }

    #[test]
    fn malformed_hellos_are_dropped() {
        for text in [
            "",
            "127.0.0.1,26380,f9bca096961ff0eefc2603c25d88d95521d9820b,3,mymaster,127.0.0.1,16379",
            "127.0.0.1,26380,nothex,3,mymaster,127.0.0.1,16379,2",
            "127.0.0.1,0,f9bca096961ff0eefc2603c25d88d95521d9820b,3,mymaster,127.0.0.1,16379,2",
            "127.0.0.1,26380,f9bca096961ff0eefc2603c25d88d95521d9820b,-1,mymaster,127.0.0.1,16379,2",
            "127.0.0.1,26380,f9bca096961ff0eefc2603c25d88d95521d9820b,3,m,127.0.0.1,16379,2,9",
        ] {
            assert_eq!(parse_hello(text.as_bytes()), None, "{text}");
        }
    }
}
