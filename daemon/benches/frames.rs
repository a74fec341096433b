//! Benchmarks of WebSocket frame handling: decoding a client frame into its typed event,
//! and encoding a server event once for fan-out. Run with `cargo bench -p quickmeet-daemon`.

use quickmeet::chat::{Kind, Message};
use quickmeet::ids::{MessageId, UserId};
use quickmeet_daemon::ws::events::{message_frame, Incoming, ServerEvent};

fn main() {
    divan::main();
}

const SEND: &str = r#"{"type":"message:send","ref":42,"data":{"to":"01a2155d-96d6-7194-aebf-2d3f92027a4c","content":"Hello there, this is a fairly ordinary chat message.","clientId":"c-7f3a9b"}}"#;

#[divan::bench]
fn decode_message_send() -> Incoming {
    serde_json::from_str(divan::black_box(SEND)).unwrap()
}

fn message() -> Message {
    Message {
        id: MessageId::from("01a2155d-96d6-7194-aebf-2d3f92027a4d"),
        from: UserId::from("01a2155d-96d6-7194-aebf-2d3f92027a4c"),
        to: Some(UserId::from("01a2155d-96d6-7194-aebf-2d3f92027a4e")),
        group_id: None,
        kind: Kind::Text,
        content: "Hello there, this is a fairly ordinary chat message.".into(),
        file: None,
        client_id: Some("c-7f3a9b".into()),
        created_at: "2026-11-26T01:00:00.000Z".into(),
        read_at: None,
        read_by: None,
    }
}

#[divan::bench]
fn encode_message_receive(bencher: divan::Bencher) {
    let ev = ServerEvent::MessageReceive { message: message() };
    bencher.bench(|| divan::black_box(&ev).to_frame());
}

/// The same frame around the message's JSON as the writer stored it, as the gateway makes
/// the delivery and the ack of each WebSocket send.
#[divan::bench]
fn encode_message_receive_around_stored_json(bencher: divan::Bencher) {
    let msg = message();
    let json = serde_json::to_string(&msg).unwrap();
    bencher.bench(|| message_frame(divan::black_box(&msg), divan::black_box(&json)));
}
