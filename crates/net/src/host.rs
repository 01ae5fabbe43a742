//! Every kernel operation of sandbox networking: [`Host`], with [`LinuxHost`] (netlink through
//! `rtnetlink`, nftables through `nft -j`) and [`RecordingHost`], the fake unit tests use.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use nftables::schema::{NfObject, Nftables};
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// The network operations the server performs on its host.
pub trait Host: Send {
    /// Applies a batch of nftables commands as one transaction.
    fn apply(&mut self, batch: &[NfObject<'static>]) -> io::Result<()>;
    /// Turns IPv4 forwarding on; returns whether it was off.
    fn enable_forwarding(&mut self) -> io::Result<bool>;
    /// Makes a network namespace whose `eth0` (address `sandbox`/31, up, default route through
    /// `host`) is paired with the host interface `name` (address `host`/31, up). Returns the
    /// namespace's descriptor.
    fn create(&mut self, name: &str, host: Ipv4Addr, sandbox: Ipv4Addr) -> io::Result<OwnedFd>;
    /// Deletes a host interface (and with it its pair).
    fn delete(&mut self, name: &str) -> io::Result<()>;
    /// Lets an interface go with its namespace: the kernel removes the pair when the
    /// namespace's last process and descriptor are gone, in batches on its own workers, where
    /// [`Host::delete`] would wait for an RCU grace period (about 30 ms here) on this thread.
    fn release(&mut self, name: &str);
    /// Whether a host interface exists.
    fn exists(&mut self, name: &str) -> io::Result<bool>;
    /// One host interface's bytes received and sent, `None` when it is gone.
    fn bytes(&mut self, name: &str) -> io::Result<Option<(u64, u64)>>;
    /// Base chains of other tables that drop forwarded packets by default (Docker and
    /// firewalld make them), described for the operator.
    fn forward_blockers(&mut self) -> io::Result<Vec<String>>;
    /// Every host interface whose name starts with `prefix`: its name, the bytes it received
    /// (sent by the sandbox) and the bytes it sent (to the sandbox).
    fn counters(&mut self, prefix: &str) -> io::Result<Vec<(String, u64, u64)>>;
    /// Deletes what the kernel tracks of connections from `sources` (see [`crate::conntrack`]);
    /// returns how many entries went.
    fn forget_connections(&mut self, sources: &[Ipv4Net]) -> io::Result<usize>;
}

fn nl(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) if m.raw_code() != 0 => {
            io::Error::from_raw_os_error(-m.raw_code())
        }
        e => io::Error::other(e.to_string()),
    }
}

fn open_ns() -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(File::open("/proc/thread-self/ns/net")?))
}

fn setns(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: setns with a namespace descriptor we own; it changes only this thread.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The real host: one thread's netlink sockets and runtime. It must be used on the thread that
/// made it, since it moves that thread between namespaces.
pub struct LinuxHost {
    rt: tokio::runtime::Runtime,
    handle: Handle,
    /// The namespace this thread started in: the host's.
    home: OwnedFd,
    /// Its `/proc/sys/net/ipv6/conf`, opened once (none without IPv6): see [`disable_ipv6`].
    v6_conf: Option<OwnedFd>,
    nft: PathBuf,
    /// This namespace is this server's to manage.
    _lock: File,
}

/// Takes this network namespace for this server: two servers managing one namespace would
/// replace each other's table and collide on interface names. The lock is a `flock` on a file
/// named by the namespace's inode, released by the kernel when the server exits.
fn lock_namespace() -> io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::linux::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/thread-self/ns/net")?.st_ino();
    let dir = std::path::Path::new("/run/lamina");
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("net-{ino}.lock")))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::other(
            "another Lamina server manages sandbox networking in this network namespace",
        ));
    }
    Ok(file)
}

impl LinuxHost {
    pub fn new() -> io::Result<Self> {
        let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "nft not found (Debian: apt-get install nftables)",
                )
            })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let lock = lock_namespace()?;
        let home = open_ns()?;
        let v6_conf = File::open("/proc/sys/net/ipv6/conf")
            .ok()
            .map(OwnedFd::from);
        let handle = {
            let _enter = rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection()?;
            rt.spawn(conn);
            handle
        };
        Ok(Self {
            rt,
            handle,
            home,
            v6_conf,
            nft,
            _lock: lock,
        })
    }

    /// A netlink handle inside a new network namespace, and that namespace. The thread is back
    /// home when this returns, whatever happened.
    fn new_namespace(&mut self) -> io::Result<(OwnedFd, Handle)> {
        // SAFETY: unshare with a flag; it changes only this thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } == -1 {
            return Err(io::Error::last_os_error());
        }
        let inside = (|| {
            let ns = open_ns()?;
            let _enter = self.rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection()?;
            self.rt.spawn(conn);
            Ok((ns, handle))
        })();
        setns(&self.home).expect("returning to the host's network namespace");
        inside
    }

    fn index(&self, handle: &Handle, name: &str) -> io::Result<u32> {
        self.rt.block_on(async {
            handle
                .link()
                .get()
                .match_name(name.to_owned())
                .execute()
                .try_next()
                .await
                .map_err(nl)?
                .map(|m| m.header.index)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no link {name}")))
        })
    }

    fn configure(
        &mut self,
        ns: &OwnedFd,
        inner: &Handle,
        name: &str,
        host: Ipv4Addr,
        sandbox: Ipv4Addr,
    ) -> io::Result<()> {
        // One queue each way, asked for: otherwise veth makes one per CPU and then cuts them to
        // one, which waits for an expedited RCU grace period per end (most of this thread's
        // time in a burst of starts).
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name("eth0")
            .setns_by_fd(ns.as_raw_fd())
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name)
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        let h = self.handle.clone();
        self.rt
            .block_on(async { h.link().add(veth).execute().await })
            .map_err(nl)?;
        let hidx = self.index(&h, name)?;
        // Off before the link is up: then it never gets the multicast route either.
        let host_v6_off = self
            .v6_conf
            .as_ref()
            .is_some_and(|conf| disable_ipv6(conf, name).is_ok());
        let eth0 = self.index(inner, "eth0")?;
        let lo = self.index(inner, "lo")?;
        self.rt
            .block_on(async {
                h.address()
                    .add(hidx, IpAddr::V4(host), 31)
                    .execute()
                    .await?;
                if host_v6_off {
                    up(&h, hidx).await?;
                } else {
                    up_without_ipv6(&h, hidx).await?;
                }
                inner
                    .link()
                    .set(LinkUnspec::new_with_index(lo).up().build())
                    .execute()
                    .await?;
                inner
                    .address()
                    .add(eth0, IpAddr::V4(sandbox), 31)
                    .execute()
                    .await?;
                up_without_ipv6(inner, eth0).await?;
                inner
                    .route()
                    .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(host).build())
                    .execute()
                    .await
            })
            .map_err(nl)
    }
}

/// Brings a link up with no IPv6 address, not even a link-local one: none leaves a sandbox (the
/// firewall drops IPv6 too). For the sandbox's `eth0`, and for the host's end where
/// [`disable_ipv6`] failed: without an address it adds no unicast route to the host's table,
/// whose every change walks all of it. Set over netlink, not through a new namespace's
/// `/proc/sys`, whose lookups walk every namespace's entries and so grew with the number of
/// sandboxes (0.6 ms a namespace at 1000).
async fn up_without_ipv6(h: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    let no_v6 =
        LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
            In6AddrGenMode::None,
        )])]);
    // A message of its own, before the link is up: in one message the kernel brings the link
    // up first, and a link with carrier would get its address in the old mode.
    let mode = h
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .append_extra_attribute(no_v6)
                .build(),
        )
        .execute()
        .await;
    match mode {
        // A kernel without IPv6 has no address to leave out.
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc::EAFNOSUPPORT => {}
        r => r?,
    }
    up(h, index).await
}

async fn up(h: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
}

/// Turns IPv6 off on a host's link (before it is up). Without an address it would still get a
/// multicast route (`ff00::/8`) in the host's table, whose every change walks all the routes of
/// that prefix: one per sandbox. Only `disable_ipv6` leaves it out, and it has no netlink
/// setter. The file is opened below `conf`, a descriptor of the host's
/// `/proc/sys/net/ipv6/conf`, so that only the link's own name is looked up: the directories
/// above are every namespace's too, and their lookups compare all of them.
fn disable_ipv6(conf: &OwnedFd, link: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let path = std::ffi::CString::new(format!("{link}/disable_ipv6"))?;
    // SAFETY: openat on a directory descriptor we own, with a NUL-terminated relative path.
    let fd = unsafe {
        libc::openat(
            conf.as_raw_fd(),
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(b"1")
}

impl Host for LinuxHost {
    fn apply(&mut self, batch: &[NfObject<'static>]) -> io::Result<()> {
        let doc = Nftables {
            objects: batch.to_vec().into(),
        };
        let json = serde_json::to_vec(&doc).map_err(io::Error::other)?;
        // nft runs here rather than through the crate's helper, which lets nft's stderr through
        // to the server's instead of returning it.
        let mut nft = std::process::Command::new(&self.nft)
            .args(["-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot run {}: {e}", self.nft.display()))
            })?;
        // nft reads its whole input before it writes anything.
        let written = std::io::Write::write_all(&mut nft.stdin.take().expect("piped"), &json);
        let out = nft.wait_with_output()?;
        if out.status.success() {
            return written;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(io::Error::other(match stderr.trim() {
            "" => format!("nft failed ({})", out.status),
            e => format!("nft: {e}"),
        }))
    }

    fn forward_blockers(&mut self) -> io::Result<Vec<String>> {
        use nftables::schema::{NfListObject, NfObject};
        use nftables::types::{NfChainPolicy, NfHook};
        let all = nftables::helper::get_current_ruleset_with_args(Some(&self.nft), &[] as &[&str])
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(all
            .objects
            .iter()
            .filter_map(|o| match o {
                NfObject::ListObject(NfListObject::Chain(c))
                    if c.hook == Some(NfHook::Forward)
                        && c.policy == Some(NfChainPolicy::Drop)
                        && c.table != crate::rules::TABLE =>
                {
                    Some(format!("{:?} {} chain {}", c.family, c.table, c.name).to_lowercase())
                }
                _ => None,
            })
            .collect())
    }

    fn enable_forwarding(&mut self) -> io::Result<bool> {
        let path = Path::new("/proc/sys/net/ipv4/ip_forward");
        if std::fs::read_to_string(path)?.trim() == "1" {
            return Ok(false);
        }
        std::fs::write(path, "1")?;
        Ok(true)
    }

    fn create(&mut self, name: &str, host: Ipv4Addr, sandbox: Ipv4Addr) -> io::Result<OwnedFd> {
        let (ns, inner) = self.new_namespace()?;
        let r = self.configure(&ns, &inner, name, host, sandbox);
        drop(inner);
        match r {
            Ok(()) => Ok(ns),
            Err(e) => {
                let _ = self.delete(name);
                Err(e)
            }
        }
    }

    fn delete(&mut self, name: &str) -> io::Result<()> {
        let h = self.handle.clone();
        let idx = self.index(&h, name)?;
        self.rt
            .block_on(async { h.link().del(idx).execute().await })
            .map_err(nl)
    }

    fn release(&mut self, _name: &str) {}

    fn bytes(&mut self, name: &str) -> io::Result<Option<(u64, u64)>> {
        let h = self.handle.clone();
        self.rt.block_on(async {
            let found = h
                .link()
                .get()
                .match_name(name.to_owned())
                .execute()
                .try_next()
                .await;
            match found {
                Ok(Some(m)) => Ok(m.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Stats64(s) => Some((s.rx_bytes, s.tx_bytes)),
                    _ => None,
                })),
                Ok(None) => Ok(None),
                Err(e) => match nl(e) {
                    e if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
                    e => Err(e),
                },
            }
        })
    }

    fn forget_connections(&mut self, sources: &[Ipv4Net]) -> io::Result<usize> {
        crate::conntrack::forget(sources)
    }

    fn exists(&mut self, name: &str) -> io::Result<bool> {
        let h = self.handle.clone();
        match self.index(&h, name) {
            Ok(_) => Ok(true),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENODEV) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn counters(&mut self, prefix: &str) -> io::Result<Vec<(String, u64, u64)>> {
        let h = self.handle.clone();
        self.rt.block_on(async {
            let mut links = h.link().get().execute();
            let mut out = Vec::new();
            while let Some(m) = links.try_next().await.map_err(nl)? {
                let mut name = None;
                let mut bytes = (0, 0);
                for a in &m.attributes {
                    match a {
                        LinkAttribute::IfName(n) if n.starts_with(prefix) => name = Some(n.clone()),
                        LinkAttribute::Stats64(s) => bytes = (s.rx_bytes, s.tx_bytes),
                        _ => {}
                    }
                }
                if let Some(name) = name {
                    out.push((name, bytes.0, bytes.1));
                }
            }
            Ok(out)
        })
    }
}

/// A fake host that records what it was asked, for unit tests.
#[derive(Clone, Default)]
pub struct RecordingHost {
    pub calls: Arc<Mutex<Vec<String>>>,
    /// Bytes each interface reports: (received, sent).
    pub bytes: Arc<Mutex<std::collections::HashMap<String, (u64, u64)>>>,
    /// How many of the next nftables batches fail (recorded all the same), as the kernel
    /// refuses a transaction.
    pub failing_batches: Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordingHost {
    fn record(&self, call: String) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Host for RecordingHost {
    fn apply(&mut self, batch: &[NfObject<'static>]) -> io::Result<()> {
        let doc = Nftables {
            objects: batch.to_vec().into(),
        };
        self.record(format!(
            "nft {}",
            serde_json::to_string(&doc).expect("serialisable")
        ));
        let failing = &self.failing_batches;
        match failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(io::Error::other("nft: Device or resource busy (recorded)")),
            Err(_) => Ok(()),
        }
    }

    fn forward_blockers(&mut self) -> io::Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn enable_forwarding(&mut self) -> io::Result<bool> {
        self.record("forwarding on".into());
        Ok(true)
    }

    fn create(&mut self, name: &str, host: Ipv4Addr, sandbox: Ipv4Addr) -> io::Result<OwnedFd> {
        self.record(format!("create {name} {host} {sandbox}"));
        self.bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), (0, 0));
        Ok(OwnedFd::from(File::open("/dev/null")?))
    }

    fn delete(&mut self, name: &str) -> io::Result<()> {
        self.record(format!("delete {name}"));
        self.bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    fn release(&mut self, name: &str) {
        self.record(format!("release {name}"));
        self.bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    fn bytes(&mut self, name: &str) -> io::Result<Option<(u64, u64)>> {
        Ok(self
            .bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied())
    }

    fn forget_connections(&mut self, sources: &[Ipv4Net]) -> io::Result<usize> {
        let list: Vec<String> = sources.iter().map(Ipv4Net::to_string).collect();
        self.record(format!("forget connections from {}", list.join(" ")));
        Ok(0)
    }

    fn exists(&mut self, name: &str) -> io::Result<bool> {
        Ok(self
            .bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name))
    }

    fn counters(&mut self, prefix: &str) -> io::Result<Vec<(String, u64, u64)>> {
        Ok(self
            .bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, (rx, tx))| (n.clone(), *rx, *tx))
            .collect())
    }
}
