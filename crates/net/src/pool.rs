//! The network thread: it alone holds the netlink sockets and the address pool, prepares
//! namespaces ahead for each profile in use, reads the counters of leases that ended, and keeps the
//! firewall's profile and security-group chains.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::host::Host;
use crate::{NetConfig, SecurityGroup, VpcProfile, interface_name, rules};
pub use lease::Lease;
use profiles::Profiles;

/// Bytes a lease owner's sandboxes sent and received, since the server started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    pub owner: String,
    pub sent: u64,
    pub received: u64,
}

struct Ready {
    ns: OwnedFd,
    name: String,
    index: u32,
    address: Ipv4Addr,
}

enum Request {
    Make {
        profile: u16,
        owner: String,
        reply: SyncSender<io::Result<Ready>>,
    },
    Assign {
        name: String,
        owner: String,
    },
    Release {
        netns: Option<OwnedFd>,
        name: String,
        index: u32,
        owner: String,
    },
    /// An owner gone (a deleted function): its traffic is forgotten, that of its leases still
    /// out included.
    Forget {
        owner: String,
    },
    /// A VPC profile's chains, made under its pending id; noted as made on success.
    Profile {
        id: u16,
        vpc: VpcProfile,
        groups: Vec<SecurityGroup>,
        reply: SyncSender<io::Result<()>>,
    },
    /// Security groups' rules and VPCs' NAT states, applied and noted in one step on the
    /// network thread, so that a retry of an earlier failure never follows a later success.
    Update {
        groups: Vec<SecurityGroup>,
        nat: Vec<(String, bool)>,
        reply: SyncSender<io::Result<()>>,
    },
    Traffic {
        reply: SyncSender<Vec<Traffic>>,
    },
    Stop {
        reply: SyncSender<()>,
    },
}

struct Shared {
    config: NetConfig,
    /// Namespaces ready to take, by profile.
    ready: Mutex<HashMap<u16, Vec<Ready>>>,
    /// Profiles in use (keyed without their NAT flag, which lives in the VPC's own chain), and
    /// when each last had a namespace taken. Held for short work only: the network thread takes
    /// it too.
    profiles: Mutex<Profiles>,
    /// Held while a profile's chains are made, so that two callers never make one twice.
    making: Mutex<()>,
    /// [`PROFILE_IDLE`], shorter in tests.
    profile_idle: Duration,
    /// What the operator should know about this host's network (found at start).
    notes: Mutex<Vec<String>>,
}

/// Sandbox networking on this host. Cloning shares it.
#[derive(Clone)]
pub struct Network {
    shared: Arc<Shared>,
    tx: Sender<Request>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("pool", &self.shared.config.pool)
            .finish()
    }
}

impl Network {
    /// Starts the network thread: `host` is made on it, forwarding is turned on, the firewall
    /// table replaces any leftover, and interfaces a crashed server left are deleted. Returns
    /// once that is done, or why it failed.
    pub fn start<F>(config: NetConfig, host: F) -> io::Result<Self>
    where
        F: FnOnce() -> io::Result<Box<dyn Host>> + Send + 'static,
    {
        Self::start_collecting_after(config, host, PROFILE_IDLE)
    }

    /// [`Network::start`], collecting profiles idle for `profile_idle`.
    fn start_collecting_after<F>(
        config: NetConfig,
        host: F,
        profile_idle: Duration,
    ) -> io::Result<Self>
    where
        F: FnOnce() -> io::Result<Box<dyn Host>> + Send + 'static,
    {
        config.check().map_err(io::Error::other)?;
        let shared = Arc::new(Shared {
            config,
            ready: Mutex::new(HashMap::new()),
            profiles: Mutex::default(),
            making: Mutex::new(()),
            profile_idle,
            notes: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::sync_channel(1);
        let s = shared.clone();
        std::thread::Builder::new()
            .name("network".into())
            .spawn(move || {
                // Every start that needs a namespace waits for this one thread: in a burst it
                // competes with hundreds of starting sandboxes for the CPU, so it is given a
                // larger share (root may raise it; elsewhere this fails and changes nothing).
                // SAFETY: setpriority on this thread's own id.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10) };
                let setup = (|| {
                    let mut host = host()?;
                    if host.enable_forwarding()? {
                        tracing::info!(
                            "turned on IPv4 forwarding (net.ipv4.ip_forward=1) for sandbox egress"
                        );
                    }
                    // What a server before this one left (its sandboxes outlived it): gone
                    // before the firewall forgets their profiles, and so are their connections.
                    for (name, _, _) in host.counters(rules::PREFIX)? {
                        if crate::is_sandbox_interface(&name) {
                            match host.delete(&name) {
                                Ok(()) => {}
                                // Gone meanwhile, with its namespace.
                                Err(e)
                                    if e.kind() == io::ErrorKind::NotFound
                                        || e.raw_os_error() == Some(libc::ENODEV) => {}
                                Err(e) => {
                                    return Err(io::Error::new(
                                        e.kind(),
                                        format!("removing {name}, left by an earlier server: {e}"),
                                    ));
                                }
                            }
                        }
                    }
                    host.apply(&rules::base(
                        s.config.pool,
                        &s.config.resolvers,
                        s.config.connections,
                    ))?;
                    if let Err(e) = host.forget_connections(&[s.config.pool]) {
                        tracing::warn!(error = %e, "cannot clear the connections the kernel tracks for network.pool: an address used again may receive what was meant for its last sandbox");
                    }
                    let blockers = host.forward_blockers().unwrap_or_default();
                    let mut notes = s.notes.lock().unwrap_or_else(|e| e.into_inner());
                    if !blockers.is_empty() {
                        notes.push(format!(
                            "another firewall drops forwarded packets ({}), so functions may reach nothing: accept traffic from and to interfaces lv* there (with Docker: iptables -I DOCKER-USER -i lv+ -j ACCEPT; iptables -I DOCKER-USER -o lv+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT)",
                            blockers.join(", ")
                        ));
                    }
                    if let Some(max) = conntrack_max()
                        && u64::from(s.config.connections) * 16 > max
                    {
                        notes.push(format!(
                            "network.connections {} is more than a sixteenth of this host's nf_conntrack_max {max}: a few functions could fill the table every connection of the host needs; lower it, or raise net.netfilter.nf_conntrack_max",
                            s.config.connections
                        ));
                    }
                    drop(notes);
                    Ok::<_, io::Error>(host)
                })();
                match setup {
                    Ok(host) => {
                        let _ = started_tx.send(Ok(()));
                        Worker::new(s, host).run(rx);
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                    }
                }
            })?;
        started_rx
            .recv()
            .map_err(|_| io::Error::other("the network thread exited"))??;
        Ok(Self { shared, tx })
    }

    /// The profile id of `vpc` (0 for the default egress), making its chains on first use with
    /// the security groups `groups` gives.
    pub fn profile(
        &self,
        vpc: Option<&VpcProfile>,
        groups: impl FnOnce() -> Vec<SecurityGroup>,
    ) -> io::Result<u16> {
        let Some(vpc) = vpc else { return Ok(0) };
        let key = VpcProfile {
            nat: false,
            ..vpc.clone()
        };
        if let Some(id) = self.shared.profiles().ids.get(&key) {
            return Ok(*id);
        }
        let _making = self.shared.making.lock().unwrap_or_else(|e| e.into_inner());
        let id = {
            let mut profiles = self.shared.profiles();
            if let Some(id) = profiles.ids.get(&key) {
                return Ok(*id);
            }
            profiles.room_for(&key)?;
            let id = profiles.free_id();
            profiles.pending = Some(id);
            id
        };
        // Made and noted on the network thread in one step: a collection there sees the
        // profile either pending (no chains yet) or made (its chains, and its groups' and
        // NAT state's current rules, which supersede any change not applied before).
        let (reply, rx) = mpsc::sync_channel(1);
        let sent = self.tx.send(Request::Profile {
            id,
            vpc: vpc.clone(),
            groups: groups(),
            reply,
        });
        let made = match sent {
            Ok(()) => rx.recv().unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        };
        if made.is_err() {
            self.shared.profiles().pending = None;
        }
        made.map(|()| id)
    }

    /// The id of `vpc`'s profile, if it is made already (and then in use: it is not collected
    /// for a while).
    pub fn known(&self, vpc: &VpcProfile) -> Option<u16> {
        let key = VpcProfile {
            nat: false,
            ..vpc.clone()
        };
        let mut profiles = self.shared.profiles();
        let id = *profiles.ids.get(&key)?;
        profiles.used.insert(id, Instant::now());
        Some(id)
    }

    /// A network namespace for an environment of `profile`, whose traffic counts for `owner`.
    pub fn take(&self, profile: u16, owner: &str) -> io::Result<Lease> {
        if profile != 0 {
            let mut profiles = self.shared.profiles();
            // A profile collected since its id was looked up has no chains any more.
            if !profiles.used.contains_key(&profile) {
                return Err(io::Error::other(
                    "the VPC profile was collected meanwhile; start again",
                ));
            }
            profiles.used.insert(profile, Instant::now());
        }
        let ready = self
            .shared
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&profile)
            .and_then(Vec::pop);
        let ready = match ready {
            Some(r) => {
                let _ = self.tx.send(Request::Assign {
                    name: r.name.clone(),
                    owner: owner.to_owned(),
                });
                r
            }
            None => {
                let (reply, rx) = mpsc::sync_channel(1);
                self.tx
                    .send(Request::Make {
                        profile,
                        owner: owner.to_owned(),
                        reply,
                    })
                    .map_err(|_| stopped())?;
                rx.recv().map_err(|_| stopped())??
            }
        };
        Ok(Lease {
            netns: Some(ready.ns),
            address: ready.address,
            name: ready.name,
            index: ready.index,
            owner: owner.to_owned(),
            tx: self.tx.clone(),
        })
    }

    /// Security groups the profiles in use refer to, and their VPCs.
    pub fn in_use(&self) -> (Vec<String>, Vec<String>) {
        let profiles = self.shared.profiles();
        let mut groups: HashSet<String> = HashSet::new();
        let mut vpcs: HashSet<String> = HashSet::new();
        for p in profiles.ids.keys() {
            groups.extend(p.security_groups.iter().cloned());
            vpcs.insert(p.vpc_id.clone());
        }
        (groups.into_iter().collect(), vpcs.into_iter().collect())
    }

    /// Replaces security groups' rules and VPCs' NAT state, in one transaction: environments
    /// already running follow at once.
    /// One that fails is applied again at the next collection (a minute at most), unless a
    /// later update applies it first.
    pub fn update(&self, groups: &[SecurityGroup], nat: &[(String, bool)]) -> io::Result<()> {
        if groups.is_empty() && nat.is_empty() {
            return Ok(());
        }
        let (reply, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Request::Update {
                groups: groups.to_vec(),
                nat: nat.to_vec(),
                reply,
            })
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// Forgets `owner`'s traffic, once it is gone: otherwise every function ever run would keep
    /// its count for the server's life.
    pub fn forget(&self, owner: &str) {
        let _ = self.tx.send(Request::Forget {
            owner: owner.to_owned(),
        });
    }

    /// Bytes per owner, for every lease since start (live ones included).
    pub fn traffic(&self) -> Vec<Traffic> {
        let (reply, rx) = mpsc::sync_channel(1);
        if self.tx.send(Request::Traffic { reply }).is_err() {
            return Vec::new();
        }
        rx.recv().unwrap_or_default()
    }

    /// Problems found at start (another firewall dropping forwarded packets).
    pub fn notes(&self) -> Vec<String> {
        self.shared
            .notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Deletes every interface and the firewall table. Leases still out lose their network.
    /// Waits at most [`STOP_LIMIT`] for the network thread, which may be busy making a
    /// namespace: shutdown stays within a service manager's stop timeout.
    pub fn stop(&self) {
        let (reply, rx) = mpsc::sync_channel(1);
        if self.tx.send(Request::Stop { reply }).is_ok()
            && let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(STOP_LIMIT)
        {
            tracing::warn!(
                limit_s = STOP_LIMIT.as_secs(),
                "sandbox networking did not stop in time; its interfaces and firewall table may be left"
            );
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("sandbox networking has stopped")
}

/// The transaction that replaces security groups' rules and VPCs' NAT states.
fn update_batch(
    groups: &[SecurityGroup],
    nat: &[(String, bool)],
) -> Vec<nftables::schema::NfObject<'static>> {
    let mut batch = Vec::new();
    for g in groups {
        batch.extend(rules::security_group(g));
    }
    for (vpc, on) in nat {
        batch.extend(rules::vpc_nat(vpc, *on));
    }
    batch
}

/// The host's `nf_conntrack_max`, when it can be read.
fn conntrack_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A profile no environment has used for this long, and none holds, is collected (its chains
/// and its id), looked for at most every [`COLLECT_EVERY`]: profiles are bounded by those in
/// use, not by every combination since the start.
const PROFILE_IDLE: Duration = Duration::from_secs(1800);
#[cfg(not(test))]
const COLLECT_EVERY: Duration = Duration::from_secs(60);
#[cfg(test)]
const COLLECT_EVERY: Duration = Duration::from_millis(100);

impl Shared {
    fn profiles(&self) -> std::sync::MutexGuard<'_, Profiles> {
        self.profiles.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Worker {
    shared: Arc<Shared>,
    host: Box<dyn Host>,
    /// Pair indexes never handed out yet start at `next`; `free` are given back.
    next: u32,
    free: Vec<u32>,
    /// Who each live interface's traffic counts for.
    owners: HashMap<String, String>,
    /// Traffic of ended leases, by owner.
    ended: HashMap<String, (u64, u64)>,
    /// Indexes of ended leases, with when they ended and their interface's name: reused once
    /// the kernel has removed the interface with its namespace.
    cooling: VecDeque<(Instant, u32, String)>,
    /// When unused profiles were last looked for.
    collected: Instant,
}

/// How long [`Network::stop`] waits for the network thread.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// How long an ended lease's index rests before its interface is looked for.
const COOLING: Duration = Duration::from_secs(2);

impl Worker {
    fn new(shared: Arc<Shared>, host: Box<dyn Host>) -> Self {
        Self {
            shared,
            host,
            next: 0,
            free: Vec::new(),
            owners: HashMap::new(),
            ended: HashMap::new(),
            cooling: VecDeque::new(),
            collected: Instant::now(),
        }
    }

    fn run(mut self, rx: Receiver<Request>) {
        let mut idle_wait = Duration::ZERO;
        loop {
            match rx.recv_timeout(idle_wait) {
                Ok(Request::Stop { reply }) => {
                    self.stop();
                    let _ = reply.send(());
                    return;
                }
                Ok(r) => {
                    self.handle(r);
                    idle_wait = Duration::ZERO;
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.stop();
                    return;
                }
            }
            // One namespace at a time, so that requests never wait for a whole refill.
            idle_wait = if self.fill_one() {
                Duration::ZERO
            } else {
                if self.collected.elapsed() >= COLLECT_EVERY {
                    self.collect();
                }
                COLLECT_EVERY.min(Duration::from_secs(1))
            };
        }
    }

    fn handle(&mut self, r: Request) {
        match r {
            Request::Make {
                profile,
                owner,
                reply,
            } => {
                let made = self.make(profile);
                if let Ok(r) = &made {
                    self.owners.insert(r.name.clone(), owner);
                }
                let _ = reply.send(made);
            }
            Request::Assign { name, owner } => {
                self.owners.insert(name, owner);
            }
            Request::Release {
                netns,
                name,
                index,
                owner,
            } => {
                self.release(&name, index, owner);
                drop(netns);
            }
            Request::Forget { owner } => {
                self.ended.remove(&owner);
                self.owners.retain(|_, o| *o != owner);
            }
            Request::Profile {
                id,
                vpc,
                groups,
                reply,
            } => {
                let made = self.host.apply(&rules::profile(id, &vpc, &groups));
                let mut profiles = self.shared.profiles();
                profiles.pending = None;
                if made.is_ok() {
                    profiles.updated(&groups, &[(vpc.vpc_id.clone(), vpc.nat)], true);
                    // Its chains jump to every group it names.
                    profiles.chains_made(&vpc.security_groups, []);
                    profiles.used.insert(id, Instant::now());
                    profiles.ids.insert(VpcProfile { nat: false, ..vpc }, id);
                }
                let _ = reply.send(made);
            }
            Request::Update { groups, nat, reply } => {
                let applied = self.host.apply(&update_batch(&groups, &nat));
                // A profile collected meanwhile may have left these chains: they are noted
                // to be collected again.
                self.shared
                    .profiles()
                    .updated(&groups, &nat, applied.is_ok());
                let _ = reply.send(applied);
            }
            Request::Traffic { reply } => {
                let _ = reply.send(self.traffic());
            }
            Request::Stop { .. } => unreachable!("handled by run"),
        }
    }

    fn make(&mut self, profile: u16) -> io::Result<Ready> {
        // Addresses never used first: an address used again soon would start with what the
        // kernel still tracks of its last sandbox's connections, and count them.
        let fresh = (self.next < self.shared.config.capacity()).then(|| {
            self.next += 1;
            self.next - 1
        });
        let index = match fresh.or_else(|| self.free.pop()).or_else(|| self.cooled()) {
            Some(i) => i,
            None => {
                return Err(io::Error::other(format!(
                    "every address of network.pool {} is in use",
                    self.shared.config.pool
                )));
            }
        };
        let name = interface_name(profile, index);
        let (host, sandbox) = self.shared.config.pair(index);
        match self.host.create(&name, host, sandbox) {
            Ok(ns) => Ok(Ready {
                ns,
                name,
                index,
                address: sandbox,
            }),
            Err(e) => {
                self.free.push(index);
                Err(io::Error::new(
                    e.kind(),
                    format!("preparing a network namespace: {e}"),
                ))
            }
        }
    }

    /// Tops up one profile's ready namespaces by one, and lets the spares of profiles no longer
    /// among the recently used go. Returns whether it made one.
    fn fill_one(&mut self) -> bool {
        let mut wanted: Vec<(u16, usize)> = vec![(0, self.shared.config.spare)];
        let recent = self.shared.profiles().recent();
        wanted.extend(recent.iter().map(|id| (*id, 1)));
        self.forget_ready_of(|p| p != 0 && !recent.contains(&p));
        for (profile, spare) in wanted {
            let have = self
                .shared
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&profile)
                .map_or(0, Vec::len);
            if have >= spare {
                continue;
            }
            match self.make(profile) {
                Ok(r) => {
                    self.shared
                        .ready
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(profile)
                        .or_default()
                        .push(r);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, profile, "preparing a network namespace failed");
                    return false;
                }
            }
        }
        false
    }

    fn release(&mut self, name: &str, index: u32, owner: String) {
        // Unless its owner was forgotten meanwhile.
        if self.owners.remove(name).is_some()
            && let Ok(Some((rx, tx))) = self.host.bytes(name)
        {
            let e = self.ended.entry(owner).or_default();
            e.0 += rx;
            e.1 += tx;
        }
        self.host.release(name);
        self.cooling
            .push_back((Instant::now(), index, name.to_owned()));
    }

    /// Lets the namespaces ready for the profiles `gone` says go.
    fn forget_ready_of(&mut self, gone: impl Fn(u16) -> bool) {
        let idle: Vec<Ready> = {
            let mut ready = self.shared.ready.lock().unwrap_or_else(|e| e.into_inner());
            let profiles: Vec<u16> = ready.keys().copied().filter(|p| gone(*p)).collect();
            profiles
                .iter()
                .filter_map(|p| ready.remove(p))
                .flatten()
                .collect()
        };
        for r in idle {
            self.forget_ready(r);
        }
    }

    /// Lets a ready namespace go: its pair goes with it, and its index rests.
    fn forget_ready(&mut self, r: Ready) {
        self.host.release(&r.name);
        drop(r.ns);
        self.cooling.push_back((Instant::now(), r.index, r.name));
    }

    /// An index whose interface is gone, from those released a while ago. Every such index
    /// is taken at once, and what the kernel still tracks of their last sandboxes' flows is
    /// deleted in one pass (a pass reads the host's whole table), so that those flows cannot
    /// reach the next sandboxes; the others wait in `free`.
    fn cooled(&mut self) -> Option<u32> {
        let mut ready = Vec::new();
        while let Some((since, _, _)) = self.cooling.front()
            && since.elapsed() >= COOLING
        {
            let (_, index, name) = self.cooling.pop_front().expect("checked");
            match self.host.exists(&name) {
                Ok(false) => ready.push(index),
                // Not gone yet (a process of the sandbox still holds its namespace).
                _ => self.cooling.push_back((Instant::now(), index, name)),
            }
            if ready.len() >= 1024 {
                break;
            }
        }
        let addresses: Vec<Ipv4Net> = ready
            .iter()
            .map(|i| Ipv4Net::from(self.shared.config.pair(*i).1))
            .collect();
        if !addresses.is_empty()
            && let Err(e) = self.host.forget_connections(&addresses)
        {
            tracing::warn!(error = %e, "cannot clear the connections the kernel tracks for addresses used again");
        }
        let first = ready.pop()?;
        self.free.extend(ready);
        Some(first)
    }

    fn traffic(&mut self) -> Vec<Traffic> {
        let mut by: HashMap<String, (u64, u64)> = self.ended.clone();
        if let Ok(live) = self.host.counters(rules::PREFIX) {
            for (name, rx, tx) in live {
                if let Some(owner) = self.owners.get(&name) {
                    let e = by.entry(owner.clone()).or_default();
                    e.0 += rx;
                    e.1 += tx;
                }
            }
        }
        let mut out: Vec<Traffic> = by
            .into_iter()
            .map(|(owner, (sent, received))| Traffic {
                owner,
                sent,
                received,
            })
            .collect();
        out.sort_by(|a, b| a.owner.cmp(&b.owner));
        out
    }

    fn stop(&mut self) {
        // Ready namespaces go with their descriptors, and their interfaces with them.
        self.shared
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // Leases still out lose their network now.
        for name in self.owners.keys() {
            let _ = self.host.delete(name);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut left = self.host.counters(rules::PREFIX).unwrap_or_default();
            left.retain(|(name, _, _)| crate::is_sandbox_interface(name));
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                // Still held (a sandbox process lingering): remove them now.
                for (name, _, _) in left {
                    if crate::is_sandbox_interface(&name) {
                        let _ = self.host.delete(&name);
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = self.host.apply(&rules::remove()) {
            tracing::warn!(error = %e, "removing the firewall table failed");
        }
    }
}

mod collect;
mod lease;
mod profiles;
#[cfg(test)]
mod tests;
