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

/// Unmaps what PID 1 no longer uses in a region of the address space apart from its binary, heap
/// and stack: the vDSO with its data pages (the C library's clock functions, which reaping does
/// not call) and Rust's alternate signal stack (for its report of a stack overflow; SIGSEGV and
/// SIGBUS go back to their default action first, which ends PID 1 as the report did). The page
/// tables that mapped them go too: 8 to 12 KiB of every idle environment. Called before
/// [`release`], which returns the heap this allocates.
///
/// From here on PID 1 must call nothing that uses the vDSO (no clock, no `Instant`), install no
/// signal handler (on aarch64 a handler returns through the vDSO) and leave through `_exit`, not
/// `std::process::exit` (whose clean-up would unmap the alternate stack again): [`release`],
/// [`reap`] and `_exit` do none of these.
pub(super) fn unmap_unused() {
    let Some(page) = page_size() else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    // `start-end perms offset device inode [name]`.
    let mappings = maps.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let range = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        Some((range, fields.next()?, fields.nth(3)))
    });
    let mut unused = Vec::new();
    let mut guards = Vec::new();
    let mut vdso = None;
    for ((start, end), perms, name) in mappings {
        match name {
            Some("[vdso]") => {
                vdso = Some(start);
                unused.push((start, end));
            }
            Some("[vvar]" | "[vvar_vclock]") => unused.push((start, end)),
            None if perms == "---p" && end - start == page => guards.push(start),
            _ => {}
        }
    }
    // The listing is the kernel's own only if it puts the vDSO where the kernel said at exec.
    // SAFETY: getauxval reads the auxiliary vector; 0 means no vDSO.
    let told = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if vdso.unwrap_or(0) != told {
        return;
    }
    // SAFETY: the two handlers Rust installed for its overflow report go back to the default.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
    let off = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: an all-zero `stack_t` is valid; it is overwritten with the stack that was in use.
    let mut was: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid; no handler runs on the alternate stack any more.
    let disabled = unsafe { libc::sigaltstack(&off, &mut was) } == 0;
    // Rust maps its alternate stack and a guard page below it with one `mmap` (listed as two
    // mappings: the guard's `---p`, the stack's `rw-p`); anything else there, and the stack is
    // only disabled.
    let guard = (was.ss_sp as usize).checked_sub(page);
    if disabled
        && was.ss_flags & libc::SS_DISABLE == 0
        && guard.is_some_and(|g| guards.contains(&g))
    {
        unused.push((was.ss_sp as usize - page, was.ss_sp as usize + was.ss_size));
    }
    for (start, end) in unused {
        // SAFETY: what still points into these mappings (the C library's vDSO functions, Rust's
        // record of its alternate stack) is never used again: see this function's comment.
        unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
    }
}

fn page_size() -> Option<usize> {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => Some(p as usize),
        _ => None,
    }
}

/// Drops the stack's pages below this frame, less [`STACK_MARGIN`] for the frame and the call:
/// frames the setup left there are dead, and nothing else lives below the current frame on the
/// stack of a process without signal handlers (or with Rust's alone, for overflows, which run on
/// a stack of their own, should [`unmap_unused`] have left them).
#[inline(never)]
fn release_stack() {
    let Some(page) = page_size() else {
        return;
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
/// exit status as a shell reports it. Told [`crate::DRAIN_SIGNAL`] (the environment ends, and its
/// extensions get their `SHUTDOWN`), it sends `function` `SIGTERM`, as Lambda does, and then
/// reaps until no process is left, so that the function's exit does not end the others' time.
///
/// Both that signal and `SIGCHLD` are blocked ([`block_reaped`]) and taken with `sigwaitinfo`,
/// not handled: a PID 1 takes a signal other than `SIGKILL` and `SIGSTOP` from outside its
/// namespace only if it handles or blocks it, and after [`unmap_unused`] it installs no handler.
/// Only a `kill` from outside the namespace drains: the function, which may be PID 1's user (in a
/// user namespace of its own), cannot make it wait for its children after its runtime's exit.
pub(super) fn reap(function: libc::pid_t) -> i32 {
    let Some(set) = block_reaped() else {
        return wait_until(-1, function);
    };
    let mut status = None;
    let mut draining = false;
    loop {
        // Whatever has exited, until none has.
        loop {
            let mut s = 0;
            // SAFETY: waitpid with a valid status pointer, without blocking.
            match unsafe { libc::waitpid(-1, &mut s, libc::WNOHANG) } {
                0 => break,
                -1 if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
                // Nothing left to wait for.
                -1 => return status.unwrap_or(125),
                pid if pid == function => status = Some(status_code(s)),
                _ => {}
            }
        }
        if let (Some(code), false) = (status, draining) {
            return code;
        }
        // SAFETY: an all-zero siginfo_t is valid; sigwaitinfo fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigwaitinfo with the set blocked and a valid siginfo_t.
        let signal = unsafe { libc::sigwaitinfo(&set, &mut info) };
        // A `kill` (`SI_USER`, which no process can forge for another) from a process this
        // namespace does not see (its pid reads 0): the server's.
        // SAFETY: si_pid is valid for SI_USER.
        let outside = info.si_code == libc::SI_USER && unsafe { info.si_pid() } == 0;
        if signal == crate::DRAIN_SIGNAL && outside && !draining {
            draining = true;
            if status.is_none() {
                // SAFETY: a signal to this process's own child, not yet reaped.
                unsafe { libc::kill(function, libc::SIGTERM) };
            }
        }
    }
}

/// Blocks `SIGCHLD` and [`crate::DRAIN_SIGNAL`], which [`reap`] waits for, so that neither is
/// lost before it does: a drain that came before would be dropped (see there). Called before PID 1
/// reports `started`, and again by `reap`. Returns the set, or `None` if it could not be blocked.
pub(super) fn block_reaped() -> Option<libc::sigset_t> {
    // SAFETY: an all-zero sigset_t is valid; it is emptied and filled below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: the calls only write `set`; sigprocmask takes a valid set and no old set.
    let blocked = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigaddset(&mut set, crate::DRAIN_SIGNAL);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    } == 0;
    blocked.then_some(set)
}

/// Waits for `pid`, a child of this process; returns its exit status as [`status_code`] does.
pub(super) fn wait_exit_code(pid: libc::pid_t) -> i32 {
    wait_until(pid, pid)
}

/// Waits for the children `which` selects (`waitpid`'s first argument) until `pid` has exited:
/// its status as [`status_code`] gives it, or 125 when there is nothing left to wait for.
fn wait_until(which: libc::pid_t, pid: libc::pid_t) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(which, &mut status, 0) };
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
