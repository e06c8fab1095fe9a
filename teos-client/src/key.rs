//! The user's secret key, in a file only its owner may read.
//!
//! The key is the user's identity at the tower (PROTOCOL.md "Identities and signatures": the tower
//! recovers the user id from each request's signature), so whoever reads the file can spend the
//! subscription and read the user's appointments. As ssh does for its private keys, a key file that
//! its group or others may read, write or execute is refused. The file holds the 32-byte secret key
//! as 64 hex characters and a newline.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bitcoin::secp256k1::SecretKey;
use teos_common::cryptography::get_random_keypair;

use crate::error::Error;

/// Permission bits a key file may not have: any access for group or others.
const TOO_OPEN: u32 = 0o077;

/// Where the key lives when `--key-file` is not given: `~/.teos-client/user.key`.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".teos-client").join("user.key"))
}

/// Reads the key at `path`. Errors ([`Error::Key`]): missing (with a hint to register), not a
/// regular file, readable by others, unreadable, or not 64 hex characters of a valid secret key.
pub fn load(path: &Path) -> Result<SecretKey, Error> {
    let fail = |reason: String| Error::Key {
        path: path.to_path_buf(),
        reason,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(fail(
                "does not exist; `teos-client register` creates it (or pass --key-file)".into(),
            ));
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    if !metadata.is_file() {
        return Err(fail("is not a regular file".into()));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & TOO_OPEN != 0 {
        return Err(fail(format!(
            "permissions {mode:04o} are too open: the key must be readable only by its owner \
             (whoever reads it can use your subscription and read your appointments); \
             run `chmod 600 {}`",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let bytes = hex::decode(text.trim())
        .map_err(|e| fail(format!("not a hex secret key (64 hex characters): {e}")))?;
    SecretKey::from_slice(&bytes)
        .map_err(|_| fail("not a valid secret key (64 hex characters)".into()))
}

/// Reads the key at `path`, creating a new random one first if there is none (`register`). The
/// file is created with mode 0600 (and missing directories with 0700), never overwriting an existing
/// file. Returns the key and whether it was created. Errors: as [`load`], or the file cannot be
/// created.
pub fn load_or_create(path: &Path) -> Result<(SecretKey, bool), Error> {
    match create(path) {
        Ok(key) => Ok((key, true)),
        // Someone has a key there already (or created it meanwhile): use it, with every check.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((load(path)?, false)),
        Err(e) => Err(Error::Key {
            path: path.to_path_buf(),
            reason: format!("cannot create it: {e}"),
        }),
    }
}

/// Creates `path` with a new key (fails with `AlreadyExists` if there is a file).
fn create(path: &Path) -> std::io::Result<SecretKey> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let (key, _) = get_random_keypair();
    file.write_all(format!("{}\n", hex::encode(key.secret_bytes())).as_bytes())?;
    file.sync_all()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn a_new_key_is_created_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("user.key");
        let (key, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again, key);
        assert_eq!(load(&path).unwrap(), key);
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.key");
        load_or_create(&path).unwrap();
        for bits in [0o644, 0o640, 0o604, 0o602, 0o610] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits)).unwrap();
            let error = load(&path).unwrap_err().to_string();
            assert!(error.contains("too open"), "{bits:o}: {error}");
            assert!(load_or_create(&path).is_err(), "{bits:o}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load(&path).is_ok());
    }

    #[test]
    fn missing_and_malformed_keys_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.key");
        assert!(load(&path).unwrap_err().to_string().contains("register"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        file.write_all(b"not hex\n").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("hex"));
        assert!(
            load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("regular")
        );
    }
}
