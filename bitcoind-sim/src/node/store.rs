//! On-disk state under `<datadir>/regtest/`:
//! - `blocks/blk00000.dat`: every stored block as in Core's block files (4-byte network magic,
//!   4-byte little-endian length, consensus-encoded block), fsynced before the block counts;
//! - `blockflags.dat`: an append-only log of 33-byte records (operation byte + block hash) for
//!   invalidate/reconsider/failed/validated flags, fsynced per record;
//! - `mempool.dat`: Core's version-1 mempool dump, written on close when `-persistmempool`.
//!
//! A crash can only leave a partial record at the end of a log; it is cut off at open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bitcoin::consensus::{Decodable, encode};
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, Transaction, VarInt};

/// Regtest network magic (Core's `pchMessageStart`).
const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
const FLAG_RECORD: usize = 33;
const MEMPOOL_DUMP_VERSION: u64 = 1;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// A block-flag change to persist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlagOp {
    /// `invalidateblock` or a failed connection: the block is invalid.
    Failed,
    /// `reconsiderblock`: clear the flags of the block, its ancestors and descendants.
    Reconsider,
    /// The block was connected once (reported as "valid-fork" after it leaves the chain).
    Validated,
}

impl FlagOp {
    fn byte(self) -> u8 {
        match self {
            FlagOp::Failed => b'F',
            FlagOp::Reconsider => b'R',
            FlagOp::Validated => b'V',
        }
    }

    fn from_byte(b: u8) -> Option<FlagOp> {
        match b {
            b'F' => Some(FlagOp::Failed),
            b'R' => Some(FlagOp::Reconsider),
            b'V' => Some(FlagOp::Validated),
            _ => None,
        }
    }
}

/// What [`Store::open`] found on disk.
pub(crate) struct Loaded {
    pub blocks: Vec<Block>,
    pub flags: Vec<(FlagOp, BlockHash)>,
}

/// Open handles on the chain-state files.
pub(crate) struct Store {
    dir: PathBuf,
    blocks: File,
    blocks_path: PathBuf,
    blocks_len: u64,
    flags: File,
    flags_path: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Opens (creating when missing) the files under `<datadir>/regtest/` and reads them back.
    pub fn open(datadir: &Path) -> Result<(Store, Loaded), StoreError> {
        let dir = datadir.join("regtest");
        let blocks_dir = dir.join("blocks");
        fs::create_dir_all(&blocks_dir).map_err(io_err(&blocks_dir))?;
        let blocks_path = blocks_dir.join("blk00000.dat");
        let flags_path = dir.join("blockflags.dat");
        let mut blocks = open_rw(&blocks_path)?;
        let mut flags = open_rw(&flags_path)?;
        let (loaded_blocks, blocks_len) = read_blocks(&mut blocks, &blocks_path)?;
        let loaded_flags = read_flags(&mut flags, &flags_path)?;
        let store = Store {
            dir,
            blocks,
            blocks_path,
            blocks_len,
            flags,
            flags_path,
        };
        Ok((
            store,
            Loaded {
                blocks: loaded_blocks,
                flags: loaded_flags,
            },
        ))
    }

    /// Appends a block and fsyncs it.
    pub fn append_block(&mut self, block: &Block) -> Result<(), StoreError> {
        let body = encode::serialize(block);
        let mut record = Vec::with_capacity(body.len() + 8);
        record.extend_from_slice(&MAGIC);
        record.extend_from_slice(&(body.len() as u32).to_le_bytes());
        record.extend_from_slice(&body);
        let path = self.blocks_path.clone();
        self.blocks
            .seek(SeekFrom::Start(self.blocks_len))
            .map_err(io_err(&path))?;
        self.blocks.write_all(&record).map_err(io_err(&path))?;
        self.blocks.sync_data().map_err(io_err(&path))?;
        self.blocks_len += record.len() as u64;
        Ok(())
    }

    /// Appends a flag change and fsyncs it.
    pub fn append_flag(&mut self, op: FlagOp, hash: &BlockHash) -> Result<(), StoreError> {
        let mut record = [0u8; FLAG_RECORD];
        record[0] = op.byte();
        record[1..].copy_from_slice(hash.as_byte_array());
        let path = self.flags_path.clone();
        self.flags.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
        self.flags.write_all(&record).map_err(io_err(&path))?;
        self.flags.sync_data().map_err(io_err(&path))?;
        Ok(())
    }

    /// Bytes used by the block file.
    pub fn size_on_disk(&self) -> u64 {
        self.blocks_len
    }

    fn mempool_path(&self) -> PathBuf {
        self.dir.join("mempool.dat")
    }

    /// Writes `mempool.dat` atomically (temporary file, fsync, rename): transactions with their
    /// entry times (seconds since the epoch), parents before children.
    pub fn write_mempool(&self, txs: &[(Transaction, u64)]) -> Result<(), StoreError> {
        let path = self.mempool_path();
        let tmp = self.dir.join("mempool.dat.new");
        let mut buf = Vec::new();
        buf.extend(encode::serialize(&MEMPOOL_DUMP_VERSION));
        buf.extend(encode::serialize(&(txs.len() as u64)));
        for (tx, time) in txs {
            buf.extend(encode::serialize(tx));
            buf.extend(encode::serialize(&(*time as i64)));
            buf.extend(encode::serialize(&0i64)); // fee delta (prioritisetransaction)
        }
        buf.extend(encode::serialize(&VarInt(0))); // map of deltas
        buf.extend(encode::serialize(&VarInt(0))); // unbroadcast set
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&buf).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(())
    }

    /// Reads `mempool.dat`; a missing file is an empty mempool.
    pub fn read_mempool(&self) -> Result<Vec<(Transaction, u64)>, StoreError> {
        let path = self.mempool_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let mut r = bytes.as_slice();
        let version = u64::consensus_decode(&mut r).map_err(|e| corrupt(e.to_string()))?;
        if version != MEMPOOL_DUMP_VERSION {
            return Err(corrupt(format!(
                "unsupported mempool.dat version {version}"
            )));
        }
        let count = u64::consensus_decode(&mut r).map_err(|e| corrupt(e.to_string()))?;
        let mut txs = Vec::new();
        for _ in 0..count {
            let tx = Transaction::consensus_decode(&mut r).map_err(|e| corrupt(e.to_string()))?;
            let time = i64::consensus_decode(&mut r).map_err(|e| corrupt(e.to_string()))?;
            let _delta = i64::consensus_decode(&mut r).map_err(|e| corrupt(e.to_string()))?;
            txs.push((tx, time.max(0) as u64));
        }
        Ok(txs)
    }
}

fn open_rw(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))
}

/// Reads every complete block record; a torn record at the end (a crash while appending) is cut off.
fn read_blocks(file: &mut File, path: &Path) -> Result<(Vec<Block>, u64), StoreError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    let mut blocks = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        if bytes[pos..pos + 4] != MAGIC {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("bad magic at offset {pos}"),
            });
        }
        let len = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let end = pos + 8 + len;
        if end > bytes.len() {
            break;
        }
        match encode::deserialize::<Block>(&bytes[pos + 8..end]) {
            Ok(block) => blocks.push(block),
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("undecodable block at offset {pos}: {e}"),
                });
            }
        }
        pos = end;
    }
    if pos != bytes.len() {
        tracing::warn!(path = %path.display(), offset = pos, "cutting off a torn block record");
        file.set_len(pos as u64).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
    }
    Ok((blocks, pos as u64))
}

fn read_flags(file: &mut File, path: &Path) -> Result<Vec<(FlagOp, BlockHash)>, StoreError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    let whole = bytes.len() / FLAG_RECORD * FLAG_RECORD;
    let mut out = Vec::new();
    for record in bytes[..whole].chunks_exact(FLAG_RECORD) {
        let op = FlagOp::from_byte(record[0]).ok_or_else(|| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("unknown flag record {:#04x}", record[0]),
        })?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&record[1..]);
        out.push((op, BlockHash::from_byte_array(hash)));
    }
    if whole != bytes.len() {
        file.set_len(whole as u64).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
    }
    Ok(out)
}
