use super::*;

fn p(user: &str, conn: ConnId) -> Party {
    Party { user: UserId::from(user), conn }
}

fn u(s: &str) -> UserId {
    UserId::from(s)
}

fn cid(s: &str) -> CallId {
    CallId::from(s)
}

#[test]
fn an_answered_call_binds_the_answering_tab_and_stops_the_others_ringing() {
    let calls = Calls::new(6);
    let (outs, new) = calls.offer(&p("a", 1), &u("b"), &cid("c1"), CallType::Video, "sdp-o").unwrap();
    assert!(new);
    assert_eq!(outs[0].to, To::User(u("b")));
    let outs = calls.answer(&p("b", 7), &u("a"), &cid("c1"), "sdp-a").unwrap();
    assert!(outs
        .contains(&Out { to: To::UserExcept(u("b"), 7), event: CallEvent::End { from: u("a"), call_id: cid("c1") } }));
    assert!(outs.iter().any(|o| o.to == To::Conn(u("a"), 1) && matches!(o.event, CallEvent::Answer { .. })));
    // From now on the callee is reached on the answering connection only.
    let outs = calls.candidate(&p("a", 1), &u("b"), &cid("c1"), serde_json::json!({"candidate": "x"})).unwrap();
    assert_eq!(outs[0].to, To::Conn(u("b"), 7));
}

#[test]
fn a_busy_callee_rejects_with_busy_and_nothing_rings() {
    let calls = Calls::new(6);
    calls.offer(&p("a", 1), &u("b"), &cid("c1"), CallType::Audio, "s").unwrap();
    let (outs, new) = calls.offer(&p("c", 3), &u("b"), &cid("c2"), CallType::Audio, "s").unwrap();
    assert!(!new);
    assert_eq!(
        outs,
        vec![Out {
            to: To::Conn(u("c"), 3),
            event: CallEvent::Reject { from: u("b"), call_id: cid("c2"), reason: Some("busy".into()) }
        }]
    );
}

#[test]
fn strangers_cannot_signal_into_a_call() {
    let calls = Calls::new(6);
    calls.offer(&p("a", 1), &u("b"), &cid("c1"), CallType::Audio, "s").unwrap();
    assert!(calls.answer(&p("eve", 9), &u("a"), &cid("c1"), "s").is_err());
    assert!(calls.candidate(&p("eve", 9), &u("b"), &cid("c1"), serde_json::json!({})).is_err());
    assert!(calls.end(&p("eve", 9), &u("a"), &cid("c1")).is_err());
    // The caller cannot answer their own ringing call either.
    assert!(calls.answer(&p("a", 1), &u("b"), &cid("c1"), "s").is_err());
}

#[test]
fn ringing_times_out_for_both_and_an_answered_call_does_not() {
    let calls = Calls::new(6);
    calls.offer(&p("a", 1), &u("b"), &cid("c1"), CallType::Audio, "s").unwrap();
    let outs = calls.ring_timeout(&cid("c1"));
    assert_eq!(outs.len(), 2);
    assert_eq!(calls.counts().0, 0);
    calls.offer(&p("a", 1), &u("b"), &cid("c2"), CallType::Audio, "s").unwrap();
    calls.answer(&p("b", 2), &u("a"), &cid("c2"), "s").unwrap();
    assert!(calls.ring_timeout(&cid("c2")).is_empty());
}

#[test]
fn a_dropped_connection_ends_its_call_for_the_peer() {
    let calls = Calls::new(6);
    calls.offer(&p("a", 1), &u("b"), &cid("c1"), CallType::Audio, "s").unwrap();
    calls.answer(&p("b", 2), &u("a"), &cid("c1"), "s").unwrap();
    let outs = calls.disconnected(&p("b", 2), false);
    assert_eq!(outs, vec![Out { to: To::Conn(u("a"), 1), event: CallEvent::End { from: u("b"), call_id: cid("c1") } }]);
    // Another tab of the callee closing does not end a ringing call.
    calls.offer(&p("a", 1), &u("b"), &cid("c2"), CallType::Audio, "s").unwrap();
    assert!(calls.disconnected(&p("b", 5), true).is_empty());
}

#[test]
fn a_group_call_is_a_mesh_of_members_up_to_the_limit() {
    let calls = Calls::new(3);
    let g = GroupId::from("g");
    assert!(calls.group_join(&p("x", 9), &g, false).is_err());
    let (peers, _) = calls.group_join(&p("a", 1), &g, true).unwrap();
    assert!(peers.is_empty());
    calls.group_join(&p("b", 2), &g, true).unwrap();
    let (peers, outs) = calls.group_join(&p("c", 3), &g, true).unwrap();
    assert_eq!(peers, vec![u("a"), u("b")]);
    assert_eq!(outs.iter().filter(|o| matches!(o.event, CallEvent::PeerJoined { .. })).count(), 2);
    let e = calls.group_join(&p("d", 4), &g, true).unwrap_err();
    assert_eq!(e.code(), "call_full");
    // Signals only between participants, from the joined connection.
    let offer = |from| CallEvent::GroupOffer { group_id: g.clone(), from, sdp: "s".into() };
    assert_eq!(calls.group_signal(&p("a", 1), &g, &u("c"), offer).unwrap()[0].to, To::Conn(u("c"), 3));
    assert!(calls.group_signal(&p("d", 4), &g, &u("a"), offer).is_err());
    assert!(calls.group_signal(&p("a", 99), &g, &u("b"), offer).is_err());
    let outs = calls.disconnected(&p("b", 2), false);
    assert_eq!(outs.len(), 2);
    assert!(outs.iter().all(|o| matches!(&o.event, CallEvent::PeerLeft { user_id, .. } if user_id == &u("b"))));
}

#[test]
fn media_state_serializes_flat_with_its_sender() {
    let ev = CallEvent::Media {
        from: u("a"),
        state: MediaState { call_id: Some(cid("c")), group_id: None, audio: false, video: true, screen: false },
    };
    assert_eq!(
        serde_json::to_string(&ev).unwrap(),
        r#"{"type":"media:state","data":{"from":"a","callId":"c","audio":false,"video":true,"screen":false}}"#
    );
}
