//! The console's sign-in: an access key and its secret, checked once, buy a session held in
//! memory and named by a random token in an `HttpOnly`, `SameSite=Strict` cookie.
//!
//! A session acts only for requests that also carry the [`HEADER`] header, which a page of
//! another origin cannot send without a CORS preflight this server never grants: a cookie alone
//! (a link, a form of another site) acts for no one. Sessions are bounded in number and in time
//! and are lost with the process, which only means signing in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lamina_model::{AccountId, Region};

/// The header every console request carries.
pub const HEADER: &str = "x-lamina-console";
/// The cookie that names a session.
pub const COOKIE: &str = "lamina_console";
/// How long a session lasts, as a work day.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions held at once; the one nearest its end makes room for a new one.
const MAX_SESSIONS: usize = 10_000;

/// Signed-in console sessions by token.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// Whom a session acts for.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account of the access key that signed in.
    pub account: AccountId,
    /// The region the console works in.
    pub region: Region,
    /// The access key that signed in (shown, never its secret).
    pub access_key_id: String,
    expires: Instant,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session and returns its token.
    pub fn open(&self, account: AccountId, region: Region, access_key_id: String) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(t, _)| t.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            token.clone(),
            Session {
                account,
                region,
                access_key_id,
                expires: now + LIFETIME,
            },
        );
        token
    }

    /// The live session a token names.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(token) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn close(&self, token: &str) {
        self.lock().remove(token);
    }

    /// The token of a console request: its session cookie, when it also carries [`HEADER`].
    pub fn token_of(parts: &axum::http::request::Parts) -> Option<&str> {
        parts.headers.get(HEADER)?;
        parts
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> axum::http::request::Parts {
        let mut b = axum::http::Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_cookie_counts_only_with_the_console_header() {
        let s = Sessions::default();
        let token = s.open(
            AccountId::parse("111111111111").unwrap(),
            Region::parse("us-east-1").unwrap(),
            "AKIA".into(),
        );
        let cookie = format!("a=b; {COOKIE}={token}");
        assert_eq!(Sessions::token_of(&parts(&[("cookie", &cookie)])), None);
        let p = parts(&[("cookie", &cookie), (HEADER, "1")]);
        let found = Sessions::token_of(&p).unwrap();
        assert_eq!(s.get(found).unwrap().account.as_str(), "111111111111");
        assert!(s.get("not-a-token").is_none());
        s.close(&token);
        assert!(s.get(&token).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let acct = AccountId::parse("111111111111").unwrap();
        let region = Region::parse("us-east-1").unwrap();
        let first = s.open(acct.clone(), region.clone(), "k".into());
        for _ in 0..MAX_SESSIONS {
            s.open(acct.clone(), region.clone(), "k".into());
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
        assert!(s.get(&first).is_none(), "the oldest session made room");
    }
}
