//! Accounts: signup, login, profiles, listing and search. Every account is also kept in an
//! in-memory index (a LAN appliance has thousands of users at most), so authenticating a
//! request or a WebSocket frame never touches the disk. Writes go to redb first and to the
//! index after the commit.

mod data;

pub(crate) use data::{USERID_USER, USERNAME_USERID};

use crate::auth::{Claims, Passwords, Tokens};
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A normal user.
    User,
    /// May administer the appliance.
    Admin,
}

/// An account as stored. Never sent to clients: see [`User`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub avatar_color: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at: String,
    pub last_seen: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    /// Bumped to invalidate every token of this user at once.
    #[serde(default)]
    pub token_gen: u64,
    /// Deleted by an administrator: kept (disabled, no password) so history stays readable.
    #[serde(default)]
    pub deleted: bool,
}

/// The public view of an account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub avatar_color: String,
    pub online: bool,
    pub last_seen: Option<String>,
    pub created_at: String,
    pub role: Role,
    /// Present (and true) only for accounts an administrator deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl UserRecord {
    /// The public view, with presence filled in by the caller.
    pub fn public(&self, online: bool) -> User {
        User {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            avatar_color: self.avatar_color.clone(),
            online,
            last_seen: self.last_seen.clone(),
            created_at: self.created_at.clone(),
            role: self.role,
            deleted: self.deleted,
        }
    }
}

const PALETTE: [&str; 10] =
    ["#7c3aed", "#2563eb", "#0891b2", "#059669", "#65a30d", "#d97706", "#dc2626", "#db2777", "#9333ea", "#4f46e5"];

/// Checks a username: 3–32 characters of `[A-Za-z0-9_.-]`.
pub fn validate_username(name: &str) -> Result<()> {
    let n = name.chars().count();
    if !(3..=32).contains(&n) || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err(Error::Invalid(
            "invalid_username",
            "username must be 3–32 characters of letters, digits, '_', '.' or '-'".into(),
        ));
    }
    Ok(())
}

/// Checks a password: 8–256 characters.
pub fn validate_password(pw: &str) -> Result<()> {
    if !(8..=256).contains(&pw.chars().count()) {
        return Err(Error::Invalid("invalid_password", "password must be 8–256 characters".into()));
    }
    Ok(())
}

fn validate_display_name(name: &str) -> Result<String> {
    let t = name.trim();
    if t.is_empty() || t.chars().count() > 64 || t.chars().any(char::is_control) {
        return Err(Error::Invalid("invalid_display_name", "display name must be 1–64 visible characters".into()));
    }
    Ok(t.to_string())
}

fn validate_color(c: &str) -> Result<()> {
    if c.len() != 7 || !c.starts_with('#') || !c[1..].bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid("invalid_avatar_color", "avatar color must look like #7c3aed".into()));
    }
    Ok(())
}

#[derive(Default)]
struct Index {
    by_id: HashMap<UserId, UserRecord>,
    by_name: HashMap<String, UserId>,
}

/// The accounts service; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    index: Arc<RwLock<Index>>,
    passwords: Passwords,
    tokens: Tokens,
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl Accounts {
    /// Loads every account into memory.
    pub fn new(store: Store, passwords: Passwords, tokens: Tokens) -> Result<Accounts> {
        let mut index = Index::default();
        for rec in data::load_all(&store)? {
            index.by_name.insert(rec.username.to_lowercase(), rec.id.clone());
            index.by_id.insert(rec.id.clone(), rec);
        }
        Ok(Accounts { store, index: Arc::new(RwLock::new(index)), passwords, tokens, writes: Default::default() })
    }

    fn remember(&self, rec: &UserRecord) {
        let mut ix = self.index.write().expect("accounts lock");
        ix.by_name.insert(rec.username.to_lowercase(), rec.id.clone());
        ix.by_id.insert(rec.id.clone(), rec.clone());
    }

    /// Creates an account and logs it in. The first account becomes admin.
    pub async fn signup(
        &self,
        username: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<(String, UserRecord)> {
        let rec = self.create(username, password, display_name, Role::User).await?;
        let (token, _) = self.tokens.issue(&rec.id, rec.token_gen)?;
        Ok((token, rec))
    }

    /// Creates an account without logging it in, as an administrator does (whatever the
    /// registration policy). The first account ever stored is an admin whatever `role` says.
    pub async fn create(
        &self,
        username: &str,
        password: &str,
        display_name: Option<&str>,
        role: Role,
    ) -> Result<UserRecord> {
        validate_username(username)?;
        validate_password(password)?;
        let display_name = match display_name {
            Some(d) => validate_display_name(d)?,
            None => username.to_string(),
        };
        if self.find(username).is_some() {
            return Err(Error::Conflict("username_taken", format!("the username {username} is already taken")));
        }
        let hash = self.passwords.hash(password).await?;
        let id = UserId::generate();
        let color = PALETTE[(uuid::Uuid::new_v4().as_u128() % PALETTE.len() as u128) as usize];
        let rec = UserRecord {
            id,
            username: username.to_string(),
            display_name,
            avatar_color: color.to_string(),
            role,
            password_hash: hash,
            created_at: crate::clock::now_rfc3339(),
            last_seen: None,
            disabled: false,
            token_gen: 0,
            deleted: false,
        };
        let store = self.store.clone();
        let rec = tokio::task::spawn_blocking(move || data::insert_new(&store, rec)).await??;
        self.remember(&rec);
        Ok(rec)
    }

    /// Checks credentials. A wrong username and a wrong password answer identically and
    /// take the same time.
    pub async fn login(&self, username: &str, password: &str) -> Result<(String, UserRecord)> {
        let bad = || Error::Unauthenticated("invalid username or password".into());
        if username.len() > 64 || password.chars().count() > 256 {
            return Err(bad());
        }
        let rec = {
            let ix = self.index.read().expect("accounts lock");
            ix.by_name.get(&username.to_lowercase()).and_then(|id| ix.by_id.get(id)).cloned()
        };
        let ok = self.passwords.verify(password, rec.as_ref().map(|r| r.password_hash.as_str())).await?;
        let rec = match (ok, rec) {
            (true, Some(rec)) => rec,
            _ => return Err(bad()),
        };
        if rec.disabled {
            return Err(Error::Forbidden("account_disabled", "this account is disabled; ask an administrator".into()));
        }
        let (token, _) = self.tokens.issue(&rec.id, rec.token_gen)?;
        Ok((token, rec))
    }

    /// Resolves a token to its account: valid signature, not expired, not revoked, the
    /// account exists, is enabled and the token's generation is current.
    pub fn authenticate(&self, token: &str) -> Result<(Claims, UserRecord)> {
        let claims = self.tokens.verify(token)?;
        let ix = self.index.read().expect("accounts lock");
        match ix.by_id.get(&claims.sub) {
            Some(rec) if !rec.disabled && rec.token_gen == claims.gen => Ok((claims, rec.clone())),
            _ => Err(Error::Unauthenticated("invalid or expired token".into())),
        }
    }

    /// Revokes the token with these claims.
    pub async fn logout(&self, claims: &Claims) -> Result<()> {
        self.tokens.revoke(claims).await
    }

    /// One account by id.
    pub fn get(&self, id: &UserId) -> Option<UserRecord> {
        self.index.read().expect("accounts lock").by_id.get(id).cloned()
    }

    /// One account by username, case-insensitively.
    pub fn find(&self, username: &str) -> Option<UserRecord> {
        let ix = self.index.read().expect("accounts lock");
        ix.by_name.get(&username.to_lowercase()).and_then(|id| ix.by_id.get(id)).cloned()
    }

    /// Whether an enabled account with this id exists.
    pub fn exists(&self, id: &UserId) -> bool {
        self.index.read().expect("accounts lock").by_id.get(id).is_some_and(|r| !r.disabled)
    }

    /// Every account, oldest first.
    pub fn list(&self) -> Vec<UserRecord> {
        let mut all: Vec<UserRecord> = self.index.read().expect("accounts lock").by_id.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Accounts whose username or display name contains `q`, case-insensitively.
    pub fn search(&self, q: &str) -> Result<Vec<UserRecord>> {
        let n = q.chars().count();
        if !(1..=64).contains(&n) {
            return Err(Error::Invalid("invalid_query", "q must be 1–64 characters".into()));
        }
        let q = q.to_lowercase();
        let mut found: Vec<UserRecord> = self
            .index
            .read()
            .expect("accounts lock")
            .by_id
            .values()
            .filter(|r| r.username.to_lowercase().contains(&q) || r.display_name.to_lowercase().contains(&q))
            .cloned()
            .collect();
        found.sort_by_key(|r| r.username.to_lowercase());
        found.truncate(50);
        Ok(found)
    }

    /// Changes display name and/or avatar colour.
    pub async fn update_profile(
        &self,
        id: &UserId,
        display_name: Option<&str>,
        color: Option<&str>,
    ) -> Result<UserRecord> {
        let display_name = display_name.map(validate_display_name).transpose()?;
        if let Some(c) = color {
            validate_color(c)?;
        }
        self.modify(id, |rec| {
            if let Some(d) = display_name {
                rec.display_name = d;
            }
            if let Some(c) = color {
                rec.avatar_color = c.to_ascii_lowercase();
            }
        })
        .await
    }

    /// Records when a user was last online.
    pub async fn set_last_seen(&self, id: &UserId, when: &str) -> Result<()> {
        match self.modify(id, |rec| rec.last_seen = Some(when.to_string())).await {
            Err(Error::NotFound(_)) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Sets a new password (administrator reset). Every token issued before dies at once.
    pub async fn set_password(&self, id: &UserId, password: &str) -> Result<UserRecord> {
        validate_password(password)?;
        self.live(id)?;
        let hash = self.passwords.hash(password).await?;
        self.modify(id, |rec| {
            rec.password_hash = hash;
            rec.token_gen += 1;
        })
        .await
    }

    /// Disables or re-enables an account. Disabling also kills every token at once; the
    /// daemon closes the user's open connections.
    pub async fn set_disabled(&self, id: &UserId, disabled: bool) -> Result<UserRecord> {
        self.modify(id, |rec| {
            if disabled && !rec.disabled {
                rec.token_gen += 1;
            }
            rec.disabled = disabled;
        })
        .await
    }

    /// Changes what an account may do.
    pub async fn set_role(&self, id: &UserId, role: Role) -> Result<UserRecord> {
        self.modify(id, |rec| rec.role = role).await
    }

    /// Deletes an account the way that keeps history readable: the record stays (so old
    /// messages still resolve their sender) as a disabled "deleted user" with no password,
    /// no tokens and no role. The username stays reserved, so no one can impersonate it.
    pub async fn delete(&self, id: &UserId) -> Result<UserRecord> {
        self.modify(id, |rec| {
            rec.deleted = true;
            rec.disabled = true;
            rec.display_name = "deleted user".into();
            rec.password_hash = String::new();
            rec.role = Role::User;
            rec.last_seen = None;
            rec.token_gen += 1;
        })
        .await
    }

    /// An account that exists and is not deleted.
    fn live(&self, id: &UserId) -> Result<UserRecord> {
        self.get(id).filter(|r| !r.deleted).ok_or(Error::NotFound("user"))
    }

    /// Read-modify-write of one live account, serialised with every other change so that
    /// a late `lastSeen` update can never resurrect a record an administrator just changed.
    async fn modify(&self, id: &UserId, change: impl FnOnce(&mut UserRecord)) -> Result<UserRecord> {
        let _guard = self.writes.lock().await;
        let mut rec = self.live(id)?;
        change(&mut rec);
        self.save(rec).await
    }

    async fn save(&self, rec: UserRecord) -> Result<UserRecord> {
        let store = self.store.clone();
        let saved = rec.clone();
        tokio::task::spawn_blocking(move || data::update(&store, &saved)).await??;
        self.remember(&rec);
        Ok(rec)
    }
}

#[cfg(test)]
mod tests;
