//! HTTP basic authentication: `rpcuser`/`rpcpassword` and the cookie file, as Bitcoin Core does it
//! (`src/httprpc.cpp`, `src/rpc/request.cpp`).
//!
//! The cookie lives at `<datadir>/regtest/.cookie` and holds `__cookie__:<64 hex>` (32 random
//! bytes). It is written at every start (through a temporary file and a rename, mode 0600) and
//! deleted at a clean stop, so a client must re-read it after a restart (BITCOIND.md).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;

/// The user name of cookie authentication.
pub const COOKIE_USER: &str = "__cookie__";

/// `<datadir>/regtest/.cookie`.
pub fn cookie_path(datadir: &Path) -> PathBuf {
    datadir.join("regtest").join(".cookie")
}

/// Generates a fresh cookie, writes it to [`cookie_path`] and returns its `user:password` text.
pub fn write_cookie(datadir: &Path) -> io::Result<String> {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let content = format!("{COOKIE_USER}:{}", hex::encode(secret));
    let path = cookie_path(datadir);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    Ok(content)
}

/// Deletes the cookie file; a missing file is not an error (Core ignores it too).
pub fn delete_cookie(datadir: &Path) -> io::Result<()> {
    match fs::remove_file(cookie_path(datadir)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Result of checking an `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Credentials match the cookie or `rpcuser:rpcpassword`.
    Authorized,
    /// No `Authorization` header: 401.
    Missing,
    /// Wrong scheme, undecodable or wrong credentials: 401.
    Rejected,
}

/// The credentials one simulator instance accepts.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `__cookie__:<hex>`, regenerated at each start.
    cookie: String,
    /// `rpcuser:rpcpassword` when configured.
    user_password: Option<String>,
}

impl Credentials {
    /// Accepts `cookie` (`__cookie__:<hex>`) and, when given, `user`/`password`.
    pub fn new(cookie: String, user_password: Option<(String, String)>) -> Credentials {
        Credentials {
            cookie,
            user_password: user_password.map(|(u, p)| format!("{u}:{p}")),
        }
    }

    /// Checks an `Authorization` header value (`Basic <base64(user:password)>`).
    pub fn check(&self, header: Option<&[u8]>) -> AuthOutcome {
        let Some(header) = header else {
            return AuthOutcome::Missing;
        };
        let Some(encoded) = header.strip_prefix(b"Basic ") else {
            return AuthOutcome::Rejected;
        };
        let encoded = String::from_utf8_lossy(encoded);
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return AuthOutcome::Rejected;
        };
        let matches_cookie = constant_time_eq(&decoded, self.cookie.as_bytes());
        let matches_password = self
            .user_password
            .as_ref()
            .is_some_and(|up| constant_time_eq(&decoded, up.as_bytes()));
        if matches_cookie || matches_password {
            AuthOutcome::Authorized
        } else {
            AuthOutcome::Rejected
        }
    }
}

/// Compares without an early exit on the first differing byte (Core's `TimingResistantEqual`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
        .into_bytes()
    }

    #[test]
    fn cookie_file_has_core_format_and_changes_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_cookie(dir.path()).unwrap();
        let on_disk = fs::read_to_string(cookie_path(dir.path())).unwrap();
        assert_eq!(first, on_disk);
        let (user, secret) = on_disk.split_once(':').unwrap();
        assert_eq!(user, "__cookie__");
        assert_eq!(secret.len(), 64);
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
        let second = write_cookie(dir.path()).unwrap();
        assert_ne!(first, second);
        delete_cookie(dir.path()).unwrap();
        assert!(!cookie_path(dir.path()).exists());
        delete_cookie(dir.path()).unwrap();
    }

    #[test]
    fn cookie_and_user_password_are_both_accepted() {
        let creds = Credentials::new(
            "__cookie__:abcd".into(),
            Some(("alice".into(), "secret".into())),
        );
        assert_eq!(
            creds.check(Some(&basic("__cookie__:abcd"))),
            AuthOutcome::Authorized
        );
        assert_eq!(
            creds.check(Some(&basic("alice:secret"))),
            AuthOutcome::Authorized
        );
        assert_eq!(
            creds.check(Some(&basic("alice:wrong"))),
            AuthOutcome::Rejected
        );
        assert_eq!(creds.check(Some(b"Bearer x")), AuthOutcome::Rejected);
        assert_eq!(creds.check(None), AuthOutcome::Missing);
    }
}
