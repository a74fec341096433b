//! Password hashing with argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1). Hashing
//! costs ~20 ms of CPU, so it runs on blocking threads behind a semaphore sized to the
//! cores: a login burst queues instead of starving the runtime.

use crate::error::{Error, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Hashes and verifies passwords off the async runtime.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the username is unknown so
    /// that "no such user" costs the same time as "wrong password".
    decoy: Arc<String>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 params are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes on the calling thread, for offline administration where there is no runtime.
pub(crate) fn hash_now(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| Error::Internal(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(e.to_string()))
}

fn verify_now(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

impl Passwords {
    /// Creates the hasher; `concurrency` is the number of hashes allowed at once.
    pub fn new(concurrency: usize) -> Result<Passwords> {
        let decoy = hash_now(&uuid::Uuid::new_v4().to_string())?;
        Ok(Passwords { permits: Arc::new(Semaphore::new(concurrency.max(1))), decoy: Arc::new(decoy) })
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Unavailable("shutting down".into()))?;
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || hash_now(&pw)).await?
    }

    /// Checks a password against a stored hash, or against the decoy when there is none.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Unavailable("shutting down".into()))?;
        let pw = password.to_string();
        let known = hash.is_some();
        let h = hash.map(str::to_string).unwrap_or_else(|| self.decoy.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_now(&pw, &h)).await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let p = Passwords::new(2).unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse", None).await.unwrap());
    }
}
