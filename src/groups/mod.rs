//! Groups: named sets of members with one group admin. Every group is also held in memory,
//! because membership is checked on every group message, typing event and call signal.
//! Writes commit to redb (`groupid_group`) before the in-memory copy changes.

use crate::accounts::Accounts;
use crate::error::{Error, Result};
use crate::ids::{GroupId, UserId};
use crate::store::{from_cell, to_cell, Store};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub(crate) const GROUPID_GROUP: TableDefinition<&str, &[u8]> = TableDefinition::new("groupid_group");

/// Most members one group may have.
pub const MAX_MEMBERS: usize = 1000;

/// A group as stored and as sent to clients.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub description: String,
    pub admin: UserId,
    pub members: Vec<UserId>,
    pub created_at: String,
}

impl Group {
    /// Whether `user` is a member.
    pub fn has_member(&self, user: &UserId) -> bool {
        self.members.contains(user)
    }
}

fn validate_name(name: &str) -> Result<String> {
    let t = name.trim();
    if t.is_empty() || t.chars().count() > 64 || t.chars().any(char::is_control) {
        return Err(Error::Invalid("invalid_group_name", "group name must be 1–64 visible characters".into()));
    }
    Ok(t.to_string())
}

/// The groups service; cheap to clone.
#[derive(Clone)]
pub struct Groups {
    store: Store,
    accounts: Accounts,
    all: Arc<RwLock<HashMap<GroupId, Group>>>,
}

impl Groups {
    /// Loads every group into memory.
    pub fn new(store: Store, accounts: Accounts) -> Result<Groups> {
        let tx = store.db().begin_read()?;
        let t = tx.open_table(GROUPID_GROUP)?;
        let mut all = HashMap::new();
        for row in t.iter()? {
            let g: Group = from_cell(row?.1.value())?;
            all.insert(g.id.clone(), g);
        }
        Ok(Groups { store, accounts, all: Arc::new(RwLock::new(all)) })
    }

    /// Creates a group; the creator is its admin and first member.
    pub async fn create(
        &self,
        creator: &UserId,
        name: &str,
        description: Option<&str>,
        members: &[UserId],
    ) -> Result<Group> {
        let name = validate_name(name)?;
        let description = description.unwrap_or("").trim().to_string();
        if description.chars().count() > 500 {
            return Err(Error::Invalid("invalid_description", "description must be at most 500 characters".into()));
        }
        if members.len() >= MAX_MEMBERS {
            return Err(Error::Invalid("too_many_members", format!("a group holds at most {MAX_MEMBERS} members")));
        }
        let mut list = vec![creator.clone()];
        for m in members {
            if !self.accounts.exists(m) {
                return Err(Error::Invalid("unknown_user", format!("no user with id {m}")));
            }
            if !list.contains(m) {
                list.push(m.clone());
            }
        }
        let g = Group {
            id: GroupId::generate(),
            name,
            description,
            admin: creator.clone(),
            members: list,
            created_at: crate::clock::now_rfc3339(),
        };
        self.save(g).await
    }

    /// One group; visible to everyone (so it can be browsed and joined).
    pub fn get(&self, id: &GroupId) -> Result<Group> {
        self.all.read().expect("groups lock").get(id).cloned().ok_or(Error::NotFound("group"))
    }

    /// The group, if `user` is a member; otherwise "not found" for messages and calls.
    pub fn get_as_member(&self, id: &GroupId, user: &UserId) -> Result<Group> {
        match self.all.read().expect("groups lock").get(id) {
            Some(g) if g.has_member(user) => Ok(g.clone()),
            Some(_) => Err(Error::Forbidden("not_a_member", "you are not a member of this group".into())),
            None => Err(Error::NotFound("group")),
        }
    }

    /// Whether `user` is currently a member of `id`.
    pub fn is_member(&self, id: &GroupId, user: &UserId) -> bool {
        self.all.read().expect("groups lock").get(id).is_some_and(|g| g.has_member(user))
    }

    /// Every group, oldest first.
    pub fn all(&self) -> Vec<Group> {
        let mut v: Vec<Group> = self.all.read().expect("groups lock").values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The groups `user` belongs to, oldest first.
    pub fn of_user(&self, user: &UserId) -> Vec<Group> {
        let mut v: Vec<Group> =
            self.all.read().expect("groups lock").values().filter(|g| g.has_member(user)).cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Adds `user` to the group (joining is open, as in the original).
    pub async fn join(&self, id: &GroupId, user: &UserId) -> Result<Group> {
        let mut g = self.get(id)?;
        if g.has_member(user) {
            return Ok(g);
        }
        if g.members.len() >= MAX_MEMBERS {
            return Err(Error::Conflict("group_full", format!("a group holds at most {MAX_MEMBERS} members")));
        }
        g.members.push(user.clone());
        self.save(g).await
    }

    /// Removes `user`. When the admin leaves, the longest-standing member takes over.
    pub async fn leave(&self, id: &GroupId, user: &UserId) -> Result<Group> {
        let mut g = self.get_as_member(id, user)?;
        g.members.retain(|m| m != user);
        if &g.admin == user {
            if let Some(next) = g.members.first() {
                g.admin = next.clone();
            }
        }
        self.save(g).await
    }

    /// Adds `user` on behalf of `by`, who must be the group admin.
    pub async fn add_member(&self, id: &GroupId, by: &UserId, user: &UserId) -> Result<Group> {
        let g = self.get(id)?;
        if &g.admin != by {
            return Err(Error::Forbidden("not_group_admin", "only the group admin can add members".into()));
        }
        if !self.accounts.exists(user) {
            return Err(Error::NotFound("user"));
        }
        self.join(id, user).await
    }

    async fn save(&self, g: Group) -> Result<Group> {
        let store = self.store.clone();
        let cell = to_cell(&g)?;
        let key = g.id.0.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let tx = store.db().begin_write()?;
            tx.open_table(GROUPID_GROUP)?.insert(key.as_str(), cell.as_slice())?;
            tx.commit()?;
            Ok(())
        })
        .await??;
        self.all.write().expect("groups lock").insert(g.id.clone(), g.clone());
        Ok(g)
    }
}
