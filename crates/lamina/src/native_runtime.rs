//! A minimal native custom runtime: when this binary runs as `bootstrap` inside a sandbox, it
//! polls the Runtime API and echoes each event back. `lamina bench` deploys it to measure the
//! platform with a runtime whose own cost is close to zero.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

fn read_response(r: &mut impl BufRead) -> std::io::Result<(Option<String>, Vec<u8>)> {
    let mut len = 0usize;
    let mut request_id = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                len = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
                request_id = Some(value.to_owned());
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((request_id, body))
}

fn serve(api: &str) -> std::io::Result<()> {
    // For the SNS benchmark: say when each event arrived, next to when it was published (the
    // message is the publisher's clock, in microseconds).
    let stamp = std::env::var_os("LAMINA_BENCH_STAMP").is_some();
    // For the HTTP benchmark: answer as a Lambda authorizer that lets everyone in.
    let authorize = std::env::var_os("LAMINA_BENCH_AUTHORIZE").is_some();
    const ALLOW: &[u8] = br#"{"isAuthorized":true,"context":{"user":"bench"}}"#;
    // For the streaming benchmark: the echo streamed, in one chunk.
    let stream = std::env::var_os("LAMINA_BENCH_STREAM").is_some();
    let mut conn = TcpStream::connect(api)?;
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    // Each request goes out in one write: a `write!` straight to the socket would send every
    // piece of it as a segment of its own, and wake the server for each.
    let next = format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n");
    let mut request = Vec::new();
    loop {
        conn.write_all(next.as_bytes())?;
        let (id, event) = read_response(&mut reader)?;
        let id = id.ok_or(std::io::ErrorKind::InvalidData)?;
        if stamp && let Some(sent) = message_micros(&event) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            println!("STAMP {sent} {now}");
        }
        // `{"sleep_ms": N}` holds the invocation for N ms (for scale-out benchmarks).
        if let Some(ms) = sleep_ms(&event) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let answer = if authorize { ALLOW } else { &event[..] };
        request.clear();
        if stream {
            write!(
                request,
                "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n"
            )?;
            // An empty chunk would end the body.
            if !answer.is_empty() {
                write!(request, "{:x}\r\n", answer.len())?;
                request.extend_from_slice(answer);
                request.extend_from_slice(b"\r\n");
            }
            request.extend_from_slice(b"0\r\n\r\n");
        } else {
            write!(
                request,
                "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            )?;
            request.extend_from_slice(answer);
        }
        conn.write_all(&request)?;
        read_response(&mut reader)?;
    }
}

/// The digits of an SNS event's `"Message"`.
fn message_micros(event: &[u8]) -> Option<u128> {
    let text = std::str::from_utf8(event).ok()?;
    let rest = &text[text.find("\"Message\":\"")? + 11..];
    rest.split('"').next()?.parse().ok()
}

fn sleep_ms(event: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(event).ok()?;
    let rest = &text[text.find("\"sleep_ms\"")? + 10..];
    let digits: String = rest
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Runs the echo runtime. Never returns.
pub fn main() -> ! {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_else(|_| "127.0.0.1:9001".into());
    let e = serve(&api);
    eprintln!("native runtime stopped: {e:?}");
    std::process::exit(1)
}
