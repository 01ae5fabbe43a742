//! Starting a sandbox from the server side.

use std::io::{PipeReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::spawner::Process;
use crate::{Launch, Spec, fdpass};

/// Why a sandbox did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start sandbox-init")]
    Start(#[source] std::io::Error),
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    #[error("cannot execute the function's entry point: {0}")]
    Exec(String),
    /// The sandbox exited before it was given its function (killed from outside, or PID 1
    /// failed without a word).
    #[error("the sandbox exited before its function started")]
    Died,
}

/// A running sandbox.
pub struct Sandbox {
    /// PID 1 of the sandbox when it was handed over to this process, else the outer
    /// `sandbox-init` that watches it; either's exit status is the function process's.
    pub child: Process,
    /// Listening on `127.0.0.1:<port>` inside the sandbox's network namespace.
    pub listener: TcpListener,
    /// The read end of the function's output: stdout and stderr share one pipe, so lines reach
    /// the log in the order they were written, as in Lambda.
    pub output: PipeReader,
    /// The server's end of the control socket while a watching `sandbox-init` holds the other:
    /// the watcher kills the sandbox when it closes, so the owner keeps it for the sandbox's
    /// life. `None` once launched where PID 1 was handed over to this process: the outer process
    /// is gone and PID 1 closes its end right after it reports `started`, so it would hold two
    /// sockets for nothing.
    pub ctl: Option<UnixStream>,
    /// A pidfd for each of the launch's companions, in its order (`None` where PID 1 could not
    /// open one): readable once that process has exited.
    pub companions: Vec<Option<OwnedFd>>,
    /// The read end of the companions' output (their standard output and error), apart from
    /// the function's.
    pub companions_output: Option<PipeReader>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("pid", &self.child.id())
            .finish()
    }
}

/// A sandbox made up to the point where it needs its function: its namespaces exist, the
/// listener is ours, and PID 1 joins (or has joined) its cgroups and then waits for a
/// [`Launch`]. Dropping it kills the sandbox.
pub struct Prepared {
    /// Taken by [`Prepared::launch`].
    sandbox: Option<Sandbox>,
    /// Whether PID 1 was handed over to this process (see `init/hand_over.rs`).
    handed: bool,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // Reaped here: a prepared sandbox that is never launched leaves no zombie. Killed, PID 1
        // takes its namespace with it; a watcher takes PID 1 with it (PR_SET_PDEATHSIG).
        if let Some(s) = &self.sandbox {
            s.child.kill_and_reap();
        }
    }
}

/// Starts `init_exe sandbox-init` and hands it `spec` (and `netns` for [`Spec::netns`], the
/// template's namespace and root for [`Spec::template`]). Returns once the sandbox's network
/// namespace exists and its listener has been received; PID 1 may still be joining its cgroups
/// ([`Prepared::wait_ready`] waits for that).
pub fn prepare(
    init_exe: &Path,
    spec: &Spec,
    netns: Option<BorrowedFd<'_>>,
    template: Option<&crate::rootfs::Template>,
) -> Result<Prepared, SpawnError> {
    debug_assert_eq!(spec.netns, netns.is_some());
    debug_assert_eq!(spec.template, template.is_some());
    let (ctl, theirs) = UnixStream::pair().map_err(SpawnError::Start)?;
    let (output, out_w) = std::io::pipe().map_err(SpawnError::Start)?;
    let err_w = out_w.try_clone().map_err(SpawnError::Start)?;
    let child = crate::spawner::spawn(init_exe, [theirs.as_fd(), out_w.as_fd(), err_w.as_fd()])
        .map_err(SpawnError::Start)?;
    drop((theirs, out_w, err_w));
    let fail = |child: &Process, e: SpawnError| {
        child.kill_and_reap();
        e
    };
    if let Err(e) = (&ctl).write_all(&framed(spec)) {
        return Err(fail(&child, SpawnError::Start(e)));
    }
    let template_ns = template.map(|t| t.ns.as_fd());
    let template_root = template.map(|t| t.root.as_fd());
    for (fd, tag) in [(netns, b"n"), (template_ns, b"m"), (template_root, b"r")] {
        if let Some(fd) = fd
            && let Err(e) = fdpass::send_fd(ctl.as_raw_fd(), tag, fd.as_raw_fd())
        {
            return Err(fail(&child, SpawnError::Start(e)));
        }
    }
    let mut buf = [0u8; 4096];
    // Every read until the function has started is bounded (the limit is lifted at launch): a
    // sandbox that never answers is killed rather than waited for.
    let received = ctl
        .set_read_timeout(Some(SETUP_LIMIT))
        .and_then(|()| fdpass::recv_fd(&ctl, &mut buf));
    let (n, fd) = match received {
        Ok(r) => r,
        Err(e) => return Err(fail(&child, setup_stalled(e))),
    };
    let Some(fd) = fd else {
        return Err(fail(&child, said_error(&buf[..n])));
    };
    let listener = TcpListener::from(fd);
    // Then whether PID 1 is this process's child now (see `init/hand_over.rs`): 8 bytes exactly,
    // since PID 1 may write its first line right after.
    let mut said = [0u8; 8];
    let received = fdpass::recv_fd(&ctl, &mut said);
    let pid_one = said
        .strip_prefix(b"pid1")
        .map(|pid| u32::from_le_bytes([pid[0], pid[1], pid[2], pid[3]]));
    let child = match (received, pid_one) {
        (Ok((8, Some(pidfd))), Some(pid)) => {
            // The outer process exits once it has said so.
            let _ = child.wait();
            Process::new(pid, Some(pidfd))
        }
        (Ok((8, None)), None) if said.starts_with(b"kept") => child,
        (Ok((n, _)), _) => {
            let mut rest = [0u8; 4096];
            let m = (&ctl).read(&mut rest).unwrap_or(0);
            return Err(fail(&child, said_error(&[&said[..n], &rest[..m]].concat())));
        }
        (Err(e), pid_one) => {
            // PID 1 came without its pidfd (this process is out of descriptors): it is ours
            // all the same, and its pid is not reused before it is reaped.
            if let Some(pid) = pid_one {
                Process::new(pid, None).kill_and_reap();
            }
            return Err(fail(&child, setup_stalled(e)));
        }
    };
    Ok(Prepared {
        sandbox: Some(Sandbox {
            child,
            listener,
            output,
            ctl: Some(ctl),
            companions: Vec::new(),
            companions_output: None,
        }),
        handed: pid_one.is_some(),
    })
}

/// What `sandbox-init` said instead of what was expected: its `error: ` line, if any.
fn said_error(said: &[u8]) -> SpawnError {
    let text = String::from_utf8_lossy(said).trim().to_owned();
    let text = text.strip_prefix("error: ").unwrap_or(&text).to_owned();
    SpawnError::Setup(if text.is_empty() {
        "sandbox-init exited".into()
    } else {
        text
    })
}

/// How long a sandbox may take to set itself up (namespaces, listener, cgroups) before it is
/// given up: far beyond what it needs, even under a burst of starts.
pub const SETUP_LIMIT: Duration = Duration::from_secs(30);

/// A read from a sandbox that failed or passed [`SETUP_LIMIT`].
fn setup_stalled(e: std::io::Error) -> SpawnError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            SpawnError::Setup(format!(
                "the sandbox did not set itself up within {} s",
                SETUP_LIMIT.as_secs()
            ))
        }
        _ => SpawnError::Start(e),
    }
}

/// A length-prefixed JSON message.
fn framed(value: &impl serde::Serialize) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("specs always serialise");
    let mut msg = (json.len() as u32).to_le_bytes().to_vec();
    msg.extend_from_slice(&json);
    msg
}

impl Prepared {
    /// Blocks until PID 1 has joined the sandbox's cgroups and waits for its function, at most
    /// [`SETUP_LIMIT`].
    pub fn wait_ready(&mut self) -> Result<(), SpawnError> {
        match self.sandbox_mut().read_line()?.as_str() {
            "joined" => Ok(()),
            line => Err(setup_error(line)),
        }
    }

    /// Whether `sandbox-init` is still running (a prepared sandbox kept in a pool can die,
    /// e.g. killed from outside).
    pub fn alive(&mut self) -> bool {
        self.sandbox_mut().child.try_wait().ok().flatten().is_none()
    }

    fn sandbox_mut(&mut self) -> &mut Sandbox {
        self.sandbox.as_mut().expect("present until launched")
    }

    /// Hands the sandbox its function (with `trees`, one detached mount per bind of its root,
    /// for a sandbox on the template, see [`Spec::template`]; and `tmp_mount` for
    /// [`crate::rootfs::Tmp::Mount`]) and blocks until the function's process has been exec'd,
    /// or reports why it was not.
    pub fn launch(
        mut self,
        launch: &Launch,
        trees: Vec<OwnedFd>,
        tmp_mount: Option<OwnedFd>,
    ) -> Result<Sandbox, SpawnError> {
        let mut sandbox = self.sandbox.take().expect("launched once");
        let fail = |sandbox: Sandbox, e: SpawnError| {
            sandbox.child.kill_and_reap();
            e
        };
        // A failed write means PID 1 has gone: the line read below says why.
        let sent = sandbox.ctl().write_all(&framed(launch)).and_then(|()| {
            let tagged = trees.iter().map(|fd| (b"b", fd));
            for (tag, fd) in tagged.chain(tmp_mount.iter().map(|fd| (b"t", fd))) {
                fdpass::send_fd(sandbox.ctl().as_raw_fd(), tag, fd.as_raw_fd())?;
            }
            Ok(())
        });
        // One line comes after `joined` (which an unpooled sandbox may not have been read):
        // `started`, `exec: <why>` or `error: <why>` (EOF if everything died), within the limit.
        let line = loop {
            match sandbox.read_line() {
                Ok(l) if l == "joined" => continue,
                // Hung up without a word: the sandbox was gone before it got its function.
                Ok(l) if l.is_empty() => return Err(fail(sandbox, SpawnError::Died)),
                Err(SpawnError::Start(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(fail(sandbox, SpawnError::Died));
                }
                Ok(l) => break l,
                Err(e) => return Err(fail(sandbox, e)),
            }
        };
        if line == "started" {
            let told = sent.and_then(|()| {
                (sandbox.companions, sandbox.companions_output) =
                    companions(sandbox.ctl(), launch.companions.programs.len())?;
                sandbox.ctl().set_read_timeout(None)
            });
            if let Err(e) = told {
                return Err(fail(sandbox, SpawnError::Start(e)));
            }
            if self.handed {
                sandbox.ctl = None;
            }
            return Ok(sandbox);
        }
        let e = match line.strip_prefix("exec: ") {
            Some(why) => SpawnError::Exec(why.to_owned()),
            None => setup_error(&line),
        };
        Err(fail(sandbox, e))
    }
}

/// Companions' pidfds and the read end of their output.
type Told = (Vec<Option<OwnedFd>>, Option<PipeReader>);

/// The pidfds of a launch's `count` companions and the read end of their output, which PID 1
/// sends after `started` (see `init/companions.rs`).
fn companions(ctl: &UnixStream, count: usize) -> std::io::Result<Told> {
    if count == 0 {
        return Ok((Vec::new(), None));
    }
    let sent = count.min(crate::MAX_COMPANIONS);
    let mut said = [0u8; 2 + crate::MAX_COMPANIONS];
    let (n, fds) = fdpass::recv_fds(ctl, &mut said[..2 + sent])?;
    let flags = match said[..n].split_first() {
        Some((b'c', flags))
            if flags.len() == sent + 1
                && flags.iter().filter(|&&f| f == 1).count() == fds.len() =>
        {
            flags
        }
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the sandbox sent its companions' pidfds garbled",
            ));
        }
    };
    let mut fds = fds.into_iter();
    let mut out: Vec<Option<OwnedFd>> = flags
        .iter()
        .map(|&f| if f == 1 { fds.next() } else { None })
        .collect();
    // The last is the output's.
    let output = out.pop().flatten().map(PipeReader::from);
    out.resize_with(count, || None);
    Ok((out, output))
}

fn setup_error(line: &str) -> SpawnError {
    SpawnError::Setup(
        line.strip_prefix("error: ")
            .filter(|e| !e.is_empty())
            .unwrap_or("sandbox-init exited before starting the function")
            .to_owned(),
    )
}

impl Sandbox {
    /// One line from the control socket, without its newline (empty at EOF). Read a byte at a
    /// time: what follows the line is not ours to consume.
    fn read_line(&mut self) -> Result<String, SpawnError> {
        let mut text = Vec::new();
        let mut byte = [0u8; 1];
        while text.len() < 64 * 1024 {
            match self.ctl().read(&mut byte) {
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => text.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(setup_stalled(e)),
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// The control socket, present until launched.
    fn ctl(&self) -> &UnixStream {
        self.ctl.as_ref().expect("kept until launched")
    }

    /// The process id of PID 1 once handed over, else of the outer process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
