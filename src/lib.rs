//! # Quick Meet core
//!
//! The domain of the Quick Meet LAN appliance, free of any HTTP framework, so that the
//! daemon (`quickmeetd`) and the admin CLI (`quickmeet`) are thin adapters over it and the
//! rules can be tested without sockets. A tour:
//!
//! - [`config`]: the configuration, with defaults that work with no file at all.
//! - [`store`]: the embedded redb database, its schema version and migrations, secrets.
//! - [`auth`]: argon2id password hashing off the runtime, HMAC-signed tokens, revocation.
//! - [`accounts`]: signup, login, profiles, search; every account indexed in memory.
//! - [`groups`]: groups and membership, also held in memory for per-event checks.
//! - [`calls`]: 1-to-1 and mesh group call signaling state, free of I/O.
//! - [`chat`]: messages with group commit (durable before acknowledged), history pages,
//!   read receipts, unread counts and catch-up after a reconnect.
//! - [`files`]: uploads streamed to disk, types decided from content, quotas, and who
//!   may download or delete; the File object that file messages carry.
//! - [`turn_credentials`]: short-lived TURN REST credentials (HMAC-SHA1).
//! - [`certs`]: the local CA and a server certificate naming every LAN address.
//! - [`backup`]: consistent online backups as one archive, verification, offline restore.
//! - [`admin`]: the requests and answers of the admin socket, shared by daemon and CLI.
//! - [`ids`], [`clock`], [`error`]: identifiers, timestamps and the one error type.
//!
//! [`Core`] ties the services together; it is a cheap `Clone` of `Arc` handles with no
//! globals, so one process can run two daemons (as the tests do).

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod backup;
pub mod calls;
pub mod certs;
pub mod chat;
pub mod clock;
pub mod config;
pub mod error;
pub mod files;
pub mod groups;
pub mod ids;
pub mod store;
pub mod turn_credentials;

pub use error::{Error, Result};

use std::sync::Arc;

/// The version reported by `/api/health` and the CLI.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Creates every table (the current schema; a migration step may call it again, it only
/// creates what is missing).
pub(crate) fn create_tables(tx: &redb::WriteTransaction) -> Result<()> {
    tx.open_table(accounts::USERID_USER)?;
    tx.open_table(accounts::USERNAME_USERID)?;
    tx.open_table(auth::token::JTI_EXPIRY)?;
    tx.open_table(groups::GROUPID_GROUP)?;
    tx.open_table(chat::data::SEQ_MESSAGE)?;
    tx.open_table(chat::data::MESSAGEID_SEQ)?;
    chat::data::IdCodec::ensure_key(tx)?;
    tx.open_table(chat::data::CONVNO_SEQ_SENDER)?;
    tx.open_table(chat::data::CONV_NUMBER)?;
    tx.open_table(chat::data::CLIENTID_SENDER_SEQ)?;
    tx.open_table(chat::data::SENDER_CLIENTID_SEQ)?;
    tx.open_table(chat::data::USER_PEER_LASTSEQ)?;
    tx.open_table(chat::data::READER_CONV_READSEQ)?;
    tx.open_table(chat::data::CHAT_MARK)?;
    tx.open_table(files::data::FILEID_FILE)?;
    tx.open_table(files::data::FILEID_CONV_SEQ)?;
    Ok(())
}

/// All domain services over one data dir.
#[derive(Clone)]
pub struct Core {
    pub config: Arc<config::Config>,
    pub store: store::Store,
    pub accounts: accounts::Accounts,
    pub groups: groups::Groups,
    pub chat: chat::Chat,
    pub files: files::Files,
    pub calls: calls::Calls,
}

impl Core {
    /// Opens the data dir: database (migrated), secrets, in-memory indexes, the writer.
    pub fn open(config: config::Config) -> Result<Core> {
        let store = store::Store::open(&config.data_dir)?;
        let key = store::load_or_create_secret(&config.data_dir, "jwt.key", 32)?;
        let tokens = auth::Tokens::new(store.clone(), key, config.token_ttl_hours * 3600)?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let passwords = auth::Passwords::new(cores)?;
        let accounts = accounts::Accounts::new(store.clone(), passwords, tokens)?;
        let groups = groups::Groups::new(store.clone(), accounts.clone())?;
        let chat = chat::Chat::new(store.clone(), accounts.clone(), groups.clone())?;
        let files = files::Files::open(store.clone(), groups.clone(), &config)?;
        chat.set_file_resolver(files.resolver());
        let calls = calls::Calls::new(config.max_group_call);
        Ok(Core { config: Arc::new(config), store, accounts, groups, chat, files, calls })
    }
}
