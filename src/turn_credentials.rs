//! Short-lived TURN credentials in the TURN REST convention (what coturn calls
//! `use-auth-secret`): the username is `<expiry>:<userId>` and the password is
//! base64(HMAC-SHA1(secret, username)). Only authenticated users are issued any, and the
//! TURN server recomputes the password from the username, so nothing is stored.

use crate::ids::UserId;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Longest username worth parsing (`<20 digits>:<64-char id>`).
const MAX_USERNAME: usize = 96;

/// Issues and checks TURN credentials under one shared secret.
#[derive(Clone)]
pub struct TurnCredentials {
    secret: Vec<u8>,
}

/// A credential pair for an RTCIceServer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// Unix seconds after which it is refused.
    pub expires: u64,
}

impl TurnCredentials {
    /// Credentials under `secret` (the embedded server's, or an external coturn's).
    pub fn new(secret: Vec<u8>) -> TurnCredentials {
        TurnCredentials { secret }
    }

    /// The password that belongs to a username.
    pub fn password(&self, username: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        mac.update(username.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// A credential for `user` valid for `ttl_secs` from `now`.
    pub fn issue(&self, user: &UserId, now: u64, ttl_secs: u64) -> Credential {
        let expires = now + ttl_secs;
        let username = format!("{expires}:{user}");
        Credential { password: self.password(&username), username, expires }
    }
}

/// Splits a username into its expiry and user id, refusing anything malformed or expired.
pub fn parse_username(username: &str, now: u64) -> Option<(u64, UserId)> {
    if username.len() > MAX_USERNAME {
        return None;
    }
    let (exp, user) = username.split_once(':')?;
    if exp.is_empty() || exp.len() > 20 || !exp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let exp: u64 = exp.parse().ok()?;
    if exp <= now || !crate::ids::plausible_id(user) {
        return None;
    }
    Some((exp, UserId::from(user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_credential_parses_back_and_its_password_matches() {
        let c = TurnCredentials::new(b"secret".to_vec());
        let cred = c.issue(&UserId::from("u-1"), 1000, 60);
        assert_eq!(cred.username, "1060:u-1");
        assert_eq!(parse_username(&cred.username, 1000), Some((1060, UserId::from("u-1"))));
        assert_eq!(c.password(&cred.username), cred.password);
        // The TURN REST convention: HMAC-SHA1 of the username, base64.
        assert_eq!(TurnCredentials::new(b"k".to_vec()).password("1:a"), "X/DaXFCwZRwXqWFm6yyS6x3NNL8=");
    }

    #[test]
    fn expired_and_malformed_usernames_are_refused() {
        for bad in
            ["1000:u", "999:u", "abc:u", ":u", "1060:", "1060", "1060:u/../x", "-5:u", &format!("{}:u", "9".repeat(30))]
        {
            assert_eq!(parse_username(bad, 1000), None, "{bad}");
        }
    }
}
