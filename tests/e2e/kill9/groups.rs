//! The group drill: members join, post and leave, a group admin adds them and the
//! appliance administrator removes them, users create groups and the admin posts, all at
//! once, until quickmeetd is killed mid-burst. After the restart every acknowledged change
//! and message must be served, and membership must be one truth: listed members read the
//! group, everyone else is refused.

use super::SETTLE;
use crate::util::{ChildDaemon, Ws};
use futures_util::{SinkExt, StreamExt};
use quickmeet::admin::{AdminRequest, AdminResponse, Envelope, PROTOCOL_VERSION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Membership of one (group, user) pair as last acknowledged, and a change still waiting
/// for its answer when the daemon died (either outcome is then right).
#[derive(Clone, Copy, Default, Debug)]
struct Pair {
    member: bool,
    in_flight: Option<bool>,
}

/// What the burst got acknowledged before the kill.
#[derive(Default)]
struct Acked {
    /// Created groups: id, admin, members.
    created: Vec<(String, String, BTreeSet<String>)>,
    /// (group id, user id) → membership.
    pairs: HashMap<(String, String), Pair>,
    /// Group messages: group id, message id, content.
    messages: Vec<(String, String, String)>,
    changes: usize,
    /// Refusals before the kill: none is expected.
    anomalies: Vec<String>,
}

type Shared = Arc<Mutex<Acked>>;

/// REST calls that report `None` when no answer came (the daemon died first).
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(d: &ChildDaemon) -> Api {
        Api { http: d.http.clone(), base: d.url("") }
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Option<(StatusCode, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status();
        let text = resp.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// A change over REST: `Ok` on 2xx, the refusal otherwise.
    async fn change(&self, path: &str, token: &str, body: Option<Value>) -> Option<Result<(), String>> {
        let (status, v) = self.call(Method::POST, path, token, body).await?;
        Some(if status.is_success() { Ok(()) } else { Err(format!("{status} {v}")) })
    }

    /// Must answer (the daemon is up): status and body.
    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await.unwrap_or_else(|| panic!("GET {path}: no answer"))
    }
}

/// Removes a member over the admin socket, as `quickmeet group remove-member` does.
async fn remove_member(socket: &Path, group: &str, username: &str) -> Option<Result<(), String>> {
    let request = AdminRequest::GroupRemoveMember { group: group.into(), username: username.into() };
    let line = serde_json::to_string(&Envelope { version: PROTOCOL_VERSION, request }).unwrap() + "\n";
    let mut s = tokio::net::UnixStream::connect(socket).await.ok()?;
    s.write_all(line.as_bytes()).await.ok()?;
    let mut answer = String::new();
    tokio::io::BufReader::new(s).read_line(&mut answer).await.ok()?;
    match serde_json::from_str::<AdminResponse>(&answer).ok()? {
        AdminResponse::Group(_) => Some(Ok(())),
        other => Some(Err(format!("{other:?}"))),
    }
}

/// Sends a group message and waits for its ack: the message id, or the refusal.
async fn group_message(ws: &mut Ws, group: &str, content: &str) -> Option<Result<String, String>> {
    let r = ws.next_ref;
    ws.next_ref += 1;
    let frame = json!({"type": "message:group:send", "data": {"groupId": group, "content": content}, "ref": r});
    ws.stream.send(Message::Text(frame.to_string().into())).await.ok()?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.stream.next()).await.ok()??.ok()?;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).ok()?;
            if v["type"] == "ack" && v["ref"] == r {
                return Some(match v.get("error") {
                    Some(e) => Err(e.to_string()),
                    None => Ok(v["data"]["message"]["id"].as_str()?.to_string()),
                });
            }
        }
    }
}

/// One membership change of (group, user) towards `to`, recorded in `acked`. False when
/// the task should stop: no answer (the kill) or a refusal (an anomaly).
async fn change(
    acked: &Shared,
    what: &str,
    group: &str,
    user: &str,
    to: bool,
    outcome: impl Future<Output = Option<Result<(), String>>>,
) -> bool {
    let key = (group.to_string(), user.to_string());
    acked.lock().unwrap().pairs.entry(key.clone()).or_default().in_flight = Some(to);
    let outcome = outcome.await;
    let mut a = acked.lock().unwrap();
    match outcome {
        None => false,
        Some(Ok(())) => {
            a.pairs.insert(key, Pair { member: to, in_flight: None });
            a.changes += 1;
            true
        }
        Some(Err(e)) => {
            a.pairs.get_mut(&key).unwrap().in_flight = None;
            a.anomalies.push(format!("{what} {user} in {group}: {e}"));
            false
        }
    }
}

/// Records a group message's ack; false when the task should stop.
fn record_message(acked: &Shared, group: &str, content: String, ack: Option<Result<String, String>>) -> bool {
    let mut a = acked.lock().unwrap();
    match ack {
        None => false,
        Some(Ok(id)) => {
            a.messages.push((group.to_string(), id, content));
            true
        }
        Some(Err(e)) => {
            a.anomalies.push(format!("message {content:?} to {group}: {e}"));
            false
        }
    }
}

/// A user joining, posting to and leaving `groups`, round after round.
async fn member(api: Api, acked: Shared, (token, id): (String, String), groups: Vec<String>, mut ws: Ws) {
    for round in 0.. {
        for g in &groups {
            if !change(&acked, "join", g, &id, true, api.change(&format!("/api/groups/{g}/join"), &token, None)).await {
                return;
            }
            let content = format!("{id} round {round}");
            if !record_message(&acked, g, content.clone(), group_message(&mut ws, g, &content).await) {
                return;
            }
            if !change(&acked, "leave", g, &id, false, api.change(&format!("/api/groups/{g}/leave"), &token, None))
                .await
            {
                return;
            }
        }
    }
}

/// The group admin adding `users` to `group` over REST and the appliance administrator
/// removing them over the admin socket, round after round.
async fn moderator(
    api: Api,
    acked: Shared,
    socket: PathBuf,
    admin: String,
    group: String,
    users: Vec<(String, String)>,
) {
    let path = format!("/api/groups/{group}/add-member");
    loop {
        for (id, _) in &users {
            let add = api.change(&path, &admin, Some(json!({"userId": id})));
            if !change(&acked, "add", &group, id, true, add).await {
                return;
            }
        }
        for (id, name) in &users {
            if !change(&acked, "remove", &group, id, false, remove_member(&socket, &group, name)).await {
                return;
            }
        }
    }
}

/// A user creating groups with `others` in them.
async fn creator(api: Api, acked: Shared, (token, id): (String, String), others: Vec<String>) {
    for i in 0.. {
        let body = json!({"name": format!("made by {id} #{i}"), "members": others});
        match api.call(Method::POST, "/api/groups", &token, Some(body)).await {
            None => return,
            Some((StatusCode::CREATED, v)) => {
                let mut members: BTreeSet<String> = others.iter().cloned().collect();
                members.insert(id.clone());
                let mut a = acked.lock().unwrap();
                a.created.push((v["group"]["id"].as_str().unwrap().to_string(), id.clone(), members));
                a.changes += 1;
            }
            Some((s, v)) => return acked.lock().unwrap().anomalies.push(format!("create by {id}: {s} {v}")),
        }
    }
}

/// The admin of every group posting to them in turn.
async fn poster(acked: Shared, groups: Vec<String>, mut ws: Ws) {
    for i in 0.. {
        let g = &groups[i % groups.len()];
        let content = format!("post {i}");
        if !record_message(&acked, g, content.clone(), group_message(&mut ws, g, &content).await) {
            return;
        }
    }
}

/// `lines`, one a line, with user and group ids replaced by their names.
fn readable(lines: &[String], names: &[(String, String)]) -> String {
    let mut text = lines.join("\n");
    for (id, name) in names {
        text = text.replace(id.as_str(), name);
    }
    text
}

/// Member ids of a served group.
fn members(group: &Value) -> BTreeSet<String> {
    group["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect()
}

/// The people of the drill: (name, token, id), alice first; she owns the four groups.
type People = Vec<(&'static str, String, String)>;

#[tokio::test]
async fn group_changes_acknowledged_before_kill_9_are_all_there_and_membership_stays_consistent() {
    let mut d = ChildDaemon::start().await;
    let mut people: People = Vec::new();
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        let (token, id) = d.user(name).await;
        people.push((name, token, id));
    }
    let alice = &people[0];
    // On groups one and two the others join and leave by themselves; on three and four
    // alice adds them and the appliance administrator removes them.
    let mut groups = Vec::new();
    let api = Api::new(&d);
    for name in ["one", "two", "three", "four"] {
        let (s, v) = api.call(Method::POST, "/api/groups", &alice.1, Some(json!({"name": name}))).await.unwrap();
        assert_eq!(s, StatusCode::CREATED, "{v}");
        groups.push(v["group"]["id"].as_str().unwrap().to_string());
    }
    let mut names: Vec<(String, String)> = people.iter().map(|p| (p.2.clone(), p.0.to_string())).collect();
    names.extend(groups.iter().zip(["one", "two", "three", "four"]).map(|(g, n)| (g.clone(), n.to_string())));

    let acked = burst_until_killed(&mut d, &people, &groups).await;
    let in_flight = acked.pairs.values().filter(|p| p.in_flight.is_some()).count();
    eprintln!(
        "killed after {} changes and {} messages acknowledged, {in_flight} changes unanswered",
        acked.changes,
        acked.messages.len()
    );
    let anomalies = readable(&acked.anomalies, &names);
    assert!(acked.anomalies.is_empty(), "refused during the burst, before the kill:\n{anomalies}");

    d.restart().await;
    let api = Api::new(&d);
    let problems = differences(&api, &people, &groups, &acked).await;
    let (changes, messages) = (acked.changes, acked.messages.len());
    let problems = readable(&problems, &names);
    assert!(problems.is_empty(), "after kill -9 ({changes} changes, {messages} messages acknowledged):\n{problems}");

    // And it serves group changes and messages normally.
    let (s, v) = api.call(Method::POST, "/api/groups", &alice.1, Some(json!({"name": "after"}))).await.unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let after = v["group"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/groups/{after}/add-member");
    assert_eq!(api.change(&path, &alice.1, Some(json!({"userId": people[1].2}))).await, Some(Ok(())));
    let mut wb = d.ws(&people[1].1).await;
    let id = group_message(&mut wb, &after, "still here").await;
    let id = id.expect("no ack after the restart").unwrap_or_else(|e| panic!("refused after the restart: {e}"));
    let (_, page) = api.get(&format!("/api/messages/group/{after}"), &alice.1).await;
    assert!(page["messages"].as_array().unwrap().iter().any(|m| m["id"] == id.as_str()), "{page}");
}

/// Runs every burst task at once, SIGKILLs the daemon once enough got through (or at the
/// first refusal), and returns what was acknowledged.
async fn burst_until_killed(d: &mut ChildDaemon, people: &People, groups: &[String]) -> Acked {
    let (api, acked) = (Api::new(d), Shared::default());
    let alice = &people[0];
    let mut burst = Vec::new();
    for (_, token, id) in &people[1..] {
        let ws = d.ws(token).await;
        let task = member(api.clone(), acked.clone(), (token.clone(), id.clone()), groups[..2].to_vec(), ws);
        burst.push(tokio::spawn(task));
    }
    let socket = d.dir.path().join("admin.sock");
    let named: Vec<(String, String)> = people[1..].iter().map(|p| (p.2.clone(), p.0.to_string())).collect();
    for g in &groups[2..] {
        let task = moderator(api.clone(), acked.clone(), socket.clone(), alice.1.clone(), g.clone(), named.clone());
        burst.push(tokio::spawn(task));
    }
    for (who, with) in [(&people[1], &people[2]), (&people[2], &people[3])] {
        let task = creator(api.clone(), acked.clone(), (who.1.clone(), who.2.clone()), vec![with.2.clone()]);
        burst.push(tokio::spawn(task));
    }
    burst.push(tokio::spawn(poster(acked.clone(), groups.to_vec(), d.ws(&alice.1).await)));

    let deadline = Instant::now() + SETTLE;
    loop {
        let (changes, messages, anomalies) = {
            let a = acked.lock().unwrap();
            (a.changes, a.messages.len(), a.anomalies.len())
        };
        if anomalies > 0 || (changes >= 120 && messages >= 60) {
            break;
        }
        assert!(Instant::now() < deadline, "the burst got only {changes} changes and {messages} messages through");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.kill9();
    for task in burst {
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("a burst task outlived the kill").unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    acked
}

/// Everything the restarted daemon serves differently from what it acknowledged, and every
/// place where membership is not one truth.
async fn differences(api: &Api, people: &People, groups: &[String], acked: &Acked) -> Vec<String> {
    let alice = &people[0];
    let mut problems = Vec::new();
    let mut served: Vec<(String, BTreeSet<String>)> = Vec::new();
    for (id, admin, want) in &acked.created {
        let (s, v) = api.get(&format!("/api/groups/{id}"), &alice.1).await;
        if s != StatusCode::OK {
            problems.push(format!("created group {id} was acknowledged, then lost: {s} {v}"));
            continue;
        }
        let got = members(&v["group"]);
        if &got != want || v["group"]["admin"] != admin.as_str() {
            let admin_now = &v["group"]["admin"];
            problems
                .push(format!("created group {id}: members {got:?} admin {admin_now}, acknowledged {want:?} {admin}"));
        }
        served.push((id.clone(), got));
    }
    for g in groups {
        let (s, v) = api.get(&format!("/api/groups/{g}"), &alice.1).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let got = members(&v["group"]);
        if !got.contains(&alice.2) || v["group"]["admin"] != alice.2.as_str() {
            problems.push(format!("alice is no longer the admin and a member of group {g}: {v}"));
        }
        for (_, _, u) in &people[1..] {
            let pair = acked.pairs.get(&(g.clone(), u.clone())).copied().unwrap_or_default();
            let is = got.contains(u);
            if is != pair.member && pair.in_flight != Some(is) {
                problems.push(format!("{u} in group {g}: acknowledged {pair:?}, served member={is}"));
            }
        }
        served.push((g.clone(), got));
    }
    // Membership is one truth: a listed member reads the group and has it among their
    // groups; anyone else is refused and does not.
    for (_, token, u) in people {
        let (_, mine) = api.get("/api/groups", token).await;
        let mine: BTreeSet<&str> =
            mine["groups"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap()).collect();
        for (g, listed) in &served {
            let (s, _) = api.get(&format!("/api/messages/group/{g}?limit=1"), token).await;
            let (member, theirs) = (listed.contains(u), mine.contains(g.as_str()));
            let expected = if member { StatusCode::OK } else { StatusCode::FORBIDDEN };
            if s != expected || theirs != member {
                problems
                    .push(format!("{u} in group {g}: listed {member}, history answers {s}, in their groups {theirs}"));
            }
        }
    }
    // Every acknowledged group message is there exactly once.
    let mut history: Vec<(String, String, String)> = Vec::new();
    for g in groups {
        let mut before = String::new();
        loop {
            let (s, page) = api.get(&format!("/api/messages/group/{g}?limit=100{before}"), &alice.1).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            let msgs = page["messages"].as_array().unwrap();
            for m in msgs {
                history.push((g.clone(), m["id"].as_str().unwrap().into(), m["content"].as_str().unwrap().into()));
            }
            if !page["hasMore"].as_bool().unwrap() || msgs.is_empty() {
                break;
            }
            before = format!("&before={}", msgs[0]["id"].as_str().unwrap());
        }
    }
    for m in &acked.messages {
        let found: Vec<_> = history.iter().filter(|h| h.1 == m.1).collect();
        if found != [m] {
            problems.push(format!("message {:?} ({}) in group {} was acknowledged; found {found:?}", m.2, m.1, m.0));
        }
    }
    problems
}
