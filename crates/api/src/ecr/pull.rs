//! Pulling images from other registries (Docker Hub, public ECR, any registry v2) with
//! `oci-client`, only from registries the operator allows. The registry is spoken to by a
//! process of its own ([`fetch`], this binary's `image-pull` role) with a memory limit, which
//! writes the manifest, the configuration and every layer into a staging directory; the server
//! then stores each of them, verified against its digest. A registry the operator named is
//! reached from this host; one only `*` allows, from a network namespace with functions' egress
//! ([`Reach`]).

mod confine;
mod fetch;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use lamina_model::AccountId;
use lamina_store::BlobError;
use oci_client::Reference;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::MAX_MANIFEST_BYTES;
use crate::AppState;

pub use fetch::main as fetch_main;

/// The argument that runs this binary as a pull's process ([`fetch_main`]).
pub const FETCH_ROLE: &str = "image-pull";

/// `[images]` settings for remote pulls.
#[derive(Debug, Clone, Default)]
pub struct PullSettings {
    /// Registries (`host[:port]`, `docker.io` for Docker Hub) functions may name; `*` allows
    /// any. Empty: no remote pulls.
    pub allow: Vec<String>,
    /// Registries spoken to over plain HTTP (a mirror on this host).
    pub insecure: Vec<String>,
    /// User and password per registry.
    pub credentials: BTreeMap<String, (String, String)>,
    /// The binary run as a pull's process: this one unless set (a test's server runs inside
    /// the test's own binary).
    pub exe: Option<PathBuf>,
}

/// Where a pull reaches a registry from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Named in `pull_from`: from this host, as the operator meant (a mirror on this host or
    /// on a private network).
    Host,
    /// Allowed by `*` alone: from a network namespace with functions' egress, so that a
    /// registry a tenant names (or one it redirects to) is never this host's own service, a
    /// private network's or a cloud's metadata service.
    Egress,
}

impl PullSettings {
    fn reach(&self, registry: &str) -> Option<Reach> {
        if self.allow.iter().any(|a| a == registry) {
            Some(Reach::Host)
        } else if self.allow.iter().any(|a| a == "*") {
            Some(Reach::Egress)
        } else {
            None
        }
    }
}

/// Pulls run at once; a pull beyond waits its turn, at most [`TURN_WAIT`]. Each may hold
/// [`fetch::MEMORY`] for at most [`fetch::DEADLINE`].
const AT_ONCE: usize = 4;

/// Pulls of one account run at once: one tenant's cannot hold every turn.
const PER_ACCOUNT: usize = 2;

/// How long a pull waits for one of the others to end.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Layers an image may have (Docker's own limit is 127).
const MAX_LAYERS: usize = 128;

/// The media types a manifest may have, most specific first.
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Turns to pull: [`AT_ONCE`] on the server, [`PER_ACCOUNT`] of them for one account, so that
/// one tenant's pulls (each up to [`fetch::DEADLINE`]) cannot hold them all.
pub(crate) struct Turns {
    server: Arc<Semaphore>,
    /// One entry per account that ever pulled (accounts are the configured keys').
    accounts: Mutex<HashMap<AccountId, Arc<Semaphore>>>,
}

impl Default for Turns {
    fn default() -> Self {
        Self {
            server: Arc::new(Semaphore::new(AT_ONCE)),
            accounts: Mutex::default(),
        }
    }
}

/// A pull's turn: its account's and the server's, given back when dropped.
type Turn = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Turns {
    /// Waits for a turn of `account`, then for one of the server's, [`TURN_WAIT`] in all.
    async fn take(&self, account: &AccountId) -> Result<Turn, String> {
        let deadline = tokio::time::Instant::now() + TURN_WAIT;
        let mine = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_ACCOUNT)))
            .clone();
        let closed = |e: tokio::sync::AcquireError| e.to_string();
        let own = tokio::time::timeout_at(deadline, mine.acquire_owned())
            .await
            .map_err(|_| {
                format!(
                    "{PER_ACCOUNT} of this account's pulls from other registries are running: try again when one has ended."
                )
            })?
            .map_err(closed)?;
        let server = tokio::time::timeout_at(deadline, self.server.clone().acquire_owned())
            .await
            .map_err(|_| {
                format!(
                    "{AT_ONCE} pulls from other registries are running on this server: try again in a few minutes."
                )
            })?
            .map_err(closed)?;
        Ok((own, server))
    }
}

/// An image pulled into the blob store.
pub struct Pulled {
    /// `host/repository` as the function named it.
    pub repository: String,
    /// The manifest's digest.
    pub digest: String,
    /// The image manifest (the platform's, when the reference named an index).
    pub manifest: Value,
    /// The image configuration.
    pub config: Value,
}

/// What a pull's process is asked, on its standard input.
#[derive(Serialize, Deserialize)]
struct Request {
    uri: String,
    /// `amd64` or `arm64`.
    arch: String,
    insecure: Vec<String>,
    credentials: Option<(String, String)>,
    /// The server's pid: the process ends with it.
    parent: u32,
    /// Where it writes [`MANIFEST_FILE`], [`CONFIG_FILE`] and [`layer_file`]s.
    dir: PathBuf,
    /// The network it speaks from, when not the host's ([`Reach::Egress`]).
    egress: Option<Egress>,
    /// The uid (and gid) it runs as once set up, owner of `dir` (none without root).
    uid: Option<u32>,
}

/// A network namespace with functions' egress, leased for one pull.
#[derive(Serialize, Deserialize)]
struct Egress {
    /// The server's descriptor of the namespace, as `/proc/<pid>/fd/<n>`.
    netns: PathBuf,
    /// The `/etc/resolv.conf` sandboxes see (the host's may name a resolver on loopback).
    resolv_conf: String,
}

/// What it answers, on its standard output.
#[derive(Serialize, Deserialize)]
enum Answer {
    /// The manifest's digest, as the registry announced it and `oci-client` checked it.
    Fetched { digest: String },
    /// Why not, for the user.
    Failed(String),
}

const MANIFEST_FILE: &str = "manifest";
const CONFIG_FILE: &str = "config";

fn layer_file(i: usize) -> String {
    format!("layer-{i}")
}

/// Pulls `uri` for `arch` (`amd64` or `arm64`) for `account`. Errors are messages for the user.
pub async fn pull(
    state: &Arc<AppState>,
    account: &AccountId,
    uri: &str,
    arch: &str,
) -> Result<Pulled, String> {
    let settings = &state.ecr.pulls;
    let reference: Reference = uri
        .parse()
        .map_err(|e| format!("'{uri}' is not an image reference: {e}"))?;
    let registry = reference.registry().to_owned();
    let Some(reach) = settings.reach(&registry) else {
        return Err(format!(
            "Images from '{registry}' are not allowed on this server: push the image to this server's registry, or have the operator add '{registry}' to [images] pull_from."
        ));
    };
    let turn = state.ecr.turns.take(account).await?;
    let dir = state.store.image_content().staging_file();
    let request = Request {
        uri: uri.to_owned(),
        arch: arch.to_owned(),
        insecure: settings.insecure.clone(),
        credentials: settings.credentials.get(&registry).cloned(),
        parent: std::process::id(),
        dir: dir.clone(),
        egress: None,
        uid: None,
    };
    let repository = format!("{registry}/{}", reference.repository());
    let store = state.store.clone();
    let executor = state.executor.clone();
    let exe = settings.exe.clone();
    // On a thread of its own to the end, the staging directory's removal included, and
    // holding its turn: a caller that hangs up leaves nothing behind, and no more pulls run.
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut request = request;
        // Kept until the process has ended.
        let lease = match reach {
            Reach::Host => None,
            Reach::Egress => {
                let (lease, resolv_conf) = executor
                    .egress(PULL_OWNER)
                    .ok_or_else(|| format!(
                        "Images from '{registry}' are pulled as functions reach the internet, and functions on this server have no network: have the operator name '{registry}' in [images] pull_from."
                    ))?
                    .map_err(|e| {
                        tracing::warn!(error = %e, "no network namespace for an image pull");
                        format!("pulling {} failed: no network for it now; try again.", request.uri)
                    })?;
                let fd = std::os::fd::AsRawFd::as_raw_fd(&lease.netns());
                request.egress = Some(Egress {
                    netns: format!("/proc/{}/fd/{fd}", request.parent).into(),
                    resolv_conf,
                });
                Some(lease)
            }
        };
        let loan = executor.lend_uid();
        request.uid = loan.as_ref().map(|l| l.id);
        let fetched = confine::stage(&dir, request.uid)
            .map_err(|e| format!("cannot stage the pull: {e}"))
            .and_then(|work| {
                request.dir = work;
                run(exe.as_deref(), &request)
            });
        // Nothing of the uid may run on while what it wrote is stored, nor once the uid is
        // given back.
        let alone = request.uid.is_none_or(confine::sweep);
        let pulled = match fetched {
            Ok(_) if !alone => Err(format!(
                "pulling {} failed: its process left processes behind",
                request.uri
            )),
            Ok(digest) => store_pulled(&store, &request, repository, digest),
            Err(e) => Err(e),
        };
        drop(lease);
        let removed = std::fs::remove_dir_all(&dir);
        if let Some(loan) = loan {
            if alone && removed.is_ok() {
                loan.give_back();
            } else {
                tracing::warn!(uid = loan.id, "a pull's uid is kept from reuse: its processes or files may remain");
            }
        }
        pulled
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whose traffic a pull's leased network counts as (no function's).
const PULL_OWNER: &str = "image-pull";

/// The variables `reqwest` takes a proxy from.
const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The most of a pull's answer read: it is a digest or a message of at most 1,000 bytes.
const MAX_ANSWER: u64 = 64 << 10;

/// Runs the pull's process and waits for its answer: the manifest's digest.
fn run(exe: Option<&Path>, request: &Request) -> Result<String, String> {
    let uri = &request.uri;
    // This very binary, even after a newer one replaced it on disk.
    let mut command = Command::new(exe.unwrap_or(Path::new("/proc/self/exe")));
    if request.egress.is_some() {
        // A proxy the server was given would reach what functions' egress keeps out.
        for var in PROXY_VARIABLES {
            command.env_remove(var);
        }
    }
    let mut child = command
        .arg(FETCH_ROLE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("pulling {uri} failed: cannot start its process: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A process that failed at once has closed its end: its answer says why.
        let _ = stdin.write_all(&serde_json::to_vec(request).unwrap_or_default());
    }
    // Past its own deadline and a grace, the process is ended here: nothing it waits for (a
    // name lookup) holds its turn longer. Until it is waited for below, its pid is its own.
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let pid = rustix::process::Pid::from_child(&child);
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            watched.recv_timeout(fetch::DEADLINE + std::time::Duration::from_secs(60))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    });
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        // Read to its end, which comes with the process's: its answer is small, and one that
        // writes on is not read further.
        let _ = stdout.take(MAX_ANSWER).read_to_end(&mut out);
    }
    if out.len() as u64 >= MAX_ANSWER {
        let _ = child.kill();
    }
    drop(done);
    let _ = watchdog.join();
    let status = child.wait().map_err(|e| e.to_string())?;
    match serde_json::from_slice(&out) {
        Ok(Answer::Fetched { digest }) if status.success() => Ok(digest),
        Ok(Answer::Failed(m)) => Err(m),
        // What the allocator does when the limit refuses it memory.
        _ if status.signal() == Some(rustix::process::Signal::ABORT.as_raw()) => Err(format!(
            "pulling {uri} failed: the registry's answers took more than the {} MiB of memory a pull may use",
            fetch::MEMORY >> 20
        )),
        _ => Err(format!(
            "pulling {uri} failed: its process ended without an answer ({status})"
        )),
    }
}

/// Stores what the pull's process fetched into `request.dir`, each blob checked against its
/// digest.
fn store_pulled(
    store: &lamina_store::Store,
    request: &Request,
    repository: String,
    digest: String,
) -> Result<Pulled, String> {
    let uri = &request.uri;
    let images = store.image_content();
    let bytes = read_small(&request.dir.join(MANIFEST_FILE))?;
    let manifest = parse(&bytes)?;
    let stored = images.put_blob(&bytes).map_err(stored_not)?;
    if stored != digest {
        return Err(format!(
            "{uri}: the registry's manifest is {stored}, not the {digest} it announced"
        ));
    }
    let config_digest = config_digest(&manifest)?;
    let config = read_small(&request.dir.join(CONFIG_FILE))?;
    if images.put_blob(&config).map_err(stored_not)? != config_digest {
        return Err(format!(
            "{uri}: the configuration does not match its digest"
        ));
    }
    for (i, (layer, _)) in layers(uri, &manifest)?.into_iter().enumerate() {
        let file = request.dir.join(layer_file(i));
        confine::claim(&file, request.uid)?;
        images.import(&file, &layer).map_err(|e| match e {
            BlobError::DigestMismatch { .. } => format!("{uri}: {e}"),
            e => stored_not(e),
        })?;
    }
    Ok(Pulled {
        repository,
        digest,
        manifest,
        config: parse(&config)?,
    })
}

/// A failure to store what was pulled, for the caller: the server's log has the path.
fn stored_not(e: BlobError) -> String {
    tracing::warn!(error = %e, "storing a pulled image");
    "the server could not store the pulled image; its log says why".into()
}

/// A manifest or configuration the pull's process wrote, no larger than either may be.
fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    confine::claim(path, None)?
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read what the pull fetched: {e}"))?;
    Ok(bytes)
}

/// A manifest's layers (digest and size), refused when they are more or larger than Lambda
/// takes, or not to be had from the registry.
fn layers(uri: &str, manifest: &Value) -> Result<Vec<(String, u64)>, String> {
    let layers = manifest
        .get("layers")
        .and_then(|l| l.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    if layers.len() > MAX_LAYERS {
        return Err(format!("{uri} has more than {MAX_LAYERS} layers"));
    }
    let declared = layers
        .iter()
        .filter_map(|l| l.get("size")?.as_u64())
        .try_fold(0u64, u64::checked_add);
    if declared.is_none_or(|d| d > super::MAX_IMAGE_BYTES) {
        return Err(format!("{uri} is larger than Lambda's 10 GB image limit"));
    }
    layers
        .iter()
        .map(|layer| {
            if layer.get("urls").is_some() {
                return Err(format!(
                    "{uri} has a non-distributable layer (with urls); it cannot be pulled"
                ));
            }
            let digest = layer
                .get("digest")
                .and_then(|d| d.as_str())
                .ok_or("a layer has no digest")?;
            let size = layer.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            Ok((digest.to_owned(), size))
        })
        .collect()
}

/// The configuration's digest a manifest names.
fn config_digest(manifest: &Value) -> Result<&str, String> {
    manifest
        .get("config")
        .and_then(|c| c.get("digest"))
        .and_then(|d| d.as_str())
        .ok_or_else(|| "the manifest has no config".into())
}

fn parse(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err("the manifest is larger than 4 MB".into());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))
}
