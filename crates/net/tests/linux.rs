//! The real host layer, inside a network namespace this test makes (its thread's own), so the
//! machine's network is never touched: nft accepts the table, a lease's namespace has its
//! address and route, the host's own ports are closed to it, and everything goes at the end.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use lamina_net::host::{Host, LinuxHost};
use lamina_net::{NetConfig, Network};

fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare with a flag; it moves only this thread.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        f()
    })
    .join()
    .unwrap()
}

fn run_in(ns: std::os::fd::RawFd, f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns with a namespace descriptor that outlives this thread.
            assert_eq!(unsafe { libc::setns(ns, libc::CLONE_NEWNET) }, 0, "setns");
            f()
        });
    });
}

#[test]
fn a_lease_gets_its_own_namespace_and_cannot_reach_the_host() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this test makes network namespaces and needs root");
    in_new_netns(|| {
        Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        let net = Network::start(
            NetConfig {
                pool: "10.254.0.0/24".parse().unwrap(),
                spare: 1,
                resolvers: vec![Ipv4Addr::new(192, 168, 1, 1)],
                connections: lamina_net::DEFAULT_CONNECTIONS,
            },
            || Ok(Box::new(LinuxHost::new()?) as Box<dyn Host>),
        )
        .expect("starting the network layer");
        let listing = Command::new("nft")
            .args(["list", "table", "inet", "lamina"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        assert!(listing.contains("masquerade"), "{listing}");
        assert!(listing.contains("169.254.0.0/16"), "{listing}");
        assert!(listing.contains("192.168.1.1"), "{listing}");

        let host_port = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = host_port.local_addr().unwrap().port();
        host_port.set_nonblocking(true).unwrap();
        let lease = net.take(0, "fn-a").expect("a lease");
        // The sandbox's end of a /31 of the pool is odd; the host's end, its gateway, even.
        let [a, b, c, d] = lease.address.octets();
        assert!([a, b, c] == [10, 254, 0] && d % 2 == 1, "{}", lease.address);
        let gateway = Ipv4Addr::new(a, b, c, d - 1);
        run_in(lease.netns().as_raw_fd(), || {
            let routes = Command::new("ip").args(["-4", "route"]).output().unwrap();
            let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
            assert!(
                routes.contains("default via 10.254.0.0 dev eth0"),
                "{routes}"
            );
            let addrs = Command::new("ip").args(["-4", "addr"]).output().unwrap();
            let addrs = String::from_utf8_lossy(&addrs.stdout).into_owned();
            assert!(addrs.contains(&format!("{}/31", lease.address)), "{addrs}");
            // No IPv6 address on eth0, not even a link-local one, so IPv6 cannot leave: not to
            // the link's multicast group, not to a global address.
            let v6 = Command::new("ip")
                .args(["-6", "addr", "show", "dev", "eth0"])
                .output()
                .unwrap();
            let v6 = String::from_utf8_lossy(&v6.stdout).into_owned();
            assert!(!v6.contains("inet6"), "{v6}");
            let udp = std::net::UdpSocket::bind("[::]:0").unwrap();
            // SAFETY: a NUL-terminated name.
            let eth0 = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
            assert_ne!(eth0, 0, "no eth0");
            let link = std::net::SocketAddrV6::new("ff02::1".parse().unwrap(), 9, 0, eth0);
            assert!(udp.send_to(b"x", link).is_err(), "IPv6 left over eth0");
            assert!(
                udp.send_to(b"x", "[2001:db8::1]:9").is_err(),
                "IPv6 has a route out"
            );
            // Its own address works (over its loopback).
            let own = TcpListener::bind("0.0.0.0:0").unwrap();
            let own_port = own.local_addr().unwrap().port();
            TcpStream::connect_timeout(
                &SocketAddrV4::new(lease.address, own_port).into(),
                Duration::from_millis(500),
            )
            .expect("a sandbox reaches its own address");
            // The host's listener is there, but the firewall drops the attempt.
            let r = TcpStream::connect_timeout(
                &SocketAddrV4::new(gateway, port).into(),
                Duration::from_millis(500),
            );
            assert!(r.is_err(), "a sandbox reached a host port");
        });
        // Nor on the host's end: no link-local address, so no route in the host's table.
        let host_v6 = Command::new("ip")
            .args(["-6", "addr", "show", "dev", lease.interface()])
            .output()
            .unwrap();
        let host_v6 = String::from_utf8_lossy(&host_v6.stdout).into_owned();
        assert!(!host_v6.contains("inet6"), "{host_v6}");
        // From the host itself the port works: the block is the firewall's doing.
        let mut c = TcpStream::connect_timeout(
            &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_millis(500),
        )
        .unwrap();
        c.write_all(b"x").unwrap();
        drop(c);
        let (mut accepted, _) = host_port.accept().expect("the host's own connection");
        accepted.set_nonblocking(false).unwrap();
        let mut buf = [0; 1];
        accepted.read_exact(&mut buf).unwrap();

        let name = lease.interface().to_owned();
        drop(lease);
        let t = net.traffic();
        assert!(
            t.iter().any(|t| t.owner == "fn-a" && t.sent > 0),
            "the blocked SYNs count as sent bytes: {t:?}"
        );
        // The pair goes with the namespace, on the kernel's own time (bounded wait).
        let gone = (0..100).any(|_| {
            let links = Command::new("ip").args(["link"]).output().unwrap();
            let gone = !String::from_utf8_lossy(&links.stdout).contains(&name);
            if !gone {
                std::thread::sleep(Duration::from_millis(50));
            }
            gone
        });
        assert!(gone, "the interface outlived its lease by 5 s");
        net.stop();
        let after = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&after.stdout).contains("lamina"),
            "the table outlived the network"
        );
        let links = Command::new("ip").args(["link"]).output().unwrap();
        assert!(
            !String::from_utf8_lossy(&links.stdout).contains("lv0000"),
            "ready namespaces' interfaces outlived the network"
        );
    });
}
