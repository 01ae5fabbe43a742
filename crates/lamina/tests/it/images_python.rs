//! A Python image built the way AWS's base images are (a Linux root with python3, `awslambdaric`
//! from PyPI in `/var/runtime`, AWS's `/lambda-entrypoint.sh`, the handler as CMD) runs its
//! handler unchanged. The root is a Debian system made once by `debootstrap` and cached outside
//! the repository.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;
use crate::images::{Aws, Entry, login, oci_layout, push, tar_of};

const CACHE: &str = "/var/cache/lamina-tests/debian-bookworm-python3";

/// AWS's entry point script, as its base images ship it: the RIE only without a Runtime API.
const ENTRYPOINT: &str = r#"#!/bin/sh
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
"#;

const HANDLER: &str = r#"import errno, os, sys

def handler(event, context):
    try:
        open('/var/task/written', 'w')
        readonly = False
    except OSError as e:
        readonly = e.errno == errno.EROFS
    with open('/tmp/scratch', 'w') as f:
        f.write('ok')
    return {
        'python': sys.version.split()[0],
        'handler': os.environ.get('_HANDLER'),
        'task_root': os.environ.get('LAMBDA_TASK_ROOT'),
        'readonly': readonly,
        'uid': os.getuid(),
        'request_id': context.aws_request_id,
        'function': context.function_name,
        'event': event,
    }
"#;

/// The cached Debian root with python3, made on first use (about a minute). `Err` says why it
/// cannot be made here.
fn python_root() -> Result<PathBuf, String> {
    let root = PathBuf::from(CACHE);
    std::fs::create_dir_all(root.parent().unwrap()).map_err(|e| e.to_string())?;
    let lock = std::fs::File::create(format!("{CACHE}.lock")).map_err(|e| e.to_string())?;
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    if root.join(".complete").exists() {
        return Ok(root);
    }
    let _ = std::fs::remove_dir_all(&root);
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "--include=python3", "bookworm"])
        .arg(&root)
        .arg("http://deb.debian.org/debian")
        .output()
        .map_err(|e| format!("debootstrap cannot run ({e}): apt-get install debootstrap"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&root);
        let log = String::from_utf8_lossy(&out.stdout);
        return Err(format!(
            "debootstrap failed: {}",
            log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        ));
    }
    std::fs::write(root.join(".complete"), b"").map_err(|e| e.to_string())?;
    Ok(root)
}

/// A layer holding the system: everything but the kernel's and the sandbox's own trees.
fn system_layer(root: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let mut names: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        if ["dev", "proc", "sys", "run", "tmp", ".complete"].contains(&name.as_str()) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            b.append_dir_all(&name, e.path()).unwrap();
        } else {
            b.append_path_with_name(e.path(), &name).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// `/var/runtime` with awslambdaric (for the image's Python, the host's version) and its
/// bootstrap, the entry point, and the handler in `/var/task`.
fn function_layer(ric: &Path) -> Vec<u8> {
    let mut files = Vec::new();
    tree(ric, "", &mut files);
    let bootstrap = b"#!/bin/sh\nexec /usr/bin/python3 -m awslambdaric \"$_HANDLER\"\n";
    let mut names = vec![
        "var".to_owned(),
        "var/runtime".to_owned(),
        "var/task".to_owned(),
    ];
    let mut entries = vec![
        Entry::File("lambda-entrypoint.sh", ENTRYPOINT.as_bytes(), 0o755),
        Entry::File("var/runtime/bootstrap", bootstrap, 0o755),
        Entry::File("var/task/app.py", HANDLER.as_bytes(), 0o644),
    ];
    let mut dirs = std::collections::BTreeSet::new();
    for (name, _) in &files {
        let mut p = Path::new(name.as_str()).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(format!("var/runtime/{}", d.display()));
            p = d.parent();
        }
    }
    names.extend(dirs);
    let paths: Vec<String> = files
        .iter()
        .map(|(n, _)| format!("var/runtime/{n}"))
        .collect();
    let mut all: Vec<Entry<'_>> = names.iter().map(|n| Entry::Dir(n)).collect();
    all.append(&mut entries);
    for ((_, data), path) in files.iter().zip(&paths) {
        all.push(Entry::File(path, data, 0o644));
    }
    tar_of(&all)
}

#[test]
fn a_python_image_in_aws_base_image_style_runs_its_handler_unchanged() {
    let root = match python_root() {
        Ok(r) => r,
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED a_python_image_in_aws_base_image_style_runs_its_handler_unchanged: the Python root at {CACHE} is missing and cannot be made here: {why} ***\n"
            );
            return;
        }
    };
    let python = host_python();
    let ric = awslambdaric(&python);
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let aws = Aws::new(server.endpoint());
    let host = server.addr.to_string();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Cmd": ["app.handler"],
            "WorkingDir": "/var/task",
            "Env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "LANG=C.UTF-8",
                "LAMBDA_TASK_ROOT=/var/task",
                "LAMBDA_RUNTIME_DIR=/var/runtime",
                "PYTHONPATH=/var/runtime:/var/task",
            ],
        },
    });
    oci_layout(
        &layout,
        "3.11",
        &[(system_layer(&root), false), (function_layer(&ric), true)],
        config,
    );
    aws.ok(&[
        "ecr",
        "create-repository",
        "--repository-name",
        "lambda/python",
    ]);
    push(
        &layout,
        "3.11",
        &format!("{host}/lambda/python:3.11"),
        &login(&aws),
    );
    aws.create_image("py", &format!("ImageUri={host}/lambda/python:3.11"), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let out = aws.invoke("py", work.path());
    assert!(
        out["python"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{out}"
    );
    assert_eq!(
        out["handler"], "app.handler",
        "the entry point took the handler from CMD: {out}"
    );
    assert_eq!(out["task_root"], "/var/task");
    assert_eq!(out["readonly"], true, "the image root is read-only: {out}");
    assert_ne!(out["uid"], 0, "the function does not run as root: {out}");
    assert_eq!(out["function"], "py");
    assert_eq!(out["request_id"].as_str().unwrap().len(), 36);
    assert_eq!(out["event"]["n"], 7);
    // Warm: the same environment answers again.
    assert_eq!(aws.invoke("py", work.path())["event"]["n"], 7);
}
