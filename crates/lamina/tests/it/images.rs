//! Container images: built here as OCI layouts (a static busybox runtime layer, and a layer that
//! deletes and overrides files), pushed to Lamina's registry with skopeo after `aws ecr
//! get-login-password`, run as functions created with the AWS CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::awscli::aws_cli;
use crate::helpers::*;

/// A shell Runtime API client on busybox: it answers what the image's files and environment
/// look like from inside.
const BOOTSTRAP: &str = r#"#!/bin/sh
API=http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime
while true; do
  EVENT=$(wget -q -S -O - "$API/invocation/next" 2>/tmp/h)
  ID=$(sed -n 's/.*[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *\([^ \r]*\).*/\1/p' /tmp/h)
  if [ -e /var/task/old.txt ]; then OLD=present; else OLD=gone; fi
  CACHE=$(ls /opt/cache | tr '\n' ' ')
  BODY="{\"greeting\":\"$(cat /etc/greeting)\",\"old\":\"$OLD\",\"cache\":\"$CACHE\",\"from\":\"$GREETING_FROM\",\"mode\":\"$MODE\",\"args\":\"$*\",\"cwd\":\"$(pwd)\",\"event\":$EVENT}"
  wget -q -O /dev/null --post-data "$BODY" "$API/invocation/$ID/response"
done
"#;

pub fn skopeo() -> &'static str {
    assert!(
        Command::new("skopeo")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "skopeo is not installed: `apt-get install skopeo` (.ci/run installs it)"
    );
    "skopeo"
}

pub enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Link(&'a str, &'a str),
    Dir(&'a str),
}

pub fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            Entry::File(name, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(*mode);
                b.append_data(&mut h, name, *data).unwrap();
            }
            Entry::Link(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, name, target).unwrap();
            }
            Entry::Dir(name) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes an OCI layout at `dir` with one image tagged `tag`; layers are `(tar, gzip?)`.
pub fn oci_layout(dir: &Path, tag: &str, layers: &[(Vec<u8>, bool)], config: serde_json::Value) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = digest(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        d
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, gzip) in layers {
        diff_ids.push(digest(tar));
        let (blob, media) = if *gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, tar).unwrap();
            (
                enc.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        } else {
            (tar.clone(), "application/vnd.oci.image.layer.v1.tar")
        };
        descriptors.push(
            serde_json::json!({ "mediaType": media, "digest": put(&blob), "size": blob.len() }),
        );
    }
    let mut config = config;
    config["rootfs"] = serde_json::json!({ "type": "layers", "diff_ids": diff_ids });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config), "size": config.len() },
        "layers": descriptors,
    }))
    .unwrap();
    let m = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": manifest.len(),
        "annotations": { "org.opencontainers.image.ref.name": tag },
    }] });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// The runtime layer: static busybox with its applets, the bootstrap, files the next layer
/// changes.
pub fn base_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect(
        "a static busybox at /bin/busybox is needed to build test images: `apt-get install busybox-static`",
    );
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::File("bin/busybox", &busybox, 0o755),
        Entry::Dir("etc"),
        Entry::File("etc/greeting", b"v1", 0o644),
        Entry::Dir("var"),
        Entry::Dir("var/runtime"),
        Entry::File("var/runtime/bootstrap", BOOTSTRAP.as_bytes(), 0o755),
        Entry::Dir("var/task"),
        Entry::File("var/task/old.txt", b"old", 0o644),
        Entry::Dir("opt"),
        Entry::Dir("opt/cache"),
        Entry::File("opt/cache/a", b"a", 0o644),
        Entry::File("opt/cache/b", b"b", 0o644),
    ];
    let applets = ["sh", "wget", "sed", "ls", "tr", "cat"];
    let names: Vec<String> = applets.iter().map(|a| format!("bin/{a}")).collect();
    for n in &names {
        entries.push(Entry::Link(n, "busybox"));
    }
    tar_of(&entries)
}

/// The second layer: overrides the greeting, deletes a file, makes `/opt/cache` opaque.
pub fn change_layer(greeting: &str) -> Vec<u8> {
    tar_of(&[
        Entry::Dir("etc"),
        Entry::File("etc/greeting", greeting.as_bytes(), 0o644),
        Entry::Dir("var"),
        Entry::Dir("var/task"),
        Entry::File("var/task/.wh.old.txt", b"", 0o644),
        Entry::Dir("opt"),
        Entry::Dir("opt/cache"),
        Entry::File("opt/cache/.wh..wh..opq", b"", 0o644),
        Entry::File("opt/cache/c", b"c", 0o644),
    ])
}

/// An OCI layout at `layout` of the busybox runtime image tagged `tag`, whose second layer
/// writes `greeting`.
pub fn busybox_image(layout: &Path, tag: &str, greeting: &str) {
    oci_layout(
        layout,
        tag,
        &[(base_layer(), true), (change_layer(greeting), false)],
        image_config(),
    );
}

pub fn image_config() -> serde_json::Value {
    serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/var/runtime/bootstrap"],
            "Cmd": ["from-image"],
            "WorkingDir": "/var/task",
            "Env": ["PATH=/bin", "GREETING_FROM=image", "MODE=image"],
        },
    })
}

pub struct Aws {
    pub cli: PathBuf,
    pub endpoint: String,
    /// Access key id and secret.
    pub key: (&'static str, &'static str),
}

impl Aws {
    pub fn new(endpoint: String) -> Self {
        Self {
            cli: aws_cli(),
            endpoint,
            key: ("test", "test"),
        }
    }

    pub fn run(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = Command::new(&self.cli)
            .args([
                "--endpoint-url",
                &self.endpoint,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", self.key.0)
            .env("AWS_SECRET_ACCESS_KEY", self.key.1)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("aws runs");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.into_owned()))
        })
    }

    /// `aws lambda create-function --package-type Image --code <code> …extra`.
    pub fn create_image(
        &self,
        name: &str,
        code: &str,
        extra: &[&str],
    ) -> Result<serde_json::Value, String> {
        let mut args = vec![
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--package-type",
            "Image",
            "--code",
            code,
            "--role",
            "arn:aws:iam::000000000000:role/r",
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub fn ok(&self, args: &[&str]) -> serde_json::Value {
        self.run(args)
            .unwrap_or_else(|e| panic!("aws {args:?} failed: {e}"))
    }

    pub fn invoke(&self, function: &str, dir: &Path) -> serde_json::Value {
        let out = dir.join("out.json");
        self.ok(&[
            "lambda",
            "invoke",
            "--function-name",
            function,
            "--payload",
            r#"{"n":7}"#,
            out.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&out).unwrap();
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the function answered non-JSON ({e}): {text}"))
    }
}

pub fn push(layout: &Path, tag: &str, dest: &str, password: &str) {
    let out = Command::new(skopeo())
        .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("AWS:{password}"))
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn skopeo_pushes_an_image_the_aws_cli_runs_as_a_function_with_whiteouts_applied() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let aws = Aws::new(server.endpoint());
    let host = server.addr.to_string();
    let work = tempfile::tempdir().unwrap();

    // ECR's flow: a repository first, then a login password.
    let repo = aws.ok(&["ecr", "create-repository", "--repository-name", "test/fn"]);
    assert_eq!(
        repo["repository"]["repositoryUri"],
        format!("{host}/test/fn")
    );
    let dup = aws
        .run(&["ecr", "create-repository", "--repository-name", "test/fn"])
        .unwrap_err();
    assert!(dup.contains("RepositoryAlreadyExistsException"), "{dup}");
    let password = login(&aws);

    let v1 = work.path().join("v1");
    busybox_image(&v1, "v1", "v2");
    // A repository that does not exist is refused, as on ECR.
    let refused = Command::new(skopeo())
        .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("AWS:{password}"))
        .arg(format!("oci:{}:v1", v1.display()))
        .arg(format!("docker://{host}/nope:v1"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    push(&v1, "v1", &format!("{host}/test/fn:v1"), &password);

    let uri = format!("{host}/test/fn:v1");
    let created = aws
        .create_image(
            "img",
            &format!("ImageUri={uri}"),
            &["--environment", "Variables={MODE=function}"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created["PackageType"], "Image");
    assert!(created.get("Runtime").is_none() && created.get("Handler").is_none());
    let got = aws.ok(&["lambda", "get-function", "--function-name", "img"]);
    assert_eq!(got["Code"]["RepositoryType"], "ECR");
    assert_eq!(got["Code"]["ImageUri"], uri);
    let resolved = got["Code"]["ResolvedImageUri"].as_str().unwrap().to_owned();
    assert!(
        resolved.starts_with(&format!("{host}/test/fn@sha256:")),
        "{resolved}"
    );

    let out = aws.invoke("img", work.path());
    assert_eq!(out["greeting"], "v2", "the upper layer's file wins: {out}");
    assert_eq!(
        out["old"], "gone",
        "the whiteout removed the lower layer's file: {out}"
    );
    assert_eq!(
        out["cache"].as_str().unwrap().trim(),
        "c",
        "the opaque directory hides a and b: {out}"
    );
    assert_eq!(
        out["from"], "image",
        "the image's Env reaches the function: {out}"
    );
    assert_eq!(
        out["mode"], "function",
        "the function's variables override the image's: {out}"
    );
    assert_eq!(out["args"], "from-image", "CMD follows ENTRYPOINT: {out}");
    assert_eq!(out["cwd"], "/var/task");
    assert_eq!(out["event"]["n"], 7);

    // Version 1 is pinned to the digest; the tag then moves to a new image.
    aws.ok(&["lambda", "publish-version", "--function-name", "img"]);
    let v2 = work.path().join("v2");
    busybox_image(&v2, "v1", "v3");
    push(&v2, "v1", &format!("{host}/test/fn:v1"), &password);
    aws.ok(&[
        "lambda",
        "update-function-code",
        "--function-name",
        "img",
        "--image-uri",
        &uri,
    ]);
    aws.ok(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "img",
        "--image-config",
        "Command=override",
    ]);
    let latest = aws.invoke("img", work.path());
    assert_eq!(latest["greeting"], "v3");
    assert_eq!(
        latest["args"], "override",
        "ImageConfig.Command replaces CMD: {latest}"
    );
    let pinned = aws.invoke("img:1", work.path());
    assert_eq!(
        pinned["greeting"], "v2",
        "a published version keeps its image: {pinned}"
    );

    // The shared base layer was stored and unpacked once.
    let images = aws.ok(&["ecr", "describe-images", "--repository-name", "test/fn"]);
    assert_eq!(
        images["imageDetails"].as_array().unwrap().len(),
        2,
        "{images}"
    );
    let blobs = std::fs::read_dir(data.path().join("images/blobs/sha256"))
        .unwrap()
        .count();
    // 2 manifests + 2 configs + the shared base layer + 2 change layers.
    assert_eq!(blobs, 7);
    let layers = std::fs::read_dir(data.path().join("images/layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 3);

    // Lambda's validation.
    let e = aws
        .create_image(
            "bad",
            &format!("ImageUri={uri}"),
            &["--runtime", "python3.12", "--handler", "a.b"],
        )
        .unwrap_err();
    assert!(e.contains("InvalidParameterValueException"), "{e}");
    let e = aws
        .create_image(
            "bad",
            &format!("ImageUri={uri}"),
            &["--architectures", "arm64"],
        )
        .unwrap_err();
    assert!(
        e.contains("InvalidParameterValueException") && e.contains("amd64"),
        "{e}"
    );
    let e = aws
        .create_image("bad", &format!("ImageUri={host}/test/fn:missing"), &[])
        .unwrap_err();
    assert!(
        e.contains("InvalidParameterValueException") && e.contains("does not exist"),
        "{e}"
    );
    let e = aws
        .create_image("bad", "ImageUri=registry.example.com/x:1", &[])
        .unwrap_err();
    assert!(e.contains("not allowed on this server"), "{e}");

    // Deleting: images go, and the repository when empty or forced.
    let e = aws
        .run(&["ecr", "delete-repository", "--repository-name", "test/fn"])
        .unwrap_err();
    assert!(e.contains("RepositoryNotEmptyException"), "{e}");
    let listed = aws.ok(&["ecr", "list-images", "--repository-name", "test/fn"]);
    assert_eq!(
        listed["imageIds"].as_array().unwrap().len(),
        2,
        "one tagged, one untagged: {listed}"
    );
    // A second tag through PutImage, whose digest, when given, must be the manifest's.
    let got = aws.ok(&[
        "ecr",
        "batch-get-image",
        "--repository-name",
        "test/fn",
        "--image-ids",
        "imageTag=v1",
    ]);
    let manifest = got["images"][0]["imageManifest"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = |extra: &[&str]| {
        let mut args = vec![
            "ecr",
            "put-image",
            "--repository-name",
            "test/fn",
            "--image-tag",
            "also",
            "--image-manifest",
            &manifest,
        ];
        args.extend(extra);
        aws.run(&args)
    };
    let wrong = format!("sha256:{}", "0".repeat(64));
    let e = put(&["--image-digest", &wrong]).unwrap_err();
    assert!(e.contains("ImageDigestDoesNotMatchException"), "{e}");
    put(&[]).unwrap();
    // Both its tags in one request: the image goes with its last, as on ECR.
    let deleted = aws.ok(&[
        "ecr",
        "batch-delete-image",
        "--repository-name",
        "test/fn",
        "--image-ids",
        "imageTag=v1",
        "imageTag=also",
    ]);
    assert_eq!(
        deleted["imageIds"].as_array().unwrap().len(),
        2,
        "{deleted}"
    );
    let listed = aws.ok(&["ecr", "list-images", "--repository-name", "test/fn"]);
    assert_eq!(
        listed["imageIds"].as_array().unwrap().len(),
        1,
        "only the untagged image left: {listed}"
    );
    aws.ok(&[
        "ecr",
        "delete-repository",
        "--repository-name",
        "test/fn",
        "--force",
    ]);
    // The functions still run: their roots are theirs.
    assert_eq!(aws.invoke("img:1", work.path())["greeting"], "v2");
}

/// `aws ecr get-login-password`.
pub fn login(aws: &Aws) -> String {
    match aws.ok(&["ecr", "get-login-password"]) {
        serde_json::Value::String(s) => s.trim().to_owned(),
        other => panic!("get-login-password printed {other}"),
    }
}

/// A tar whose one entry is named `name` verbatim (the tar crate refuses to write unsafe names).
fn raw_tar(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn hostile_image_layers_are_refused_and_leave_nothing_behind() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let aws = Aws::new(server.endpoint());
    let host = server.addr.to_string();
    let work = tempfile::tempdir().unwrap();
    aws.ok(&["ecr", "create-repository", "--repository-name", "hostile"]);
    let password = login(&aws);
    for (tag, layer) in [
        ("dotdot", raw_tar(b"../escape", b"x")),
        ("absolute", raw_tar(b"/etc/escape", b"x")),
        // A whiteout of `..`: applied, it would have removed every build under way.
        ("whiteout", raw_tar(b"a/.wh...", b"")),
    ] {
        let layout = work.path().join(tag);
        oci_layout(
            &layout,
            tag,
            &[(base_layer(), true), (layer, true)],
            image_config(),
        );
        push(&layout, tag, &format!("{host}/hostile:{tag}"), &password);
        let e = aws
            .create_image(tag, &format!("ImageUri={host}/hostile:{tag}"), &[])
            .unwrap_err();
        assert!(
            e.contains("InvalidParameterValueException") && e.contains("unsafe path"),
            "{e}"
        );
        assert!(!work.path().join("escape").exists());
    }
    assert!(
        aws.run(&["lambda", "get-function", "--function-name", "dotdot"])
            .is_err()
    );
    // A document that is an index and names layers too is refused: its layers would escape the
    // check that a repository holds every blob its manifests name.
    let trick = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
        "config": { "digest": format!("sha256:{}", "0".repeat(64)), "size": 1 },
        "layers": [{ "digest": format!("sha256:{}", "1".repeat(64)), "size": 1 }],
    });
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-X",
            "PUT",
            "-H",
            "content-type: application/vnd.oci.image.index.v1+json",
            "-d",
        ])
        .arg(trick.to_string())
        .arg(format!("http://{host}/v2/hostile/manifests/trick"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("MANIFEST_INVALID"), "{body}");
    // A manifest that an index names is not deleted from under it, as ECR refuses it.
    let got = aws.ok(&[
        "ecr",
        "batch-get-image",
        "--repository-name",
        "hostile",
        "--image-ids",
        "imageTag=dotdot",
    ]);
    let image = &got["images"][0];
    let manifest = image["imageManifest"].as_str().unwrap();
    let digest = image["imageId"]["imageDigest"].as_str().unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": image["imageManifestMediaType"],
            "digest": digest,
            "size": manifest.len(),
            "platform": { "architecture": "amd64", "os": "linux" },
        }],
    });
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-X", "PUT", "-H"])
        .arg("content-type: application/vnd.oci.image.index.v1+json")
        .arg("-d")
        .arg(index.to_string())
        .arg(format!("http://{host}/v2/hostile/manifests/multi"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let deleted = aws.ok(&[
        "ecr",
        "batch-delete-image",
        "--repository-name",
        "hostile",
        "--image-ids",
        &format!("imageDigest={digest}"),
    ]);
    assert_eq!(
        deleted["failures"][0]["failureCode"], "ImageReferencedByManifestList",
        "{deleted}"
    );
    assert!(
        deleted["imageIds"].as_array().unwrap().is_empty(),
        "{deleted}"
    );
    // The base layer (good) stays cached; the hostile ones and any half-built root are gone.
    let layers = std::fs::read_dir(data.path().join("images/layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 1);
    assert_eq!(
        std::fs::read_dir(data.path().join("images/staging"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(data.path().join("code/trees"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn lamina_image_push_and_deploy_image_without_docker() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    busybox_image(&layout, "v7", "cli");
    let lamina = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .args(args)
            .args(["--endpoint", &ep, "--json"])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lamina {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "lamina {args:?} printed non-JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    };
    let pushed = lamina(&["image", "push", layout.to_str().unwrap(), "cli/fn:v7"]);
    let uri = pushed["ImageUri"].as_str().unwrap().to_owned();
    assert_eq!(uri, format!("{}/cli/fn:v7", server.addr));
    // Pushing again sends no blob twice (they exist) and changes nothing.
    let again = lamina(&["image", "push", layout.to_str().unwrap(), "cli/fn:v7"]);
    assert_eq!(again["Digest"], pushed["Digest"]);
    let listed = lamina(&["image", "ls", "cli/fn"]);
    assert_eq!(listed["imageDetails"][0]["imageTags"][0], "v7");
    lamina(&["deploy", "--name", "viacli", "--image", &uri]);
    let out = Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args([
            "invoke",
            "viacli",
            "--payload",
            r#"{"n":7}"#,
            "--endpoint",
            &ep,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["greeting"], "cli");
    assert_eq!(answer["event"]["n"], 7);
    let shown = Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(["show", "viacli", "--endpoint", &ep])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(&format!("image {uri}")), "{shown}");
    assert!(shown.contains("@sha256:"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("Tags") && l.trim_end().ends_with('-')),
        "{shown}"
    );
}
