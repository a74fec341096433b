//! `quickmeet backup …`: online backups made by the daemon, verified here; offline restore.

use crate::client::{unexpected, Daemon, Target};
use crate::output::{bytes, fields, json};
use crate::{exit, Cli, Failure, Io, Outcome};
use clap::Subcommand;
use quickmeet::admin::{AdminRequest, AdminResponse};
use quickmeet::backup::Manifest;
use std::io::{BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum BackupCmd {
    /// Back up the running daemon to FILE: database, files, certificates and secrets.
    ///
    /// The daemon keeps serving: the database is exported from one consistent snapshot.
    /// The archive (zstd-compressed tar) is checked against its manifest once written.
    /// It holds the secrets, so it is created readable by you only.
    ///
    /// Example: sudo quickmeet backup create /srv/backups/quickmeet-$(date +%F).tar.zst
    Create {
        /// The archive to write (must not exist yet)
        file: PathBuf,
    },
    /// Check an archive without restoring it: complete, and every file matching its SHA-256.
    ///
    /// Exits 1 when the archive is damaged, truncated or tampered with.
    ///
    /// Example: quickmeet backup verify quickmeet-2026-11-25.tar.zst
    Verify {
        /// The archive to check
        file: PathBuf,
    },
    /// Restore an archive into the data dir. The daemon must be stopped.
    ///
    /// Refuses to replace existing data unless --force is given. Works directly on the data
    /// dir (--data-dir, or the config's data-dir); restored files get the data dir's owner.
    ///
    /// Example: sudo systemctl stop quickmeetd && sudo quickmeet backup restore q.tar.zst --force
    Restore {
        /// The archive to restore (verified first)
        file: PathBuf,
        /// Replace the data that is there now
        #[arg(long)]
        force: bool,
    },
}

fn summary(cli: &Cli, io: &mut Io<'_>, file: &Path, m: &Manifest, what: &str) -> Outcome {
    if cli.json {
        return json(io.out, m);
    }
    let total: u64 = m.entries.iter().map(|e| e.size).sum();
    fields(
        io.out,
        &[
            (what, file.display().to_string()),
            ("created", format!("{} by quickmeet {}", m.created_at, m.quickmeet_version)),
            (
                "holds",
                format!(
                    "{} users, {} groups, {} messages, {} files",
                    m.counts.users, m.counts.groups, m.counts.messages, m.counts.files
                ),
            ),
            ("entries", format!("{} ({} uncompressed), checksums match", m.entries.len(), bytes(total))),
        ],
    )
}

fn core_failure(e: quickmeet::Error) -> Failure {
    let code = match e {
        quickmeet::Error::NotFound(_) => exit::NOT_FOUND,
        _ => exit::ERROR,
    };
    Failure::new(code, e.to_string())
}

fn verify_file(file: &Path) -> Result<Manifest, Failure> {
    let f = std::fs::File::open(file).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound { exit::NOT_FOUND } else { exit::ERROR };
        Failure::new(code, format!("cannot open {}: {e}", file.display()))
    })?;
    quickmeet::backup::verify(BufReader::new(f)).map_err(core_failure)
}

fn create(target: &Target, file: &Path) -> Result<Manifest, Failure> {
    if file.exists() {
        return Err(Failure::error(format!("{} already exists; choose another name", file.display())));
    }
    let (resp, mut stream) = target.request_stream(AdminRequest::BackupCreate)?;
    if resp != AdminResponse::BackupFollows {
        return Err(unexpected(resp));
    }
    let partial = file.with_extension("partial");
    let write_fail = |e: std::io::Error| Failure::error(format!("cannot write {}: {e}", partial.display()));
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::AlreadyExists => Failure::error(format!(
                "{} is left from an interrupted backup; remove it and run the command again",
                partial.display()
            )),
            _ => write_fail(e),
        }
    })?;
    let copied = std::io::copy(&mut stream, &mut out).and_then(|_| out.flush()).and_then(|_| out.sync_all());
    let checked = copied.map_err(write_fail).and_then(|_| verify_file(&partial));
    match checked {
        Ok(m) => {
            std::fs::rename(&partial, file).map_err(write_fail)?;
            Ok(m)
        }
        Err(f) => {
            let _ = std::fs::remove_file(&partial);
            Err(Failure::error(format!("the backup did not complete ({}); see the daemon's log", f.message)))
        }
    }
}

pub fn run(cli: &Cli, cmd: &BackupCmd, io: &mut Io<'_>) -> Outcome {
    let target = Target::resolve(cli)?;
    match cmd {
        BackupCmd::Create { file } => {
            let m = create(&target, file)?;
            summary(cli, io, file, &m, "backup")
        }
        BackupCmd::Verify { file } => {
            let m = verify_file(file)?;
            summary(cli, io, file, &m, "verified")
        }
        BackupCmd::Restore { file, force } => {
            if let Daemon::Answers = target.daemon()? {
                return Err(Failure::error(format!(
                    "quickmeetd is running (it answers on {}); stop it first, e.g. sudo systemctl stop quickmeetd",
                    target.socket.display()
                )));
            }
            if !file.exists() {
                return Err(Failure::new(exit::NOT_FOUND, format!("{} does not exist", file.display())));
            }
            let m = quickmeet::backup::restore(file, &target.data_dir, *force).map_err(core_failure)?;
            quickmeet::admin::offline::hand_back(&target.data_dir).map_err(core_failure)?;
            summary(cli, io, file, &m, "restored")?;
            if !cli.json {
                crate::output::say(io.out, format!("into {}; start quickmeetd to use it", target.data_dir.display()))?;
            }
            Ok(())
        }
    }
}
