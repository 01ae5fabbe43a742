//! The seccomp filter every function runs under.
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
//! It is one program whose system call numbers are searched as a binary tree. The kernel runs
//! a new filter for every system call number as it loads it (to cache the calls it always
//! allows), and seccompiler's filters test the numbers one after the other: over the three it
//! made for this policy, an allowed number took about 130 instructions, and loading them about
//! 0.2 ms of every sandbox's start. Searched as a tree, a number takes at most 15 (12.5 on
//! average), and loading the filter about 0.1 ms. seccompiler has no such layout, so the program
//! is assembled here; the tests check it against seccompiler's filters for the same policy, call
//! by call.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{BpfProgram, sock_filter};

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
const SOCKET_FAMILIES: [u32; 4] = [
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
    libc::AF_NETLINK as u32,
];

/// `personality` values allowed (as in Docker's default profile).
const PERSONALITIES: [u32; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// What the filter does with a system call it does not simply allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Refused with `EPERM`.
    Denied,
    /// Refused with `ENOSYS`.
    NotImplemented,
    /// `clone` with any namespace flag refused with `EPERM`.
    Clone,
    /// `socket` outside [`SOCKET_FAMILIES`], or netlink but route, refused with `EPERM`.
    Socket,
    /// `socketpair` but `AF_UNIX` refused with `EPERM`.
    Socketpair,
    /// `personality` outside [`PERSONALITIES`] refused with `EPERM`.
    Personality,
}

/// Every system call the filter does not simply allow, by number.
fn rules() -> io::Result<BTreeMap<u32, Rule>> {
    let listed = denied().into_iter().map(|nr| (nr, Rule::Denied));
    let listed = listed.chain(
        not_implemented()
            .into_iter()
            .map(|nr| (nr, Rule::NotImplemented)),
    );
    let mut rules = BTreeMap::new();
    for (nr, rule) in listed.chain([
        (libc::SYS_clone, Rule::Clone),
        (libc::SYS_socket, Rule::Socket),
        (libc::SYS_socketpair, Rule::Socketpair),
        (libc::SYS_personality, Rule::Personality),
    ]) {
        if rules.insert(nr as u32, rule).is_some() {
            return Err(io::Error::other(format!("system call {nr} has two rules")));
        }
    }
    Ok(rules)
}

/// The architecture the filter is for: any other (on x86_64, the i386 ABI) kills the process.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xc000_00f3;

/// System calls of the x32 ABI have this bit set in their number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF, as `linux/filter.h` spells it.
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

// `struct seccomp_data`: the number, the architecture, then six 64-bit arguments.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// Where argument `i`'s low 32 bits are: the rules compare no more (every namespace flag is
/// among them).
const fn arg_low(i: u32) -> u32 {
    if cfg!(target_endian = "little") {
        16 + 8 * i
    } else {
        20 + 8 * i
    }
}
const _: () = assert!(NAMESPACE_MASK <= u32::MAX as u64);

/// All of [`CLONE_NAMESPACE_FLAGS`].
const NAMESPACE_MASK: u64 = {
    let mut mask = 0;
    let mut i = 0;
    while i < CLONE_NAMESPACE_FLAGS.len() {
        mask |= CLONE_NAMESPACE_FLAGS[i];
        i += 1;
    }
    mask
};

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// Compiles the filter for this machine's architecture.
pub fn filter() -> io::Result<BpfProgram> {
    let rules: Vec<(u32, Rule)> = rules()?.into_iter().collect();
    let mut a = Asm::default();
    let [allow, eperm, enosys] = [a.label(), a.label(), a.label()];
    let blocks: Vec<Label> = rules.iter().map(|_| a.label()).collect();
    let native = a.label();
    a.stmt(LD_W_ABS, ARCH);
    a.jump(JEQ_K, AUDIT_ARCH, At(native), Next);
    a.stmt(RET_K, KILL);
    a.bind(native);
    a.stmt(LD_W_ABS, NR);
    #[cfg(target_arch = "x86_64")]
    a.jump(JSET_K, X32_SYSCALL_BIT, At(enosys), Next);
    // What each number leads to: a shared answer, or a block of its own for its arguments.
    let target = |i: usize| match rules[i].1 {
        Rule::Denied => eperm,
        Rule::NotImplemented => enosys,
        _ => blocks[i],
    };
    search(&mut a, &rules, 0, rules.len(), &target, allow);
    // The argument rules' blocks, each from its call's first argument.
    for (i, &(_, rule)) in rules.iter().enumerate() {
        if matches!(rule, Rule::Denied | Rule::NotImplemented) {
            continue;
        }
        a.bind(blocks[i]);
        a.stmt(LD_W_ABS, arg_low(0));
        match rule {
            Rule::Denied | Rule::NotImplemented => {}
            Rule::Clone => a.jump(JSET_K, NAMESPACE_MASK as u32, At(eperm), At(allow)),
            Rule::Socket => {
                let others = SOCKET_FAMILIES.iter();
                a.one_of(
                    others.filter(|&&f| f != libc::AF_NETLINK as u32),
                    At(allow),
                    Next,
                );
                a.jump(JEQ_K, libc::AF_NETLINK as u32, Next, At(eperm));
                a.stmt(LD_W_ABS, arg_low(2));
                a.jump(JEQ_K, libc::NETLINK_ROUTE as u32, At(allow), At(eperm));
            }
            Rule::Socketpair => a.one_of(&[libc::AF_UNIX as u32], At(allow), At(eperm)),
            Rule::Personality => a.one_of(&PERSONALITIES, At(allow), At(eperm)),
        }
    }
    a.bind(allow);
    a.stmt(RET_K, ALLOW);
    a.bind(eperm);
    a.stmt(RET_K, EPERM);
    a.bind(enosys);
    a.stmt(RET_K, ENOSYS);
    a.finish()
}

/// Numbers searched one after the other at the leaves of the tree.
const LEAF: usize = 4;

/// Emits the search for the loaded number among `rules[from..to]`: each one jumps to
/// `target(i)`, and a number not among them to `allow`.
fn search(
    a: &mut Asm,
    rules: &[(u32, Rule)],
    from: usize,
    to: usize,
    target: &dyn Fn(usize) -> Label,
    allow: Label,
) {
    if to - from <= LEAF {
        for (i, &(nr, _)) in rules.iter().enumerate().take(to).skip(from) {
            let miss = if i + 1 == to { At(allow) } else { Next };
            a.jump(JEQ_K, nr, At(target(i)), miss);
        }
        if from == to {
            // No rules at all: every number is allowed.
            a.jump(JEQ_K, 0, At(allow), At(allow));
        }
        return;
    }
    let mid = from + (to - from) / 2;
    let upper = a.label();
    a.jump(JGE_K, rules[mid].0, At(upper), Next);
    search(a, rules, from, mid, target, allow);
    a.bind(upper);
    search(a, rules, mid, to, target, allow);
}

/// An instruction's place, once bound.
#[derive(Clone, Copy, Debug)]
struct Label(usize);

/// Where a conditional jump goes.
#[derive(Clone, Copy, Debug)]
enum Goto {
    /// The next instruction.
    Next,
    At(Label),
}
use Goto::{At, Next};

/// A classic BPF program with forward jumps to labels, resolved at the end.
#[derive(Default)]
struct Asm {
    code: Vec<sock_filter>,
    /// Each label's instruction index, once bound.
    labels: Vec<Option<usize>>,
    /// Conditional jumps to resolve: (instruction, where if true, where if false).
    jumps: Vec<(usize, Goto, Goto)>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        debug_assert!(self.labels[l.0].is_none(), "label bound twice");
        self.labels[l.0] = Some(self.code.len());
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push(sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }

    fn jump(&mut self, code: u16, k: u32, jt: Goto, jf: Goto) {
        self.jumps.push((self.code.len(), jt, jf));
        self.stmt(code, k);
    }

    /// Compares the loaded word with each of `values`: equal to one, to `hit`; to none, to
    /// `miss`.
    fn one_of<'v>(&mut self, values: impl IntoIterator<Item = &'v u32>, hit: Goto, miss: Goto) {
        let values: Vec<u32> = values.into_iter().copied().collect();
        for (i, &v) in values.iter().enumerate() {
            let last = i + 1 == values.len();
            self.jump(JEQ_K, v, hit, if last { miss } else { Next });
        }
    }

    /// Resolves every jump: each must go forward by at most 255 instructions.
    fn finish(mut self) -> io::Result<BpfProgram> {
        for &(at, jt, jf) in &self.jumps {
            let offset = |to: Goto| -> io::Result<u8> {
                let Goto::At(l) = to else { return Ok(0) };
                let dest = self.labels[l.0].ok_or_else(|| io::Error::other("unbound label"))?;
                dest.checked_sub(at + 1)
                    .and_then(|d| u8::try_from(d).ok())
                    .ok_or_else(|| io::Error::other(format!("jump from {at} to {dest}")))
            };
            let (t, f) = (offset(jt)?, offset(jf)?);
            self.code[at].jt = t;
            self.code[at].jf = f;
        }
        if self.code.len() > 4096 {
            return Err(io::Error::other("seccomp filter too long"));
        }
        Ok(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
        SeccompFilter, SeccompRule, TargetArch,
    };

    fn cond(arg: u8, len: Len, op: Op, value: u64) -> SeccompCondition {
        SeccompCondition::new(arg, len, op, value).unwrap()
    }

    fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> BpfProgram {
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let action = SeccompAction::Errno(errno as u32);
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, arch).unwrap();
        filter.try_into().unwrap()
    }

    /// The same policy as seccompiler builds it (three filters, loaded in this order): what
    /// the filter must answer, call by call.
    fn reference() -> Vec<BpfProgram> {
        let mut rules = BTreeMap::new();
        let clone = CLONE_NAMESPACE_FLAGS
            .iter()
            .map(|&f| SeccompRule::new(vec![cond(0, Len::Qword, Op::MaskedEq(f), f)]).unwrap())
            .collect();
        rules.insert(libc::SYS_clone, clone);
        let other_family = |arg| {
            SOCKET_FAMILIES
                .iter()
                .map(|&f| cond(arg, Len::Dword, Op::Ne, f.into()))
                .collect()
        };
        let netlink_but_route = vec![
            cond(0, Len::Dword, Op::Eq, libc::AF_NETLINK as u64),
            cond(2, Len::Dword, Op::Ne, libc::NETLINK_ROUTE as u64),
        ];
        rules.insert(
            libc::SYS_socket,
            vec![
                SeccompRule::new(other_family(0)).unwrap(),
                SeccompRule::new(netlink_but_route).unwrap(),
            ],
        );
        let not_unix = cond(0, Len::Dword, Op::Ne, libc::AF_UNIX as u64);
        rules.insert(
            libc::SYS_socketpair,
            vec![SeccompRule::new(vec![not_unix]).unwrap()],
        );
        let other_personality = PERSONALITIES
            .iter()
            .map(|&p| cond(0, Len::Dword, Op::Ne, p.into()))
            .collect();
        rules.insert(
            libc::SYS_personality,
            vec![SeccompRule::new(other_personality).unwrap()],
        );
        for nr in denied() {
            rules.insert(nr, vec![]);
        }
        let nosys = not_implemented().into_iter().map(|s| (s, vec![])).collect();
        let mut out = vec![compile(rules, libc::EPERM), compile(nosys, libc::ENOSYS)];
        #[cfg(target_arch = "x86_64")]
        out.push(vec![
            sock_filter {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k: NR,
            },
            sock_filter {
                code: JSET_K,
                jt: 0,
                jf: 1,
                k: X32_SYSCALL_BIT,
            },
            sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: ENOSYS,
            },
            sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: ALLOW,
            },
        ]);
        out
    }

    /// A `struct seccomp_data`.
    fn data(arch: u32, nr: u32, args: [u64; 6]) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_ne_bytes());
        d[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        d
    }

    /// Runs `prog` over `data` as the kernel would; returns its answer and how many
    /// instructions it ran. Knows the instructions both programs use, and fails on any other.
    fn run(prog: &[sock_filter], data: &[u8; 64]) -> (u32, usize) {
        let (mut pc, mut acc, mut steps) = (0usize, 0u32, 0);
        loop {
            let i = &prog[pc];
            steps += 1;
            pc += 1;
            let jump = |taken: bool| if taken { i.jt } else { i.jf } as usize;
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                RET_K => return (i.k, steps),
                JEQ_K => pc += jump(acc == i.k),
                JGE_K => pc += jump(acc >= i.k),
                JSET_K => pc += jump(acc & i.k != 0),
                0x25 => pc += jump(acc > i.k), // BPF_JMP | BPF_JGT | BPF_K
                0x05 => pc += i.k as usize,    // BPF_JMP | BPF_JA
                0x54 => acc &= i.k,            // BPF_ALU | BPF_AND | BPF_K
                code => panic!("instruction {code:#x} at {}", pc - 1),
            }
        }
    }

    /// Stacked filters' answer: the most restrictive action (compared as the kernel does, as
    /// signed), the newest filter's among equals.
    fn stacked(progs: &[BpfProgram], data: &[u8; 64]) -> u32 {
        const ACTION_FULL: u32 = 0xffff_0000;
        let mut answer = ALLOW;
        for p in progs.iter().rev() {
            let (r, _) = run(p, data);
            if ((r & ACTION_FULL) as i32) < ((answer & ACTION_FULL) as i32) {
                answer = r;
            }
        }
        answer
    }

    /// Argument values worth trying: every constant the rules name, alone, combined, and with
    /// bits set above the 32 the rules compare.
    fn interesting() -> Vec<u64> {
        let mut v: Vec<u64> = (0..64).collect();
        v.extend(CLONE_NAMESPACE_FLAGS);
        v.extend(CLONE_NAMESPACE_FLAGS.map(|f| f | libc::SIGCHLD as u64 | 0x0010_0f00));
        v.extend(PERSONALITIES.map(u64::from));
        v.extend([
            NAMESPACE_MASK,
            0x0001_0000_0000,
            0xffff_ffff_ffff_ffff,
            0x7fff_ffff,
        ]);
        let high: Vec<u64> = v.iter().map(|x| x | 0x0000_0001_0000_0000).collect();
        v.extend(high);
        v
    }

    #[test]
    fn answers_every_call_as_seccompilers_filters_do() {
        let ours = filter().unwrap();
        let theirs = reference();
        let mut numbers: Vec<u32> = (0..600).collect();
        numbers.extend((0..600).map(|n| n | 0x4000_0000));
        numbers.extend([0x3fff_ffff, 0x4000_0000, 0x8000_0000, u32::MAX]);
        let values = interesting();
        let mut checked = 0;
        for arch in [AUDIT_ARCH, 0x4000_0003, 0] {
            for &nr in &numbers {
                let argued = [libc::SYS_clone, libc::SYS_socket, libc::SYS_socketpair]
                    .into_iter()
                    .chain([libc::SYS_personality])
                    .any(|s| s as u32 == nr);
                let samples: Vec<[u64; 6]> = if argued {
                    let mut s = Vec::new();
                    for &a in &values {
                        for b in [0, libc::NETLINK_ROUTE as u64, 9, 15, 1 << 32] {
                            s.push([a, 0, b, 0, 0, 0]);
                        }
                    }
                    s
                } else {
                    vec![[0; 6], [u64::MAX, 1, 2, 3, 4, 5]]
                };
                for args in samples {
                    let d = data(arch, nr, args);
                    assert_eq!(
                        run(&ours, &d).0,
                        stacked(&theirs, &d),
                        "arch {arch:#x}, call {nr}, arguments {args:x?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn refuses_what_a_function_never_needs() {
        let f = filter().unwrap();
        let call = |nr: i64, args: [u64; 6]| run(&f, &data(AUDIT_ARCH, nr as u32, args)).0;
        assert_eq!(call(libc::SYS_read, [0; 6]), ALLOW);
        assert_eq!(call(libc::SYS_mount, [0; 6]), EPERM);
        assert_eq!(call(libc::SYS_clone3, [0; 6]), ENOSYS);
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(call(libc::SYS_clone, [thread, 0, 0, 0, 0, 0]), ALLOW);
        let new_user = libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64;
        assert_eq!(call(libc::SYS_clone, [new_user, 0, 0, 0, 0, 0]), EPERM);
        let inet = libc::AF_INET as u64;
        assert_eq!(call(libc::SYS_socket, [inet, 1, 0, 0, 0, 0]), ALLOW);
        let packet = libc::AF_PACKET as u64;
        assert_eq!(call(libc::SYS_socket, [packet, 3, 0, 0, 0, 0]), EPERM);
        let netlink = libc::AF_NETLINK as u64;
        assert_eq!(call(libc::SYS_socket, [netlink, 3, 0, 0, 0, 0]), ALLOW);
        let audit = libc::NETLINK_AUDIT as u64;
        assert_eq!(call(libc::SYS_socket, [netlink, 3, audit, 0, 0, 0]), EPERM);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(call(libc::SYS_read | 0x4000_0000, [0; 6]), ENOSYS);
        // Another architecture's calls (the i386 ABI on x86_64) kill the process.
        assert_eq!(run(&f, &data(0x4000_0003, 3, [0; 6])).0, KILL);
    }

    #[test]
    fn finds_a_number_in_a_few_instructions() {
        let f = filter().unwrap();
        assert!(f.len() < 256, "{}", f.len());
        let steps = |progs: &[BpfProgram], nr: u32| -> usize {
            let d = data(AUDIT_ARCH, nr, [0; 6]);
            progs.iter().map(|p| run(p, &d).1).sum()
        };
        // What the kernel pays as it loads the filter: a run for every number it allows.
        let allowed = |nr: &u32| run(&f, &data(AUDIT_ARCH, *nr, [0; 6])).0 == ALLOW;
        let numbers: Vec<u32> = (0..512).filter(allowed).collect();
        let ours = numbers
            .iter()
            .map(|&nr| steps(std::slice::from_ref(&f), nr))
            .max();
        let reference = reference();
        let theirs: usize = numbers.iter().map(|&nr| steps(&reference, nr)).sum();
        let ours_total: usize = numbers
            .iter()
            .map(|&nr| steps(std::slice::from_ref(&f), nr))
            .sum();
        assert!(ours.unwrap() <= 16, "{ours:?} instructions at most");
        assert!(ours_total * 5 < theirs, "{ours_total} against {theirs}");
    }
}
