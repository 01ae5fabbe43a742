//! An HTTP client for the Lambda, SNS, API Gateway, ECR and CloudWatch Logs APIs: builds
//! requests, signs them with SigV4 (for each service's scope) when credentials are in the
//! environment, and turns error responses (JSON, or SNS's XML) into readable errors.

use anyhow::{Context, anyhow};
use bytes::Bytes;
use futures_util::Stream;
use lamina_api::sigv4::{self, SignedRequest};
use reqwest::{Method, StatusCode};

/// A connection to one server.
pub struct Client {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    region: String,
    credentials: Option<(String, String)>,
}

/// A response body and status.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).context("the server sent a body that is not JSON")
    }
}

/// Percent-encodes a path label the way AWS clients do.
pub fn label(s: &str) -> String {
    sigv4::uri_encode(s, false)
}

impl Client {
    /// A client for `endpoint`; credentials come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
    pub fn new(endpoint: &str, region: &str) -> anyhow::Result<Self> {
        let endpoint = reqwest::Url::parse(endpoint).with_context(|| {
            format!("--endpoint '{endpoint}' is not a URL (try http://127.0.0.1:9001)")
        })?;
        let credentials = match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(k), Ok(s)) if !k.is_empty() => Some((k, s)),
            _ => None,
        };
        Ok(Self {
            http: reqwest::Client::new(),
            endpoint,
            region: region.to_owned(),
            credentials,
        })
    }

    /// The server's base URL.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Sends a request with an in-memory body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Reply> {
        self.send_with(method, path, query, body, &[]).await
    }

    /// Sends a request with extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Reply> {
        let stream = once(&body);
        self.send_full(method, path, query, body, stream, headers, "lambda")
            .await
    }

    /// Sends a request whose body (identical to `body`) is streamed from `stream`, for progress.
    pub async fn send_streamed<S>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Vec<u8>,
        stream: S,
    ) -> anyhow::Result<Reply>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
    {
        self.send_full(method, path, query, body, stream, &[], "lambda")
            .await
    }

    /// Sends a Lambda request whose answer streams (`InvokeWithResponseStream`): the response,
    /// its status checked, with the body still to read.
    pub async fn lambda_stream(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<reqwest::Response> {
        let stream = once(&body);
        self.request(Method::POST, path, "", body, stream, headers, "lambda")
            .await
    }

    /// Calls API Gateway v2 (rest-json, signed for `apigateway`) and returns its JSON answer.
    pub async fn apigw(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let stream = once(&body);
        self.send_full(method, path, query, body, stream, &[], "apigateway")
            .await?
            .json()
    }

    /// Calls an ECR action (JSON 1.1, signed for `ecr`) and returns its JSON answer.
    pub async fn ecr(
        &self,
        action: &str,
        input: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let body = input.to_string().into_bytes();
        let stream = once(&body);
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            (
                "x-amz-target",
                format!("AmazonEC2ContainerRegistry_V20150921.{action}"),
            ),
        ];
        self.send_full(Method::POST, "/", "", body, stream, &headers, "ecr")
            .await?
            .json()
    }

    /// The HTTP client, for the registry's own protocol.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Calls an SNS action (the query protocol) and returns its XML answer.
    pub async fn sns(&self, action: &str, params: &[(&str, String)]) -> anyhow::Result<Xml> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action);
        form.append_pair("Version", "2010-03-31");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish().into_bytes();
        let stream = once(&body);
        let reply = self
            .send_full(
                Method::POST,
                "/",
                "",
                body,
                stream,
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                )],
                "sns",
            )
            .await?;
        Ok(Xml(reply.body))
    }

    /// Calls a CloudWatch Logs action (JSON 1.1, signed for `logs`) and returns its JSON answer.
    pub async fn logs(
        &self,
        action: &str,
        input: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let (body, headers) = logs_request(action, input);
        let stream = once(&body);
        self.send_full(Method::POST, "/", "", body, stream, &headers, "logs")
            .await?
            .json()
    }

    /// Calls a CloudWatch Logs action whose answer streams (`StartLiveTail`): the response, its
    /// status checked, with the body still to read.
    pub async fn logs_stream(
        &self,
        action: &str,
        input: &serde_json::Value,
    ) -> anyhow::Result<reqwest::Response> {
        let (body, headers) = logs_request(action, input);
        let stream = once(&body);
        self.request(Method::POST, "/", "", body, stream, &headers, "logs")
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_full<S>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Vec<u8>,
        stream: S,
        extra: &[(&str, String)],
        service: &str,
    ) -> anyhow::Result<Reply>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
    {
        let resp = self
            .request(method, path, query, body, stream, extra, service)
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .context("the server closed the connection early")?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends a signed request; an error status becomes an error (with the body read), a success
    /// is returned with its body unread.
    #[allow(clippy::too_many_arguments)]
    async fn request<S>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Vec<u8>,
        stream: S,
        extra: &[(&str, String)],
        service: &str,
    ) -> anyhow::Result<reqwest::Response>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
    {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        url.set_query((!query.is_empty()).then_some(query));
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header("content-length", body.len());
        if !extra.iter().any(|(n, _)| *n == "content-type") {
            req = req.header("content-type", "application/json");
        }
        for (name, value) in extra {
            req = req.header(*name, value);
        }
        if let Some((key, secret)) = &self.credentials {
            let headers = vec![("host".to_string(), host)];
            let payload_hash = sigv4::sha256_hex(&body);
            let signed = SignedRequest {
                method: method.as_str(),
                raw_path: url.path(),
                raw_query: url.query().unwrap_or(""),
                headers: &headers,
                payload_hash: &payload_hash,
            };
            for (name, value) in
                sigv4::sign(&signed, key, secret, &self.region, service, &amz_date())
            {
                req = req.header(name, value);
            }
        } else {
            // Unsigned requests still say which region they mean.
            req = req.header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=lamina-cli/{}/{}/{service}/aws4_request, SignedHeaders=host, Signature={}",
                    &amz_date()[..8],
                    self.region,
                    "0".repeat(64)
                ),
            );
        }
        let resp = req
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the server at {} (is `lamina server` running?)",
                    self.endpoint
                )
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(':').next().unwrap_or(s).to_owned());
        let body = resp
            .bytes()
            .await
            .context("the server closed the connection early")?;
        let e = failure(status, error_type, &body, service);
        let refused = e.downcast_ref::<ApiFailure>().is_some_and(|f| {
            matches!(
                f.error_type.as_str(),
                "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "MissingAuthenticationToken"
                    | "IncompleteSignature"
                    | "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "AuthFailure"
            )
        });
        Err(match (refused, &self.credentials) {
            (false, _) => e,
            (true, None) => e.context(
                "the server wants signed requests: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to an access key it knows (profiles in ~/.aws are not read)",
            ),
            (true, Some(_)) => e.context(
                "the server refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ),
        })
    }
}

/// The body and the headers of a CloudWatch Logs (JSON 1.1) request.
fn logs_request(action: &str, input: &serde_json::Value) -> (Vec<u8>, [(&'static str, String); 2]) {
    let headers = [
        ("content-type", "application/x-amz-json-1.1".to_owned()),
        ("x-amz-target", format!("Logs_20140328.{action}")),
    ];
    (input.to_string().into_bytes(), headers)
}

/// An in-memory body as the one-chunk stream requests send.
fn once(body: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static {
    futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(body))])
}

/// The error an error response stands for: SNS's XML, or Lambda's and the JSON 1.1 services'
/// JSON (`message` or `Message`, the type in `x-amzn-ErrorType` or `__type`).
fn failure(
    status: StatusCode,
    error_type: Option<String>,
    body: &[u8],
    service: &str,
) -> anyhow::Error {
    if service == "sns" {
        let xml = Xml(Bytes::copy_from_slice(body));
        let code = xml.first("Code").unwrap_or_else(|| status.to_string());
        let message = xml.first("Message").unwrap_or_default();
        return anyhow!(ApiFailure {
            status,
            error_type: code,
            message
        });
    }
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    let message = json
        .as_ref()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    // JSON 1.1 services (ECR, CloudWatch Logs) name the error in the body.
    let error_type = error_type.or_else(|| {
        let t = json.as_ref()?.get("__type")?.as_str()?;
        // Some services prefix the type with a namespace (`com.amazonaws...#Type`).
        Some(t.rsplit('#').next().unwrap_or(t).to_owned())
    });
    match error_type {
        Some(t) => anyhow!(ApiFailure {
            status,
            error_type: t,
            message
        }),
        None => anyhow!("the server answered {status}: {message}"),
    }
}

/// An XML answer (SNS).
pub struct Xml(Bytes);

impl Xml {
    /// The text of every element called `name`, in document order.
    pub fn all(&self, name: &str) -> Vec<String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_reader(self.0.as_ref());
        let (mut out, mut inside, mut text) = (Vec::new(), false, String::new());
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) if e.name().as_ref() == name.as_bytes() => {
                    inside = true;
                    text.clear();
                }
                Ok(Event::Text(t)) if inside => {
                    text.push_str(&t.decode().map(|s| s.into_owned()).unwrap_or_default());
                }
                Ok(Event::GeneralRef(r)) if inside => {
                    let entity = r.decode().map(|s| s.into_owned()).unwrap_or_default();
                    let c = match entity.as_str() {
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "amp" => Some('&'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        e => e
                            .strip_prefix("#x")
                            .map(|h| u32::from_str_radix(h, 16))
                            .or_else(|| e.strip_prefix('#').map(str::parse::<u32>))
                            .and_then(Result::ok)
                            .and_then(char::from_u32),
                    };
                    text.extend(c);
                }
                Ok(Event::End(e)) if inside && e.name().as_ref() == name.as_bytes() => {
                    inside = false;
                    out.push(std::mem::take(&mut text));
                }
                Ok(Event::Eof) | Err(_) => break,
                _ => {}
            }
        }
        out
    }

    /// The text of the first element called `name`.
    pub fn first(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next()
    }

    /// The `<entry><key/><value/></entry>` pairs of a map.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.all("key").into_iter().zip(self.all("value")).collect()
    }
}

/// A Lambda or SNS error response.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub error_type: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for ApiFailure {}

fn amz_date() -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}
