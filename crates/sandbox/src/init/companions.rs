//! Programs started beside the function's own ([`crate::Companions`]), as Lambda starts a
//! function's external extensions.
//!
//! The function's process, already the function's user under its limits and filters, checks
//! each program (read, never run) and forks it as a child of the sandbox's PID 1
//! (`CLONE_PARENT`), which reaps it, and then executes the function. Each forked process waits
//! until that `execve` has happened before it executes its program: no companion runs before the
//! launch has been reported, so none can stop the process whose start the server waits for.
//! Should the function's process give up instead, they leave without running. Their pids go to
//! PID 1 with the launch's status ([`report`]), and from there, as pidfds, to the server, which
//! sees each one exit. Their output (standard output and error) is a pipe of their own, apart
//! from the function's, whose read end takes the same way: the server logs it as theirs.

use std::io::{self, Read as _};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;

use super::function::{cstring, pipe};

/// How deep scripts may name scripts as their interpreter, as the kernel allows.
const MAX_INTERPRETERS: u32 = 4;

/// Companions forked and waiting. The pipe's write end is held by this process alone,
/// close-on-exec: the function's `execve` closes it, and the companions see its end and run.
/// Dropped instead, it writes one byte for each, which tells it to leave.
pub(super) struct Started {
    held: Option<OwnedFd>,
    /// The forked processes, in the programs' order.
    pids: Vec<libc::pid_t>,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(held) = &self.held {
            let leave = vec![0u8; self.pids.len()];
            // SAFETY: a write of a buffer we own to a descriptor we own; a pipe holds far more
            // than ten bytes, so it does not block.
            let _ = unsafe { libc::write(held.as_raw_fd(), leave.as_ptr().cast(), leave.len()) };
        }
    }
}

/// Checks and forks `c`'s programs, to run once this process has executed the function, and
/// reports their pids on `status` (see [`report`]); keep the result until the exec. A program
/// that is not one fails here, before anything has run, with a message that begins with
/// [`crate::COMPANION_FAILED`].
pub(super) fn start(
    c: &crate::Companions,
    env: &[(String, String)],
    status: RawFd,
) -> io::Result<Started> {
    let mut started = Started {
        held: None,
        pids: Vec::new(),
    };
    if c.programs.is_empty() {
        return Ok(started);
    }
    let failed = |program: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("{}{program}: {e}", crate::COMPANION_FAILED),
        )
    };
    if c.programs.len() > crate::MAX_COMPANIONS {
        let e = io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("more than {} programs", crate::MAX_COMPANIONS),
        );
        return Err(failed(&c.programs[crate::MAX_COMPANIONS], e));
    }
    for program in &c.programs {
        executable(program.as_bytes(), 0).map_err(|e| failed(program, e))?;
    }
    let env: Vec<std::ffi::CString> = env
        .iter()
        .filter(|(k, _)| !c.hidden.contains(k))
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect::<io::Result<_>>()?;
    let mut env_p: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_p.push(std::ptr::null());
    let (go, held) = pipe()?;
    let (go, held_fd) = (go.as_raw_fd(), held.as_raw_fd());
    started.held = Some(held);
    // Close-on-exec both: the function keeps neither end, each companion its copies of the
    // write end on 1 and 2.
    let (output, output_w) = pipe()?;
    let output_w = output_w.as_raw_fd();
    for program in &c.programs {
        let path = cstring(program).map_err(|e| failed(program, e))?;
        let argv_p = [path.as_ptr(), std::ptr::null()];
        let said = format!("lamina: extension {program} could not be executed\n");
        // SAFETY: this process has one thread, and everything the child uses was made before
        // the fork (a `clone` without a stack is one, its child PID 1's): it closes its copy of
        // the write end, reads, execs or writes, and exits, never unwinding or running this
        // process's destructors. The C library's cached thread id is stale in it; nothing it
        // calls reads that.
        let child = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_PARENT | libc::SIGCHLD,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if child == 0 {
            // SAFETY: as above.
            unsafe {
                libc::close(held_fd);
                let mut byte = 0u8;
                let read = loop {
                    let n = libc::read(go, (&raw mut byte).cast(), 1);
                    if n != -1 || *libc::__errno_location() != libc::EINTR {
                        break n;
                    }
                };
                // The end of the pipe: the function has been executed.
                if read == 0 && libc::dup2(output_w, 1) != -1 && libc::dup2(output_w, 2) != -1 {
                    libc::execve(path.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
                    let _ = libc::write(2, said.as_ptr().cast(), said.len());
                }
                libc::_exit(0);
            }
        }
        if child == -1 {
            return Err(failed(program, io::Error::last_os_error()));
        }
        started.pids.push(child as libc::pid_t);
    }
    report(status, &started.pids, &output)?;
    Ok(started)
}

/// What the function's process reported of its companions.
#[derive(Default)]
pub(super) struct Reported {
    pub(super) pids: Vec<libc::pid_t>,
    /// The read end of their output.
    pub(super) output: Option<OwnedFd>,
}

/// Tells PID 1, on the launch's status socket, the companions' `pids`: a zero byte, their count,
/// then each as four little-endian bytes, sent at once with `output` attached (what fails after
/// follows it). A failure's message never begins with a zero byte.
fn report(status: RawFd, pids: &[libc::pid_t], output: &OwnedFd) -> io::Result<()> {
    let mut record = vec![0u8, pids.len() as u8];
    for pid in pids {
        record.extend_from_slice(&pid.to_le_bytes());
    }
    crate::fdpass::send_fd(status, &record, output.as_raw_fd())
}

/// The companions' pids at the start of what the function's process wrote on its status socket,
/// and the rest (why it did not exec; empty if it did).
pub(super) fn reported(status: &[u8]) -> (Vec<libc::pid_t>, &[u8]) {
    let [0, n, rest @ ..] = status else {
        return (Vec::new(), status);
    };
    let len = usize::from(*n) * 4;
    if rest.len() < len {
        return (Vec::new(), status);
    }
    let pids = rest[..len]
        .chunks_exact(4)
        .map(|b| libc::pid_t::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (pids, &rest[len..])
}

/// In PID 1, once the function has been executed: sends the server a pidfd for each of the
/// `count` companions whose pid came (see [`crate::spawn::Prepared::launch`]), and their
/// output's read end, in one message: `c`, then a byte per companion, 1 where its pidfd is
/// attached and 0 where it could not be opened, then one for the output. Each is PID 1's child,
/// not reaped yet, so its pid is still its own. Nothing without companions.
pub(super) fn tell(
    ctl: &std::os::unix::net::UnixStream,
    reported: &Reported,
    count: usize,
) -> io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let mut said = vec![b'c'];
    let mut fds = Vec::new();
    for i in 0..count.min(crate::MAX_COMPANIONS) {
        let opened = reported.pids.get(i).and_then(|&pid| {
            let pid = rustix::process::Pid::from_raw(pid)?;
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        said.push(u8::from(opened.is_some()));
        fds.extend(opened);
    }
    said.push(u8::from(reported.output.is_some()));
    let mut raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    raw.extend(reported.output.as_ref().map(|fd| fd.as_raw_fd()));
    crate::fdpass::send_fds(ctl.as_raw_fd(), &said, &raw)
}

/// Whether `execve` would run `program` (`depth` scripts deep): an executable regular file that
/// is an ELF program for this machine, or a script whose interpreter is one. Read, never run,
/// and never waited on (a FIFO is opened without blocking, then refused).
fn executable(program: &[u8], depth: u32) -> io::Result<()> {
    let path =
        std::ffi::CString::new(program).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
    // SAFETY: access(2) of a valid C string.
    if unsafe { libc::access(path.as_ptr(), libc::X_OK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(std::ffi::OsStr::from_bytes(program));
    let mut f = match opened {
        Ok(f) => f,
        // Executable but not readable (mode 0711): the kernel runs it all the same.
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Ok(()),
        Err(e) => return Err(e),
    };
    if !f.metadata()?.file_type().is_file() {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    // The kernel reads as much of a program's start (`BINPRM_BUF_SIZE`).
    let mut head = [0u8; 256];
    let n = f.read(&mut head)?;
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        return match runs_here(head) {
            true => Ok(()),
            false => Err(io::Error::from_raw_os_error(libc::ENOEXEC)),
        };
    }
    let Some(line) = head.strip_prefix(b"#!") else {
        return Err(io::Error::from_raw_os_error(libc::ENOEXEC));
    };
    if depth >= MAX_INTERPRETERS {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    // As the kernel reads it: the first line, the interpreter after spaces and tabs, up to the
    // next one (a `\r` is part of the name).
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let start = line
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(line.len());
    let interpreter = line[start..]
        .split(|&b| matches!(b, b' ' | b'\t' | 0))
        .next()
        .unwrap_or_default();
    if interpreter.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOEXEC));
    }
    executable(interpreter, depth + 1)
}

/// Whether an ELF header names a 64-bit little-endian program for this machine.
fn runs_here(head: &[u8]) -> bool {
    let machine: u16 = if cfg!(target_arch = "x86_64") {
        62
    } else if cfg!(target_arch = "aarch64") {
        183
    } else {
        return true;
    };
    head.len() >= 20 && head[4] == 2 && head[5] == 1 && head[18..20] == machine.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn file(dir: &std::path::Path, name: &str, bytes: &[u8], mode: u32) -> Vec<u8> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p.into_os_string().into_vec()
    }

    fn errno(r: io::Result<()>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    use std::os::unix::ffi::OsStringExt as _;

    #[test]
    fn the_pids_reported_before_a_failure_are_told_apart_from_it() {
        let mut said = vec![0, 2];
        said.extend_from_slice(&7i32.to_le_bytes());
        said.extend_from_slice(&300_000i32.to_le_bytes());
        assert_eq!(reported(&said), (vec![7, 300_000], &b""[..]));
        said.extend_from_slice(b"bootstrap: No such file or directory");
        assert_eq!(
            reported(&said),
            (
                vec![7, 300_000],
                &b"bootstrap: No such file or directory"[..]
            )
        );
        // A failure before any was forked, and a record cut short, are failures as they are.
        assert_eq!(reported(b"chdir: EACCES"), (vec![], &b"chdir: EACCES"[..]));
        assert_eq!(reported(&said[..5]), (vec![], &said[..5]));
    }

    #[test]
    fn only_what_the_kernel_would_execute_passes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // This test's own binary is an ELF program for this machine.
        let me = std::env::current_exe().unwrap().into_os_string().into_vec();
        assert!(executable(&me, 0).is_ok());
        let sh = file(d, "script", b"#!/bin/sh\necho hi\n", 0o755);
        assert!(executable(&sh, 0).is_ok());
        let spaced = file(d, "spaced", b"#!  /bin/sh -e\n", 0o755);
        assert!(executable(&spaced, 0).is_ok());
        // A script of a script, within the kernel's depth.
        let via = format!("#!{}\n", String::from_utf8_lossy(&sh));
        assert!(executable(&file(d, "via", via.as_bytes(), 0o755), 0).is_ok());

        let text = file(d, "text", b"not a program\n", 0o755);
        assert_eq!(errno(executable(&text, 0)), Some(libc::ENOEXEC));
        let crlf = file(d, "crlf", b"#!/bin/sh\r\necho\r\n", 0o755);
        assert_eq!(errno(executable(&crlf, 0)), Some(libc::ENOENT));
        let missing = file(d, "missing", b"#!/no/such/interpreter\n", 0o755);
        assert_eq!(errno(executable(&missing, 0)), Some(libc::ENOENT));
        let foreign = file(
            d,
            "foreign",
            b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x28\0",
            0o755,
        );
        assert_eq!(errno(executable(&foreign, 0)), Some(libc::ENOEXEC));
        // A script whose interpreter is a directory or a text file.
        let dir_interp = format!("#!{}\n", d.display());
        let bad = file(d, "dir-interp", dir_interp.as_bytes(), 0o755);
        assert!(executable(&bad, 0).is_err());
        // A FIFO is refused without waiting for a writer.
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo of a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o755) }, 0);
        assert_eq!(
            errno(executable(fifo.as_os_str().as_bytes(), 0)),
            Some(libc::EACCES)
        );
    }
}
