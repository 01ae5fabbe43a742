//! Starting a sandbox from the server side.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};

use crate::{Spec, fdpass};

/// Why a sandbox did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start sandbox-init")]
    Start(#[source] std::io::Error),
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    #[error("cannot execute the function's entry point: {0}")]
    Exec(String),
}

/// A running sandbox.
pub struct Sandbox {
    /// The outer `sandbox-init` process; its exit status is the function process's.
    pub child: Child,
    /// Listening on `127.0.0.1:<port>` inside the sandbox's network namespace.
    pub listener: TcpListener,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
    /// The server's end of the control socket. The sandbox kills itself when it closes, so the
    /// owner keeps it for the sandbox's life.
    pub ctl: UnixStream,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("pid", &self.child.id())
            .finish()
    }
}

/// Starts `init_exe sandbox-init` and hands it `spec` (and `tmp_mount` for
/// [`crate::rootfs::Tmp::Mount`], and `netns` for [`Spec::netns`]). Returns once the sandbox's network namespace exists and its
/// listener has been received; the function may still be starting.
pub fn spawn(
    init_exe: &Path,
    spec: &Spec,
    tmp_mount: Option<OwnedFd>,
    netns: Option<BorrowedFd<'_>>,
) -> Result<Sandbox, SpawnError> {
    debug_assert_eq!(spec.netns, netns.is_some());
    let (ctl, theirs) = UnixStream::pair().map_err(SpawnError::Start)?;
    let mut child = Command::new(init_exe)
        .arg("sandbox-init")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .spawn()
        .map_err(SpawnError::Start)?;
    let fail = |child: &mut Child, e: SpawnError| {
        let _ = child.kill();
        let _ = child.wait();
        e
    };
    let json = serde_json::to_vec(spec).expect("a spec always serialises");
    let mut msg = (json.len() as u32).to_le_bytes().to_vec();
    msg.extend_from_slice(&json);
    if let Err(e) = (&ctl).write_all(&msg) {
        return Err(fail(&mut child, SpawnError::Start(e)));
    }
    if let Some(fd) = tmp_mount
        && let Err(e) = fdpass::send_fd(ctl.as_raw_fd(), b"t", fd.as_raw_fd())
    {
        return Err(fail(&mut child, SpawnError::Start(e)));
    }
    if let Some(fd) = netns
        && let Err(e) = fdpass::send_fd(ctl.as_raw_fd(), b"n", fd.as_raw_fd())
    {
        return Err(fail(&mut child, SpawnError::Start(e)));
    }
    let mut buf = [0u8; 4096];
    let (n, fd) = match fdpass::recv_fd(&ctl, &mut buf) {
        Ok(r) => r,
        Err(e) => return Err(fail(&mut child, SpawnError::Start(e))),
    };
    let Some(fd) = fd else {
        let text = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
        let text = text.strip_prefix("error: ").unwrap_or(&text).to_owned();
        return Err(fail(
            &mut child,
            SpawnError::Setup(if text.is_empty() {
                "sandbox-init exited".into()
            } else {
                text
            }),
        ));
    };
    let listener = TcpListener::from(fd);
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    Ok(Sandbox {
        child,
        listener,
        stdout,
        stderr,
        ctl,
    })
}

impl Sandbox {
    /// Blocks until the function's process has been exec'd, or reports why it was not.
    pub fn wait_started(&mut self) -> Result<(), SpawnError> {
        let mut text = Vec::new();
        let mut buf = [0u8; 1024];
        // One line comes: `started`, `exec: <why>` or `error: <why>` (EOF if everything died).
        while !text.contains(&b'\n') && text.len() < 64 * 1024 {
            match (&self.ctl).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SpawnError::Start(e)),
            }
        }
        let text = String::from_utf8_lossy(&text);
        let line = text.lines().next().unwrap_or_default();
        if line == "started" {
            return Ok(());
        }
        if let Some(e) = line.strip_prefix("exec: ") {
            return Err(SpawnError::Exec(e.to_owned()));
        }
        Err(SpawnError::Setup(
            line.strip_prefix("error: ")
                .filter(|e| !e.is_empty())
                .unwrap_or("sandbox-init exited before starting the function")
                .to_owned(),
        ))
    }

    /// The outer process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
