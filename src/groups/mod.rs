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

    /// Adds `user` as the appliance administrator does: no group-admin check.
    pub async fn admin_add_member(&self, id: &GroupId, user: &UserId) -> Result<Group> {
        if !self.accounts.exists(user) {
            return Err(Error::NotFound("user"));
        }
        self.join(id, user).await
    }

    /// Removes `user` as the appliance administrator does. When the group admin is
    /// removed, the longest-standing member takes over, as when an admin leaves.
    pub async fn remove_member(&self, id: &GroupId, user: &UserId) -> Result<Group> {
        let g = self.get(id)?;
        if !g.has_member(user) {
            return Err(Error::Invalid("not_a_member", "that user is not a member of this group".into()));
        }
        self.leave(id, user).await
    }

    /// Deletes a group. Its messages stay in the database (as in a backup) but no one can
    /// reach them any more.
    pub async fn delete(&self, id: &GroupId) -> Result<Group> {
        let g = self.get(id)?;
        let store = self.store.clone();
        let key = g.id.0.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let tx = store.db().begin_write()?;
            tx.open_table(GROUPID_GROUP)?.remove(key.as_str())?;
            tx.commit()?;
            Ok(())
        })
        .await??;
        self.all.write().expect("groups lock").remove(&g.id);
        Ok(g)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Role;
    use crate::auth::{Passwords, Tokens};

    async fn setup() -> (tempfile::TempDir, Accounts, Groups) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tokens = Tokens::new(store.clone(), vec![1; 32], 3600).unwrap();
        let accounts = Accounts::new(store.clone(), Passwords::new(2).unwrap(), tokens).unwrap();
        let groups = Groups::new(store, accounts.clone()).unwrap();
        (dir, accounts, groups)
    }

    #[tokio::test]
    async fn an_administrator_adds_and_removes_members_and_the_admin_role_moves_on() {
        let (_d, a, g) = setup().await;
        let alice = a.create("alice", "password1", None, Role::User).await.unwrap().id;
        let bob = a.create("bob", "password1", None, Role::User).await.unwrap().id;
        let group = g.create(&alice, "Team", None, &[]).await.unwrap();
        let group = g.admin_add_member(&group.id, &bob).await.unwrap();
        assert_eq!(group.members, vec![alice.clone(), bob.clone()]);
        assert_eq!(g.remove_member(&group.id, &bob).await.unwrap().members, vec![alice.clone()]);
        assert_eq!(g.remove_member(&group.id, &bob).await.unwrap_err().code(), "not_a_member");
        g.admin_add_member(&group.id, &bob).await.unwrap();
        let after = g.remove_member(&group.id, &alice).await.unwrap();
        assert_eq!(after.admin, bob);
        let ghost = crate::ids::UserId::generate();
        assert_eq!(g.admin_add_member(&group.id, &ghost).await.unwrap_err().code(), "not_found");
    }

    #[tokio::test]
    async fn a_deleted_group_is_gone_after_a_reload() {
        let (_d, a, g) = setup().await;
        let alice = a.create("alice", "password1", None, Role::User).await.unwrap().id;
        let keep = g.create(&alice, "Keep", None, &[]).await.unwrap();
        let drop = g.create(&alice, "Drop", None, &[]).await.unwrap();
        g.delete(&drop.id).await.unwrap();
        assert_eq!(g.get(&drop.id).unwrap_err().code(), "not_found");
        assert_eq!(g.delete(&drop.id).await.unwrap_err().code(), "not_found");
        let reloaded = Groups::new(g.store.clone(), a).unwrap();
        assert_eq!(reloaded.all(), vec![keep]);
    }
}
