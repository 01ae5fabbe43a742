//! Programs started beside the function's own ([`crate::Companions`]), as Lambda starts a
//! function's external extensions.
//!
//! The function's process, already the function's user under its limits and filters, checks
//! each program (read, never run), forks it twice, so that it is an orphan the sandbox's PID 1
//! reaps, and then executes the function. Each forked process waits until that `execve` has
//! happened before it executes its program: no companion runs before the launch has been
//! reported, so none can stop the process whose start the server waits for. Should the function's
//! process give up instead, they leave without running.

use std::io::{self, Read as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
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
    waiting: usize,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(held) = &self.held {
            let leave = vec![0u8; self.waiting];
            // SAFETY: a write of a buffer we own to a descriptor we own; a pipe holds far more
            // than ten bytes, so it does not block.
            let _ = unsafe { libc::write(held.as_raw_fd(), leave.as_ptr().cast(), leave.len()) };
        }
    }
}

/// Checks and forks `c`'s programs, to run once this process has executed the function; keep
/// the result until then. A program that is not one fails here, before anything has run, with
/// a message that begins with [`crate::COMPANION_FAILED`].
pub(super) fn start(c: &crate::Companions, env: &[(String, String)]) -> io::Result<Started> {
    let mut started = Started {
        held: None,
        waiting: 0,
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
    for program in &c.programs {
        let path = cstring(program).map_err(|e| failed(program, e))?;
        let argv_p = [path.as_ptr(), std::ptr::null()];
        let said = format!("lamina: extension {program} could not be executed\n");
        // SAFETY: this process has one thread, and everything the children use was made
        // before the fork: the child only forks and exits; the grandchild closes its copy of
        // the write end, reads, execs or writes, and exits, never unwinding or running this
        // process's destructors.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: as above.
            unsafe {
                let grandchild = libc::fork();
                if grandchild == 0 {
                    libc::close(held_fd);
                    let mut byte = 0u8;
                    let read = loop {
                        let n = libc::read(go, (&raw mut byte).cast(), 1);
                        if n != -1 || *libc::__errno_location() != libc::EINTR {
                            break n;
                        }
                    };
                    // The end of the pipe: the function has been executed.
                    if read == 0 {
                        libc::execve(path.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
                        let _ = libc::write(2, said.as_ptr().cast(), said.len());
                    }
                    libc::_exit(0);
                }
                libc::_exit(i32::from(grandchild == -1));
            }
        }
        if child == -1 {
            return Err(failed(program, io::Error::last_os_error()));
        }
        let mut status = 0;
        // SAFETY: waiting for the child this process just forked, which exits at once.
        while unsafe { libc::waitpid(child, &mut status, 0) } == -1
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            let e = io::Error::from_raw_os_error(libc::EAGAIN);
            return Err(failed(program, e));
        }
        started.waiting += 1;
    }
    Ok(started)
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
