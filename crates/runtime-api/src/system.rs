//! What sandboxes see of the system: a curated tree (see `lamina_sandbox::sysroot`) holding the
//! interpreters of the runtimes this host serves with their standard libraries, a small set of
//! shell tools (custom runtimes are often shell scripts calling `curl`), the C and C++ runtime
//! libraries and common ones native packages link against, TLS roots, time zones, a synthetic
//! `/etc`, and Lamina's runtime clients at `/var/runtime`.

use std::path::{Path, PathBuf};

use lamina_sandbox::sysroot::Plan;

use crate::runtimes::{self, Offered};

/// Shell tools every sandbox has (those the host has).
const TOOLS: &[&str] = &[
    "sh",
    "dash",
    "bash",
    "env",
    "cat",
    "echo",
    "ls",
    "cp",
    "mv",
    "rm",
    "mkdir",
    "rmdir",
    "mktemp",
    "sleep",
    "tr",
    "cut",
    "head",
    "tail",
    "wc",
    "sort",
    "uniq",
    "tee",
    "touch",
    "chmod",
    "ln",
    "readlink",
    "realpath",
    "dirname",
    "basename",
    "true",
    "false",
    "test",
    "[",
    "printf",
    "seq",
    "expr",
    "stat",
    "date",
    "id",
    "uname",
    "grep",
    "sed",
    "awk",
    "mawk",
    "find",
    "xargs",
    "tar",
    "gzip",
    "gunzip",
    "zcat",
    "curl",
    "base64",
    "sha256sum",
    "md5sum",
    "od",
    "kill",
    "which",
    "timeout",
    "nproc",
    "du",
    "df",
    "sync",
];

/// Libraries native code commonly links against, beyond what the closure finds.
const LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libresolv.so.2",
    "libnss_files.so.2",
    "libnss_dns.so.2",
    "libutil.so.1",
    "libanl.so.1",
    "libcrypt.so.1",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
    "libssl.so.3",
    "libcrypto.so.3",
    "libcurl.so.4",
    "libffi.so.8",
    "libexpat.so.1",
    "libsqlite3.so.0",
    "libbz2.so.1.0",
    "liblzma.so.5",
    "libzstd.so.1",
    "libuuid.so.1",
];

/// Host data directories functions rely on.
const DATA: &[&str] = &[
    "/usr/share/zoneinfo",
    "/usr/share/ca-certificates",
    "/usr/lib/ssl",
    "/usr/lib/locale/C.utf8",
    "/etc/ssl",
    "/etc/ld.so.cache",
    "/etc/localtime",
];

/// Files of the synthetic `/etc`: enough for name lookups, nothing of the host's.
const ETC_FILES: &[(&str, &str)] = &[
    (
        "passwd",
        "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
    ),
    ("group", "root:x:0:\nnobody:x:65534:\n"),
    ("hosts", "127.0.0.1 localhost\n::1 localhost\n"),
    (
        "nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
    ),
];

/// The plan of the sysroot for these runtimes.
pub fn plan(offered: &[Offered], resolv_conf: Option<&str>) -> Plan {
    let mut include: Vec<PathBuf> = Vec::new();
    for tool in TOOLS {
        for dir in ["/usr/bin", "/bin"] {
            let p = Path::new(dir).join(tool);
            if p.exists() {
                include.push(p);
                break;
            }
        }
    }
    let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
    for lib in LIBRARIES {
        for dir in [
            format!("/usr/lib/{triple}"),
            format!("/lib/{triple}"),
            "/usr/lib64".into(),
        ] {
            let p = Path::new(&dir).join(lib);
            if p.exists() {
                include.push(p);
                break;
            }
        }
    }
    include.extend(DATA.iter().map(PathBuf::from));
    let mut exclude = vec![PathBuf::from("/etc/ssl/private")];
    for r in offered {
        let Some(interpreter) = &r.interpreter else {
            continue;
        };
        include.push(interpreter.clone());
        // The unversioned names scripts and shebangs use (`#!/usr/bin/env python3`).
        let dir = interpreter.parent().unwrap_or(Path::new("/usr/bin"));
        for alias in ["python3", "python", "node", "nodejs"] {
            let p = dir.join(alias);
            if p.exists()
                && std::fs::canonicalize(&p).ok() == std::fs::canonicalize(interpreter).ok()
            {
                include.push(p);
            }
        }
        if let Some(minor) = r.id.strip_prefix("python") {
            // The standard library, without its own test suite (a quarter of its size).
            for prefix in ["/usr/lib", "/usr/local/lib"] {
                let lib = Path::new(prefix).join(format!("python{minor}"));
                if lib.exists() {
                    exclude.push(lib.join("test"));
                    include.push(lib);
                }
            }
        }
    }
    let mut synthetic: Vec<(PathBuf, String)> = ETC_FILES
        .iter()
        .map(|(name, content)| (Path::new("/etc").join(name), (*content).to_owned()))
        .collect();
    // With egress, the host's resolvers; without, a loopback resolver that fails at once.
    synthetic.push((
        "/etc/resolv.conf".into(),
        resolv_conf.unwrap_or("nameserver 127.0.0.1\n").to_owned(),
    ));
    synthetic.push((
        "/var/runtime/bootstrap.py".into(),
        runtimes::PYTHON_CLIENT.to_owned(),
    ));
    synthetic.push((
        "/var/runtime/index.cjs".into(),
        runtimes::NODE_CLIENT.to_owned(),
    ));
    Plan {
        include,
        exclude,
        synthetic,
    }
}
