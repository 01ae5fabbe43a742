//! What the one port does about browsers, which may hold a signed-in console session and visit
//! hostile pages: functions' pages (whose content tenants write) are kept out of the console's
//! origin and away from its cookie, and the AWS APIs answer no other site's page.

use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::console::session::COOKIE;

/// The policy on responses of functions reached at path-style addresses (`/_aws/…`), which
/// share the console's origin: pages work (scripts, forms, popups, downloads) but in an opaque
/// origin of their own, so their scripts cannot reach the console's storage or act as it.
const PATH_STYLE_SANDBOX: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// What the AWS APIs' answers may do in a browser: nothing (they are JSON and XML for clients;
/// a registry manifest or an error echoing input is never a page).
const API_POLICY: &str = "default-src 'none'; sandbox";

/// Whether `bytes` contains `needle`.
fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// The name of a cookie pair (`name=value`), trimmed.
fn cookie_name(pair: &[u8]) -> &[u8] {
    let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
    name.trim_ascii()
}

/// Removes the console's session cookie from a request going to a function (as an event's
/// `cookies` or `headers`): a function never learns a session. Read as bytes: a cookie that
/// is not text (one a function set, say) does not hide the session's beside it.
pub(crate) fn strip_console_cookie(parts: &mut Parts) {
    // Every request to a function passes here: it allocates only when there is a cookie to drop.
    if !parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| contains(v.as_bytes(), COOKIE.as_bytes()))
    {
        return;
    }
    let cookies: Vec<HeaderValue> = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .cloned()
        .collect();
    parts.headers.remove(header::COOKIE);
    for v in cookies {
        let kept: Vec<&[u8]> = v
            .as_bytes()
            .split(|b| *b == b';')
            .map(<[u8]>::trim_ascii)
            .filter(|c| !c.is_empty() && cookie_name(c) != COOKIE.as_bytes())
            .collect();
        if !kept.is_empty()
            && let Ok(v) = HeaderValue::from_bytes(&kept.join(&b"; "[..]))
        {
            parts.headers.append(header::COOKIE, v);
        }
    }
}

/// Confines a function's response at a path-style address: sandboxed into an origin of its own,
/// and unable to set, clear or replace the console's cookie or the origin's storage and workers.
pub(crate) fn confine_path_style(resp: &mut Response) {
    let h = resp.headers_mut();
    h.append(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PATH_STYLE_SANDBOX),
    );
    let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    h.remove(header::SET_COOKIE);
    for v in cookies {
        // Read as bytes: a value that is not text is still named.
        let pair = v
            .as_bytes()
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default();
        // A nameless cookie (`=lamina_console=x`) goes too: browsers send it back as its value
        // alone, which reads as the console's cookie.
        let name = cookie_name(pair);
        if name != COOKIE.as_bytes() && !name.is_empty() {
            h.append(header::SET_COOKIE, v);
        }
    }
    h.remove("clear-site-data");
    h.remove("service-worker-allowed");
}

/// Refuses a request to the AWS APIs that a page of another site made (`Sec-Fetch-Site`, which
/// browsers set and clients do not), unless it is a plain navigation that acts on nothing but
/// a subscription (its confirmation or unsubscribe link clicked in a mail): with signatures
/// unchecked, such a request would otherwise act for the server's default account. The
/// query-protocol services (SNS, EC2) take any `Action` in a GET.
pub(crate) fn refuse_other_sites(parts: &Parts) -> Option<Response> {
    let site = parts.headers.get("sec-fetch-site")?.to_str().ok()?;
    if site == "same-origin" || site == "none" {
        return None;
    }
    let navigation = parts
        .headers
        .get("sec-fetch-mode")
        .is_some_and(|m| m == "navigate")
        && parts.method == Method::GET;
    let link = || {
        let query = parts.uri.query().unwrap_or("");
        crate::query::pairs(query)
            .iter()
            .filter(|(k, _)| k == "Action")
            .all(|(_, a)| a == "ConfirmSubscription" || a == "Unsubscribe")
    };
    if navigation && link() {
        return None;
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            [("x-amzn-ErrorType", "AccessDeniedException")],
            axum::Json(serde_json::json!({
                "message": "Requests made by another web site's page are refused. Call the API from an AWS client or SDK, or from the console at /console."
            })),
        )
            .into_response(),
    )
}

/// Hardens an AWS API's answer for browsers: never rendered, sniffed or cached.
pub(crate) fn harden_api_response(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_POLICY),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let bytes: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        parts_at("/", &bytes)
    }

    fn parts_at(uri: &str, headers: &[(&str, &[u8])]) -> Parts {
        let mut b = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, HeaderValue::from_bytes(v).unwrap());
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_console_cookie_never_reaches_a_function() {
        let mut p = parts(&[
            ("cookie", "a=1; lamina_console=secret; b=2"),
            ("cookie", "lamina_console=x"),
        ]);
        strip_console_cookie(&mut p);
        let left: Vec<&str> = p
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["a=1; b=2"]);
        let mut p = parts(&[("cookie", "lamina_console_x=1")]);
        strip_console_cookie(&mut p);
        assert_eq!(p.headers["cookie"], "lamina_console_x=1");
        // A cookie that is not text (a function may set one) hides nothing beside it.
        let mut p = parts_at("/", &[("cookie", b"x=\xc3\xa9; lamina_console=secret")]);
        strip_console_cookie(&mut p);
        assert_eq!(p.headers["cookie"].as_bytes(), b"x=\xc3\xa9");
    }

    #[test]
    fn a_path_style_page_cannot_touch_the_consoles_cookie() {
        let mut resp = Response::new(axum::body::Body::empty());
        let h = resp.headers_mut();
        h.append(
            "set-cookie",
            HeaderValue::from_static("lamina_console=evil; Path=/"),
        );
        h.append("set-cookie", HeaderValue::from_static("theirs=1"));
        h.append(
            "set-cookie",
            HeaderValue::from_bytes(b"lamina_console=junk; Path=/; x=\xc3\xa9").unwrap(),
        );
        h.append(
            "set-cookie",
            HeaderValue::from_bytes(b"name=Zo\xc3\xab; Path=/").unwrap(),
        );
        for nameless in [
            "=lamina_console=x; Path=/console",
            " =lamina_console=x",
            "lamina_console",
        ] {
            h.append("set-cookie", HeaderValue::from_static(nameless));
        }
        h.append("clear-site-data", HeaderValue::from_static("\"cookies\""));
        confine_path_style(&mut resp);
        let h = resp.headers();
        let set: Vec<&[u8]> = h
            .get_all("set-cookie")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(set, [&b"theirs=1"[..], b"name=Zo\xc3\xab; Path=/"]);
        assert!(h.get("clear-site-data").is_none());
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("sandbox")
        );
    }

    #[test]
    fn other_sites_pages_are_refused_but_not_clients_or_links() {
        assert!(refuse_other_sites(&parts(&[])).is_none(), "an SDK");
        assert!(refuse_other_sites(&parts(&[("sec-fetch-site", "same-origin")])).is_none());
        assert!(refuse_other_sites(&parts(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(refuse_other_sites(&parts(&[("sec-fetch-site", "same-site")])).is_some());
        assert!(
            refuse_other_sites(&parts(&[
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate")
            ]))
            .is_none(),
            "a link followed"
        );
        let link = |query: &str| {
            let uri = format!("/?{query}");
            let p = parts_at(
                &uri,
                &[
                    ("sec-fetch-site", b"cross-site"),
                    ("sec-fetch-mode", b"navigate"),
                ],
            );
            refuse_other_sites(&p).is_none()
        };
        assert!(link("Action=ConfirmSubscription&TopicArn=t&Token=x"));
        assert!(link("Action=Unsubscribe&SubscriptionArn=s"));
        // Any other action in a GET would act for the default account.
        assert!(!link(
            "Action=Subscribe&TopicArn=t&Protocol=https&Endpoint=https://x/"
        ));
        assert!(!link("Action=Unsubscribe&Action=DeleteTopic&TopicArn=t"));
    }
}
