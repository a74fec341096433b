//! The message writer: one thread owns every message append and commits them in batches
//! (group commit). Whatever arrives while one fsync is in flight goes into the next
//! transaction, so durable throughput grows with concurrency instead of being capped at one
//! fsync per message, and a sender hears back only after its batch is durable. A second
//! thread syncs each commit while the writer builds the next (see [`spawn`]).

use super::{data, Draft, Stored};
use crate::error::{Error, Result};
use crate::store::{Durable, Store};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most appends committed in one transaction. Every commit rewrites at least one page per
/// sender in the idempotency index, so under a flat-out load larger batches write fewer
/// pages per message: 512 → 4,096 took 100 pairs × 16 in flight from 17.3k to 19.4k msg/s
/// (three alternating runs each). At 5,000 msg/s batches hold ~10 messages either way.
const MAX_BATCH: usize = 4096;
/// Appends waiting for the writer before senders are told to slow down.
pub(crate) const QUEUE: usize = 16 * 1024;

/// What a sender hears back: the stored message, and whether it is new.
type Appended = Result<Stored>;

pub(crate) struct Append {
    pub draft: Draft,
    pub reply: Reply,
}

/// Where an append's outcome goes once its batch is durable (or has failed).
pub(crate) enum Reply {
    /// To a task waiting on it ([`super::PendingSend`]).
    Wait(oneshot::Sender<Appended>),
    /// To a function, called on the writer's sync thread in commit order
    /// ([`super::Chat::submit_then`]).
    Call(Box<dyn FnOnce(Appended) + Send>),
}

impl Reply {
    fn send(self, outcome: Appended) {
        match self {
            Reply::Wait(tx) => {
                let _ = tx.send(outcome);
            }
            Reply::Call(f) => f(outcome),
        }
    }
}

/// What the writer is asked to do.
pub(crate) enum Op {
    Append(Box<Append>),
    /// Commit what is queued before this, then stop and release the database.
    Stop,
}

/// A commit's outcomes, answered once the commit is durable.
struct Done {
    /// `None` when nothing was committed (the outcomes are errors).
    durable: Option<Durable>,
    outcomes: Vec<(Reply, Appended)>,
}

/// Starts the writer thread, and the thread that syncs its commits and answers them; both
/// stop when every sender is dropped.
///
/// The writer commits a batch with its sync deferred ([`WriteTx::commit_deferred`]) and
/// goes on to the next while the other thread syncs it: the disk's sync (~5 ms here) then
/// overlaps the next batch's work instead of adding to it, and the writer, the one serial
/// stage, spends its time on appends. A commit's first write waits for the sync before it,
/// so each batch is on disk before the next one starts to be written.
pub(crate) fn spawn(
    store: Store,
    position: data::Position,
    after_commit: Arc<Mutex<Option<super::AfterCommit>>>,
) -> Result<(mpsc::Sender<Op>, std::thread::JoinHandle<()>)> {
    let unmerged = position.unmerged().clone();
    let mut pos = Some(position);
    let (tx, mut rx) = mpsc::channel::<Op>(QUEUE);
    // Holds at most about two commits: each commit's writes wait for the sync before it.
    let (to_sync, done) = std::sync::mpsc::channel::<Done>();
    let syncer = std::thread::Builder::new().name("qm-sync".into()).spawn(move || {
        let _fatal = AbortOnPanic("qm-sync");
        answer(done, &after_commit)
    })?;
    let handle = std::thread::Builder::new().name("qm-writer".into()).spawn(move || {
        let _fatal = AbortOnPanic("qm-writer");
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut stop = false;
        while !stop {
            match rx.blocking_recv() {
                Some(Op::Append(a)) => batch.push(*a),
                Some(Op::Stop) | None => break,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Op::Append(a)) => batch.push(*a),
                    Ok(Op::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let _ = to_sync.send(commit_batch(&store, &unmerged, &mut pos, &mut batch));
        }
        rx.close();
        let mut outcomes = Vec::new();
        while let Ok(Op::Append(a)) = rx.try_recv() {
            outcomes.push((a.reply, Err(Error::Unavailable("shutting down".into()))));
        }
        let _ = to_sync.send(Done { durable: None, outcomes });
        drop(to_sync);
        let _ = syncer.join();
    })?;
    Ok((tx, handle))
}

/// Ends the process when the thread holding it panics. Without the writer no send would
/// be stored, and without its sync thread none would be answered: every sender would wait
/// forever while the process looked healthy. Ended, it is restarted (the unit's
/// `Restart=on-failure`) with every acknowledged message, and clients resend the rest.
struct AbortOnPanic(&'static str);

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(thread = self.0, "a message writer thread panicked; stopping the process");
            std::process::abort();
        }
    }
}

/// Answers each commit once it is durable, in commit order, then calls the after-commit
/// hook, once for all the commits that were ready together.
fn answer(done: std::sync::mpsc::Receiver<Done>, after_commit: &Mutex<Option<super::AfterCommit>>) {
    while let Ok(first) = done.recv() {
        let mut next = Some(first);
        while let Some(d) = next {
            let synced = d.durable.as_ref().map_or(Ok(()), Durable::wait);
            match synced {
                Ok(()) => d.outcomes.into_iter().for_each(|(reply, outcome)| reply.send(outcome)),
                Err(e) => {
                    let e = Error::from(e);
                    tracing::error!(error = %e, "message batch sync failed");
                    d.outcomes.into_iter().for_each(|(reply, _)| reply.send(Err(failed(&e))));
                }
            }
            next = done.try_recv().ok();
        }
        let hook = after_commit.lock().expect("after-commit lock").clone();
        if let Some(f) = hook {
            f();
        }
    }
}

/// What a sender hears when its batch was not stored: a full disk, and a store recovering
/// from one, are worth saying.
fn failed(e: &Error) -> Error {
    match e {
        Error::StorageFull => Error::StorageFull,
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        _ => Error::Unavailable("message could not be stored; retry".into()),
    }
}

/// Commits one batch, along with the next slice of the merge of new messages into the
/// per-conversation indexes (see `data.rs`). `pos` is `None` after a failed commit: the
/// store may have reopened the database since, so the next batch counts on from what the
/// database holds rather than from what this thread believed.
fn commit_batch(
    store: &Store,
    unmerged: &data::SharedUnmerged,
    pos: &mut Option<data::Position>,
    batch: &mut Vec<Append>,
) -> Done {
    let outcome = (|| -> Result<(data::Position, Vec<Appended>, Durable)> {
        let tx = store.begin_write()?;
        let mut at = match pos.take() {
            Some(p) => p,
            None => data::Position::read(&tx, unmerged)?,
        };
        at.merge_step(&tx, batch.len())?;
        let mut appender = data::Appender::new(&tx)?;
        let results: Vec<Appended> = batch.iter().map(|a| appender.append(&mut at, &a.draft)).collect();
        drop(appender);
        let durable = tx.commit_deferred()?;
        Ok((at, results, durable))
    })();
    match outcome {
        Ok((at, results, durable)) => {
            *pos = Some(at);
            Done { durable: Some(durable), outcomes: batch.drain(..).map(|a| a.reply).zip(results).collect() }
        }
        Err(e) => {
            // Nothing of the batch is stored: every sender hears so and may retry.
            tracing::error!(error = %e, "message batch commit failed");
            *pos = None;
            Done { durable: None, outcomes: batch.drain(..).map(|a| (a.reply, Err(failed(&e)))).collect() }
        }
    }
}
