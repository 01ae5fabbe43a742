//! The image part of `lamina bench`: a 200 MB image (this binary as a native `bootstrap`, its
//! shared libraries, and incompressible filler) pushed to the built-in registry, made a function
//! (the layer unpacked and the root built), then cold starts of that image function next to the
//! same bootstrap deployed as a zip, interleaved.
//!
//! - push: bytes of all blobs over the time of their uploads and the manifest;
//! - unpack: the big layer's bytes over (first create − second create), where the second image
//!   shares the big layer and differs in a small one, so it pays only the root build;
//! - root build: the second create.

use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bench::{Stats, bar, stats};

/// The pause between a create and its cold start.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// The image's total size.
const IMAGE_BYTES: usize = 200 << 20;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Appends a regular file to a tar being built.
fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    b.append_data(&mut h, name, data)?;
    Ok(())
}

/// The shared libraries the running binary loads (`ldd`), as (path, bytes).
fn libraries() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new("ldd")
        .arg(&exe)
        .output()
        .context("running ldd")?;
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push((p.trim_start_matches('/').to_owned(), std::fs::read(p)?));
        }
    }
    Ok(libs)
}

/// The big layer: the bootstrap, its libraries, filler to [`IMAGE_BYTES`] (uncompressed tar).
fn big_layer(me: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::with_capacity(IMAGE_BYTES + (1 << 20)));
    file(&mut b, "var/runtime/bootstrap", me, 0o755)?;
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    b.append_data(&mut h, "var/task", std::io::empty())?;
    let mut total = me.len();
    for (path, data) in libraries()? {
        total += data.len();
        file(&mut b, &path, &data, 0o755)?;
    }
    // xorshift: incompressible, reproducible, fast.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut i = 0;
    while total < IMAGE_BYTES {
        for w in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = chunk.len().min(IMAGE_BYTES - total);
        file(&mut b, &format!("opt/filler/{i:04}"), &chunk[..n], 0o644)?;
        total += n;
        i += 1;
    }
    Ok(b.into_inner()?)
}

/// A small gzip layer: (tar, blob).
fn small_layer(variant: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "etc/variant", variant.as_bytes(), 0o644)?;
    let tar = b.into_inner()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar)?;
    Ok((tar, gz.finish()?))
}

struct Registry<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
}

impl Registry<'_> {
    /// An ECR API call (signed in name only: the bench server does not verify).
    async fn ecr(&self, op: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}/", self.base))
            .header("x-amz-target", format!("AmazonEC2ContainerRegistry_V20150921.{op}"))
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature={}",
                    "0".repeat(64)
                ),
            )
            .body(body.to_string())
            .send()
            .await?;
        let ok = r.status().is_success();
        let text = r.text().await?;
        if !ok {
            bail!("{op}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn blob(&self, repo: &str, bytes: Vec<u8>) -> anyhow::Result<String> {
        let d = digest(&bytes);
        let r = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await?;
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .context("no upload location")?
            .to_owned();
        let r = self
            .http
            .put(format!("{}{location}?digest={d}", self.base))
            .body(bytes)
            .send()
            .await?;
        if r.status() != reqwest::StatusCode::CREATED {
            bail!("uploading {d}: {}", r.text().await?);
        }
        Ok(d)
    }

    /// Pushes an image of `layers` ((tar, blob, media type)); returns the bytes sent.
    async fn push(
        &self,
        repo: &str,
        tag: &str,
        layers: &[(&[u8], &[u8], &str)],
    ) -> anyhow::Result<usize> {
        let diff_ids: Vec<String> = layers.iter().map(|(tar, _, _)| digest(tar)).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": { "Entrypoint": ["/var/runtime/bootstrap"], "WorkingDir": "/var/task" },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))?;
        let mut sent = config.len();
        let mut descriptors = Vec::new();
        for (_, blob, media) in layers {
            sent += blob.len();
            let d = self.blob(repo, blob.to_vec()).await?;
            descriptors.push(json!({ "mediaType": media, "digest": d, "size": blob.len() }));
        }
        let config_digest = self.blob(repo, config.clone()).await?;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
            "layers": descriptors,
        }))?;
        let r = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest)
            .send()
            .await?;
        if r.status() != reqwest::StatusCode::CREATED {
            bail!("pushing the manifest: {}", r.text().await?);
        }
        Ok(sent)
    }
}

async fn create(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    code: Value,
    image: bool,
) -> anyhow::Result<f64> {
    let mut body = json!({
        "FunctionName": name, "Role": "arn:aws:iam::000000000000:role/bench", "MemorySize": 128,
        "Timeout": 30, "Code": code,
    });
    if image {
        body["PackageType"] = json!("Image");
    } else {
        body["Runtime"] = json!("provided.al2023");
        body["Handler"] = json!("bootstrap");
    }
    let t = Instant::now();
    let r = http
        .post(format!("{base}/2015-03-31/functions"))
        .json(&body)
        .send()
        .await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !r.status().is_success() {
        bail!("creating {name}: {}", r.text().await?);
    }
    Ok(ms)
}

async fn invoke(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let r = http
        .post(format!("{base}/2015-03-31/functions/{name}/invocations"))
        .body(r#"{"bench":true}"#)
        .send()
        .await?;
    let failed = r.headers().contains_key("x-amz-function-error") || !r.status().is_success();
    let body = r.bytes().await?;
    if failed {
        bail!("invoking {name}: {}", String::from_utf8_lossy(&body));
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// Runs the image measurements with `cold` cold starts of each kind.
pub async fn run(
    http: &reqwest::Client,
    base: &str,
    native_zip: &[u8],
    cold: usize,
    json_out: bool,
) -> anyhow::Result<Value> {
    let me = std::fs::read(std::env::current_exe()?)?;
    let big = big_layer(&me)?;
    let (a, b) = (small_layer("a")?, small_layer("b")?);
    let reg = Registry { http, base };
    reg.ecr("CreateRepository", json!({ "repositoryName": "bench" }))
        .await?;
    let host = base.trim_start_matches("http://");
    let tar = "application/vnd.oci.image.layer.v1.tar";
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let t = Instant::now();
    let sent = reg
        .push("bench", "a", &[(&big, &big, tar), (&a.0, &a.1, gz)])
        .await?;
    let push_s = t.elapsed().as_secs_f64();
    reg.push("bench", "b", &[(&big, &big, tar), (&b.0, &b.1, gz)])
        .await?;
    let first = create(
        http,
        base,
        "img-a",
        json!({ "ImageUri": format!("{host}/bench:a") }),
        true,
    )
    .await?;
    let second = create(
        http,
        base,
        "img-b",
        json!({ "ImageUri": format!("{host}/bench:b") }),
        true,
    )
    .await?;
    let zip_b64 = base64::engine::general_purpose::STANDARD.encode(native_zip);
    let bar = bar(cold * 2, "images: cold", json_out);
    let (mut image_ms, mut zip_ms) = (Vec::new(), Vec::new());
    for i in 0..cold {
        // Each create is left to settle before its cold start: a zip's create extracts the
        // package again (to check it against the limits), and the writeback would otherwise
        // land on the zip's cold start only.
        let name = format!("img-cold-{i}");
        create(
            http,
            base,
            &name,
            json!({ "ImageUri": format!("{host}/bench:a") }),
            true,
        )
        .await?;
        tokio::time::sleep(SETTLE).await;
        image_ms.push(invoke(http, base, &name).await?);
        let name = format!("zip-cold-{i}");
        create(http, base, &name, json!({ "ZipFile": zip_b64 }), false).await?;
        tokio::time::sleep(SETTLE).await;
        zip_ms.push(invoke(http, base, &name).await?);
        bar.inc(2);
    }
    bar.finish_and_clear();
    let (image, zip): (Stats, Stats) = (stats(image_ms), stats(zip_ms));
    let mb = |n: usize| n as f64 / (1 << 20) as f64;
    Ok(json!({
        "image_mb": mb(sent),
        "push_mb_per_s": mb(sent) / push_s,
        "first_create_ms": first,
        "unpack_mb_per_s": mb(big.len()) / ((first - second).max(1e-3) / 1000.0),
        "root_build_ms": second,
        "cold_image": image,
        "cold_zip": zip,
        "cold_image_minus_zip_p50_ms": image.p50_ms - zip.p50_ms,
    }))
}

/// The summary line.
pub fn print(v: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "images: a {:.0} MB image pushed at {:.0} MB/s; unpacked at {:.0} MB/s; root built in {:.0} ms (first create {:.0} ms); cold start p50 image {:.2} ms vs zip {:.2} ms ({:+.2} ms), p99 {:.2} vs {:.2}, n = {}",
        f(&v["image_mb"]),
        f(&v["push_mb_per_s"]),
        f(&v["unpack_mb_per_s"]),
        f(&v["root_build_ms"]),
        f(&v["first_create_ms"]),
        f(&v["cold_image"]["p50_ms"]),
        f(&v["cold_zip"]["p50_ms"]),
        f(&v["cold_image_minus_zip_p50_ms"]),
        f(&v["cold_image"]["p99_ms"]),
        f(&v["cold_zip"]["p99_ms"]),
        v["cold_image"]["n"],
    );
}
