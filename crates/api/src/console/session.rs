//! The console's sign-in: an access key and its secret, checked once, buy a session held in
//! memory and named by a random token in an `HttpOnly`, `SameSite=Strict` cookie.
//!
//! A session acts only for requests whose [`HEADER`] carries its second secret, which sign-in
//! hands to the console's script (kept in the origin's local storage). A page of another origin
//! can neither read that secret nor send the header without a CORS preflight this server never
//! grants, and whoever learns the cookie alone (a function it was sent to) acts for no one.
//! Sessions are bounded in number, per access key and in all, and in time, and are lost with
//! the process, which only means signing in again.

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
/// The most sessions of one access key: signing in again and again evicts that key's own
/// oldest, not other people's.
const MAX_PER_KEY: usize = 20;

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
    /// The value [`HEADER`] must carry.
    csrf: String,
    expires: Instant,
}

/// What a request says of a session.
pub enum Presented {
    /// No console header: not a console request.
    None,
    /// A live session, whose secret the header carries.
    Valid(Session),
    /// A console request whose session is unknown, expired, or not matched by its header.
    Invalid,
}

fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session; returns its cookie token and the secret its requests' header carries.
    pub fn open(
        &self,
        account: AccountId,
        region: Region,
        access_key_id: String,
    ) -> (String, String) {
        let (token, csrf) = (random_hex(), random_hex());
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        let oldest = |map: &HashMap<String, Session>, key: Option<&str>| {
            map.iter()
                .filter(|(_, s)| key.is_none_or(|k| s.access_key_id == k))
                .min_by_key(|(_, s)| s.expires)
                .map(|(t, _)| t.clone())
        };
        let of_key = map
            .values()
            .filter(|s| s.access_key_id == access_key_id)
            .count();
        if of_key >= MAX_PER_KEY
            && let Some(t) = oldest(&map, Some(&access_key_id))
        {
            map.remove(&t);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(t) = oldest(&map, None)
        {
            map.remove(&t);
        }
        map.insert(
            token.clone(),
            Session {
                account,
                region,
                access_key_id,
                csrf: csrf.clone(),
                expires: now + LIFETIME,
            },
        );
        (token, csrf)
    }

    /// The session a request presents: its cookie's, if its header carries that session's
    /// secret.
    pub fn presented(&self, parts: &axum::http::request::Parts) -> Presented {
        let Some(header) = parts.headers.get(HEADER) else {
            return Presented::None;
        };
        let header = header.to_str().unwrap_or("");
        // Every cookie of the name counts: a page elsewhere on the domain may have planted one
        // that the browser sends first.
        Self::tokens_of(parts)
            .filter_map(|t| self.get(t))
            .find(|s| crate::sigv4::signatures_match(&s.csrf, header))
            .map_or(Presented::Invalid, Presented::Valid)
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

    /// The session cookies of a request (a browser may send several of one name).
    pub fn tokens_of(parts: &axum::http::request::Parts) -> impl Iterator<Item = &str> {
        parts
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
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

    fn open(s: &Sessions, key: &str) -> (String, String) {
        s.open(
            AccountId::parse("111111111111").unwrap(),
            Region::parse("us-east-1").unwrap(),
            key.into(),
        )
    }

    #[test]
    fn a_cookie_counts_only_with_its_sessions_secret_in_the_header() {
        let s = Sessions::default();
        let (token, csrf) = open(&s, "AKIA");
        let cookie = format!("a=b; {COOKIE}={token}");
        assert!(matches!(
            s.presented(&parts(&[("cookie", &cookie)])),
            Presented::None
        ));
        for wrong in ["1", "", &token] {
            assert!(matches!(
                s.presented(&parts(&[("cookie", &cookie), (HEADER, wrong)])),
                Presented::Invalid
            ));
        }
        match s.presented(&parts(&[("cookie", &cookie), (HEADER, &csrf)])) {
            Presented::Valid(session) => assert_eq!(session.account.as_str(), "111111111111"),
            _ => panic!("the session's own secret is accepted"),
        }
        s.close(&token);
        assert!(matches!(
            s.presented(&parts(&[("cookie", &cookie), (HEADER, &csrf)])),
            Presented::Invalid
        ));
    }

    #[test]
    fn a_cookie_planted_before_the_sessions_own_does_not_lock_it_out() {
        let s = Sessions::default();
        let (token, csrf) = open(&s, "AKIA");
        // Someone else's live session and a made-up token, sent first (a longer path or a
        // domain cookie from a function's page).
        let (theirs, _) = s.open(
            AccountId::parse("222222222222").unwrap(),
            Region::parse("us-east-1").unwrap(),
            "AKIB".into(),
        );
        let cookie = format!("{COOKIE}=x; {COOKIE}={theirs}; {COOKIE}={token}");
        match s.presented(&parts(&[("cookie", &cookie), (HEADER, &csrf)])) {
            Presented::Valid(session) => assert_eq!(session.account.as_str(), "111111111111"),
            _ => panic!("the session whose secret the header carries is found"),
        }
    }

    #[test]
    fn sessions_are_bounded_per_key_and_in_all() {
        let s = Sessions::default();
        let (other, _) = open(&s, "someone-else");
        let (first, _) = open(&s, "k");
        for _ in 0..MAX_PER_KEY {
            open(&s, "k");
        }
        assert!(
            s.get(&first).is_none(),
            "the key's oldest session made room"
        );
        assert!(s.get(&other).is_some(), "another key's session stays");
        for i in 0..MAX_SESSIONS {
            open(&s, &format!("key-{i}"));
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS);
    }
}
