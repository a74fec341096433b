//! `quickmeet cert …`: the HTTPS certificate. Online through the daemon (which swaps a new
//! certificate in without a restart); `show`, `export-ca` and `renew` also work on the data
//! dir when the daemon is stopped (`renew` only then: it holds the database lock meanwhile).

use crate::client::{unexpected, Daemon, Target};
use crate::output::{days_until, fields, json, say};
use crate::{exit, Cli, Failure, Io, Outcome};
use clap::Subcommand;
use quickmeet::admin::{AdminRequest, AdminResponse, CertReport};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum CertCmd {
    /// Show the server certificate: names, expiry and fingerprints.
    ///
    /// Example: quickmeet cert show
    Show,
    /// Issue a fresh server certificate from the local CA and use it at once.
    ///
    /// Open connections stay up; new ones get the new certificate. Devices that trust the
    /// local CA keep trusting it. Replaces an imported certificate. With quickmeetd stopped,
    /// the certificate is written to the data dir and used when it starts.
    ///
    /// Example: quickmeet cert renew
    Renew,
    /// Write the local CA certificate (PEM) to install on devices, to FILE or - for stdout.
    ///
    /// Example: quickmeet cert export-ca quickmeet-ca.pem
    ExportCa {
        /// Where to write it; - for standard output
        file: String,
    },
    /// Use a certificate and key from another CA instead of the local one.
    ///
    /// Checked before use: the key must match, the certificate must be valid now and name
    /// this host. Swapped in without a restart.
    ///
    /// Example: quickmeet cert import --cert /tmp/meet.pem --key /tmp/meet.key
    Import {
        /// PEM certificate (chain: server certificate first)
        #[arg(long, value_name = "PEM")]
        cert: PathBuf,
        /// PEM private key
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
}

fn report(cli: &Cli, io: &mut Io<'_>, c: &CertReport, note: Option<&str>) -> Outcome {
    if cli.json {
        return json(io.out, c);
    }
    let days = days_until(&c.not_after).map(|d| format!(" ({d} days left)")).unwrap_or_default();
    let mut rows = vec![
        ("fingerprint", c.fingerprint.clone()),
        ("expires", format!("{}{days}", c.not_after)),
        ("names", c.names.join(", ")),
        ("issuer", if c.imported { "imported".into() } else { "local CA".to_string() }),
        ("CA fingerprint", c.ca_fingerprint.clone()),
    ];
    if let Some(n) = note {
        rows.push(("note", n.to_string()));
    }
    fields(io.out, &rows)
}

fn read(path: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound { exit::NOT_FOUND } else { exit::ERROR };
        Failure::new(code, format!("cannot read {}: {e}", path.display()))
    })
}

fn core_failure(e: quickmeet::Error) -> Failure {
    let code = if matches!(e, quickmeet::Error::NotFound(_)) { exit::NOT_FOUND } else { exit::ERROR };
    Failure::new(code, e.to_string())
}

pub fn run(cli: &Cli, cmd: &CertCmd, io: &mut Io<'_>) -> Outcome {
    let target = Target::resolve(cli)?;
    let online = matches!(target.daemon()?, Daemon::Answers);
    let offline_note = format!("quickmeetd is not running; read from {}", target.data_dir.display());
    match cmd {
        CertCmd::Show if online => match target.request(AdminRequest::CertShow)? {
            AdminResponse::Cert(c) => report(cli, io, &c, None),
            other => Err(unexpected(other)),
        },
        CertCmd::Show => {
            let c = quickmeet::certs::current(&target.data_dir).map_err(|e| {
                Failure::new(
                    exit::NOT_FOUND,
                    format!("{e} in {}: quickmeetd creates it on first start", target.data_dir.display()),
                )
            })?;
            report(cli, io, &c.into(), Some(&offline_note))
        }
        CertCmd::Renew if online => match target.request(AdminRequest::CertRenew)? {
            AdminResponse::Cert(c) => report(cli, io, &c, Some("in use now; open connections were kept")),
            other => Err(unexpected(other)),
        },
        CertCmd::Renew => {
            let dir =
                quickmeet::admin::offline::Offline::open(&target.data_dir).map_err(|e| target.offline_failure(e))?;
            let c = dir.renew_cert(&target.config).map_err(core_failure)?;
            report(cli, io, &c.into(), Some("quickmeetd is not running; it uses this certificate when it starts"))
        }
        CertCmd::ExportCa { file } => {
            let pem = if online {
                match target.request(AdminRequest::CertExportCa)? {
                    AdminResponse::CaPem { pem } => pem,
                    other => return Err(unexpected(other)),
                }
            } else {
                read(&quickmeet::certs::TlsPaths::new(&target.data_dir).ca_cert)?
            };
            if file == "-" {
                return write!(io.out, "{pem}").map_err(|e| Failure::error(e.to_string()));
            }
            std::fs::write(file, &pem).map_err(|e| Failure::error(format!("cannot write {file}: {e}")))?;
            if cli.json {
                return json(io.out, &serde_json::json!({ "file": file }));
            }
            say(io.out, format!("wrote the CA certificate to {file}; install it on each device once"))
        }
        CertCmd::Import { cert, key } => {
            let (cert_pem, key_pem) = (read(cert)?, read(key)?);
            match target.request(AdminRequest::CertImport { cert_pem, key_pem })? {
                AdminResponse::Cert(c) => report(cli, io, &c, Some("in use now; open connections were kept")),
                other => Err(unexpected(other)),
            }
        }
    }
}
