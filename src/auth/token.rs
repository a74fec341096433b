//! Login tokens: compact JWTs signed with HMAC-SHA256 under a secret generated at first
//! start (`<data-dir>/jwt.key`). Verification is constant-time. Logout revokes a token's
//! `jti` in the store (so it survives restarts) and in memory (so it is refused at once);
//! revocations are forgotten once the token would have expired anyway. A per-user
//! generation number in the claims lets an admin invalidate every token of a user.

use crate::error::{Error, Result};
use crate::ids::UserId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub(crate) const JTI_EXPIRY: TableDefinition<&str, u64> = TableDefinition::new("jti_expiry");

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// Longest token we will even try to parse.
const MAX_TOKEN_LEN: usize = 1024;

/// What a token says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// Unique token id, the unit of revocation.
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// The user's token generation when issued.
    pub gen: u64,
}

/// Issues, verifies and revokes tokens.
#[derive(Clone)]
pub struct Tokens {
    key: Arc<Vec<u8>>,
    ttl_secs: u64,
    revoked: Arc<RwLock<HashMap<String, u64>>>,
    store: crate::store::Store,
}

impl Tokens {
    /// Loads the revocation list from the store.
    pub fn new(store: crate::store::Store, key: Vec<u8>, ttl_secs: u64) -> Result<Tokens> {
        let now = crate::clock::unix_now();
        let mut revoked = HashMap::new();
        let tx = store.begin_read()?;
        let t = tx.open_table(JTI_EXPIRY)?;
        for row in t.iter()? {
            let (k, v) = row?;
            if v.value() > now {
                revoked.insert(k.value().to_string(), v.value());
            }
        }
        Ok(Tokens { key: Arc::new(key), ttl_secs, revoked: Arc::new(RwLock::new(revoked)), store })
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }

    /// Issues a token for `user` at generation `gen`.
    pub fn issue(&self, user: &UserId, gen: u64) -> Result<(String, Claims)> {
        let iat = crate::clock::unix_now();
        let claims =
            Claims { sub: user.clone(), jti: uuid::Uuid::new_v4().to_string(), iat, exp: iat + self.ttl_secs, gen };
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(serde_json::to_vec(&claims)?));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        Ok((format!("{signing_input}.{sig}"), claims))
    }

    /// Checks signature, expiry and revocation. Does not look at the user record.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let bad = || Error::Unauthenticated("invalid or expired token".into());
        if token.len() > MAX_TOKEN_LEN {
            return Err(bad());
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let sig = B64.decode(s).map_err(|_| bad())?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| bad())?;
        if B64.decode(h).map_err(|_| bad())? != HEADER.as_bytes() {
            return Err(bad());
        }
        let claims: Claims = serde_json::from_slice(&B64.decode(p).map_err(|_| bad())?).map_err(|_| bad())?;
        if claims.exp <= crate::clock::unix_now() {
            return Err(bad());
        }
        if self.revoked.read().expect("revocation lock").contains_key(&claims.jti) {
            return Err(bad());
        }
        Ok(claims)
    }

    /// Makes a token useless from now on, durably.
    pub async fn revoke(&self, claims: &Claims) -> Result<()> {
        let now = crate::clock::unix_now();
        self.revoked.write().expect("revocation lock").insert(claims.jti.clone(), claims.exp);
        let store = self.store.clone();
        let (jti, exp) = (claims.jti.clone(), claims.exp);
        tokio::task::spawn_blocking(move || -> Result<()> {
            let tx = store.begin_write()?;
            {
                let mut t = tx.open_table(JTI_EXPIRY)?;
                t.insert(jti.as_str(), exp)?;
                // Forget revocations whose tokens have expired anyway.
                let stale: Vec<String> = t
                    .iter()?
                    .filter_map(|r| r.ok())
                    .filter(|(_, v)| v.value() <= now)
                    .map(|(k, _)| k.value().to_string())
                    .collect();
                for k in stale {
                    t.remove(k.as_str())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await??;
        self.revoked.write().expect("revocation lock").retain(|_, exp| *exp > now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> (tempfile::TempDir, Tokens) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        (dir, Tokens::new(store, vec![7; 32], 3600).unwrap())
    }

    #[test]
    fn an_issued_token_verifies_to_its_claims() {
        let (_d, t) = tokens();
        let (tok, claims) = t.issue(&UserId::from("u1"), 3).unwrap();
        assert_eq!(t.verify(&tok).unwrap(), claims);
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let (_d, t) = tokens();
        let (tok, _) = t.issue(&UserId::from("u1"), 0).unwrap();
        let mut parts: Vec<String> = tok.split('.').map(str::to_string).collect();
        let forged = serde_json::json!({"sub":"admin","jti":"x","iat":0,"exp":u64::MAX,"gen":0});
        parts[1] = B64.encode(forged.to_string());
        assert!(t.verify(&parts.join(".")).is_err());
        assert!(t.verify("a.b").is_err());
        assert!(t.verify(&"x".repeat(5000)).is_err());
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let (_d, t) = tokens();
        let (_d2, other) = tokens();
        let other = Tokens { key: Arc::new(vec![8; 32]), ..other };
        let (tok, _) = other.issue(&UserId::from("u1"), 0).unwrap();
        assert!(t.verify(&tok).is_err());
    }

    #[tokio::test]
    async fn a_revoked_token_stays_revoked_after_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let t = Tokens::new(store.clone(), vec![7; 32], 3600).unwrap();
        let (tok, claims) = t.issue(&UserId::from("u1"), 0).unwrap();
        t.revoke(&claims).await.unwrap();
        assert!(t.verify(&tok).is_err());
        let reloaded = Tokens::new(store, vec![7; 32], 3600).unwrap();
        assert!(reloaded.verify(&tok).is_err());
    }
}
