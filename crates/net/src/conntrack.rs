//! Forgetting what the kernel tracks of sandboxes' connections. Its entries live in the host's
//! namespace, keyed by address, and outlive the sandbox: a peer that keeps a flow alive would
//! reach whichever sandbox gets the address next, through the firewall's `established` rule.
//! So before an address is used again (and at start, for a server that stopped without ending
//! its sandboxes) every entry whose original source is such an address is deleted, through
//! ctnetlink: one dump of the IPv4 table, then a delete per entry.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, Tuple};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

/// Deletes every tracked IPv4 connection whose original source is in one of `sources`;
/// returns how many it deleted.
pub fn forget(sources: &[Ipv4Net]) -> io::Result<usize> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let doomed = dump(&socket, |a| sources.iter().any(|n| n.contains(&a)))?;
    let mut deleted = 0;
    for (seq, tuple) in (2..).zip(doomed) {
        let delete = ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(tuple)]);
        send(&socket, delete, NLM_F_REQUEST | NLM_F_ACK, seq)?;
        match receive(&socket, &mut Vec::new(), &mut |_| ())? {
            None => deleted += 1,
            // Gone meanwhile (it timed out, or its flow ended).
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Some(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The original tuples of the table's IPv4 entries whose source `wanted` picks.
fn dump(socket: &Socket, wanted: impl Fn(Ipv4Addr) -> bool) -> io::Result<Vec<Vec<Tuple>>> {
    send(
        socket,
        ConntrackMessage::Get(Vec::new()),
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
    )?;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let picked = &mut |m: ConntrackMessage| {
        let ConntrackMessage::New(attributes) = m else {
            return;
        };
        for a in attributes {
            if let ConntrackAttribute::CtaTupleOrig(tuple) = a
                && source(&tuple).is_some_and(&wanted)
            {
                out.push(tuple);
            }
        }
    };
    match receive(socket, &mut buf, picked)? {
        None => Ok(out),
        Some(e) => Err(e),
    }
}

/// A tuple's IPv4 source address.
fn source(tuple: &[Tuple]) -> Option<Ipv4Addr> {
    tuple.iter().find_map(|t| match t {
        Tuple::Ip(ip) => ip.iter().find_map(|a| match a {
            IPTuple::SourceAddress(IpAddr::V4(v4)) => Some(*v4),
            _ => None,
        }),
        _ => None,
    })
}

fn send(socket: &Socket, message: ConntrackMessage, flags: u16, seq: u32) -> io::Result<()> {
    let header = NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0);
    let mut m = NetlinkMessage::from(NetfilterMessage::new(header, message));
    m.header.flags = flags;
    m.header.sequence_number = seq;
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    socket.send(&buf, 0)?;
    Ok(())
}

/// Reads messages until the request's end (a dump's `Done`, or an acknowledgement), handing
/// each conntrack message to `each`. `Ok(Some(e))` is the kernel's refusal.
fn receive(
    socket: &Socket,
    buf: &mut Vec<u8>,
    each: &mut dyn FnMut(ConntrackMessage),
) -> io::Result<Option<io::Error>> {
    loop {
        buf.clear();
        buf.reserve(1 << 16);
        socket.recv(buf, 0)?;
        let mut at = 0;
        while at < buf.len() {
            let m = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[at..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = m.header.length as usize;
            if len == 0 {
                break;
            }
            at += (len + 3) & !3;
            match m.payload {
                // A dump that failed part way ends with its error in `Done`.
                NetlinkPayload::Done(d) if d.code < 0 => {
                    return Ok(Some(io::Error::from_raw_os_error(-d.code)));
                }
                NetlinkPayload::Done(_) => return Ok(None),
                NetlinkPayload::Error(e) if e.raw_code() == 0 => return Ok(None),
                NetlinkPayload::Error(e) => return Ok(Some(e.to_io())),
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::Conntrack(c),
                    ..
                }) => each(c),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::process::{Command, Stdio};

    use super::*;

    /// In a network namespace of its own (this thread's, for the test's life): loopback up and
    /// a table whose chain makes the kernel track what this namespace sends.
    fn tracked_namespace() -> io::Result<()> {
        // SAFETY: unshare with a flag; it changes only this thread, which ends with the test.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } == -1 {
            return Err(io::Error::last_os_error());
        }
        let rules = "add table ip t\n\
            add chain ip t out { type filter hook output priority 0; }\n\
            add rule ip t out ct state new counter\n";
        for (program, args, input) in [
            ("ip", &["link", "set", "lo", "up"][..], ""),
            ("nft", &["-f", "-"][..], rules),
        ] {
            let mut child = Command::new(program)
                .args(args)
                .stdin(Stdio::piped())
                .spawn()?;
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes())?;
            assert!(child.wait()?.success(), "{program} {args:?}");
        }
        Ok(())
    }

    fn send_from(source: &str) {
        let s = UdpSocket::bind((source, 0)).unwrap();
        s.send_to(b"x", "127.0.0.1:9").unwrap();
    }

    #[test]
    fn connections_from_the_given_sources_are_forgotten_and_no_others() {
        let run = std::thread::spawn(|| {
            tracked_namespace().expect("a network namespace with conntrack (needs root, nft)");
            send_from("127.0.0.2");
            send_from("127.0.0.2");
            send_from("127.0.0.3");
            let two: Ipv4Net = "127.0.0.2/32".parse().unwrap();
            assert_eq!(forget(&[two]).unwrap(), 2, "two flows from 127.0.0.2");
            assert_eq!(forget(&[two]).unwrap(), 0, "nothing left of them");
            let three: Ipv4Net = "127.0.0.3/32".parse().unwrap();
            assert_eq!(forget(&[three]).unwrap(), 1, "127.0.0.3's flow was kept");
        });
        run.join().unwrap();
    }
}
