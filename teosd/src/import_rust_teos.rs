//! `teosd import-rust-teos <RUST_TEOS_DATADIR>`: turns a stopped rust-teos tower into a teosd one in
//! `--datadir`, keeping its tower id, so clients (Core Lightning's watchtower-client) carry on.
//!
//! What is taken, from rust-teos's layout (`<datadir>/teos.toml`, the admin TLS files, and
//! `<datadir>/<network>/teos_db.sql3`, research/rust-teos.md §3.4, §5):
//! - every tower key (the newest signs, as in rust-teos), users (slots, subscription start and expiry),
//!   appointments (blob, `to_self_delay`, the user's signature, start block; slots recomputed by blob
//!   size, as both towers count them) and trackers;
//! - trackers: rust-teos's `confirmed`/`height` become status 1 (confirmed at `height`) or 0 (in the
//!   mempool since `height`); txids are computed from the stored transactions; `to_self_delay` is the
//!   appointment's; the dispute's height, which rust-teos did not keep, is left unknown (NULL, which
//!   the Responder handles: it learns it when the dispute is seen again);
//! - the last processed block (`last_known_block`): its height and chainwork are asked from bitcoind
//!   (the node rust-teos followed knows it, even if it left the active chain since: the chain walker
//!   then follows the reorg). A bitcoind that does not know the block at all (another node) gets the
//!   highest height recorded in the data instead, a lower bound: teosd then re-processes from below
//!   it, so no breach after it is missed;
//! - `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`, `client.pem`, `client-key.pem` (the same
//!   admin CA, so existing `teos-cli` setups keep working), `teos.toml` when the target has none (its
//!   keys are teosd's), and `<network>/onion_v3_sk` to the same place in `<datadir>` (byte for byte;
//!   rust-teos's format is teosd's, so the onion address stays: see [`crate::tor::key_path`]).
//!
//! Not taken, having no equivalent: rust-teos's in-memory state (lost at every rust-teos restart too),
//! the `sqlite_sequence` bookkeeping, and keys' creation times (stamped with the import's time).
//!
//! The source is never written to: its database is opened read-only and `immutable` (no lock, no
//! journal, no `-wal`/`-shm`), which is safe only because rust-teos is stopped; a database left with a
//! hot journal (rust-teos killed mid-write) is refused. Refused too, with nothing written: a directory
//! that is not rust-teos's, a database of another network than teosd's, a target that already holds a
//! tower (a database, TLS files or an onion key), and `overwrite_key` set (the imported key would be
//! replaced at teosd's first start). Everything is written under temporary names and put
//! in place at the end ([`place`]), the database last; a failure removes what was written.

mod place;
pub mod source;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bitcoin::{BlockHash, Work};

use crate::bitcoind::{Auth, BitcoindClient, BitcoindRpc, RpcError, codes};
use crate::config::{BtcAuth, BtcNetwork, Config};
use crate::storage::{StorageError, Store, TrackerRecord, TrackerStatus};
use crate::tower::TowerKey;
use place::Placement;
use source::{RustTeosData, SourceError};

/// `teosd import-rust-teos --help`.
pub const HELP: &str = "\
Imports a stopped rust-teos tower into teosd's data directory (--datadir), keeping its tower id: the tower \
key, users, appointments, trackers, the last processed block, the admin TLS files, teos.toml (when --datadir \
has none; its settings are then used for the import too) and the Tor onion key. The rust-teos directory is \
only read. bitcoind must be reachable: the import asks it for the height of rust-teos's last block. \
Refused, with nothing written: a directory that is not rust-teos's, a database of another network, \
a --datadir that already holds a tower. Stop rust-teos first.";

/// Bound on each bitcoind call of the import.
const RPC_TIMEOUT: Duration = Duration::from_secs(15);

/// The admin TLS files rust-teos and teosd both keep at the top of the data dir, with the permission
/// bits the copies get (keys readable by the owner only).
const TLS_FILES: [(&str, u32); 6] = [
    (crate::tls::CA_CERT, 0o644),
    (crate::tls::CA_KEY, 0o600),
    (crate::tls::SERVER_CERT, 0o644),
    (crate::tls::SERVER_KEY, 0o600),
    (crate::tls::CLIENT_CERT, 0o644),
    (crate::tls::CLIENT_KEY, 0o600),
];

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source directory is not a rust-teos data dir.
    #[error("{path} is not a rust-teos data directory: {reason}")]
    NotRustTeos { path: PathBuf, reason: String },
    /// The rust-teos database cannot be imported (unreadable, or a row that does not fit).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// rust-teos's database is for another network than teosd's.
    #[error(
        "network mismatch: teosd is configured for '{teosd}' (btc_network) but {path} holds a rust-teos \
         database for {found} only; run the import with --btcnetwork <that network>"
    )]
    WrongNetwork {
        teosd: String,
        path: PathBuf,
        found: String,
    },
    /// bitcoind follows another network than teosd's configuration.
    #[error("bitcoind at {url} is on network '{chain}' but teosd is configured for '{expected}'")]
    BitcoindNetwork {
        url: String,
        chain: String,
        expected: String,
    },
    /// The source and the target are the same directory.
    #[error(
        "{0} is both the rust-teos directory and teosd's --datadir: move the rust-teos directory aside \
         (e.g. mv ~/.teos ~/.teos.rust-teos) and import from there"
    )]
    SameDir(PathBuf),
    /// The target already holds a tower (or part of one).
    #[error(
        "{0} already exists: the target data directory holds a tower; import into an empty --datadir"
    )]
    TargetHoldsTower(PathBuf),
    /// rust-teos did not stop cleanly: its database has a journal to replay.
    #[error(
        "{0} exists: rust-teos did not stop cleanly (or still runs). Start rust-teos and stop it \
         again (teos-cli stop), then import"
    )]
    UncleanSource(PathBuf),
    /// `overwrite_key` is set: teosd would replace the imported key (and tower id) at its next start.
    #[error(
        "overwrite_key is set (in teos.toml, TEOS_OVERWRITE_KEY or --overwritekey): teosd would replace \
         the imported tower key at its next start; remove it and import again"
    )]
    OverwriteKey,
    /// rust-teos's last block is unknown to bitcoind and the data records no height.
    #[error(
        "bitcoind does not know rust-teos's last block {0} and the data records no height to resume from"
    )]
    NoHeight(BlockHash),
    /// bitcoind could not be asked.
    #[error("asking bitcoind at {url}: {source}")]
    Bitcoind { url: String, source: RpcError },
    /// Reading or writing files.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// Writing teosd's database.
    #[error("writing teosd's database: {0}")]
    Storage(#[from] StorageError),
}

impl ImportError {
    /// The process exit code: 2 for a refusal (the inputs do not allow the import), 1 for a failure
    /// while importing. Nothing is left written in either case.
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::Bitcoind { .. } | ImportError::Io { .. } | ImportError::Storage(_) => 1,
            _ => 2,
        }
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImportError {
    let what = what.into();
    move |source| ImportError::Io { what, source }
}

/// Where the tower resumes: rust-teos's last block, its height and (when bitcoind knows the block) its
/// chainwork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeBlock {
    /// Height (blocks): bitcoind's answer, or a lower bound when bitcoind does not know the block.
    pub height: u32,
    /// rust-teos's `last_known_block`.
    pub hash: BlockHash,
    /// Total work up to it; `None` when bitcoind does not know the block.
    pub chainwork: Option<Work>,
    /// Whether the block is on bitcoind's active chain (else teosd follows the reorg at start).
    pub in_active_chain: bool,
}

/// What an import wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The tower id (unchanged from rust-teos).
    pub tower_id: String,
    /// Tower keys imported (the newest signs).
    pub keys: usize,
    /// Users imported.
    pub users: usize,
    /// Appointments imported (with and without tracker).
    pub appointments: usize,
    /// Trackers imported.
    pub trackers: usize,
    /// Where the tower resumes; `None` if rust-teos never processed a block.
    pub resume: Option<ResumeBlock>,
    /// Files written besides the database.
    pub files: Vec<PathBuf>,
    /// teosd's database.
    pub database: PathBuf,
}

/// The subcommand's entry point (see [`crate::subcommand`]).
pub fn main(operands: Vec<OsString>, teosd_args: Vec<OsString>) -> ExitCode {
    let Some(source) = operands.into_iter().next().map(PathBuf::from) else {
        return ExitCode::from(2);
    };
    let env = crate::subcommand::environment();
    let target = crate::config::Config::data_dir_from(teosd_args.clone(), &env).ok();
    let source_toml = source.join(crate::config::CONFIG_FILE_NAME);
    let copy_toml = match target {
        Some(target) if !target.join(crate::config::CONFIG_FILE_NAME).exists() => {
            source_toml.is_file().then_some((target, source_toml))
        }
        _ => None,
    };
    let config = match &copy_toml {
        // No teos.toml in --datadir: rust-teos's (its keys are teosd's) sets up the import and is
        // copied, so teosd starts with rust-teos's settings (ports, bitcoind credentials).
        Some((target, _)) => {
            let args = with_data_dir(teosd_args, &source);
            let env = env
                .into_iter()
                .filter(|(name, _)| name != "TEOS_DATA_DIR")
                .collect();
            match crate::subcommand::load_config(args, env) {
                Ok(with_source) => Config {
                    data_dir: target.clone(),
                    ..with_source
                },
                Err(code) => {
                    eprintln!("teosd import-rust-teos: (while reading rust-teos's teos.toml)");
                    return code;
                }
            }
        }
        None => match crate::subcommand::load_config(teosd_args, env) {
            Ok(config) => config,
            Err(code) => return code,
        },
    };
    let copy_toml = copy_toml.map(|(_, toml)| toml);
    match import(&source, &config, copy_toml.as_deref()) {
        Ok(summary) => {
            println!("{}", summary_json(&summary));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("teosd import-rust-teos: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// teosd's options with `--datadir` pointing at `dir` instead of where they pointed.
fn with_data_dir(args: Vec<OsString>, dir: &Path) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut args = args.into_iter();
    if let Some(program) = args.next() {
        out.push(program);
    }
    out.push("--datadir".into());
    out.push(dir.as_os_str().to_owned());
    while let Some(arg) = args.next() {
        if arg == "--datadir" {
            args.next();
        } else if !arg.to_string_lossy().starts_with("--datadir=") {
            out.push(arg);
        }
    }
    out
}

fn summary_json(summary: &Summary) -> serde_json::Value {
    serde_json::json!({
        "tower_id": summary.tower_id,
        "keys": summary.keys,
        "users": summary.users,
        "appointments": summary.appointments,
        "trackers": summary.trackers,
        "resume_block": summary.resume.map(|r| serde_json::json!({
            "height": r.height,
            "hash": r.hash.to_string(),
            "known_to_bitcoind": r.chainwork.is_some(),
            "in_active_chain": r.in_active_chain,
        })),
        "database": summary.database,
        "files": summary.files,
    })
}

/// Imports the rust-teos data dir `source` into `config`'s data dir (see the module docs), copying
/// `copy_toml` as its `teos.toml` if given.
///
/// Errors: [`ImportError`]; nothing is left written.
pub fn import(
    source: &Path,
    config: &Config,
    copy_toml: Option<&Path>,
) -> Result<Summary, ImportError> {
    if config.overwrite_key {
        return Err(ImportError::OverwriteKey);
    }
    let source_db = check_source(source, config)?;
    let files = files_to_copy(source, config, copy_toml)?;
    check_target(config, &files)?;
    let data = source::read(&source_db)?;
    let Some(newest) = data.keys.last() else {
        return Err(ImportError::NotRustTeos {
            path: source.to_path_buf(),
            reason: "its database holds no tower key".into(),
        });
    };
    let tower_id = TowerKey::new(*newest).id().to_string();
    let resume = match data.last_block {
        Some(hash) => Some(resume_block(config, hash, &data)?),
        None => None,
    };

    let mut placement = Placement::default();
    placement
        .create_dir(&config.network_dir())
        .map_err(io_error(format!(
            "creating {}",
            config.network_dir().display()
        )))?;
    for (from, to, mode) in &files {
        placement
            .stage_copy(from, to, *mode)
            .map_err(io_error(format!("copying {}", from.display())))?;
    }
    let database = config.db_path();
    let temp = Placement::temp_path(&database)
        .map_err(io_error(format!("preparing {}", database.display())))?;
    // Staged before writing, so a failure below removes it.
    placement.stage_written(temp.clone(), &database);
    write_database(&temp, &data, resume)?;
    placement
        .commit()
        .map_err(io_error("putting the imported files in place"))?;
    Ok(Summary {
        tower_id,
        keys: data.keys.len(),
        users: data.users.len(),
        appointments: data.appointments.len(),
        trackers: data.trackers.len(),
        resume,
        files: files.into_iter().map(|(_, to, _)| to).collect(),
        database,
    })
}

/// Checks that `source` is a cleanly stopped rust-teos data dir for `config`'s network; returns its
/// database path.
fn check_source(source: &Path, config: &Config) -> Result<PathBuf, ImportError> {
    let not_rust_teos = |reason: &str| ImportError::NotRustTeos {
        path: source.to_path_buf(),
        reason: reason.into(),
    };
    if !source.is_dir() {
        return Err(not_rust_teos("not a directory"));
    }
    if let (Ok(a), Ok(b)) = (source.canonicalize(), config.data_dir.canonicalize())
        && a == b
    {
        return Err(ImportError::SameDir(a));
    }
    let db_name = crate::config::DB_FILE_NAME;
    let wanted = config.btc_network.chain_name();
    let db = source.join(wanted).join(db_name);
    if !db.is_file() {
        let found: Vec<&str> = NETWORKS
            .iter()
            .map(|n| n.chain_name())
            .filter(|name| source.join(name).join(db_name).is_file())
            .collect();
        if found.is_empty() {
            return Err(not_rust_teos(&format!("no <network>/{db_name} in it")));
        }
        return Err(ImportError::WrongNetwork {
            teosd: wanted.into(),
            path: source.to_path_buf(),
            found: found.join(", "),
        });
    }
    for suffix in ["-journal", "-wal"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        let leftover = PathBuf::from(name);
        if leftover.exists() {
            return Err(ImportError::UncleanSource(leftover));
        }
    }
    Ok(db)
}

/// Every network (rust-teos used the same directory names, `getblockchaininfo`'s `chain`).
const NETWORKS: [BtcNetwork; 5] = [
    BtcNetwork::Mainnet,
    BtcNetwork::Testnet,
    BtcNetwork::Testnet4,
    BtcNetwork::Signet,
    BtcNetwork::Regtest,
];

/// The files to copy: `(from, to, mode)`.
fn files_to_copy(
    source: &Path,
    config: &Config,
    copy_toml: Option<&Path>,
) -> Result<Vec<(PathBuf, PathBuf, u32)>, ImportError> {
    let mut files = Vec::new();
    for (name, mode) in TLS_FILES {
        let from = source.join(name);
        if from.is_file() {
            files.push((from, config.data_dir.join(name), mode));
        }
    }
    let network_dir = source.join(config.btc_network.chain_name());
    for from in [
        crate::tor::key_path(&network_dir),
        source.join(crate::tor::KEY_FILE),
    ] {
        if from.is_file() {
            files.push((from, crate::tor::key_path(&config.network_dir()), 0o600));
            break;
        }
    }
    if let Some(toml) = copy_toml {
        // It may hold bitcoind's RPC password.
        files.push((toml.to_path_buf(), config.config_file(), 0o600));
    }
    Ok(files)
}

/// Refuses a target that holds a tower: its database (or WAL), or any file the import would write.
fn check_target(config: &Config, files: &[(PathBuf, PathBuf, u32)]) -> Result<(), ImportError> {
    let db = config.db_path();
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let tls = TLS_FILES.iter().map(|(name, _)| config.data_dir.join(name));
    let targets = [db, PathBuf::from(wal)]
        .into_iter()
        .chain(tls)
        .chain(files.iter().map(|(_, to, _)| to.clone()));
    for path in targets {
        if path.exists() {
            return Err(ImportError::TargetHoldsTower(path));
        }
    }
    Ok(())
}

/// Asks bitcoind where rust-teos's last block `hash` is (see the module docs for a block it does not
/// know).
fn resume_block(
    config: &Config,
    hash: BlockHash,
    data: &RustTeosData,
) -> Result<ResumeBlock, ImportError> {
    let auth = match config.btc_auth() {
        BtcAuth::UserPass(user, pass) => Auth::UserPass(user, pass),
        BtcAuth::Cookie(path) => Auth::Cookie(path),
    };
    let url = config.btc_rpc_url();
    let rpc = BitcoindClient::new(url.clone(), auth, RPC_TIMEOUT);
    let bitcoind_error = |source| ImportError::Bitcoind {
        url: url.clone(),
        source,
    };
    let info = rpc.chain_info().map_err(bitcoind_error)?;
    let expected = config.btc_network.chain_name();
    if info.chain != expected {
        return Err(ImportError::BitcoindNetwork {
            url: url.clone(),
            chain: info.chain,
            expected: expected.into(),
        });
    }
    match rpc.block_header(&hash) {
        Ok(header) => Ok(ResumeBlock {
            height: header.height,
            hash,
            chainwork: Some(header.chainwork),
            in_active_chain: header.in_active_chain(),
        }),
        Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_ADDRESS_OR_KEY => {
            let height = data
                .highest_recorded_height()
                .ok_or(ImportError::NoHeight(hash))?;
            eprintln!(
                "teosd import-rust-teos: warning: bitcoind does not know rust-teos's last block {hash}; \
                 teosd will resume below height {height} (the highest recorded in the data) and \
                 re-process the blocks from there"
            );
            Ok(ResumeBlock {
                height,
                hash,
                chainwork: None,
                in_active_chain: false,
            })
        }
        Err(e) => Err(bitcoind_error(e)),
    }
}

/// Writes teosd's database at `path` (schema by teosd's migrations) in one transaction, then closes
/// it (WAL checkpointed into the file).
fn write_database(
    path: &Path,
    data: &RustTeosData,
    resume: Option<ResumeBlock>,
) -> Result<(), ImportError> {
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name)); // left by an interrupted import
    }
    let store = Store::open(path)?;
    let data = data.clone();
    let written = store.write_blocking(move |tx| -> Result<(), StorageError> {
        for key in &data.keys {
            tx.insert_tower_key(key)?;
        }
        for (id, user) in &data.users {
            tx.upsert_user(id, user)?;
        }
        for appointment in &data.appointments {
            tx.upsert_appointment(appointment)?;
        }
        for t in &data.trackers {
            let to_self_delay = data
                .appointments
                .iter()
                .find(|a| a.uuid == t.uuid)
                .map_or(0, |a| a.to_self_delay);
            tx.insert_tracker(&tracker_record(t, to_self_delay))?;
        }
        if let Some(r) = resume {
            tx.push_block(
                r.height,
                &r.hash,
                r.chainwork,
                crate::block_processor::KEPT_BLOCKS,
            )?;
        }
        Ok(())
    });
    let closed = store.close();
    written?;
    Ok(closed?)
}

/// rust-teos's tracker in teosd's terms (see the module docs).
fn tracker_record(t: &source::RustTracker, to_self_delay: u32) -> TrackerRecord {
    TrackerRecord {
        uuid: t.uuid,
        dispute_txid: t.dispute_tx.compute_txid(),
        dispute_tx: t.dispute_tx.clone(),
        penalty_txid: t.penalty_tx.compute_txid(),
        penalty_tx: t.penalty_tx.clone(),
        dispute_height: None,
        status: match t.confirmed {
            true => TrackerStatus::Confirmed,
            false => TrackerStatus::InMempool,
        },
        status_height: t.height,
        to_self_delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_option_is_replaced_wherever_it_was() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            with_data_dir(
                args(&["teosd", "--datadir", "/t", "--debug", "--datadir=/u"]),
                Path::new("/s")
            ),
            args(&["teosd", "--datadir", "/s", "--debug"])
        );
    }
}
