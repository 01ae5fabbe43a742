//! The pull's process: this binary run as `lamina image-pull`, which speaks to the registry
//! with `oci-client` and writes what it fetched into the directory it is given. It runs apart
//! from the server, its memory limited to [`MEMORY`]: `oci-client` reads manifests, tokens and
//! error answers whole, so a registry that answers without end fills this process's memory,
//! not the server's.

use std::io::{Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::io::AsyncWrite;

use super::{
    Answer, CONFIG_FILE, Egress, MANIFEST_FILE, MANIFEST_TYPES, Request, config_digest, layer_file,
    layers, parse,
};
use crate::ecr::MAX_MANIFEST_BYTES;

/// The memory (`RLIMIT_DATA`: heap, thread stacks, every private writable mapping) a pull may
/// use: room for manifests of [`MAX_MANIFEST_BYTES`] many times over, and far below a server's.
pub const MEMORY: u64 = 256 << 20;

/// How long a pull may take, its layers' downloads included: a registry that answers a byte
/// at a time does not hold one of the server's turns for longer.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Error messages passed on are cut here: a registry's words reach the caller.
const MAX_MESSAGE: usize = 1000;

/// Runs the pull asked on standard input and answers on standard output. Never returns.
pub fn main() -> ! {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let limit = |n| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    // No core file when the limit ends it: a registry could otherwise write one of
    // [`MEMORY`] to disk with every pull.
    let limited =
        setrlimit(Resource::Core, limit(0)).and_then(|()| setrlimit(Resource::Data, limit(MEMORY)));
    let answer = match limited
        .map_err(|e| format!("cannot limit the pull's memory: {e}"))
        .and_then(|()| read_request())
    {
        Err(m) => Answer::Failed(m),
        Ok(request) => {
            // Ends with the server's thread that waits for it (which lives as long as this
            // process), or at once if the server is gone already.
            let kill = Some(rustix::process::Signal::KILL);
            let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32);
            if rustix::process::set_parent_process_death_signal(kill).is_err()
                || parent != Some(request.parent)
            {
                std::process::exit(1)
            }
            let entered = match &request.egress {
                Some(egress) => enter(egress, &request.dir),
                None => Ok(()),
            };
            // Its directory is reached as the working directory: the one above it is root's
            // alone, closed to the uid the process becomes.
            let inside = std::env::set_current_dir(&request.dir)
                .map_err(|e| format!("cannot stage the pull: {e}"));
            match entered
                .and(inside)
                .and_then(|()| request.uid.map_or(Ok(()), alone))
                .and_then(|()| renounce(request.uid))
                .and_then(|()| run(&request))
            {
                Ok(digest) => Answer::Fetched { digest },
                Err(m) => Answer::Failed(cut(m)),
            }
        }
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &answer)
        .map_err(std::io::Error::from)
        .and_then(|()| out.flush());
    std::process::exit(if written.is_ok() { 0 } else { 1 })
}

/// Enters the network namespace the server leased for this pull (functions' egress), in a
/// mount namespace of its own where names resolve as in sandboxes: their resolvers in place of
/// the host's (which may be on loopback, out of reach from there), through DNS and a minimal
/// hosts file only (no NSS module that asks the host's resolver over a socket). The process
/// has one thread yet.
fn enter(egress: &Egress, dir: &Path) -> Result<(), String> {
    use rustix::mount::{MountPropagationFlags, mount_bind, mount_change};
    use rustix::thread::{LinkNameSpaceType, UnshareFlags};
    let fail = |what: &str, e: std::io::Error| {
        format!("cannot reach the network functions reach: {what}: {e}")
    };
    let ns = std::fs::File::open(&egress.netns).map_err(|e| fail("its namespace", e))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&ns),
        Some(LinkNameSpaceType::Network),
    )
    .map_err(|e| fail("joining it", e.into()))?;
    // SAFETY: only the mount namespace is unshared, and no other thread shares this one's
    // descriptors or filesystem context. The host's mounts and unmounts still reach it; the
    // binds below do not reach the host.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }
        .and_then(|()| {
            mount_change(
                "/",
                MountPropagationFlags::REC | MountPropagationFlags::DOWNSTREAM,
            )
        })
        .map_err(|e| fail("a mount namespace", e.into()))?;
    let files = [
        ("resolv.conf", egress.resolv_conf.as_str()),
        ("nsswitch.conf", "hosts: files dns\n"),
        ("hosts", "127.0.0.1 localhost\n::1 localhost\n"),
    ];
    for (name, text) in files {
        let file = dir.join(name);
        let target = Path::new("/etc").join(name);
        // A host without the file resolves without it (glibc's defaults: DNS on loopback,
        // which leads nowhere from here).
        if name != "resolv.conf" && !target.exists() {
            continue;
        }
        std::fs::write(&file, text).map_err(|e| fail("its resolvers", e))?;
        mount_bind(&file, &target).map_err(|e| fail("its resolvers", e.into()))?;
    }
    Ok(())
}

/// Goes on as the second process of a PID namespace of its own (the server lent a uid, so
/// this process is root's yet). The first process of the namespace waits for it and ends as it
/// did; when it ends, the kernel ends every process left in the namespace, so that none
/// outlives the pull holding its uid or the answer's pipe. This process waits for the first and
/// ends as it did. The process has one thread yet.
fn alone(uid: u32) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot start the pull: {e}");
    // SAFETY: only the PID namespace of the children made from now on changes.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWPID) }
        .map_err(|e| fail(e.into()))?;
    // This process, outside: ends as the namespace's first process says.
    let first = fork().map_err(fail)?;
    if first != 0 {
        // The first encodes a signal that ended the second as 128 + its number, since the first
        // process of a namespace cannot end by a signal it sends itself.
        match wait(first) {
            Ended::Code(c) if c > 128 && c < 128 + 65 => die_of(c - 128),
            Ended::Code(c) => std::process::exit(c),
            Ended::Signal(s) => die_of(s),
        }
    }
    // The namespace's first process: it does nothing but wait, as the pull's uid (and ends
    // with this process's parent, which the server's watchdog kills: the kernel then ends the
    // namespace).
    let second = fork().map_err(fail)?;
    if second != 0 {
        if renounce(Some(uid)).is_err() {
            std::process::exit(1);
        }
        match wait(second) {
            Ended::Code(c) => std::process::exit(c),
            Ended::Signal(s) => std::process::exit(128 + s),
        }
    }
    // The second: its own parent-death signal is set once it has its uid ([`renounce`]).
    Ok(())
}

/// How a child ended.
enum Ended {
    Code(i32),
    Signal(i32),
}

fn fork() -> std::io::Result<libc::pid_t> {
    // SAFETY: this process has one thread, so its child may do anything.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        pid => Ok(pid),
    }
}

/// Waits for the child `pid`.
fn wait(pid: libc::pid_t) -> Ended {
    let mut status = 0;
    // SAFETY: waits for this process's own child, into a local.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1 {
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Ended::Code(1);
        }
    }
    if libc::WIFSIGNALED(status) {
        Ended::Signal(libc::WTERMSIG(status))
    } else {
        Ended::Code(libc::WEXITSTATUS(status))
    }
}

/// Ends this process by `signal` (`SIGABRT`: the pull's memory limit), for the server to tell
/// why.
fn die_of(signal: i32) -> ! {
    // SAFETY: sets the signal's default action and sends it to this process.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    std::process::exit(1)
}

/// Ends with the parent (killed with the server or by its watchdog).
fn on_parent_death() -> Result<(), String> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|e| format!("cannot start the pull: {e}"))
}

/// Becomes `uid` (and its gid, with no supplementary groups), the owner of the pull's
/// directory, when the server lent one, and gives up every capability for good (`no_new_privs`):
/// nothing a registry's answers might make of this process can leave its network namespace,
/// read what only root may, or signal another process of the server's. The process has one
/// thread yet, so the thread's credentials are the process's.
fn renounce(uid: Option<u32>) -> Result<(), String> {
    use rustix::process::{Gid, Uid};
    use rustix::thread::{
        CapabilitySet, CapabilitySets, set_capabilities, set_no_new_privs, set_thread_groups,
        set_thread_res_gid, set_thread_res_uid,
    };
    let fail = |e: rustix::io::Errno| format!("cannot limit the pull's process: {e}");
    if let Some(id) = uid {
        let (u, g) = (Uid::from_raw(id), Gid::from_raw(id));
        set_thread_groups(&[])
            .and_then(|()| set_thread_res_gid(g, g, g))
            .and_then(|()| set_thread_res_uid(u, u, u))
            .map_err(fail)?;
    }
    let none = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    set_no_new_privs(true)
        .and_then(|()| set_capabilities(None, none))
        .map_err(fail)?;
    // A change of uid clears the parent-death signal: set again.
    match uid {
        Some(_) => on_parent_death(),
        None => Ok(()),
    }
}

/// [`fetch`] within [`DEADLINE`].
fn run(request: &Request) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the pull: {e}"))?;
    let fetched = rt
        .block_on(async { tokio::time::timeout(DEADLINE, fetch(request)).await })
        .unwrap_or_else(|_| {
            Err(format!(
                "pulling {} failed: it took more than {} minutes",
                request.uri,
                DEADLINE.as_secs() / 60
            ))
        });
    // Without waiting for what still runs on its blocking threads (a name lookup that does not
    // end), which the process's exit ends.
    rt.shutdown_background();
    fetched
}

/// A message cut to [`MAX_MESSAGE`] bytes.
fn cut(mut m: String) -> String {
    if m.len() > MAX_MESSAGE {
        let mut at = MAX_MESSAGE;
        while !m.is_char_boundary(at) {
            at -= 1;
        }
        m.truncate(at);
        m.push('…');
    }
    m
}

fn read_request() -> Result<Request, String> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(1 << 20)
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read the pull's request: {e}"))?;
    serde_json::from_slice(&input).map_err(|e| format!("the pull's request is not valid: {e}"))
}

/// Fetches the manifest (the platform's, when the reference names an index), the
/// configuration and every layer into the working directory (`request.dir`); returns the
/// manifest's digest.
async fn fetch(request: &Request) -> Result<String, String> {
    let uri = &request.uri;
    let reference: Reference = uri
        .parse()
        .map_err(|e| format!("'{uri}' is not an image reference: {e}"))?;
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(request.insecure.clone()),
        // A registry that stops answering fails the pull instead of holding it.
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    });
    let auth = match &request.credentials {
        Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let fail = |e: oci_client::errors::OciDistributionError| format!("pulling {uri} failed: {e}");
    let (mut bytes, mut digest) = client
        .pull_manifest_raw(&reference, &auth, &MANIFEST_TYPES)
        .await
        .map_err(fail)?;
    let mut manifest = parse(&bytes)?;
    if manifest.get("manifests").is_some() {
        let chosen = crate::ecr::resolve::platform(&manifest, &request.arch)
            .ok_or_else(|| format!("{uri} has no image for linux/{}", request.arch))?;
        let by_digest = reference.clone_with_digest(chosen.clone());
        (bytes, digest) = client
            .pull_manifest_raw(&by_digest, &auth, &MANIFEST_TYPES)
            .await
            .map_err(fail)?;
        manifest = parse(&bytes)?;
    }
    let dir = Path::new(".");
    write(&dir.join(MANIFEST_FILE), &bytes)?;
    let config_digest = config_digest(&manifest)?;
    let mut config = Vec::new();
    client
        .pull_blob(
            &reference,
            config_digest,
            Capped::new(&mut config, MAX_MANIFEST_BYTES as u64),
        )
        .await
        .map_err(fail)?;
    write(&dir.join(CONFIG_FILE), &config)?;
    // Checked before anything is downloaded; every layer is, even one stored here already:
    // a remote manifest naming a digest must not reach a blob some other account pushed.
    for (i, (digest, size)) in layers(uri, &manifest)?.into_iter().enumerate() {
        let file = tokio::fs::File::create(dir.join(layer_file(i)))
            .await
            .map_err(|e| format!("cannot stage what the pull fetched: {e}"))?;
        client
            .pull_blob(&reference, digest.as_str(), Capped::new(file, size))
            .await
            .map_err(fail)?;
    }
    Ok(digest)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot stage what the pull fetched: {e}"))
}

/// Refuses bytes past a limit (a registry sending more than the descriptor says).
struct Capped<W> {
    inner: W,
    left: u64,
}

impl<W> Capped<W> {
    fn new(inner: W, limit: u64) -> Self {
        Self { inner, left: limit }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Capped<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.len() as u64 > self.left {
            return Poll::Ready(Err(std::io::Error::other(
                "the blob is larger than its descriptor says",
            )));
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.left -= n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
