//! Sandboxes made ahead of time: a cold start takes one and gives it its function's limits, and
//! nothing of one function's sandbox reaches another's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};

use crate::helpers::*;

/// A bootstrap that answers each event with what `/tmp` holds, then leaves a file there.
const TMP_RUNTIME: &[u8] = b"#!/bin/sh\nwhile true; do\n  H=$(mktemp)\n  curl -sS -o /dev/null -D $H \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\"\n  ID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\n  rm -f $H\n  SEEN=$(ls /tmp | tr '\\n' ' ')\n  touch /tmp/left-by-$NAME\n  curl -sS -o /dev/null -X POST \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/response\" -d \"\\\"$SEEN\\\"\"\ndone\n";

/// A bootstrap that answers its one event with how its process started: the signals it ignores
/// and its seccomp mode, from `/proc/self/status` (of `grep`, which `sh` started).
const STATUS_RUNTIME: &[u8] = b"#!/bin/sh\nH=$(mktemp)\ncurl -sS -o /dev/null -D $H \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next\"\nID=$(grep -i lambda-runtime-aws-request-id $H | tr -d '\\r' | cut -d' ' -f2)\nS=\"$(grep -E '^(SigIgn|Seccomp):' /proc/self/status | tr -d '\\t' | tr '\\n' ' ')Stdin:$(readlink /proc/$$/fd/0 || echo closed)\"\ncurl -sS -o /dev/null -X POST \"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/$ID/response\" -d \"\\\"$S\\\"\"\nsleep 60\n";

async fn deploy(c: &Client, name: &str, memory: i32) {
    deploy_script(c, name, memory, TMP_RUNTIME).await;
}

async fn deploy_script(c: &Client, name: &str, memory: i32, script: &[u8]) {
    c.create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("x")
        .role(ROLE)
        .memory_size(memory)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("NAME", name)
                .build(),
        )
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(bootstrap_zip(script)))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {}", describe(&e)));
}

/// The memory hierarchy's environment groups that hold processes.
fn live_groups(parent: &str) -> Vec<PathBuf> {
    env_cgroups(parent)
        .into_iter()
        .filter(|p| p.starts_with("/sys/fs/cgroup/memory"))
        .filter(|p| {
            std::fs::read_to_string(p.join("cgroup.procs")).is_ok_and(|s| !s.trim().is_empty())
        })
        .collect()
}

fn limit_mb(group: &Path) -> u64 {
    std::fs::read_to_string(group.join("memory.limit_in_bytes"))
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        >> 20
}

async fn wait_for_groups(parent: &str, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let groups = live_groups(parent);
        if groups.len() == n {
            return groups;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} sandboxes, found {groups:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_starts_take_sandboxes_made_ahead_with_their_own_limits() {
    assert!(
        Path::new("/sys/fs/cgroup/memory").exists(),
        "this test reads cgroup v1 memory limits (as on the CI machine); the cgroup v2 guest \
         suite covers v2"
    );
    let app = spawn_app_with("prepared_sandboxes = 2").await;
    let c = &app.client;
    let parent = cgroup_parent(app.data_dir());
    // Two sandboxes wait, with no function yet.
    let ahead = wait_for_groups(&parent, 2).await;

    deploy(c, "first", 256).await;
    deploy(c, "second", 512).await;
    let mut seen = Vec::new();
    for name in ["first", "second"] {
        let out = c
            .invoke()
            .function_name(name)
            .payload(Blob::new(b"{}".to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoke {name}: {}", describe(&e)));
        assert_eq!(out.function_error(), None);
        seen.push(String::from_utf8(out.payload().unwrap().as_ref().to_vec()).unwrap());
    }
    // Each function ran in one of the sandboxes made ahead, under its own memory limit.
    let limits: Vec<u64> = ahead.iter().map(|g| limit_mb(g)).collect();
    assert!(
        limits.contains(&256) && limits.contains(&512),
        "the sandboxes made ahead hold the two functions: {limits:?} MB"
    );
    // Each found its /tmp empty: nothing of the other, although both came from the same pool.
    assert_eq!(seen, [r#""""#, r#""""#], "what /tmp held");
    // The pool is refilled: two environments and two new sandboxes.
    let now = wait_for_groups(&parent, 4).await;
    let fresh: Vec<&PathBuf> = now.iter().filter(|g| !ahead.contains(g)).collect();
    assert_eq!(fresh.len(), 2, "{now:?}");

    // A second invocation of the first function is warm: same sandbox, its own file there.
    let out = c
        .invoke()
        .function_name("first")
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out.payload().unwrap().as_ref().to_vec()).unwrap(),
        r#""left-by-first ""#
    );
}

/// The function's process is forked, and loads its seccomp filters, while its sandbox waits in
/// the pool; what it executes still starts under those filters, and with no signal ignored (the
/// sandbox's own processes ignore `SIGPIPE`, and an ignored signal stays ignored across `execve`),
/// and with `/dev/null` as its standard input (not a closed descriptor its first open would take).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_from_the_pool_runs_filtered_with_no_signal_ignored() {
    assert!(
        Path::new("/sys/fs/cgroup/memory").exists(),
        "this test counts the sandboxes made ahead in cgroup v1 (as on the CI machine)"
    );
    let app = spawn_app_with("prepared_sandboxes = 2").await;
    let c = &app.client;
    wait_for_groups(&cgroup_parent(app.data_dir()), 2).await;
    deploy_script(c, "status", 256, STATUS_RUNTIME).await;
    let out = c
        .invoke()
        .function_name("status")
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke: {}", describe(&e)));
    assert_eq!(out.function_error(), None);
    let status: String = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    let field = |name: &str| {
        status
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status:?}"))
            .to_owned()
    };
    assert_eq!(field("Seccomp:"), "2", "filtered: {status:?}");
    // Nothing ignored: not SIGPIPE (bit 12), which the sandbox's own processes ignore, nor what
    // the server was started ignoring.
    assert_eq!(field("SigIgn:"), "0000000000000000", "{status:?}");
    assert_eq!(field("Stdin:"), "/dev/null", "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_sandbox_killed_from_outside_is_replaced() {
    assert!(
        Path::new("/sys/fs/cgroup/memory").exists(),
        "this test reads cgroup v1 groups (as on the CI machine)"
    );
    let app = spawn_app_with("prepared_sandboxes = 2").await;
    let c = &app.client;
    let parent = cgroup_parent(app.data_dir());
    let ahead = wait_for_groups(&parent, 2).await;
    // Every process of both ready sandboxes is killed while they wait for a function.
    for g in &ahead {
        let procs = std::fs::read_to_string(g.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: signalling a process of the server under test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    // The cold start does not fail: it gets a sandbox that lives.
    deploy(c, "after-kill", 128).await;
    let out = c
        .invoke()
        .function_name("after-kill")
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke: {}", describe(&e)));
    assert_eq!(out.function_error(), None);
    // The environment and two ready sandboxes again; the dead ones' groups are gone.
    let now = wait_for_groups(&parent, 3).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while env_cgroups(&parent)
        .iter()
        .filter(|p| p.starts_with("/sys/fs/cgroup/memory"))
        .count()
        > 3
    {
        assert!(
            Instant::now() < deadline,
            "the dead sandboxes' groups stay: {:?} (live: {now:?})",
            env_cgroups(&parent)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Shutdown leaves none of this server's groups.
    drop(app);
    assert_eq!(env_cgroups(&parent), Vec::<PathBuf>::new());
}

/// Whether `pid` is PID 1 of a PID namespace of its own (the last of its `NSpid` is 1).
fn pid_one(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|ids| ids.split_whitespace().count() > 1 && ids.ends_with("\t1"))
    })
}

/// The processes whose parent is `pid`, with their names (`comm`).
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: the name may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if ppid.and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push((child, stat[open + 1..close].to_owned()));
        }
    }
    out
}

/// What each open descriptor of `pid` is (`readlink` of `/proc/<pid>/fd/<n>`), by number.
fn descriptors(pid: u32) -> Vec<(u32, String)> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            Some((n, link.to_string_lossy().into_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_are_forked_by_one_fork_server_as_the_servers_children_holding_nothing_of_it() {
    let (dir, mut server, c) = server_with("kids").await;
    for _ in 0..2 {
        let out = c.invoke().function_name("kids").send().await;
        let out = out.unwrap_or_else(|e| panic!("invoke: {}", describe(&e)));
        assert_eq!(out.function_error(), None);
    }
    let pid = server.child.id();
    // The environment and the sandboxes made ahead: each outer `sandbox-init` is the server's
    // own child (the server waits for it), beside one fork server.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (forkers, inits) = loop {
        let children = children_of(pid);
        let named = |name: &str| -> Vec<u32> {
            children
                .iter()
                .filter(|(_, comm)| comm == name)
                .map(|(p, _)| *p)
                .collect()
        };
        let found = (named("sandbox-forker"), named("sandbox-init"));
        // Sandboxes still being made have their outer process as well, for a moment.
        if (found.1.len() >= 3 && found.1.iter().all(|&p| pid_one(p))) || Instant::now() > deadline
        {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(forkers.len(), 1, "{:?}", children_of(pid));
    assert!(inits.len() >= 3, "{:?}", children_of(pid));
    // Each is PID 1 of its sandbox, handed to the server by the outer `sandbox-init` that made it,
    // which is gone: no watcher process per sandbox (the fork server watches for the server's
    // death instead).
    for &init in &inits {
        assert!(
            pid_one(init),
            "sandbox-init {init} is not PID 1 of its sandbox"
        );
    }
    let forker = forkers[0];
    // The fork server holds its socket to the server and /dev/null, and, to watch for the
    // server's death, the server's pidfd and the lock of the server's groups: nothing else.
    let held = descriptors(forker);
    assert_eq!(held.len(), 5, "{held:?}");
    assert!(
        held.iter().all(
            |(n, l)| (*n < 3 && (l.starts_with("socket:") || l == "/dev/null"))
                || (*n >= 3 && (l == "anon_inode:[pidfd]" || l.starts_with("/run/lamina/groups-")))
        ),
        "{held:?}"
    );
    let socket = &held.iter().find(|(n, _)| *n == 0).unwrap().1;
    // No sandbox holds the fork server's socket, the server's binary or its data directory.
    let data = dir.path().to_string_lossy().into_owned();
    for init in &inits {
        let fds = descriptors(*init);
        assert!(
            !fds.is_empty() && fds.len() <= 16,
            "sandbox-init {init}: {fds:?}"
        );
        for (n, link) in &fds {
            assert!(
                link != socket && !link.contains("memfd:") && !link.contains(&data),
                "sandbox-init {init} holds {n} -> {link}"
            );
        }
    }
    // The fork server goes with the server, even killed.
    server.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(forker as i32) || inits.iter().any(|&p| alive(p as i32)) {
        assert!(
            Instant::now() < deadline,
            "the fork server or a sandbox outlived its server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The next server on the data removes what the killed one left, and stopped, leaves
    // nothing: no cgroup, and no fork server (which it stops before it gives its group back).
    let mut next = ServerProcess::start(dir.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let forker = loop {
        let found = children_of(next.child.id())
            .into_iter()
            .find(|(_, comm)| comm == "sandbox-forker");
        if let Some((p, _)) = found {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no fork server for the sandboxes made ahead"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    next.stop();
    assert!(
        !alive(forker as i32),
        "the fork server outlived a stopped server"
    );
    let group = Path::new("/sys/fs/cgroup/pids").join(cgroup_parent(dir.path()));
    assert!(!group.exists(), "{} is left", group.display());
}

/// An idle environment's PID 1 gives the memory its setup used back to the kernel: it stays, and
/// reaps, for the environment's whole life, beside every idle environment a host keeps.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_pid_one_gives_back_the_memory_its_setup_used() {
    let (_dir, mut server, c) = server_with("lean").await;
    invoke_json(&c, "lean", &serde_json::json!({})).await;
    // The environment's PID 1 is the one whose child runs the function (those made ahead hold a
    // forked process that has not run anything yet).
    let pid = server.child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let init = loop {
        let found = children_of(pid).into_iter().find(|&(p, ref comm)| {
            comm == "sandbox-init"
                && pid_one(p)
                && children_of(p).iter().any(|(_, comm)| comm == "bootstrap")
        });
        if let Some((p, _)) = found {
            break p;
        }
        assert!(Instant::now() < deadline, "{:?}", children_of(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // What PID 1 wrote of its heap and its stack, which nobody else shares: 28 KiB of heap and
    // 16 KiB of stack when it kept what the setup left (about 45 KiB of every idle environment).
    let smaps = std::fs::read_to_string(format!("/proc/{init}/smaps")).unwrap();
    let held = |mapping: &str| -> u64 {
        // The mapping's own fields follow its line; `Private_Dirty` is one of every mapping's.
        smaps
            .lines()
            .skip_while(|l| !l.ends_with(mapping))
            .find_map(|l| l.strip_prefix("Private_Dirty:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {mapping} in {smaps}"))
    };
    let (heap, stack) = (held("[heap]"), held("[stack]"));
    assert!(
        heap + stack <= 24,
        "PID 1 holds {heap} KiB of heap and {stack} KiB of stack"
    );
    // Its page tables map its binary, heap and stack alone: 28 KiB, or 32 with the heap past the
    // first GiB; 36 KiB or more while it kept the vDSO and an alternate signal stack, mapped in a
    // region of their own.
    let tables = status_kb(init, "VmPTE:");
    assert!(tables <= 32, "PID 1's page tables: {tables} KiB");
    server.stop();
}

/// A running environment whose PID 1 was handed to the server costs the server no control
/// socket: PID 1 closes its end once its function runs, and every descriptor the server keeps per
/// environment counts against its limit with thousands of them.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_environment_costs_the_server_no_control_socket() {
    let (_dir, mut server, c) = server_with("few").await;
    let pid = server.child.id();
    // Sandboxes made ahead, each PID 1 by now, and those of them running a function.
    let sandboxes = || {
        let inits: Vec<u32> = children_of(pid)
            .into_iter()
            .filter(|(p, comm)| comm == "sandbox-init" && pid_one(*p))
            .map(|(p, _)| p)
            .collect();
        let running = inits
            .iter()
            .filter(|&&p| children_of(p).iter().any(|(_, comm)| comm == "bootstrap"))
            .count();
        (inits.len() - running, running)
    };
    let settled = |want: (usize, usize)| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while sandboxes() != want {
            assert!(Instant::now() < deadline, "sandboxes: {:?}", sandboxes());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    settled((2, 0)).await;
    let before = unix_sockets(pid);
    invoke_json(&c, "few", &serde_json::json!({})).await;
    // One environment runs; the sandbox it took is made again.
    settled((2, 1)).await;
    let after = unix_sockets(pid);
    assert!(
        after <= before,
        "{before} Unix sockets with two sandboxes waiting, {after} with one running beside them"
    );
    server.stop();
}

/// A server of its own, its data in a new directory, with `name` deployed at 128 MB.
async fn server_with(name: &str) -> (tempfile::TempDir, ServerProcess, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let c = sdk_client(&server.endpoint(), "test", "test", "us-east-1");
    deploy(&c, name, 128).await;
    (dir, server, c)
}

/// How many Unix sockets `pid` holds (its descriptors that `/proc/net/unix` lists).
fn unix_sockets(pid: u32) -> usize {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap();
    let unix: std::collections::HashSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6))
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    descriptors(pid)
        .iter()
        .filter(|(_, link)| unix.contains(link))
        .count()
}
