use super::*;

async fn accounts() -> (tempfile::TempDir, Accounts) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tokens = Tokens::new(store.clone(), vec![1; 32], 3600).unwrap();
    let a = Accounts::new(store, Passwords::new(2).unwrap(), tokens).unwrap();
    (dir, a)
}

#[tokio::test]
async fn the_first_account_is_admin_and_later_ones_are_users() {
    let (_d, a) = accounts().await;
    let (_, first) = a.signup("alice", "password1", None).await.unwrap();
    let (_, second) = a.signup("bob", "password2", Some(" Bob B ")).await.unwrap();
    assert_eq!(first.role, Role::Admin);
    assert_eq!(second.role, Role::User);
    assert_eq!(second.display_name, "Bob B");
}

#[tokio::test]
async fn usernames_are_unique_regardless_of_case() {
    let (_d, a) = accounts().await;
    a.signup("alice", "password1", None).await.unwrap();
    let e = a.signup("ALICE", "password1", None).await.unwrap_err();
    assert_eq!(e.code(), "username_taken");
}

#[tokio::test]
async fn login_accepts_any_case_and_wrong_user_equals_wrong_password() {
    let (_d, a) = accounts().await;
    a.signup("Alice", "password1", None).await.unwrap();
    let (tok, rec) = a.login("aLiCe", "password1").await.unwrap();
    assert_eq!(a.authenticate(&tok).unwrap().1.id, rec.id);
    let wrong_pw = a.login("alice", "password2").await.unwrap_err();
    let wrong_user = a.login("nobody", "password1").await.unwrap_err();
    assert_eq!(wrong_pw.to_string(), wrong_user.to_string());
    assert_eq!(wrong_pw.code(), wrong_user.code());
}

#[tokio::test]
async fn bad_names_and_passwords_are_refused_before_anything_is_stored() {
    let (_d, a) = accounts().await;
    for (u, p) in [("ab", "password1"), ("a b c", "password1"), ("ok_name", "short"), (&*"x".repeat(33), "password1")] {
        assert!(a.signup(u, p, None).await.is_err(), "{u}/{p}");
    }
    assert!(a.list().is_empty());
    // Eight characters that are more than eight bytes still count as eight.
    a.signup("carol", "éééééééé", None).await.unwrap();
}

#[tokio::test]
async fn accounts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let tokens = Tokens::new(store.clone(), vec![1; 32], 3600).unwrap();
        let a = Accounts::new(store, Passwords::new(1).unwrap(), tokens).unwrap();
        a.signup("alice", "password1", None).await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let tokens = Tokens::new(store.clone(), vec![1; 32], 3600).unwrap();
    let a = Accounts::new(store, Passwords::new(1).unwrap(), tokens).unwrap();
    a.login("alice", "password1").await.unwrap();
    assert_eq!(a.search("ALI").unwrap().len(), 1);
}

#[tokio::test]
async fn profile_updates_are_validated() {
    let (_d, a) = accounts().await;
    let (_, rec) = a.signup("alice", "password1", None).await.unwrap();
    assert!(a.update_profile(&rec.id, Some("  "), None).await.is_err());
    assert!(a.update_profile(&rec.id, None, Some("red")).await.is_err());
    let r = a.update_profile(&rec.id, Some("Alice A"), Some("#ABCDEF")).await.unwrap();
    assert_eq!((r.display_name.as_str(), r.avatar_color.as_str()), ("Alice A", "#abcdef"));
}

#[tokio::test]
async fn an_admin_creates_accounts_that_log_in_without_a_token_being_issued() {
    let (_d, a) = accounts().await;
    let first = a.create("root", "password1", None, Role::User).await.unwrap();
    assert_eq!(first.role, Role::Admin, "the first account is always admin");
    let bob = a.create("bob", "password2", Some("Bob"), Role::Admin).await.unwrap();
    assert_eq!((bob.role, bob.display_name.as_str()), (Role::Admin, "Bob"));
    assert_eq!(a.find("BOB").unwrap().id, bob.id);
    a.login("bob", "password2").await.unwrap();
    assert_eq!(a.create("Bob", "password3", None, Role::User).await.unwrap_err().code(), "username_taken");
}

#[tokio::test]
async fn a_new_password_kills_old_tokens_and_the_old_password() {
    let (_d, a) = accounts().await;
    let (old, rec) = a.signup("alice", "password1", None).await.unwrap();
    assert!(a.set_password(&rec.id, "short").await.is_err());
    a.set_password(&rec.id, "password9").await.unwrap();
    assert!(a.authenticate(&old).is_err());
    assert!(a.login("alice", "password1").await.is_err());
    let (new, _) = a.login("alice", "password9").await.unwrap();
    a.authenticate(&new).unwrap();
}

#[tokio::test]
async fn disabling_refuses_tokens_and_logins_and_enabling_restores_logins_only() {
    let (_d, a) = accounts().await;
    let (tok, rec) = a.signup("alice", "password1", None).await.unwrap();
    a.set_disabled(&rec.id, true).await.unwrap();
    assert!(a.authenticate(&tok).is_err());
    assert_eq!(a.login("alice", "password1").await.unwrap_err().code(), "account_disabled");
    assert!(!a.exists(&rec.id));
    a.set_disabled(&rec.id, false).await.unwrap();
    assert!(a.authenticate(&tok).is_err(), "a token from before the disable stays dead");
    a.login("alice", "password1").await.unwrap();
}

#[tokio::test]
async fn a_deleted_user_stays_readable_but_can_do_nothing() {
    let (_d, a) = accounts().await;
    let (tok, rec) = a.signup("alice", "password1", None).await.unwrap();
    a.set_role(&rec.id, Role::Admin).await.unwrap();
    let gone = a.delete(&rec.id).await.unwrap();
    assert!(gone.deleted && gone.disabled && gone.password_hash.is_empty());
    assert_eq!(gone.role, Role::User);
    let public = a.get(&rec.id).unwrap().public(false);
    assert_eq!((public.display_name.as_str(), public.deleted), ("deleted user", true));
    assert!(serde_json::to_value(&public).unwrap()["deleted"] == true);
    assert!(a.authenticate(&tok).is_err());
    assert!(a.login("alice", "password1").await.is_err());
    assert!(a.login("alice", "").await.is_err());
    assert_eq!(a.signup("alice", "password1", None).await.unwrap_err().code(), "username_taken");
    for e in [
        a.set_disabled(&rec.id, false).await.unwrap_err(),
        a.set_password(&rec.id, "password2").await.unwrap_err(),
        a.delete(&rec.id).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), "not_found");
    }
    a.set_last_seen(&rec.id, "2026-01-01T00:00:00.000Z").await.unwrap();
    assert!(a.get(&rec.id).unwrap().last_seen.is_none());
}

#[tokio::test]
async fn a_live_user_has_no_deleted_field_on_the_wire() {
    let (_d, a) = accounts().await;
    let (_, rec) = a.signup("alice", "password1", None).await.unwrap();
    assert!(serde_json::to_value(rec.public(true)).unwrap().get("deleted").is_none());
}
