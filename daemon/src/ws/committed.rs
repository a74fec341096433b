//! Sends whose commit is done, handed from the message writer to one task that acks and
//! delivers them. The writer hands over every outcome of a commit and then says the commit
//! is done; the task then queues all of that commit's deliveries and acks in commit order
//! before any session runs, so each session finds its frames of the commit together and
//! writes them with one system call, and one sender's messages reach their recipients in
//! the order they were stored. With a task per send, each woke the session it queued a
//! frame for, which ran next and wrote that frame alone (2.7 frames per write at 100 pairs
//! × 16 in flight), and two such tasks on the two worker threads could answer in either
//! order.

use super::hub::Conn;
use super::reply_err;
use crate::Shared;
use quickmeet::chat::Stored;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

/// Outcomes waiting for the task. Bounded by what the writer holds: each is a send that
/// had a slot in its connection's in-flight limit and in the writer's queue.
#[derive(Default)]
pub struct Committed {
    done: Mutex<Vec<Outcome>>,
    wake: Notify,
}

/// One send's outcome and where it goes.
pub struct Outcome {
    pub conn: Conn,
    pub reference: Option<u64>,
    /// The send's slot in its connection's in-flight limit, freed once it is answered.
    pub permit: OwnedSemaphorePermit,
    pub result: quickmeet::Result<Stored>,
}

impl Committed {
    /// Hands over an outcome; called on the writer's sync thread, in commit order.
    pub fn push(&self, outcome: Outcome) {
        self.done.lock().expect("committed lock").push(outcome);
    }

    /// Ends a run of commits' outcomes; called on the writer's sync thread after them.
    pub fn commit_done(&self) {
        if !self.done.lock().expect("committed lock").is_empty() {
            self.wake.notify_one();
        }
    }
}

/// Answers outcomes a commit at a time, until shutdown or until the state is gone.
pub async fn run(state: Weak<Shared>, committed: Arc<Committed>, shutdown: CancellationToken) {
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = committed.wake.notified() => {}
        }
        std::mem::swap(&mut *committed.done.lock().expect("committed lock"), &mut batch);
        let Some(state) = state.upgrade() else { return };
        for outcome in batch.drain(..) {
            answer(&state, outcome);
        }
    }
}

/// The delivery (when the message is new), then the ack: a message is delivered and acked
/// only once it is durable.
fn answer(state: &Shared, o: Outcome) {
    match o.result {
        Ok(stored) => {
            if stored.new {
                state.hub.deliver_stored(&stored.message, &stored.json, Some(o.conn.id));
            }
            if let Some(r) = o.reference {
                o.conn.send(super::events::ack_message(r, &stored.json).into());
            }
        }
        Err(e) => reply_err(&o.conn, o.reference, &e),
    }
    drop(o.permit);
}
