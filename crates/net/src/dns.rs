//! The sandboxes' `/etc/resolv.conf`: the host's resolvers, unless they are on loopback (which a
//! sandbox cannot reach), in which case systemd-resolved's upstream list, as Docker does.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// What sandboxes resolve names with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolvers {
    pub servers: Vec<Ipv4Addr>,
    /// `search` and `options` lines kept from the host's file.
    pub extra: Vec<String>,
    /// Why there are none, when there are none.
    pub note: Option<String>,
}

impl Resolvers {
    /// The contents of the sandboxes' `/etc/resolv.conf`.
    pub fn file(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        for l in &self.extra {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// Reads the host's configuration.
pub fn detect() -> Resolvers {
    let read = |p: &str| std::fs::read_to_string(Path::new(p)).ok();
    choose(
        read("/etc/resolv.conf").as_deref(),
        read("/run/systemd/resolve/resolv.conf").as_deref(),
    )
}

/// Picks the IPv4 resolvers sandboxes can reach from the host's file and, when that names only
/// loopback resolvers, from systemd-resolved's upstream file.
pub fn choose(etc: Option<&str>, resolved: Option<&str>) -> Resolvers {
    let parse = |text: &str| {
        let mut servers = Vec::new();
        let mut loopback = false;
        let mut extra = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => match words.next().and_then(|a| a.parse::<IpAddr>().ok()) {
                    Some(IpAddr::V4(a)) if a.is_loopback() => loopback = true,
                    Some(IpAddr::V4(a)) if !a.is_unspecified() => servers.push(a),
                    _ => {}
                },
                Some("search" | "options") => extra.push(line.trim().to_owned()),
                _ => {}
            }
        }
        (servers, loopback, extra)
    };
    let (servers, loopback, extra) = parse(etc.unwrap_or_default());
    if !servers.is_empty() {
        return Resolvers {
            servers,
            extra,
            note: None,
        };
    }
    if loopback && let Some(text) = resolved {
        let (servers, _, _) = parse(text);
        if !servers.is_empty() {
            return Resolvers {
                servers,
                extra,
                note: None,
            };
        }
    }
    Resolvers {
        servers: Vec::new(),
        extra,
        note: Some(if loopback {
            "the host resolves names on loopback only, which sandboxes cannot reach: functions resolve no names (list an upstream resolver in /etc/resolv.conf)".into()
        } else {
            "the host lists no IPv4 resolver in /etc/resolv.conf: functions resolve no names".into()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_resolvers_are_used_as_they_are() {
        let r = choose(
            Some("# c\nnameserver 192.168.1.1\nnameserver ::1\nsearch lan\n"),
            None,
        );
        assert_eq!(r.servers, vec![Ipv4Addr::new(192, 168, 1, 1)]);
        assert_eq!(r.file(), "nameserver 192.168.1.1\nsearch lan\n");
    }

    #[test]
    fn a_loopback_stub_is_replaced_by_its_upstreams() {
        let r = choose(
            Some("nameserver 127.0.0.53\noptions edns0\n"),
            Some("nameserver 9.9.9.9\nnameserver 127.0.0.1\n"),
        );
        assert_eq!(r.servers, vec![Ipv4Addr::new(9, 9, 9, 9)]);
        assert!(r.note.is_none());
        let none = choose(Some("nameserver 127.0.0.1\n"), None);
        assert!(none.servers.is_empty());
        assert!(none.note.unwrap().contains("loopback"));
    }
}
