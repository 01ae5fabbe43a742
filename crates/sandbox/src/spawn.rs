//! Starting a sandbox from the server side.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
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
    ctl: UnixStream,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("pid", &self.child.id())
            .finish()
    }
}

/// Starts `init_exe sandbox-init` and hands it `spec`. Returns once the sandbox's network
/// namespace exists and its listener has been received; the function may still be starting.
pub fn spawn(init_exe: &Path, spec: &Spec) -> Result<Sandbox, SpawnError> {
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
        let mut text = String::new();
        let _ = (&self.ctl).read_to_string(&mut text);
        for line in text.lines() {
            if let Some(e) = line.strip_prefix("exec: ") {
                return Err(SpawnError::Exec(e.to_owned()));
            }
            if let Some(e) = line.strip_prefix("error: ") {
                return Err(SpawnError::Setup(e.to_owned()));
            }
        }
        Ok(())
    }

    /// The outer process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
