//! JWT authorizers of HTTP APIs: tokens signed with Python's `cryptography`, keys found by
//! OpenID discovery at an issuer served by the test on 127.0.0.1, or in a JWKS file the server's
//! configuration names for an offline issuer.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::http_urls::{curl, deploy_http};
use crate::sns::cli;

/// Makes an RSA key, its JWKS, and tokens for `issuer` (and one for `offline`).
fn keys_and_tokens(issuer: &str, offline: &str) -> Value {
    let program = r#"
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def num(n): return b64(n.to_bytes((n.bit_length() + 7) // 8, 'big'))
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pub = key.public_key().public_numbers()
jwks = {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": num(pub.n), "e": num(pub.e)}]}
def token(claims, k=key, kid="k1"):
    h = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    p = b64(json.dumps(claims).encode())
    return h + "." + p + "." + b64(k.sign((h + "." + p).encode(), padding.PKCS1v15(), hashes.SHA256()))
iss, offline = sys.argv[1], sys.argv[2]
now = int(time.time())
base = {"iss": iss, "aud": "api://shop", "sub": "user-1", "exp": now + 600, "iat": now, "scope": "read write"}
no_aud = {k: v for k, v in base.items() if k != "aud"}
print(json.dumps({"jwks": jwks, "tokens": {
    "good": token(base),
    "client_id": token(dict(no_aud, client_id="api://shop")),
    "expired": token(dict(base, exp=now - 10)),
    "not_yet": token(dict(base, nbf=now + 300)),
    "wrong_aud": token(dict(base, aud="api://other")),
    "wrong_iss": token(dict(base, iss="https://evil.example")),
    "bad_sig": token(base, k=other),
    "unknown_kid": token(base, kid="k9"),
    "no_scope": token(dict(base, scope="write")),
    "aud_and_client_id": token(dict(base, aud="api://other", client_id="api://shop")),
    "offline": token(dict(base, iss=offline)),
}}))
"#;
    let out = Command::new(python_venv().join("bin/python"))
        .args(["-c", program, issuer, offline])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An OpenID issuer on 127.0.0.1: discovery document and JWKS, counting JWKS fetches.
struct Issuer {
    url: String,
    fetches: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Issuer {
    /// An issuer whose discovery document names `jwks_uri` (default: its own `/jwks.json`).
    async fn start(jwks: Arc<std::sync::Mutex<Value>>, jwks_uri: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicUsize::new(0));
        let f = fetches.clone();
        let doc = json!({
            "issuer": url,
            "jwks_uri": jwks_uri.map_or_else(|| format!("{url}/jwks.json"), str::to_owned),
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let doc = doc.clone();
                    async move { axum::Json(doc) }
                }),
            )
            .route(
                "/jwks.json",
                axum::routing::get(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    let jwks = jwks.lock().unwrap().clone();
                    async move { axum::Json(jwks) }
                }),
            );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            fetches,
            shutdown: Some(tx),
        }
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An API whose `GET /items` needs a JWT from `issuer` with the `read` scope.
fn jwt_api(ep: &str, echo: &str, issuer: &str) -> String {
    let api = cli(
        ep,
        &[
            "apigatewayv2",
            "create-api",
            "--name",
            "jwt",
            "--protocol-type",
            "HTTP",
        ],
    );
    let api_id = api["ApiId"].as_str().unwrap().to_owned();
    let i = cli(
        ep,
        &[
            "apigatewayv2",
            "create-integration",
            "--api-id",
            &api_id,
            "--integration-type",
            "AWS_PROXY",
            "--integration-uri",
            echo,
            "--payload-format-version",
            "2.0",
        ],
    )["IntegrationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let config = format!("Audience=api://shop,Issuer={issuer}");
    let a = cli(
        ep,
        &[
            "apigatewayv2",
            "create-authorizer",
            "--api-id",
            &api_id,
            "--name",
            "jwt",
            "--authorizer-type",
            "JWT",
            "--identity-source",
            "$request.header.Authorization",
            "--jwt-configuration",
            &config,
        ],
    )["AuthorizerId"]
        .as_str()
        .unwrap()
        .to_owned();
    cli(
        ep,
        &[
            "apigatewayv2",
            "create-route",
            "--api-id",
            &api_id,
            "--route-key",
            "GET /items",
            "--target",
            &format!("integrations/{i}"),
            "--authorization-type",
            "JWT",
            "--authorizer-id",
            &a,
            "--authorization-scopes",
            "read",
        ],
    );
    cli(
        ep,
        &[
            "apigatewayv2",
            "create-stage",
            "--api-id",
            &api_id,
            "--stage-name",
            "$default",
            "--auto-deploy",
        ],
    );
    api["ApiEndpoint"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_authorizers_check_signature_issuer_audience_time_and_scopes() {
    let jwks = Arc::new(std::sync::Mutex::new(json!({"keys": []})));
    let issuer = Issuer::start(jwks.clone(), None).await;
    let offline = "https://issuer.offline.example";
    let made = keys_and_tokens(&issuer.url, offline);
    *jwks.lock().unwrap() = made["jwks"].clone();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("jwks.json");
    std::fs::write(&file, made["jwks"].to_string()).unwrap();
    let app = spawn_app_with(&format!(
        "[jwks_files]\n\"{offline}\" = \"{}\"\n",
        file.display()
    ))
    .await;
    let ep = app.endpoint();
    let echo = deploy_http(&app.client, "echo", "echo").await;
    let endpoint = jwt_api(&ep, &echo, &issuer.url);
    let token = |name: &str| made["tokens"][name].as_str().unwrap().to_owned();
    let get = |endpoint: &str, auth: Option<String>| {
        let url = format!("{endpoint}/items");
        match auth {
            Some(a) => curl(&["-H", &format!("authorization: {a}"), &url]),
            None => curl(&[&url]),
        }
    };
    assert_eq!(get(&endpoint, None).0, 401);
    let (s, _, b) = get(&endpoint, Some(format!("Bearer {}", token("good"))));
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let e: Value = serde_json::from_slice(&b).unwrap();
    let jwt = &e["requestContext"]["authorizer"]["jwt"];
    assert_eq!(jwt["claims"]["sub"], "user-1");
    assert!(
        jwt["claims"]["exp"].is_string(),
        "claims are strings: {jwt}"
    );
    assert_eq!(jwt["scopes"], json!(["read", "write"]));
    // The raw token works too, and so does client_id in place of aud.
    assert_eq!(get(&endpoint, Some(token("good"))).0, 200);
    assert_eq!(get(&endpoint, Some(token("client_id"))).0, 200);
    for bad in [
        "expired",
        "not_yet",
        "wrong_aud",
        "wrong_iss",
        "bad_sig",
        "unknown_kid",
        "aud_and_client_id",
    ] {
        let (s, _, b) = get(&endpoint, Some(format!("Bearer {}", token(bad))));
        assert_eq!(
            (s, b.as_slice()),
            (401, &br#"{"message":"Unauthorized"}"#[..]),
            "{bad}"
        );
    }
    let (s, _, b) = get(&endpoint, Some(format!("Bearer {}", token("no_scope"))));
    assert_eq!((s, b.as_slice()), (403, &br#"{"message":"Forbidden"}"#[..]));
    // Keys are cached: one fetch for all of these (an unknown kid fetches again only when the
    // keys are older than 30 s).
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
    // A discovery document pointing into a denied network (link-local here) is not followed.
    let denied = Issuer::start(jwks.clone(), Some("http://169.254.169.254/jwks.json")).await;
    let denied_endpoint = jwt_api(&ep, &echo, &denied.url);
    let t = std::time::Instant::now();
    assert_eq!(get(&denied_endpoint, Some(token("good"))).0, 401);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(1),
        "it was not fetched"
    );
    // An offline issuer's keys come from the file the configuration names.
    let offline_endpoint = jwt_api(&ep, &echo, offline);
    assert_eq!(
        get(
            &offline_endpoint,
            Some(format!("Bearer {}", token("offline")))
        )
        .0,
        200
    );
    assert_eq!(
        get(&offline_endpoint, Some(format!("Bearer {}", token("good")))).0,
        401
    );
}
