//! The relay baseline of `lamina bench`: the least any Lambda emulator has to do for a warm
//! invoke, measured beside Lamina in the same run.
//!
//! The relay is a bare hyper server on loopback with no isolation, no accounting and no logs. It
//! takes an event on `POST /invoke`, hands it to whichever runtime is waiting in `GET …/next`,
//! and answers with whatever that runtime posts to `…/{id}/response`. Its runtimes are the
//! native echo bootstrap of the `native 1769 MB` row (this binary run as `bootstrap`), as plain
//! processes of this user, one per concurrent caller (64). So the relay makes the same HTTP
//! exchanges as a Lamina invoke — the client's, the runtime's `/next` and its `/response` — and
//! what Lamina costs beyond it is the platform: sandboxes, scheduling, REPORT lines, logs,
//! usage.

use std::collections::HashMap;
use std::convert::Infallible;
use std::os::unix::process::CommandExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::bench::{Stats, Target, bar, servers, stats};

/// One closed-loop round: calls per second, and the whole machine's CPU time per call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Round {
    pub(crate) per_s: f64,
    /// Busy CPU time of all CPUs (user, system, interrupts) over the round, per call, µs: what
    /// a call costs the machine, client, servers, functions and kernel together. Less noisy
    /// than a rate on a shared machine, since waiting is not counted.
    pub(crate) cpu_us: f64,
}

/// Per concurrency: Lamina's round, the echo's and the relay's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    pub(crate) concurrency: usize,
    pub(crate) lamina: Round,
    pub(crate) echo: Round,
    pub(crate) relay: Round,
}

pub(crate) type Rates = Vec<Rate>;

/// Far enough ahead that no runtime ever sees its deadline (epoch ms, 2100).
const DEADLINE_MS: &str = "4102444800000";

#[derive(Debug)]
struct State {
    waiting_tx: mpsc::UnboundedSender<(u64, Bytes)>,
    waiting: Mutex<mpsc::UnboundedReceiver<(u64, Bytes)>>,
    answers: std::sync::Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
    ids: AtomicU64,
}

/// A running relay and its runtimes; both stop when it is dropped.
pub(crate) struct Relay {
    pub(crate) url: String,
    server: tokio::task::JoinHandle<()>,
    runtimes: Vec<std::process::Child>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.server.abort();
        for child in &mut self.runtimes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the relay with `runtimes` echo runtimes polling it.
pub(crate) async fn start(runtimes: usize) -> anyhow::Result<Relay> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (waiting_tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(State {
        waiting_tx,
        waiting: Mutex::new(rx),
        answers: std::sync::Mutex::new(HashMap::new()),
        ids: AtomicU64::new(1),
    });
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let mut relay = Relay {
        url: format!("http://{addr}/invoke"),
        server,
        runtimes: Vec::with_capacity(runtimes),
    };
    let me = std::env::current_exe().context("cannot find our own binary")?;
    for _ in 0..runtimes {
        let child = std::process::Command::new(&me)
            .arg0("bootstrap")
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("cannot start the relay's echo runtime")?;
        relay.runtimes.push(child);
    }
    Ok(relay)
}

/// Warm latency of the echo on the client's thread, the echo at `echo_url` (in the servers'
/// runtime), the relay and Lamina's warm native 1769 MB function at `base`, interleaved; then
/// throughput at concurrency 1, 8 and 64: Lamina's, the echo's and the relay's.
pub(crate) async fn against_relay(
    http: &reqwest::Client,
    base: &str,
    floor_url: &str,
    echo_url: &str,
    warm: usize,
    json: bool,
) -> anyhow::Result<([Stats; 4], Rates)> {
    // A relay runtime for each of up to 64 callers.
    let relay = servers().spawn(start(64)).await??;
    let warm_name = "warm-native-1769";
    // A caller of `post` to `url`, for the rounds.
    let poster = |url: String| {
        let http = http.clone();
        move || {
            let (http, url) = (http.clone(), url.clone());
            async move { post(&http, &url).await }
        }
    };
    let target = Target {
        http: http.clone(),
        base: base.to_owned(),
    };
    let lamina = move || {
        let target = target.clone();
        async move { target.invoke(warm_name).await.map(drop) }
    };

    // The four side by side, one request of each in turn, so that noise falls on all alike.
    let calls = [
        poster(floor_url.to_owned()),
        poster(echo_url.to_owned()),
        poster(relay.url.clone()),
    ];
    let mut sides: [Vec<f64>; 4] = Default::default();
    for _ in 0..20 {
        calls[2]().await?;
    }
    let b = bar(warm, "interleaved", json);
    for _ in 0..warm {
        for (call, side) in calls.iter().zip(&mut sides) {
            side.push(timed(call()).await?);
        }
        sides[3].push(timed(lamina()).await?);
        b.inc(1);
    }
    b.finish_and_clear();
    let interleaved = sides.map(stats);

    // Throughput at several concurrencies of the native function with a whole vCPU, the echo and
    // the relay next to it. One untimed round at each concurrency first, so that the timed ones
    // are warm (as many environments as callers).
    let mut throughput = Vec::new();
    for c in [1usize, 8, 64] {
        // At least 3000 calls (100 per caller) per round: a shorter one is over in a fraction
        // of a second, within the noise of a scheduler's time slice.
        let per = (warm.max(3000) / c).max(100);
        closed_loop(c, 1, lamina.clone()).await?;
        // That round took sandboxes made ahead of time: the pool makes their replacements in
        // the background, which would otherwise share the CPU with the timed rounds.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let echo = closed_loop(c, per, poster(echo_url.to_owned())).await?;
        let relay = closed_loop(c, per, poster(relay.url.clone())).await?;
        let lamina = closed_loop(c, per, lamina.clone()).await?;
        throughput.push(Rate {
            concurrency: c,
            lamina,
            echo,
            relay,
        });
    }
    drop(relay);
    Ok((interleaved, throughput))
}

/// One request to an echo (or the relay): the body every baseline gets.
pub(crate) async fn post(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let r = http.post(url).body(r#"{"bench":true}"#).send().await?;
    anyhow::ensure!(r.status().is_success(), "{url} answered {}", r.status());
    r.bytes().await?;
    Ok(())
}

/// How long `call` took, ms.
pub(crate) async fn timed(
    call: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    call.await?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// The busy time of all CPUs since boot (user, nice, system, irq and softirq in `/proc/stat`),
/// µs.
fn busy_us() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("/proc/stat has no cpu line")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(ticks.len() >= 7, "/proc/stat's cpu line is short");
    // `/proc/stat` counts in USER_HZ, 100 a second on every architecture Lamina runs on.
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6];
    Ok(busy * 10_000)
}

/// `c` callers, each making `per` calls in a closed loop: calls per second and CPU per call.
async fn closed_loop<F, C>(c: usize, per: usize, call: C) -> anyhow::Result<Round>
where
    C: Fn() -> F + Clone + Send + 'static,
    F: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let busy = busy_us()?;
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..c {
        let call = call.clone();
        set.spawn(async move {
            for _ in 0..per {
                call().await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let calls = (per * c) as f64;
    Ok(Round {
        per_s: calls / t.elapsed().as_secs_f64(),
        cpu_us: busy_us()?.saturating_sub(busy) as f64 / calls,
    })
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let reply = |status: StatusCode, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        r
    };
    let body = |req: Request<Incoming>| async move {
        req.into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default()
    };
    if path == "/invoke" {
        let event = body(req).await;
        let id = state.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&state.answers).insert(id, tx);
        let _ = state.waiting_tx.send((id, event));
        let answer = rx.await.unwrap_or_default();
        return Ok(reply(StatusCode::OK, answer));
    }
    if path == "/2018-06-01/runtime/invocation/next" {
        let Some((id, event)) = state.waiting.lock().await.recv().await else {
            return Ok(reply(StatusCode::GONE, Bytes::new()));
        };
        let mut r = reply(StatusCode::OK, event);
        let h = r.headers_mut();
        h.insert("content-type", "application/json".parse().expect("valid"));
        h.insert("lambda-runtime-aws-request-id", id.into());
        h.insert(
            "lambda-runtime-deadline-ms",
            DEADLINE_MS.parse().expect("valid"),
        );
        return Ok(r);
    }
    let id = path
        .strip_prefix("/2018-06-01/runtime/invocation/")
        .and_then(|rest| rest.strip_suffix("/response"))
        .and_then(|id| id.parse::<u64>().ok());
    let Some(id) = id else {
        return Ok(reply(StatusCode::NOT_FOUND, Bytes::new()));
    };
    let answer = body(req).await;
    if let Some(tx) = lock(&state.answers).remove(&id) {
        let _ = tx.send(answer);
    }
    Ok(reply(
        StatusCode::ACCEPTED,
        Bytes::from_static(br#"{"status":"OK"}"#),
    ))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
