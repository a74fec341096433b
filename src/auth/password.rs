//! Password hashing with argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1). Hashing
//! costs ~24 ms of CPU with AVX2 ([`quickmeet_argon2id`]; ~38 ms without), so it runs on a
//! small pool of dedicated threads, one per core, never on the async runtime. Those threads run at a lower scheduling priority (nice 10):
//! a login burst uses whatever CPU is spare, and chat, signaling and everything else on
//! the runtime's threads go first, so a burst of logins barely moves their latency.

use crate::error::{Error, Result};
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::cell::RefCell;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::oneshot;

/// Hash requests waiting for a thread at most; past this a login is refused as busy
/// rather than queued without limit.
const QUEUE: usize = 256;
/// The niceness of the hashing threads (0 is normal, 19 the lowest priority).
const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords off the async runtime.
#[derive(Clone)]
pub struct Passwords {
    jobs: SyncSender<Job>,
    /// A real hash of a random password, verified against when the username is unknown so
    /// that "no such user" costs the same time as "wrong password". Computed by a hashing
    /// thread right after start rather than before it, which keeps ~30 ms off start-up.
    decoy: Arc<OnceLock<String>>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 params are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Largest memory cost accepted from a stored hash (64 MiB), so a corrupt record cannot
/// make a login allocate without bound.
const MAX_M_COST: u32 = 64 * 1024;

thread_local! {
    /// argon2's working memory (19 MiB at our parameters), allocated once per hashing
    /// thread and reused. Allocating and freeing it for every hash left glibc holding
    /// over 500 MiB of resident memory after a burst of 30 concurrent sign-ins.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2 of `password` and `salt` into `out`, in this thread's reusable memory: by
/// [`quickmeet_argon2id`]'s AVX2 code when it handles these parameters (Argon2id v0x13 with
/// one lane, which is every hash we write), else by the `argon2` crate. Both give the same
/// bytes; the first takes ~24 ms where the crate takes ~38.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let fast = algorithm == Algorithm::Argon2id
            && version == Version::V0x13
            && params.p_cost() == 1
            && params.data().is_empty()
            && quickmeet_argon2id::hash(params.m_cost(), params.t_cost(), password, salt, out, &mut blocks);
        if fast {
            return Ok(());
        }
        let count = params.block_count();
        if blocks.len() < count {
            blocks.resize(count, Block::default());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt,
            out,
            &mut blocks[..count],
        )
    })
}

/// Hashes on the calling thread (a hashing thread, or offline administration where there
/// is no runtime) into a PHC string, the same format `argon2`'s `PasswordHasher` writes.
pub(crate) fn hash_now(password: &str) -> Result<String> {
    let fail = |e: password_hash::Error| Error::Internal(format!("password hashing failed: {e}"));
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(fail)?;
    let argon = argon2();
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(fail)?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        compute(Algorithm::Argon2id, Version::V0x13, argon.params().clone(), password.as_bytes(), salt_bytes, out)
            .map_err(password_hash::Error::from)
    })
    .map_err(fail)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(fail)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `hash`, with the parameters stored in it.
fn verify_now(password: &str, hash: &str) -> bool {
    let check = || -> Option<bool> {
        let parsed = PasswordHash::new(hash).ok()?;
        let expected = parsed.hash?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        if params.m_cost() > MAX_M_COST {
            return None;
        }
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let mut out = vec![0u8; expected.len()];
        compute(algorithm, version, params, password.as_bytes(), salt, &mut out).ok()?;
        // `Output` compares in constant time.
        Some(Output::new(&out).ok()? == expected)
    };
    check().unwrap_or(false)
}

/// Lowers the calling thread's scheduling priority. On Linux `PRIO_PROCESS` with id 0
/// names the calling thread only, so the rest of the process keeps its priority.
fn lower_priority() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower the hashing threads' priority");
    }
}

/// The decoy hash, computed by whichever hashing thread needs it first.
fn decoy_of(decoy: &OnceLock<String>) -> &str {
    decoy.get_or_init(|| hash_now(&uuid::Uuid::new_v4().to_string()).unwrap_or_default())
}

fn worker(jobs: Arc<Mutex<Receiver<Job>>>) {
    lower_priority();
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

impl Passwords {
    /// Creates the hasher with `concurrency` hashing threads.
    pub fn new(concurrency: usize) -> Result<Passwords> {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(rx))
                .map_err(|e| Error::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        let passwords = Passwords { jobs: tx, decoy: Arc::default() };
        let decoy = passwords.decoy.clone();
        let _ = passwords.jobs.try_send(Box::new(move || {
            decoy_of(&decoy);
        }));
        Ok(passwords)
    }

    /// Runs `f` on a hashing thread.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Error::Unavailable("too many sign-ins at once; try again in a moment".into()))
            }
            Err(TrySendError::Disconnected(_)) => return Err(Error::Unavailable("shutting down".into())),
        }
        rx.await.map_err(|_| Error::Internal("a hashing thread stopped".into()))
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let pw = password.to_string();
        self.run(move || hash_now(&pw)).await?
    }

    /// Checks a password against a stored hash, or against the decoy when there is none.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let pw = password.to_string();
        let known = hash.is_some();
        let h = hash.map(str::to_string);
        let decoy = self.decoy.clone();
        let ok = self.run(move || verify_now(&pw, h.as_deref().unwrap_or_else(|| decoy_of(&decoy)))).await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let p = Passwords::new(2).unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse", None).await.unwrap());
    }

    #[tokio::test]
    async fn hashing_runs_on_threads_of_lower_priority_than_the_caller() {
        let p = Passwords::new(1).unwrap();
        // SAFETY: getpriority takes plain integers and touches no memory of ours.
        let nice = p.run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }).await.unwrap();
        let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(nice, here.max(NICE));
    }

    #[test]
    fn hashes_are_interchangeable_with_the_argon2_crates_own_format() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Accounts created before the reusable working memory keep logging in...
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let old = argon2().hash_password(b"correct horse", &salt).unwrap().to_string();
        assert!(verify_now("correct horse", &old));
        assert!(!verify_now("wrong horse", &old));
        // ...and hashes written now are standard PHC strings any argon2 verifies.
        let new = hash_now("battery staple").unwrap();
        assert!(argon2().verify_password(b"battery staple", &PasswordHash::new(&new).unwrap()).is_ok());
        assert!(!verify_now("battery staple", "$argon2id$v=19$m=999999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"));
        // Hashes the fast path does not handle (two lanes, argon2i) go to the crate.
        for (algorithm, lanes) in [(Algorithm::Argon2id, 2), (Algorithm::Argon2i, 1)] {
            let other = Argon2::new(algorithm, Version::V0x13, Params::new(1024, 1, lanes, None).unwrap());
            let stored = other.hash_password(b"correct horse", &salt).unwrap().to_string();
            assert!(verify_now("correct horse", &stored), "{stored}");
            assert!(!verify_now("wrong horse", &stored), "{stored}");
        }
        assert!(!verify_now("battery staple", "not a hash"));
    }
}
