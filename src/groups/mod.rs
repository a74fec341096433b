//! Groups: named sets of members with one group admin. Every group is also held in memory,
//! because membership is checked on every group message, typing event and call signal.
//! Writes commit to redb (`groupid_group`) before the in-memory copy changes.

use crate::accounts::Accounts;
use crate::error::{Error, Result};
use crate::ids::{GroupId, UserId};
use crate::store::{from_cell, to_cell, Store};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::OwnedMutexGuard;

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
    /// Serialises every change (see [`Groups::update`]).
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl Groups {
    /// Loads every group into memory.
    pub fn new(store: Store, accounts: Accounts) -> Result<Groups> {
        let tx = store.begin_read()?;
        let t = tx.open_table(GROUPID_GROUP)?;
        let mut all = HashMap::new();
        for row in t.iter()? {
            let g: Group = from_cell(row?.1.value())?;
            all.insert(g.id.clone(), g);
        }
        Ok(Groups { store, accounts, all: Arc::new(RwLock::new(all)), writes: Arc::default() })
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
        self.update(id, |g| add(g, user)).await
    }

    /// Removes `user`. When the admin leaves, the longest-standing member takes over.
    pub async fn leave(&self, id: &GroupId, user: &UserId) -> Result<Group> {
        self.update(id, |g| {
            if !g.has_member(user) {
                return Err(Error::Forbidden("not_a_member", "you are not a member of this group".into()));
            }
            remove(g, user)
        })
        .await
    }

    /// Adds `user` on behalf of `by`, who must be the group admin.
    pub async fn add_member(&self, id: &GroupId, by: &UserId, user: &UserId) -> Result<Group> {
        if &self.get(id)?.admin != by {
            return Err(Error::Forbidden("not_group_admin", "only the group admin can add members".into()));
        }
        if !self.accounts.exists(user) {
            return Err(Error::NotFound("user"));
        }
        self.update(id, |g| {
            // Checked again under the lock: the admin may have changed meanwhile.
            if &g.admin != by {
                return Err(Error::Forbidden("not_group_admin", "only the group admin can add members".into()));
            }
            add(g, user)
        })
        .await
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
        self.update(id, |g| {
            if !g.has_member(user) {
                return Err(Error::Invalid("not_a_member", "that user is not a member of this group".into()));
            }
            remove(g, user)
        })
        .await
    }

    /// Deletes a group. Its messages stay in the database (as in a backup) but no one can
    /// reach them any more.
    pub async fn delete(&self, id: &GroupId) -> Result<Group> {
        let guard = self.writes.clone().lock_owned().await;
        let g = self.get(id)?;
        self.commit(guard, Change::Remove(g.id.clone())).await?;
        Ok(g)
    }

    async fn save(&self, g: Group) -> Result<Group> {
        let guard = self.writes.clone().lock_owned().await;
        self.commit(guard, Change::put(g.clone())?).await?;
        Ok(g)
    }

    /// Read-modify-write of one group, serialised with every other change to groups so
    /// that two concurrent changes never overwrite each other (a join answered 200 must
    /// not be undone by a leave that read the group before it). `change` answers whether
    /// it changed anything; nothing is written when it did not.
    async fn update(&self, id: &GroupId, change: impl FnOnce(&mut Group) -> Result<bool>) -> Result<Group> {
        let guard = self.writes.clone().lock_owned().await;
        let mut g = self.get(id)?;
        if !change(&mut g)? {
            return Ok(g);
        }
        self.commit(guard, Change::put(g.clone())?).await?;
        Ok(g)
    }

    /// Commits one change and then applies it to memory, both on the blocking thread and
    /// under the write lock, so memory follows the disk even when the request that asked
    /// for the change has gone away meanwhile.
    async fn commit(&self, guard: OwnedMutexGuard<()>, change: Change) -> Result<()> {
        let (store, all) = (self.store.clone(), self.all.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            let _guard = guard;
            let tx = store.begin_write()?;
            {
                let mut t = tx.open_table(GROUPID_GROUP)?;
                match &change {
                    Change::Put(g, cell) => {
                        t.insert(g.id.0.as_str(), cell.as_slice())?;
                    }
                    Change::Remove(id) => {
                        t.remove(id.0.as_str())?;
                    }
                }
            }
            tx.commit()?;
            let mut all = all.write().expect("groups lock");
            match change {
                Change::Put(g, _) => {
                    all.insert(g.id.clone(), g);
                }
                Change::Remove(id) => {
                    all.remove(&id);
                }
            }
            Ok(())
        })
        .await?
    }
}

/// One write to the groups table.
enum Change {
    /// The group and its serialised record.
    Put(Group, Vec<u8>),
    Remove(GroupId),
}

impl Change {
    fn put(g: Group) -> Result<Change> {
        let cell = to_cell(&g)?;
        Ok(Change::Put(g, cell))
    }
}

/// Adds `user` unless already there; refuses past the member limit.
fn add(g: &mut Group, user: &UserId) -> Result<bool> {
    if g.has_member(user) {
        return Ok(false);
    }
    if g.members.len() >= MAX_MEMBERS {
        return Err(Error::Conflict("group_full", format!("a group holds at most {MAX_MEMBERS} members")));
    }
    g.members.push(user.clone());
    Ok(true)
}

/// Removes `user`, handing the admin role to the longest-standing member if needed.
fn remove(g: &mut Group, user: &UserId) -> Result<bool> {
    g.members.retain(|m| m != user);
    if &g.admin == user {
        if let Some(next) = g.members.first() {
            g.admin = next.clone();
        }
    }
    Ok(true)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_joins_and_leaves_of_one_group_are_never_lost() {
        let (_d, a, g) = setup().await;
        let owner = a.create("owner", "password1", None, Role::User).await.unwrap().id;
        let group = g.create(&owner, "Busy", None, &[]).await.unwrap();
        let mut users = Vec::new();
        for i in 0..24 {
            users.push(a.create(&format!("user{i}"), "password1", None, Role::User).await.unwrap().id);
        }
        // Everyone joins at once; then the even ones leave at once while the odd ones
        // join again (a no-op): every answered change must be in the final group.
        let joins: Vec<_> = users.iter().map(|u| (g.clone(), group.id.clone(), u.clone())).collect();
        let tasks: Vec<_> =
            joins.into_iter().map(|(g, id, u)| tokio::spawn(async move { g.join(&id, &u).await })).collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let tasks: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let (g, id, u) = (g.clone(), group.id.clone(), u.clone());
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        g.leave(&id, &u).await
                    } else {
                        g.join(&id, &u).await
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let mut want: Vec<UserId> = users.iter().skip(1).step_by(2).cloned().collect();
        want.push(owner);
        want.sort();
        for view in [g.get(&group.id).unwrap(), Groups::new(g.store.clone(), a).unwrap().get(&group.id).unwrap()] {
            let mut got = view.members.clone();
            got.sort();
            assert_eq!(got, want);
        }
    }
}
