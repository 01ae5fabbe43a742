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
    (
        "hosts",
        "127.0.0.1 localhost\n127.0.0.1 sandbox.localdomain sandbox\n::1 localhost\n",
    ),
    (
        "nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
    ),
];

/// Compiles the Python client with each Python interpreter offered, and marks those that
/// succeeded `compiled`: what [`plan`] puts in the tree. An interpreter that cannot compile it
/// runs the source, as before.
pub fn compile_clients(offered: &mut [Offered]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for r in offered.iter_mut().filter(|r| r.id.starts_with("python")) {
        let Some(interpreter) = &r.interpreter else {
            continue;
        };
        match compile_python(interpreter) {
            Ok(code) => {
                r.compiled = true;
                out.push((r.id.clone(), code));
            }
            Err(e) => tracing::warn!(
                interpreter = %interpreter.display(),
                error = %e,
                "cannot compile the Python runtime client; functions run its source"
            ),
        }
    }
    out
}

/// The client as a `.pyc` of `interpreter`'s version (its magic number, a header that nothing
/// checks when the file is run by path, the marshalled code), named as the source in the tree
/// so that tracebacks show its lines.
fn compile_python(interpreter: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    const COMPILE: &str = "import importlib.util, marshal, sys\n\
        code = compile(sys.stdin.buffer.read(), '/var/runtime/bootstrap.py', 'exec')\n\
        sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code))\n";
    let mut child = std::process::Command::new(interpreter)
        .args(["-I", "-c", COMPILE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Smaller than a pipe's buffer: written whole before the output is read.
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(runtimes::PYTHON_CLIENT.as_bytes())?;
    let out = child.wait_with_output()?;
    let magic_ok = out.stdout.get(2..4) == Some(b"\r\n");
    if !out.status.success() || !magic_ok || out.stdout.len() <= 16 {
        return Err(std::io::Error::other(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// The plan of the sysroot for these runtimes, with the clients [`compile_clients`] made.
pub fn plan(
    offered: &[Offered],
    resolv_conf: Option<&str>,
    compiled: &[(String, Vec<u8>)],
) -> Plan {
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
    let mut synthetic: Vec<(PathBuf, Vec<u8>)> = ETC_FILES
        .iter()
        .map(|(name, content)| (Path::new("/etc").join(name), content.as_bytes().to_vec()))
        .collect();
    // With egress, the host's resolvers; without, a loopback resolver that fails at once.
    synthetic.push((
        "/etc/resolv.conf".into(),
        resolv_conf.unwrap_or("nameserver 127.0.0.1\n").into(),
    ));
    synthetic.push((
        "/var/runtime/bootstrap.py".into(),
        runtimes::PYTHON_CLIENT.into(),
    ));
    synthetic.push((
        "/var/runtime/index.cjs".into(),
        runtimes::NODE_CLIENT.into(),
    ));
    for r in offered.iter().filter(|r| r.compiled) {
        if let Some(code) = compiled.iter().find(|(id, _)| *id == r.id) {
            synthetic.push((runtimes::compiled_client(&r.id).into(), code.1.clone()));
        }
    }
    Plan {
        include,
        exclude,
        synthetic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_client_is_compiled_for_each_interpreter_and_runs_as_its_source() {
        let mut offered = runtimes::detect();
        let python = offered
            .iter()
            .position(|r| r.id.starts_with("python"))
            .expect("this test needs a python3.X in /usr/bin or /usr/local/bin");
        let compiled = compile_clients(&mut offered);
        let r = &offered[python];
        assert!(r.compiled, "{} was not compiled", r.id);
        assert_eq!(
            runtimes::argv(r, false)[1],
            format!("/var/runtime/bootstrap.{}.pyc", r.id)
        );
        let plan = plan(&offered, None, &compiled);
        let (_, pyc) = plan
            .synthetic
            .iter()
            .find(|(p, _)| *p == Path::new(&runtimes::compiled_client(&r.id)))
            .expect("the compiled client is in the tree");
        // Run by path, it is the client: without a Runtime API it stops on the line that reads
        // one, and its traceback names the source, which the tree also holds.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bootstrap.pyc");
        std::fs::write(&file, pyc).unwrap();
        let out = std::process::Command::new(r.interpreter.as_ref().unwrap())
            .arg(&file)
            .env_clear()
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("File \"/var/runtime/bootstrap.py\"")
                && err.contains("AWS_LAMBDA_RUNTIME_API"),
            "{err}"
        );
    }

    #[test]
    fn an_interpreter_that_cannot_compile_runs_the_source() {
        let mut offered = vec![Offered {
            id: "python3.11".into(),
            interpreter: Some("/bin/false".into()),
            compiled: false,
        }];
        assert!(compile_clients(&mut offered).is_empty());
        assert!(!offered[0].compiled);
        assert_eq!(
            runtimes::argv(&offered[0], false)[1],
            "/var/runtime/bootstrap.py"
        );
    }
}
