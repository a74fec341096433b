//! Benchmarks of the core's hot paths: token verification (every request and socket),
//! durable message appends through the group-commit writer, history page reads, and one
//! password hash at our parameters (every login and sign-up), ours beside the crate's.
//! Run with `cargo bench -p quickmeet`; divan prints the figures.

use quickmeet::chat::{SendRequest, Target};
use quickmeet::config::Config;
use quickmeet::Core;

fn main() {
    divan::main();
}

struct Fixture {
    _dir: tempfile::TempDir,
    core: Core,
    rt: tokio::runtime::Runtime,
    token: String,
    a: quickmeet::ids::UserId,
    b: quickmeet::ids::UserId,
}

fn fixture(history: usize) -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(Config { data_dir: dir.path().to_path_buf(), ..Config::default() }).unwrap();
    let (token, a, b) = rt.block_on(async {
        let (token, a) = core.accounts.signup("alice", "password1", None).await.unwrap();
        let (_, b) = core.accounts.signup("bob", "password1", None).await.unwrap();
        send_concurrently(&core, &a.id, &b.id, history).await;
        (token, a.id, b.id)
    });
    Fixture { _dir: dir, core, rt, token, a, b }
}

/// Sends `n` messages from `a` to `b`, all in flight at once.
async fn send_concurrently(core: &Core, a: &quickmeet::ids::UserId, b: &quickmeet::ids::UserId, n: usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (core, a, b) = (core.clone(), a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            core.chat.send(&a, Target::User(b), SendRequest { content: format!("m{i}"), ..Default::default() }).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[divan::bench]
fn token_verify(bencher: divan::Bencher) {
    let f = fixture(0);
    bencher.bench(|| f.core.accounts.authenticate(divan::black_box(&f.token)).unwrap());
}

/// One durable append at a time: bound by one fsync per message.
#[divan::bench(sample_count = 20, sample_size = 5)]
fn append_one_at_a_time(bencher: divan::Bencher) {
    let f = fixture(0);
    bencher.bench(|| {
        f.rt.block_on(f.core.chat.send(
            &f.a,
            Target::User(f.b.clone()),
            SendRequest { content: "x".into(), ..Default::default() },
        ))
        .unwrap()
    });
}

/// 256 appends in flight together: the writer commits them in shared transactions.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn append_256_concurrent(bencher: divan::Bencher) {
    let f = fixture(0);
    bencher.counter(divan::counter::ItemsCount::new(256usize)).bench(|| {
        f.rt.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..256 {
                let (core, a, b) = (f.core.clone(), f.a.clone(), f.b.clone());
                tasks.push(tokio::spawn(async move {
                    core.chat.send(&a, Target::User(b), SendRequest { content: "x".into(), ..Default::default() }).await
                }));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        })
    });
}

/// The newest page of 50 from a conversation of 10,000 messages.
#[divan::bench]
fn history_page_of_50(bencher: divan::Bencher) {
    let f = fixture(10_000);
    bencher.bench(|| f.rt.block_on(f.core.chat.history(&f.b, &Target::User(f.a.clone()), None, 50)).unwrap());
}

/// The newest page of a conversation of 50 messages, read after 10,000 messages elsewhere:
/// the worst case for the messages not merged into the per-conversation index yet (up to
/// two merges' worth, none of them this conversation's), which a read walks in full.
#[divan::bench]
fn history_page_of_a_quiet_conversation(bencher: divan::Bencher) {
    let f = quiet_fixture();
    bencher.bench(|| f.0.rt.block_on(f.0.core.chat.history(&f.1, &Target::User(f.0.a.clone()), None, 50)).unwrap());
}

/// Unread counts of a user with two conversations, one of them busy, after 10,000 messages.
#[divan::bench]
fn unread_counts(bencher: divan::Bencher) {
    let f = quiet_fixture();
    bencher.bench(|| f.0.rt.block_on(f.0.core.chat.unread(&f.0.b)).unwrap());
}

/// Carol and Alice exchange 50 messages, then Alice sends Bob 10,000 (the last one alone,
/// so that the merge count is not a multiple of a batch).
fn quiet_fixture() -> (Fixture, quickmeet::ids::UserId) {
    let f = fixture(0);
    let carol = f.rt.block_on(async {
        let carol = f.core.accounts.signup("carol", "password1", None).await.unwrap().1.id;
        for i in 0..50 {
            let req = SendRequest { content: format!("c{i}"), ..Default::default() };
            f.core.chat.send(&carol, Target::User(f.a.clone()), req).await.unwrap();
        }
        send_concurrently(&f.core, &f.a, &f.b, 10_001).await;
        carol
    });
    (f, carol)
}

/// Opening the core on a data dir whose last 8,000 messages are not merged into the
/// per-conversation index yet (fewer than a merge's worth): start-up reads each of their rows
/// once to know their conversations.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn open_with_8000_unmerged_messages(bencher: divan::Bencher) {
    let f = fixture(8_000);
    let config = Config { data_dir: f._dir.path().to_path_buf(), ..Config::default() };
    f.rt.block_on(f.core.chat.close());
    drop(f.core);
    bencher.bench(|| {
        let core = Core::open(config.clone()).unwrap();
        f.rt.block_on(core.chat.close());
    });
}

/// 256 appends in flight together, spread over 128 conversations (256 users in pairs), as
/// the load generator's chat scenario spreads them: compare with `append_256_concurrent`
/// (one conversation) for what touching many conversations costs a commit.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn append_256_over_128_conversations(bencher: divan::Bencher) {
    let f = fixture(0);
    let users: Vec<quickmeet::ids::UserId> = f.rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..256 {
            v.push(f.core.accounts.signup(&format!("pair{i}"), "password1", None).await.unwrap().1.id);
        }
        v
    });
    bencher.counter(divan::counter::ItemsCount::new(256usize)).bench(|| {
        f.rt.block_on(async {
            let mut tasks = Vec::new();
            for pair in users.chunks(2) {
                for _ in 0..2 {
                    let (core, a, b) = (f.core.clone(), pair[0].clone(), pair[1].clone());
                    tasks.push(tokio::spawn(async move {
                        core.chat
                            .send(&a, Target::User(b), SendRequest { content: "x".into(), ..Default::default() })
                            .await
                    }));
                }
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        })
    });
}

const PASSWORD_M_COST: u32 = 19 * 1024;

/// One Argon2id hash at the stored parameters (19 MiB, t = 2, p = 1) by the AVX2 code, on
/// one thread and on two at once, as the daemon's two hashing threads run a login burst:
/// the two share the memory bus, so each hash takes longer than alone.
#[divan::bench(threads = [1, 2], sample_count = 10, sample_size = 1)]
fn password_hash_avx2(bencher: divan::Bencher) {
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    bencher.bench(|| {
        let mut out = [0u8; 32];
        MEMORY.with_borrow_mut(|memory| {
            assert!(quickmeet_argon2id::hash(
                PASSWORD_M_COST,
                2,
                b"correct horse",
                b"sixteen byte salt",
                &mut out,
                memory
            ))
        });
        out
    });
}

/// The same hash by the `argon2` crate, the fallback on CPUs without AVX2.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn password_hash_crate(bencher: divan::Bencher) {
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    let params = Params::new(PASSWORD_M_COST, 2, 1, None).unwrap();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut memory = vec![Block::default(); params.block_count()];
    let mut out = [0u8; 32];
    bencher.bench_local(|| {
        argon.hash_password_into_with_memory(b"correct horse", b"sixteen byte salt", &mut out, &mut memory).unwrap()
    });
}
