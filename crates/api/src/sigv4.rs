//! AWS Signature Version 4: the canonical request, string to sign and signature, used both to
//! verify incoming requests and (by the CLI) to sign outgoing ones.
//!
//! Lambda is a "non-S3" service: the canonical URI is the request path as sent (already
//! percent-encoded) encoded once more, segment by segment.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The algorithm name in `Authorization` and the string to sign.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The parsed `Authorization` header of a SigV4-signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// `yyyymmdd`.
    pub date: String,
    /// Region of the credential scope.
    pub region: String,
    /// Service of the credential scope (`lambda`).
    pub service: String,
    /// Lower-case header names, in the order given.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
}

impl Authorization {
    /// Parses `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request,
    /// SignedHeaders=a;b, Signature=hex`. Returns `None` for anything else.
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.strip_prefix(ALGORITHM)?.trim_start();
        let mut credential = None;
        let mut signed = None;
        let mut signature = None;
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            match k {
                "Credential" => credential = Some(v),
                "SignedHeaders" => signed = Some(v),
                "Signature" => signature = Some(v),
                _ => {}
            }
        }
        let mut scope = credential?.split('/');
        let access_key_id = scope.next()?.to_owned();
        let date = scope.next()?.to_owned();
        let region = scope.next()?.to_owned();
        let service = scope.next()?.to_owned();
        if scope.next()? != "aws4_request" || scope.next().is_some() || access_key_id.is_empty() {
            return None;
        }
        let signature = signature?.to_ascii_lowercase();
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let signed_headers = signed?.split(';').map(|h| h.to_ascii_lowercase()).collect();
        Some(Self {
            access_key_id,
            date,
            region,
            service,
            signed_headers,
            signature,
        })
    }
}

/// The parts of a request that a signature covers.
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path exactly as it travels on the wire (percent-encoded).
    pub raw_path: &'a str,
    /// The query string exactly as it travels, without `?`.
    pub raw_query: &'a str,
    /// All headers as (name, value); names in any case. Repeated names are joined with `,`.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body (or the `x-amz-content-sha256` value).
    pub payload_hash: &'a str,
}

/// Percent-encodes with SigV4's rules: only `A-Za-z0-9-_.~` stay as they are.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = crate::query::pairs(raw_query)
        .into_iter()
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request for the given signed header names.
pub fn canonical_request(req: &SignedRequest<'_>, signed_headers: &[String]) -> String {
    let path = if req.raw_path.is_empty() {
        "/"
    } else {
        req.raw_path
    };
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(path, true),
        canonical_query(req.raw_query),
        canonical_headers,
        signed_headers.join(";"),
        req.payload_hash
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Computes the signature (lower-case hex) of a request.
pub fn signature(
    secret: &str,
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// Compares two signatures in constant time.
pub fn signatures_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Signs a request for `service` (`lambda`, `sns`): returns the headers to add (`x-amz-date`,
/// `authorization`). `headers` must already include `host`.
pub fn sign(
    req: &SignedRequest<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Vec<(String, String)> {
    let date = &amz_date[..8];
    let mut headers = req.headers.to_vec();
    headers.push(("x-amz-date".into(), amz_date.into()));
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let with_date = SignedRequest {
        headers: &headers,
        ..*req
    };
    let canonical = canonical_request(&with_date, &names);
    let sig = signature(secret, amz_date, date, region, service, &canonical);
    vec![
        ("x-amz-date".into(), amz_date.into()),
        (
            "authorization".into(),
            format!(
                "{ALGORITHM} Credential={access_key_id}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={sig}",
                names.join(";")
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// AWS's documented example (IAM ListUsers, "Signature Version 4 signing process").
    #[test]
    fn matches_the_aws_documented_example() {
        let headers = vec![
            (
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            ("Host".to_string(), "iam.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
        ];
        let req = SignedRequest {
            method: "GET",
            raw_path: "/",
            raw_query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            payload_hash: &sha256_hex(b""),
        };
        let names: Vec<String> = ["content-type", "host", "x-amz-date"]
            .map(String::from)
            .to_vec();
        let canonical = canonical_request(&req, &names);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let sig = signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830T123600Z",
            "20150830",
            "us-east-1",
            "iam",
            &canonical,
        );
        assert_eq!(
            sig,
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn parses_authorization() {
        let a = Authorization::parse("AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7").unwrap();
        assert_eq!(a.access_key_id, "AKID");
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert!(Authorization::parse("Basic abc").is_none());
        assert!(
            Authorization::parse(
                "AWS4-HMAC-SHA256 Credential=A/b/c/d/e, SignedHeaders=h, Signature=00"
            )
            .is_none()
        );
    }

    #[test]
    fn double_encodes_the_path() {
        assert_eq!(
            uri_encode("/2015-03-31/functions/arn%3Aaws", true),
            "/2015-03-31/functions/arn%253Aaws"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = Authorization::parse(&s);
            let _ = canonical_query(&s);
        }
    }
}
