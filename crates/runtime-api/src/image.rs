//! What an environment's process is: its root, argv, working directory and environment. Zip
//! functions get the curated system tree with their code at `/var/task` and Lambda's variables
//! for their runtime ([`env_vars`]); image functions get
//! their image's root, each top-level entry bound read-only (or recreated, for a symlink) on
//! the sandbox's own small root, where `/tmp`, `/proc` and `/dev` are the sandbox's.

use std::collections::BTreeMap;
use std::path::Path;

use lamina_sandbox::rootfs::Bind;

use crate::apis::Credentials;
use crate::env::RUNTIME_API_PORT;
use crate::{FunctionRuntime, ImageRun, Offered};

/// The parts of a sandbox's spec that depend on how the function is packaged.
pub(crate) struct Launch {
    pub binds: Vec<Bind>,
    pub symlinks: Vec<(String, String)>,
    pub cwd: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The binds extend the root's base every sandbox builds ahead (the system tree); else they
    /// are the whole root.
    pub on_base: bool,
}

/// Entries an image root may have at its top level.
const MAX_TOP_LEVEL: usize = 256;

/// Names the sandbox provides itself, whatever the image holds there.
const OWN: &[&str] = &["tmp", "proc", "dev", "oldroot"];

/// The launch of an image function whose root is `f.code_tree`.
pub(crate) fn launch(
    f: &FunctionRuntime,
    image: &ImageRun,
    stream: &str,
    creds: &Credentials,
) -> Result<Launch, String> {
    if image.argv.is_empty() {
        return Err(
            "the image has no ENTRYPOINT or CMD, and ImageConfig sets neither: nothing to run"
                .into(),
        );
    }
    let root = &f.code_tree;
    let (binds, symlinks) =
        top_level(root).map_err(|e| format!("the image root of {} cannot be read: {e}", f.name))?;
    Ok(Launch {
        binds,
        symlinks,
        cwd: image.cwd.clone(),
        argv: image.argv.clone(),
        env: env(f, image, stream, creds),
        on_base: false,
    })
}

/// Binds and symlinks (name, target) that present a root's top level.
type TopLevel = (Vec<Bind>, Vec<(String, String)>);

fn top_level(root: &Path) -> std::io::Result<TopLevel> {
    let mut binds = Vec::new();
    let mut symlinks = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(root)?.collect::<Result<_, _>>()?;
    // Each entry is a mount on every cold start: a root of thousands would be a burden on the
    // kernel's mount table shared by every sandbox.
    if entries.len() > MAX_TOP_LEVEL {
        return Err(std::io::Error::other(format!(
            "the image has {} entries at its root; at most {MAX_TOP_LEVEL} are supported",
            entries.len()
        )));
    }
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if OWN.contains(&name.as_str()) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            symlinks.push((name, target.to_string_lossy().into_owned()));
        } else if kind.is_dir() || kind.is_file() {
            binds.push(Bind {
                source: entry.path(),
                target: Path::new("/").join(&name),
                file: kind.is_file(),
            });
        }
    }
    Ok((binds, symlinks))
}

/// The image's `Env`, then the function's variables, then Lambda's reserved ones. `_HANDLER`
/// and `AWS_EXECUTION_ENV` are left to the image (the AWS base images' entry point sets
/// `_HANDLER` from CMD).
fn env(
    f: &FunctionRuntime,
    image: &ImageRun,
    stream: &str,
    creds: &Credentials,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = image.env.iter().cloned().collect();
    env.extend(f.environment.clone());
    reserved(&mut env, f, stream, creds);
    env.entry("TZ".into()).or_insert_with(|| ":UTC".into());
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    env.entry("LAMBDA_TASK_ROOT".into())
        .or_insert_with(|| "/var/task".into());
    env.into_iter().collect()
}

/// Lambda's reserved variables, which no function or image value overrides, and the
/// environment's credentials for Lamina's APIs (see [`crate::apis`]).
fn reserved(
    env: &mut BTreeMap<String, String>,
    f: &FunctionRuntime,
    stream: &str,
    creds: &Credentials,
) {
    let runtime_api = format!("127.0.0.1:{RUNTIME_API_PORT}");
    for (k, v) in [
        ("AWS_REGION", f.region.to_string()),
        ("AWS_DEFAULT_REGION", f.region.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", f.name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", f.version.to_string()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", f.log_group.clone()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream.to_owned()),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.clone()),
    ]
    .into_iter()
    .chain(f.logging.env())
    {
        env.insert(k.to_owned(), v);
    }
    creds.set_in(env, &runtime_api);
}

/// A zip function's environment: its variables, then Lambda's for its runtime.
pub(crate) fn env_vars(
    f: &FunctionRuntime,
    offered: &Offered,
    stream: &str,
    creds: &Credentials,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = f.environment.clone();
    // The runtime clients' own, which would make a plain start wait for a launch that never
    // comes (CreateFunction refuses names that do not start with a letter; this is the backstop).
    env.remove(lamina_sandbox::ZYGOTE_VAR);
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("_HANDLER", f.handler.clone());
    if !offered.id.starts_with("provided") {
        set("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", offered.id));
    }
    reserved(&mut env, f, stream, creds);
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("LAMBDA_TASK_ROOT", "/var/task".into());
    set("LAMBDA_RUNTIME_DIR", "/var/runtime".into());
    set("TZ", ":UTC".into());
    env.entry("LANG".into())
        .or_insert_with(|| "en_US.UTF-8".into());
    env.entry("PATH".into())
        .or_insert_with(|| "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin".into());
    env.entry("LD_LIBRARY_PATH".into()).or_insert_with(|| {
        "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".into()
    });
    if offered.id.starts_with("python") {
        let minor = offered.id.trim_start_matches("python");
        env.entry("PYTHONPATH".into()).or_insert_with(|| {
            format!("/var/runtime:/opt/python/lib/python{minor}/site-packages:/opt/python")
        });
    }
    if let Some(major) = offered
        .id
        .strip_prefix("nodejs")
        .and_then(|v| v.strip_suffix(".x"))
    {
        env.entry("NODE_PATH".into()).or_insert_with(|| {
            format!("/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task")
        });
    }
    env.entry("AWS_XRAY_CONTEXT_MISSING".into())
        .or_insert_with(|| "LOG_ERROR".into());
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_roots_are_bound_entry_by_entry_and_env_layers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["usr", "var", "tmp", "proc"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        std::fs::write(root.join("entry.sh"), "").unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        let (binds, links) = top_level(root).unwrap();
        let targets: Vec<_> = binds
            .iter()
            .map(|b| b.target.display().to_string())
            .collect();
        assert_eq!(targets, ["/entry.sh", "/usr", "/var"]);
        assert!(binds[0].file && !binds[1].file);
        assert_eq!(links, [("bin".to_owned(), "usr/bin".to_owned())]);

        let mut f = FunctionRuntime {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: "f".into(),
            version: "$LATEST".into(),
            revision_id: "r".into(),
            runtime: String::new(),
            handler: String::new(),
            memory_mb: 128,
            timeout_s: 3,
            tmp_mb: 512,
            environment: Default::default(),
            code_tree: root.to_path_buf(),
            opt_tree: None,
            packages: vec![],
            log_group: "/aws/lambda/f".into(),
            logging: Default::default(),
            function_arn: "arn".into(),
            image: None,
            vpc: None,
        };
        f.environment.insert("MODE".into(), "function".into());
        f.environment
            .insert("AWS_LAMBDA_RUNTIME_API".into(), "evil:1".into());
        let image = ImageRun {
            argv: vec!["/entry.sh".into()],
            cwd: "/var/task".into(),
            env: vec![
                ("MODE".into(), "image".into()),
                ("PATH".into(), "/var/lang/bin:/usr/bin".into()),
            ],
        };
        let creds = Credentials::mint(f.account.clone()).unwrap();
        let env: BTreeMap<_, _> = env(&f, &image, "s", &creds).into_iter().collect();
        assert_eq!(env["MODE"], "function");
        assert_eq!(env["PATH"], "/var/lang/bin:/usr/bin");
        assert_eq!(
            env["AWS_LAMBDA_RUNTIME_API"],
            format!("127.0.0.1:{RUNTIME_API_PORT}")
        );
        assert!(!env.contains_key("_HANDLER"));
        assert_eq!(env["AWS_ACCESS_KEY_ID"], creds.access_key_id);
        assert_eq!(
            env["AWS_ENDPOINT_URL_LAMBDA"],
            format!("http://127.0.0.1:{RUNTIME_API_PORT}")
        );
    }
}
