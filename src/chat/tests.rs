use super::*;
use crate::config::Config;
use crate::Core;

async fn core() -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(Config { data_dir: dir.path().to_path_buf(), ..Config::default() }).unwrap();
    (dir, core)
}

async fn user(c: &Core, name: &str) -> UserId {
    c.accounts.signup(name, "password1", None).await.unwrap().1.id
}

fn text(s: &str) -> SendRequest {
    SendRequest { content: s.into(), ..Default::default() }
}

#[tokio::test]
async fn a_resend_with_the_same_client_id_returns_the_original() {
    let (_d, c) = core().await;
    let (a, b) = (user(&c, "alice").await, user(&c, "bob").await);
    let req = SendRequest { client_id: Some("c-1".into()), ..text("hi") };
    let (m1, new1) = c.chat.send(&a, Target::User(b.clone()), req.clone()).await.unwrap();
    let (m2, new2) = c.chat.send(&a, Target::User(b.clone()), req).await.unwrap();
    assert!(new1 && !new2);
    assert_eq!(m1, m2);
    assert_eq!(c.chat.history(&b, &Target::User(a), None, 50).await.unwrap().messages.len(), 1);
}

#[tokio::test]
async fn history_pages_backwards_without_gaps_or_repeats() {
    let (_d, c) = core().await;
    let (a, b) = (user(&c, "alice").await, user(&c, "bob").await);
    for i in 0..120 {
        c.chat.send(&a, Target::User(b.clone()), text(&format!("m{i}"))).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = c.chat.history(&b, &Target::User(a.clone()), before.as_deref(), 50).await.unwrap();
        let mut contents: Vec<String> = page.messages.iter().map(|m| m.content.clone()).collect();
        contents.extend(seen);
        seen = contents;
        before = page.messages.first().map(|m| m.id.0.clone());
        if !page.has_more {
            break;
        }
    }
    let want: Vec<String> = (0..120).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn bad_limits_cursors_and_contents_are_refused() {
    let (_d, c) = core().await;
    let (a, b) = (user(&c, "alice").await, user(&c, "bob").await);
    assert!(c.chat.history(&a, &Target::User(b.clone()), None, 0).await.is_err());
    assert!(c.chat.history(&a, &Target::User(b.clone()), None, 101).await.is_err());
    assert!(c.chat.history(&a, &Target::User(b.clone()), Some("nope"), 10).await.is_err());
    assert!(c.chat.send(&a, Target::User(b.clone()), text("  ")).await.is_err());
    assert!(c.chat.send(&a, Target::User(b.clone()), text(&"x".repeat(10_001))).await.is_err());
    assert!(c.chat.send(&a, Target::User(a.clone()), text("me")).await.is_err());
    c.chat.send(&a, Target::User(b), text(&"é".repeat(10_000))).await.unwrap();
}

#[tokio::test]
async fn reading_a_dm_clears_unread_and_stamps_read_at() {
    let (_d, c) = core().await;
    let (a, b) = (user(&c, "alice").await, user(&c, "bob").await);
    for i in 0..3 {
        c.chat.send(&a, Target::User(b.clone()), text(&format!("m{i}"))).await.unwrap();
    }
    c.chat.send(&b, Target::User(a.clone()), text("reply")).await.unwrap();
    assert_eq!(c.chat.unread(&b).await.unwrap().users.get(&a), Some(&3));
    assert_eq!(c.chat.unread(&a).await.unwrap().users.get(&b), Some(&1));
    let r = c.chat.mark_dm_read(&b, &a).await.unwrap();
    assert_eq!(r.updated, 3);
    assert!(c.chat.unread(&b).await.unwrap().users.is_empty());
    let page = c.chat.history(&a, &Target::User(b.clone()), None, 50).await.unwrap();
    assert!(page.messages.iter().filter(|m| m.from == a).all(|m| m.read_at.is_some()));
    assert!(page.messages.iter().filter(|m| m.from == b).all(|m| m.read_at.is_none()));
}

#[tokio::test]
async fn group_messages_are_for_members_and_track_read_by() {
    let (_d, c) = core().await;
    let (a, b, e) = (user(&c, "alice").await, user(&c, "bob").await, user(&c, "eve").await);
    let g = c.groups.create(&a, "Team", None, std::slice::from_ref(&b)).await.unwrap();
    let t = Target::Group(g.id.clone());
    c.chat.send(&a, t.clone(), text("hello team")).await.unwrap();
    assert!(c.chat.send(&e, t.clone(), text("let me in")).await.is_err());
    assert!(c.chat.history(&e, &t, None, 10).await.is_err());
    assert_eq!(c.chat.unread(&b).await.unwrap().groups.get(&g.id), Some(&1));
    c.chat.mark_group_read(&b, &g.id).await.unwrap();
    let page = c.chat.history(&a, &t, None, 10).await.unwrap();
    assert_eq!(page.messages[0].read_by, Some(vec![b.clone()]));
    c.groups.leave(&g.id, &b).await.unwrap();
    assert!(c.chat.send(&b, t, text("bye")).await.is_err());
}

#[tokio::test]
async fn sync_returns_everything_after_a_cursor_across_conversations() {
    let (_d, c) = core().await;
    let (a, b, d) = (user(&c, "alice").await, user(&c, "bob").await, user(&c, "dave").await);
    let g = c.groups.create(&a, "Team", None, std::slice::from_ref(&b)).await.unwrap();
    let (first, _) = c.chat.send(&a, Target::User(b.clone()), text("1")).await.unwrap();
    c.chat.send(&d, Target::User(b.clone()), text("2")).await.unwrap();
    c.chat.send(&a, Target::Group(g.id.clone()), text("3")).await.unwrap();
    c.chat.send(&a, Target::User(d.clone()), text("not for bob")).await.unwrap();
    let page = c.chat.sync(&b, Some(first.id.as_str())).await.unwrap();
    let got: Vec<&str> = page.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(got, ["2", "3"]);
    assert!(!page.has_more);
    assert_eq!(c.chat.sync(&b, None).await.unwrap().messages.len(), 3);
}

#[tokio::test]
async fn concurrent_sends_are_all_stored_once() {
    let (_d, c) = core().await;
    let (a, b) = (user(&c, "alice").await, user(&c, "bob").await);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (c, a, b) = (c.clone(), a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            c.chat
                .send(&a, Target::User(b), SendRequest { client_id: Some(format!("k{}", i % 100)), ..text("x") })
                .await
                .unwrap()
        }));
    }
    let mut new = 0;
    for t in tasks {
        if t.await.unwrap().1 {
            new += 1;
        }
    }
    assert_eq!(new, 100);
    let page = c.chat.sync(&b, None).await.unwrap();
    assert_eq!(page.messages.len(), 100);
}

/// A core on `config` with alice, bob and dave, and alice's group "Team" with bob.
async fn three_users_and_a_group(config: &Config) -> (Core, UserId, UserId, UserId, GroupId) {
    let c = Core::open(config.clone()).unwrap();
    let (a, b, d) = (user(&c, "alice").await, user(&c, "bob").await, user(&c, "dave").await);
    let g = c.groups.create(&a, "Team", None, std::slice::from_ref(&b)).await.unwrap().id;
    (c, a, b, d, g)
}

/// What `b` sees: each conversation's history, unread counts and a full sync.
async fn view_of(c: &Core, b: &UserId, peers: &[UserId], g: &GroupId) -> (Vec<Vec<String>>, Unread, Vec<String>) {
    let mut histories = Vec::new();
    let targets = peers.iter().map(|p| Target::User(p.clone())).chain([Target::Group(g.clone())]);
    for t in targets {
        let page = c.chat.history(b, &t, None, 100).await.unwrap();
        histories.push(page.messages.iter().map(|m| m.content.clone()).collect());
    }
    let unread = c.chat.unread(b).await.unwrap();
    let synced = c.chat.sync(b, None).await.unwrap().messages.iter().map(|m| m.content.clone()).collect();
    (histories, unread, synced)
}

#[tokio::test]
async fn messages_read_the_same_before_and_after_the_writer_merges_them() {
    // Unit tests merge every `MERGE_AT` (7) appends, so 40 sends over three conversations
    // cross several merges; every read must agree with what was sent, in order, and again
    // after a restart, which finds a part of the messages still unmerged.
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    let (c, a, b, d, g) = three_users_and_a_group(&config).await;
    let mut want: Vec<Vec<String>> = vec![Vec::new(), Vec::new(), Vec::new()];
    let mut all = Vec::new();
    for i in 0..40 {
        let (from, target, slot) = match i % 3 {
            0 => (&a, Target::User(b.clone()), 0),
            1 => (&d, Target::User(b.clone()), 1),
            _ => (&a, Target::Group(g.clone()), 2),
        };
        let content = format!("m{i}");
        c.chat.send(from, target, text(&content)).await.unwrap();
        want[slot].push(content.clone());
        all.push(content);
        if i % 6 == 5 {
            let (histories, unread, synced) = view_of(&c, &b, &[a.clone(), d.clone()], &g).await;
            assert_eq!(histories, want, "after {} sends", i + 1);
            assert_eq!(unread.users.get(&a).copied(), Some(want[0].len() as u64));
            assert_eq!(unread.users.get(&d).copied(), Some(want[1].len() as u64));
            assert_eq!(unread.groups.get(&g).copied(), Some(want[2].len() as u64));
            assert_eq!(synced, all);
        }
    }
    let before = view_of(&c, &b, &[a.clone(), d.clone()], &g).await;
    c.chat.close().await;
    drop(c);

    let c = Core::open(config).unwrap();
    let after = view_of(&c, &b, &[a.clone(), d.clone()], &g).await;
    assert_eq!((&after.0, &after.2), (&before.0, &before.2));
    assert_eq!(after.1.users, before.1.users);
    // Reading a DM clears exactly its count; new sends carry on after the restart.
    assert_eq!(c.chat.mark_dm_read(&b, &d).await.unwrap().updated, want[1].len() as u64);
    let (m, _) = c.chat.send(&a, Target::User(b.clone()), text("after")).await.unwrap();
    let (_, unread, synced) = view_of(&c, &b, &[a.clone(), d.clone()], &g).await;
    assert_eq!(unread.users.get(&d), None);
    assert_eq!(unread.users.get(&a).copied(), Some(want[0].len() as u64 + 1));
    assert_eq!(synced.last().map(String::as_str), Some("after"));
    let page = c.chat.history(&b, &Target::User(a.clone()), Some(m.id.as_str()), 100).await.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.content.clone()).collect::<Vec<_>>(), want[0]);
}

#[tokio::test]
async fn a_snapshot_taken_before_two_merges_still_reads_what_it_saw() {
    // Memory forgets a merge's messages once the next merge is done: a snapshot older than
    // that reads them from their rows, and sees exactly what was stored when it began.
    let (_d, c) = core().await;
    let (a, b, d) = (user(&c, "alice").await, user(&c, "bob").await, user(&c, "dave").await);
    for i in 0..5 {
        c.chat.send(&a, Target::User(b.clone()), text(&format!("early{i}"))).await.unwrap();
    }
    let one = data::Snapshot::new(&c.store, &c.chat.unmerged).unwrap();
    let many = data::Snapshot::new(&c.store, &c.chat.unmerged).unwrap();
    for i in 0..40 {
        let from = if i % 2 == 0 { &a } else { &d };
        c.chat.send(from, Target::User(b.clone()), text(&format!("late{i}"))).await.unwrap();
    }
    assert!(c.chat.unmerged.read().unwrap().low() > 5, "two merges must have happened since");
    let ab = data::dm_key(&a, &b);
    let seen = one.range(&ab, 0, u64::MAX, 100, false).unwrap();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen.iter().all(|(_, s)| s == a.as_str()));
    let many = many.many_conversations(data::Scope::new(&b, [])).unwrap();
    assert_eq!(many.range(&ab, 0, u64::MAX, 100, false).unwrap(), seen);
    assert!(many.range(&data::dm_key(&d, &b), 0, u64::MAX, 100, false).unwrap().is_empty());
    assert_eq!(many.dm_peers(b.as_str()).unwrap(), vec![(a.clone(), seen[4].0)]);
    // A snapshot now sees all 45, the early ones from the index.
    let now = data::Snapshot::new(&c.store, &c.chat.unmerged).unwrap();
    assert_eq!(now.range(&ab, 0, u64::MAX, 100, false).unwrap().len(), 25);
    assert_eq!(now.range(&data::dm_key(&d, &b), 0, u64::MAX, 100, false).unwrap().len(), 20);
}

#[tokio::test]
async fn a_schema_4_database_keeps_every_message_readable_after_its_upgrade() {
    an_older_database_keeps_every_message_readable_after_its_upgrade(4).await;
}

#[tokio::test]
async fn a_schema_5_database_keeps_every_message_readable_after_its_upgrade() {
    an_older_database_keeps_every_message_readable_after_its_upgrade(5).await;
}

/// Turns a database of the current schema into what schema `version` (4 or 5) kept,
/// opens it again, and checks every read.
async fn an_older_database_keeps_every_message_readable_after_its_upgrade(version: u64) {
    use redb::{ReadableTable, TableDefinition, TableHandle};
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
    let (c, a, b, d, g) = three_users_and_a_group(&config).await;
    for i in 0..12 {
        let (from, target) = match i % 3 {
            0 => (&a, Target::User(b.clone())),
            1 => (&d, Target::User(b.clone())),
            _ => (&a, Target::Group(g.clone())),
        };
        c.chat.send(from, target, text(&format!("m{i}"))).await.unwrap();
    }
    let before = view_of(&c, &b, &[a.clone(), d.clone()], &g).await;
    c.chat.close().await;
    drop(c);

    // Schema 5 kept the index by conversation key, in `conv_seq_sender`. Schema 4 also kept
    // the messages after the merged mark as entries of `merging_seq_conv_sender` (the older
    // half) and `recent_seq_conv_sender`, none of them in the index yet, and no mark.
    let recent = TableDefinition::<u64, (&str, &str)>::new("recent_seq_conv_sender");
    let merging = TableDefinition::<u64, (&str, &str)>::new("merging_seq_conv_sender");
    let store = crate::store::Store::open(dir.path()).unwrap();
    let tx = store.begin_write().unwrap();
    data::unnumber(&tx).unwrap();
    let mark = tx.open_table(data::CHAT_MARK).unwrap().get("merged_seq").unwrap().map_or(0, |v| v.value());
    let mut unmerged = Vec::new();
    for row in tx.open_table(data::SEQ_MESSAGE).unwrap().range(mark + 1..).unwrap() {
        let (k, v) = row.unwrap();
        let r = data::Route::of(v.value()).unwrap();
        unmerged.push((k.value(), (r.conv(), r.from())));
    }
    assert!(unmerged.len() >= 2, "the upgrade must have entries to move");
    if version == 4 {
        let mut convs = tx.open_table(data::LEGACY_CONV_SEQ_SENDER).unwrap();
        for (i, (seq, (conv, sender))) in unmerged.iter().enumerate() {
            convs.remove((conv.as_str(), *seq)).unwrap();
            let table = if i < unmerged.len() / 2 { merging } else { recent };
            tx.open_table(table).unwrap().insert(*seq, (conv.as_str(), sender.as_str())).unwrap();
        }
    }
    if version == 4 {
        assert!(tx.delete_table(data::CHAT_MARK).unwrap());
    }
    tx.open_table(TableDefinition::<&str, u64>::new("meta_u64")).unwrap().insert("schema_version", version).unwrap();
    tx.commit().unwrap();
    drop(store);

    let c = Core::open(config).unwrap();
    let after = view_of(&c, &b, &[a.clone(), d.clone()], &g).await;
    assert_eq!((&after.0, &after.2), (&before.0, &before.2));
    assert_eq!((after.1.users, after.1.groups), (before.1.users, before.1.groups));
    let tx = c.store.begin_read().unwrap();
    let names: Vec<String> = tx.list_tables().unwrap().map(|t| t.name().to_string()).collect();
    let old = ["recent_seq_conv_sender", "merging_seq_conv_sender", "conv_seq_sender"];
    assert!(!names.iter().any(|n| old.contains(&n.as_str())), "{names:?}");
    let mark_now = tx.open_table(data::CHAT_MARK).unwrap().get("merged_seq").unwrap().map(|v| v.value());
    // Schema 4's unmerged entries are merged by the upgrade; schema 5's stay unmerged.
    let want_mark = if version == 4 { unmerged.last().unwrap().0 } else { mark };
    assert_eq!(mark_now, Some(want_mark));
    drop(tx);
    // Sends carry on from there and are read along with the upgraded ones.
    c.chat.send(&d, Target::User(b.clone()), text("after")).await.unwrap();
    let page = c.chat.history(&b, &Target::User(d.clone()), None, 100).await.unwrap();
    let mut want = before.0[1].clone();
    want.push("after".into());
    assert_eq!(page.messages.iter().map(|m| m.content.clone()).collect::<Vec<_>>(), want);
}

#[test]
fn a_row_is_routed_the_same_by_its_prefix_and_by_parsing_it() {
    let alice = "0190a000-0000-7000-8000-0000000000aa";
    let bob = "0190a000-0000-7000-8000-0000000000bb";
    let m = |to: Option<&str>, group: Option<&str>, content: &str| Message {
        id: MessageId::from("0190a000-0000-7000-8000-000000000001"),
        from: UserId::from(alice),
        to: to.map(UserId::from),
        group_id: group.map(GroupId::from),
        kind: Kind::Text,
        content: content.into(),
        file: None,
        client_id: None,
        created_at: "2026-11-27T00:00:00Z".into(),
        read_at: None,
        read_by: None,
    };
    let route = |cell: &[u8]| data::Route::of(cell).map(|r| (r.conv(), r.from()));
    let want_dm = (format!("d:{alice}:{bob}"), alice.to_string());
    let dm = crate::store::to_cell(&m(Some(bob), None, "hi \"there\" \u{1F600}")).unwrap();
    assert_eq!(route(&dm).unwrap(), want_dm);
    assert!(data::Route::prefix(&dm).is_some(), "a row as stored is read by its prefix");
    // Multi-byte content after the prefix.
    let grp = crate::store::to_cell(&m(None, Some("g1"), &"é".repeat(600))).unwrap();
    assert_eq!(route(&grp).unwrap(), ("g:g1".to_string(), alice.to_string()));
    // Another field order, or an escape in an id, takes the parsing path to the same answer.
    let reordered = format!(r#"{{"from":"{alice}","id":"x","groupId":null,"to":"{bob}","content":""}}"#);
    assert_eq!(route(reordered.as_bytes()).unwrap(), want_dm);
    let escaped = format!(r#"{{"id":"x\u0041","from":"{alice}","to":"{bob}","groupId":null}}"#);
    assert_eq!(route(escaped.as_bytes()).unwrap(), want_dm);
    assert!(route(br#"{"id":"x","from":"a","to":null,"groupId":null}"#).is_err());
    assert!(route(b"not json").is_err());
}

#[tokio::test]
async fn a_client_id_indexed_the_schema_2_way_is_still_recognised() {
    use redb::ReadableTableMetadata;
    let (_d, c) = core().await;
    let (a, b) = (user(&c, "alice").await, user(&c, "bob").await);
    let req = |cid: &str| SendRequest { client_id: Some(cid.into()), ..text("hi") };
    let (m1, _) = c.chat.send(&a, Target::User(b.clone()), req("old-1")).await.unwrap();
    // Move its entry to the schema-2 index, (sender, clientId) → seq, as an upgraded
    // database has it.
    let tx = c.store.begin_write().unwrap();
    {
        let mut new = tx.open_table(data::CLIENTID_SENDER_SEQ).unwrap();
        let seq = new.remove(("old-1", a.as_str())).unwrap().unwrap().value();
        tx.open_table(data::SENDER_CLIENTID_SEQ).unwrap().insert((a.as_str(), "old-1"), seq).unwrap();
        assert!(new.is_empty().unwrap());
    }
    tx.commit().unwrap();
    assert_eq!(c.chat.send(&a, Target::User(b.clone()), req("old-1")).await.unwrap(), (m1, false));
    let (m2, new) = c.chat.send(&a, Target::User(b.clone()), req("new-1")).await.unwrap();
    assert!(new);
    assert_eq!(c.chat.send(&a, Target::User(b.clone()), req("new-1")).await.unwrap(), (m2, false));
    // The same clientId from another sender is another message.
    assert!(c.chat.send(&b, Target::User(a.clone()), req("new-1")).await.unwrap().1);
    let tx = c.store.begin_read().unwrap();
    assert_eq!(tx.open_table(data::CLIENTID_SENDER_SEQ).unwrap().len().unwrap(), 2);
}

#[tokio::test]
async fn message_ids_carry_their_seq_and_a_forged_or_schema_3_id_is_handled() {
    use redb::ReadableTable;
    let (_d, c) = core().await;
    let (a, b) = (user(&c, "alice").await, user(&c, "bob").await);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(c.chat.send(&a, Target::User(b.clone()), text(&format!("m{i}"))).await.unwrap().0.id);
    }
    // UUIDv7s in the order sent; consecutive seqs do not show as consecutive ids.
    for w in ids.windows(2) {
        assert!(w[0].as_str() < w[1].as_str(), "{} then {}", w[0], w[1]);
        assert_ne!(w[0].as_str()[19..], w[1].as_str()[19..]);
    }
    assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id.as_str()).unwrap().get_version_num() == 7));
    let page = c.chat.history(&b, &Target::User(a.clone()), Some(ids[3].as_str()), 50).await.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["m0", "m1", "m2"]);

    // Same hidden seq, another timestamp: decodes to a stored message, but not this id.
    let mut forged = *uuid::Uuid::parse_str(ids[3].as_str()).unwrap().as_bytes();
    forged[5] ^= 1;
    let forged = uuid::Uuid::from_bytes(forged).to_string();
    let err = c.chat.history(&b, &Target::User(a.clone()), Some(&forged), 50).await.unwrap_err();
    assert!(matches!(err, Error::Invalid("invalid_cursor", _)), "{err:?}");

    // A message stored by schema 3 has a random id, found through `messageid_seq`.
    let old = uuid::Uuid::now_v7().to_string();
    let tx = c.store.begin_write().unwrap();
    {
        let mut msgs = tx.open_table(data::SEQ_MESSAGE).unwrap();
        let (seq, mut m) = msgs
            .iter()
            .unwrap()
            .map(|r| r.unwrap())
            .map(|(k, v)| (k.value(), crate::store::from_cell::<Message>(v.value()).unwrap()))
            .find(|(_, m)| m.id == ids[2])
            .unwrap();
        m.id = MessageId::from(old.as_str());
        msgs.insert(seq, crate::store::to_cell(&m).unwrap().as_slice()).unwrap();
        tx.open_table(data::MESSAGEID_SEQ).unwrap().insert(old.as_str(), seq).unwrap();
    }
    tx.commit().unwrap();
    let page = c.chat.history(&b, &Target::User(a.clone()), Some(&old), 50).await.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["m0", "m1"]);
    let synced = c.chat.sync(&b, Some(&old)).await.unwrap().messages;
    assert_eq!(synced.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["m3", "m4"]);
}

#[test]
fn the_id_permutation_is_a_bijection_that_round_trips() {
    let a = data::IdCodec::with_key(0x1234_5678_9abc_def0);
    let b = data::IdCodec::with_key(7);
    let mut seen = std::collections::HashSet::new();
    for seq in (1..5_000u64).chain([u32::MAX as u64, (1 << 62) - 1]) {
        let id = a.encode(seq, 1_764_000_000_000);
        assert_eq!(a.decode(id.as_str()), Some(seq), "{id}");
        assert!(seen.insert(id.as_str().to_string()));
        assert_ne!(b.decode(id.as_str()), Some(seq));
    }
    assert_eq!(a.decode("not-a-uuid"), None);
    assert_eq!(a.decode(&uuid::Uuid::new_v4().to_string()), None);
}

#[tokio::test]
async fn submit_then_hands_over_every_outcome_in_order_and_refusals_at_once() {
    let (_d, c) = core().await;
    let (a, b, e) = (user(&c, "alice").await, user(&c, "bob").await, user(&c, "eve").await);
    let g = c.groups.create(&a, "Team", None, std::slice::from_ref(&b)).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sends = [
        (Target::User(b.clone()), SendRequest { client_id: Some("k-1".into()), ..text("one") }),
        (Target::Group(g.id.clone()), text("two")),
        (Target::User(b.clone()), SendRequest { client_id: Some("k-1".into()), ..text("one again") }),
        (Target::User(b.clone()), text("three")),
        (Target::Group(g.id.clone()), SendRequest { client_id: Some("k-2".into()), ..text("four") }),
        (Target::Group(g.id.clone()), SendRequest { client_id: Some("k-2".into()), ..text("four again") }),
    ];
    for (i, (target, req)) in sends.into_iter().enumerate() {
        let tx = tx.clone();
        c.chat.submit_then(&a, target, req, move |r| tx.send((i, r)).unwrap()).await.unwrap();
    }
    // Refused before it reaches the writer: an error here, and nothing handed over.
    let tx2 = tx.clone();
    let refused =
        c.chat.submit_then(&e, Target::Group(g.id.clone()), text("let me in"), move |r| tx2.send((9, r)).unwrap());
    assert!(refused.await.is_err());
    drop(tx);
    let mut got = Vec::new();
    while let Some((i, r)) = rx.recv().await {
        let s = r.unwrap();
        // The JSON a gateway puts in its frames is the message's, exactly.
        assert_eq!(s.json, serde_json::to_string(&s.message).unwrap(), "outcome {i}");
        got.push((i, s.message.content, s.new, s.message.read_by));
    }
    assert_eq!(
        got,
        vec![
            (0, "one".to_string(), true, None),
            (1, "two".to_string(), true, Some(vec![])),
            (2, "one".to_string(), false, None),
            (3, "three".to_string(), true, None),
            (4, "four".to_string(), true, Some(vec![])),
            (5, "four".to_string(), false, Some(vec![])),
        ]
    );
    let page = c.chat.history(&b, &Target::User(a.clone()), None, 10).await.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["one", "three"]);
}

/// Runs the test `name` of this binary in a child process with `QM_CHILD` set, and
/// returns how the child ended.
fn in_child(name: &str) -> std::process::ExitStatus {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads", "1"])
        .env("QM_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child still runs after 60 s: it hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_panic_on_the_writers_sync_thread_ends_the_process_instead_of_leaving_sends_unanswered() {
    const NAME: &str =
        "chat::tests::a_panic_on_the_writers_sync_thread_ends_the_process_instead_of_leaving_sends_unanswered";
    if std::env::var_os("QM_CHILD").is_none() {
        use std::os::unix::process::ExitStatusExt;
        let status = in_child(NAME);
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
        return;
    }
    // The child: a callback panics on the sync thread, then a send waits for its answer.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (_d, c) = core().await;
        let (a, b) = (user(&c, "alice").await, user(&c, "bob").await);
        c.chat.submit_then(&a, Target::User(b.clone()), text("one"), |_| panic!("a bug")).await.unwrap();
        // A send the panic's unwinding leaves unanswered may return an error first: only
        // the process ending counts. Still here, it hangs, and the parent says so.
        let _ = c.chat.send(&a, Target::User(b), text("two")).await;
        std::future::pending::<()>().await;
    });
}
