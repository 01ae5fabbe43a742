//! Registry passwords, as `GetAuthorizationToken` hands them out: stateless, an HMAC over the
//! account, region and expiry under a key kept in the data directory (so passwords outlive a
//! restart, as ECR's do for 12 hours). Docker and the others send them as HTTP Basic
//! credentials with user `AWS`.

use std::path::Path;

use base64::Engine;
use hmac::{Hmac, Mac};
use lamina_model::{AccountId, Region};
use sha2::Sha256;

use super::EcrState;
use crate::auth::{AuthConfig, Caller};

/// How long a password is valid (ECR: 12 hours).
pub const VALIDITY_S: i64 = 12 * 3600;

/// Reads the key, or makes one (readable by the server only).
pub fn load_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    crate::write_private(path, key)?;
    Ok(key)
}

fn mac(key: &[u8; 32], body: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(body.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A password for `caller`, valid until `expires` (Unix seconds).
pub fn issue(state: &EcrState, caller: &Caller, expires: i64) -> String {
    let body = format!("{}.{}.{expires}", caller.account, caller.region);
    format!("{body}.{}", mac(&state.key, &body))
}

/// The caller a password stands for, if it is ours and has not expired.
fn verify(state: &EcrState, password: &str, now: i64) -> Option<Caller> {
    let (body, sig) = password.rsplit_once('.')?;
    let expected = mac(&state.key, body);
    // Constant-time comparison of equal-length hex strings.
    if sig.len() != expected.len()
        || sig
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return None;
    }
    let mut parts = body.split('.');
    let (account, region, expires) = (parts.next()?, parts.next()?, parts.next()?);
    if expires.parse::<i64>().ok()? < now {
        return None;
    }
    Some(Caller {
        account: AccountId::parse(account).ok()?,
        region: Region::parse(region).ok()?,
        lineage: None,
    })
}

/// Who a registry request acts for: the account of valid `AWS` credentials; without them, the
/// default account when signatures are not verified. `None`: the client must log in.
pub fn registry_caller(
    state: &EcrState,
    auth: &AuthConfig,
    authorization: Option<&str>,
) -> Option<Caller> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let from_basic = authorization
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| {
            let (user, password) = text.split_once(':')?;
            (user == "AWS").then(|| verify(state, password, now))?
        });
    match from_basic {
        Some(caller) => Some(caller),
        None if !auth.verify => Some(Caller {
            account: auth.default_account.clone(),
            region: auth.default_region.clone(),
            lineage: None,
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> EcrState {
        EcrState {
            key: [7; 32],
            host: "127.0.0.1:9001".into(),
            pulls: Default::default(),
            turns: crate::ecr::pull::Turns::default(),
        }
    }

    #[test]
    fn passwords_verify_until_they_expire_and_not_when_changed() {
        let s = state();
        let caller = Caller {
            account: AccountId::parse("123456789012").unwrap(),
            region: Region::parse("eu-west-1").unwrap(),
            lineage: None,
        };
        let p = issue(&s, &caller, 1000);
        let back = verify(&s, &p, 999).unwrap();
        assert_eq!(back.account.as_str(), "123456789012");
        assert_eq!(back.region.as_str(), "eu-west-1");
        assert!(verify(&s, &p, 1001).is_none());
        let forged = p.replace("123456789012", "210987654321");
        assert!(verify(&s, &forged, 999).is_none());
        let other = EcrState {
            key: [8; 32],
            ..state()
        };
        assert!(verify(&other, &p, 999).is_none());
    }
}
