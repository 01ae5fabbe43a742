//! Waiting for exits: PID 1, once its function runs, reaps for the environment's whole life (and
//! a watcher waits for PID 1). An idle environment's memory is what limits how many a host keeps
//! (see BENCHMARKS.md), so what setting the sandbox up used, and will not use again, goes back to
//! the kernel first.

use std::io;

/// How far below the current frame the stack is released. The setup's deepest frames lie within
/// it, and the kernel's first stack mapping (128 KiB, below the arguments and environment) covers
/// it, so it spans only this stack's dead pages, or the guard gap below the stack, which nothing
/// may map (`madvise` then skips the gap and says `ENOMEM`).
const STACK_WINDOW: usize = 64 * 1024;

/// Bytes kept below the address of a local of [`release_stack`]: the rest of its frame and the
/// call to `madvise` (a return address: the C library's wrapper is the system call alone).
const STACK_MARGIN: usize = 1024;

/// Returns the allocator's free memory and the stack's dead pages to the kernel. Called with the
/// setup's frames left behind and its values dropped.
pub(super) fn release() {
    // Free chunks coalesce into whole free pages only without glibc's per-thread cache, which
    // `sandbox-init` runs without (`GLIBC_TUNABLES`, see `spawner.rs`): with it, 28 KiB of PID 1's
    // heap stayed resident, 8 KiB without.
    // SAFETY: malloc_trim only hands pages of the allocator's free chunks back to the kernel.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0)
    };
    release_stack();
}

/// Drops the stack's pages below this frame, less [`STACK_MARGIN`] for the frame and the call:
/// frames the setup left there are dead, and nothing else lives below the current frame on the
/// stack of a process whose signal handlers (Rust's, for overflows) run on a stack of their own.
#[inline(never)]
fn release_stack() {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let here = 0u8;
    let end = (std::hint::black_box(&here) as *const u8 as usize - STACK_MARGIN) & !(page - 1);
    let Some(start) = end.checked_sub(STACK_WINDOW) else {
        return;
    };
    // SAFETY: the range lies below every live frame of this single-threaded process (see
    // above); its pages read as zeros afterwards, which nothing reads.
    unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            STACK_WINDOW,
            libc::MADV_DONTNEED,
        )
    };
}

/// Reaps every process of the sandbox (orphans are PID 1's) until `function` exits; returns its
/// exit status as a shell reports it.
pub(super) fn reap(function: libc::pid_t) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == -1 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return 125;
        }
        if pid == function {
            return status_code(status);
        }
    }
}

/// Waits for `pid`, a child of this process; returns its exit status as [`status_code`] does.
pub(super) fn wait_exit_code(pid: libc::pid_t) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status_code(status);
        }
        if r == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 125;
        }
    }
}

/// Exit status as a shell reports it: the code, or 128 + the signal.
pub(super) fn status_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    }
}
