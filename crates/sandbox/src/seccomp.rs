//! The seccomp filters every function runs under.
//!
//! Everything a Lambda function plausibly needs is allowed; what is refused is the kernel's attack
//! surface a function never needs:
//!
//! - calls that change namespaces, mounts, kernel state or other processes' memory fail with
//!   `EPERM`, and so does `clone` with any `CLONE_NEW*` flag (a new user namespace would hand the
//!   function a full capability set over netfilter and network devices);
//! - `clone3` and `io_uring_*` fail with `ENOSYS`, the answer that makes libc (`pthread_create`,
//!   `posix_spawn`) and libuv fall back to `clone` and plain system calls. `clone3` passes its
//!   flags in memory, where a filter cannot see them, so it cannot be allowed selectively;
//! - sockets only in the families functions use: Unix, IPv4, IPv6, and route netlink (which libc's
//!   `getifaddrs` needs). `AF_VSOCK`, `AF_ALG`, `AF_PACKET`, `AF_KEY` and the rest fail with
//!   `EPERM`;
//! - `personality` only with the values Docker's default profile allows (Linux, UNAME26,
//!   ADDR_NO_RANDOMIZE, and the query);
//! - system calls of the x32 ABI (numbers with bit 30 set) fail with `ENOSYS`: a deny list keyed
//!   by number must not be side-stepped by the same call under another number.
//!
//! Several filters are stacked (the kernel applies the strictest answer), because a seccompiler
//! filter has one action for all of its matches.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// System calls a function never needs, refused outright with `EPERM`.
fn denied() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_syslog,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_quotactl,
        libc::SYS_quotactl_fd,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_vhangup,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_pidfd_getfd,
        libc::SYS_fanotify_init,
        libc::SYS_lookup_dcookie,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_uselib]);
    v
}

/// System calls that fail with `ENOSYS`, so that callers fall back to something allowed.
fn not_implemented() -> Vec<i64> {
    vec![
        libc::SYS_clone3,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ]
}

/// Every namespace flag `clone` accepts.
pub const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// Socket families a function may open.
const SOCKET_FAMILIES: [u64; 4] = [
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_NETLINK as u64,
];

/// `personality` values allowed (as in Docker's default profile).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<SeccompCondition, seccompiler::Error> {
    SeccompCondition::new(arg, len, op, value).map_err(seccompiler::Error::Backend)
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, seccompiler::Error> {
    SeccompRule::new(conditions).map_err(seccompiler::Error::Backend)
}

/// Argument rules: a call matching any rule is refused with `EPERM`.
fn argument_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, seccompiler::Error> {
    let mut rules = BTreeMap::new();
    // clone(flags, ...): any namespace flag set. Rules are alternatives, so one per flag.
    let clone = CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|&flag| rule(vec![cond(0, Len::Qword, Op::MaskedEq(flag), flag)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone);
    // socket(domain, type, protocol): a family outside the list, or netlink other than route.
    let other_family = |arg| {
        SOCKET_FAMILIES
            .iter()
            .map(|&f| cond(arg, Len::Dword, Op::Ne, f))
            .collect::<Result<Vec<_>, _>>()
    };
    rules.insert(
        libc::SYS_socket,
        vec![
            rule(other_family(0)?)?,
            rule(vec![
                cond(0, Len::Dword, Op::Eq, libc::AF_NETLINK as u64)?,
                cond(2, Len::Dword, Op::Ne, libc::NETLINK_ROUTE as u64)?,
            ])?,
        ],
    );
    rules.insert(
        libc::SYS_socketpair,
        vec![rule(vec![cond(
            0,
            Len::Dword,
            Op::Ne,
            libc::AF_UNIX as u64,
        )?])?],
    );
    rules.insert(
        libc::SYS_personality,
        vec![rule(
            PERSONALITIES
                .iter()
                .map(|&p| cond(0, Len::Dword, Op::Ne, p))
                .collect::<Result<Vec<_>, _>>()?,
        )?],
    );
    for nr in denied() {
        rules.insert(nr, vec![]);
    }
    Ok(rules)
}

fn arch() -> Result<TargetArch, seccompiler::Error> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(seccompiler::Error::Backend)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    errno: i32,
) -> Result<BpfProgram, seccompiler::Error> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch()?,
    )
    .map_err(seccompiler::Error::Backend)?;
    filter.try_into().map_err(seccompiler::Error::Backend)
}

/// A filter refusing every x32-ABI system call with `ENOSYS` (x86_64 only).
fn x32_guard() -> Option<BpfProgram> {
    #[cfg(target_arch = "x86_64")]
    {
        use seccompiler::sock_filter;
        const X32_SYSCALL_BIT: u32 = 0x4000_0000;
        const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
        const BPF_JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
        const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
        const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
        const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
        let stmt = |code, k| sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        Some(vec![
            // seccomp_data.nr is at offset 0; the architecture is checked by the other filters.
            stmt(BPF_LD_W_ABS, 0),
            sock_filter {
                code: BPF_JSET_K,
                jt: 0,
                jf: 1,
                k: X32_SYSCALL_BIT,
            },
            stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
            stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        ])
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Compiles the filters for this machine's architecture, to be installed in order.
pub fn filters() -> Result<Vec<BpfProgram>, seccompiler::Error> {
    let nosys = not_implemented().into_iter().map(|s| (s, vec![])).collect();
    let mut out = vec![
        compile(argument_rules()?, libc::EPERM)?,
        compile(nosys, libc::ENOSYS)?,
    ];
    out.extend(x32_guard());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn compiles_for_this_machine() {
        let progs = super::filters().unwrap();
        assert!(progs.len() >= 2);
        assert!(progs[0].len() > 60, "{}", progs[0].len());
        // Every instruction count fits the kernel's limit.
        assert!(progs.iter().all(|p| p.len() < 4096));
    }
}
