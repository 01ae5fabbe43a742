//! The extensions part of `lamina bench`: the `lambda_runtime` echo at 1769 MB with an external
//! extension (the `lambda-extension` crate's `examples/rust_extension`, registered for `INVOKE`
//! and `SHUTDOWN`, doing no work) in a layer, and the same function without, interleaved: what
//! an extension adds to a cold start (its launch, its registration, INIT's wait for it) and to a
//! warm invoke (its `INVOKE`, which the next invocation waits for): back to back, and
//! [`SPACED`] apart, when the extension is done before the next one comes.

use anyhow::bail;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::bench::{Target, bar, example_or, stats, zip_of};

/// Warm invokes of each function per round, after one to settle; as many again spaced.
const WARM_PER_ROUND: usize = 20;
/// The pause before each spaced warm invoke.
const SPACED: std::time::Duration = std::time::Duration::from_millis(2);

/// `rounds` rounds (none: `None`), each a cold start of a new function with the extension and of
/// one without, then [`WARM_PER_ROUND`] warm invokes of each, alternated, back to back and then
/// spaced. `bootstrap` is the echo's zip, and `extension` the extension's file (by default the
/// example next to this binary); without either the part is left out, with a note.
pub async fn run(
    target: &Target,
    bootstrap: Option<&[u8]>,
    extension: Option<&std::path::Path>,
    rounds: usize,
    json_out: bool,
) -> anyhow::Result<Option<Value>> {
    if rounds == 0 {
        return Ok(None);
    }
    let Some(bootstrap) = bootstrap else {
        eprintln!("note: the extensions part needs the lambda_runtime bootstrap: left out");
        return Ok(None);
    };
    let flag = "--rust-extension";
    let found = example_or(extension, "rust_extension", "the extensions part", flag)?;
    let Some(extension) = found else {
        return Ok(None);
    };
    let layer = publish(target, &zip_of(&[("extensions/probe", &extension, 0o755)])?).await?;
    let b = bar(rounds, "with an extension", json_out);
    let [mut cold, mut warm, mut spaced] = [(); 3].map(|()| [Vec::new(), Vec::new()]);
    for round in 0..rounds {
        let names = [format!("ext-without-{round}"), format!("ext-with-{round}")];
        for (i, name) in names.iter().enumerate() {
            let layers = if i == 1 { vec![layer.clone()] } else { vec![] };
            create(target, name, bootstrap, &layers).await?;
            cold[i].push(target.invoke(name).await?);
            target.invoke(name).await?;
        }
        for _ in 0..WARM_PER_ROUND {
            for (i, name) in names.iter().enumerate() {
                warm[i].push(target.invoke(name).await?);
            }
        }
        for _ in 0..WARM_PER_ROUND {
            for (i, name) in names.iter().enumerate() {
                tokio::time::sleep(SPACED).await;
                spaced[i].push(target.invoke(name).await?);
            }
        }
        b.inc(1);
    }
    b.finish_and_clear();
    let pair = |[without, with]: [Vec<f64>; 2]| {
        let (without, with) = (stats(without), stats(with));
        let ratio = with.p50_ms / without.p50_ms;
        json!({ "without": without, "with": with, "p50_ratio": ratio })
    };
    Ok(Some(
        json!({ "cold": pair(cold), "warm": pair(warm), "warm_spaced": pair(spaced) }),
    ))
}

/// Publishes a layer of `zip`; returns its version's ARN.
async fn publish(target: &Target, zip: &[u8]) -> anyhow::Result<String> {
    let body = json!({
        "Content": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    });
    let r = target
        .http
        .post(format!(
            "{}/2018-10-31/layers/bench-extension/versions",
            target.base
        ))
        .json(&body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "publishing the extension's layer failed: {}",
            r.text().await?
        );
    }
    let published: Value = r.json().await?;
    match published["LayerVersionArn"].as_str() {
        Some(arn) => Ok(arn.to_owned()),
        None => bail!("the layer's answer has no LayerVersionArn: {published}"),
    }
}

/// Creates the echo at 1769 MB (one vCPU) as `name`, with `layers`.
async fn create(target: &Target, name: &str, zip: &[u8], layers: &[String]) -> anyhow::Result<()> {
    let body = json!({
        "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
        "MemorySize": 1769, "Role": "arn:aws:iam::000000000000:role/bench", "Timeout": 30,
        "Layers": layers,
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    });
    target.create_from(&body).await
}

/// The table line.
pub fn print(x: &Value) {
    let ms = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let spaced = format!("warm, {} ms apart", SPACED.as_millis());
    for (phase, label) in [
        ("cold", "cold"),
        ("warm", "warm"),
        ("warm_spaced", &*spaced),
    ] {
        let p = &x[phase];
        println!(
            "rust lambda_runtime 1769 MB {label} with an extension: p50 (p99) ms {:.3} ({:.3}), without {:.3} ({:.3}): {:.2}x; {} each, interleaved",
            ms(&p["with"]["p50_ms"]),
            ms(&p["with"]["p99_ms"]),
            ms(&p["without"]["p50_ms"]),
            ms(&p["without"]["p99_ms"]),
            ms(&p["p50_ratio"]),
            p["with"]["n"],
        );
    }
}
