//! The admin API's mutual-TLS material: a private CA, a server pair and a client pair, kept as PEM
//! files in the top-level data directory (shared by all networks, as rust-teos).
//!
//! Files (ADMIN_RPC.md "Transport and auth"): `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`,
//! `client.pem`, `client-key.pem`. Keys are ECDSA P-256 (rcgen's default, on ring); certificates carry
//! the subject alternative names `localhost` and `teos` (teos-cli, like rust-teos's CLI, verifies the
//! server as `localhost`). Key files are created with mode 0600 from the start (never chmod'ed after),
//! by writing a temporary file with that mode and renaming it into place, so a crash leaves either the
//! old state or the complete file.
//!
//! On first start everything is generated. Later starts reuse the files; a pair (certificate + key) is
//! regenerated only if one of its two files is missing, signed by the existing CA. If the CA itself is
//! missing, a new CA is made and both pairs are re-issued (certificates of the old CA would no longer
//! verify); clients then need the new `ca.pem`, `client.pem` and `client-key.pem`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// CA certificate file name.
pub const CA_CERT: &str = "ca.pem";
/// CA private key file name (mode 0600).
pub const CA_KEY: &str = "ca-key.pem";
/// Server certificate file name.
pub const SERVER_CERT: &str = "server.pem";
/// Server private key file name (mode 0600).
pub const SERVER_KEY: &str = "server-key.pem";
/// Client certificate file name (copy it, with `client-key.pem` and `ca.pem`, to administer remotely).
pub const CLIENT_CERT: &str = "client.pem";
/// Client private key file name (mode 0600).
pub const CLIENT_KEY: &str = "client-key.pem";

/// Subject alternative names of the server and client certificates.
const SUBJECT_ALT_NAMES: [&str; 2] = ["localhost", "teos"];
/// Common name of the CA. The CA's distinguished name is rebuilt from it to sign a missing pair, so it
/// must never change.
const CA_COMMON_NAME: &str = "teos Root CA";

/// The PEM texts the admin server and its clients need.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The CA certificate (trust anchor of both sides).
    pub ca_cert: String,
    /// The server certificate, signed by the CA.
    pub server_cert: String,
    /// The server's PKCS#8 private key.
    pub server_key: String,
    /// The client certificate, signed by the CA.
    pub client_cert: String,
    /// The client's PKCS#8 private key.
    pub client_key: String,
}

impl std::fmt::Debug for TlsMaterial {
    /// Never prints the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

/// Why the TLS material could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading, creating or renaming a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key file exists but does not hold a usable PEM private key.
    #[error(
        "{path}: not a usable private key ({source}); delete it and its certificate to regenerate both"
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// rcgen's parse error.
        source: rcgen::Error,
    },
    /// A certificate file exists but is not PEM (`-----BEGIN CERTIFICATE-----`).
    #[error("{0}: not a PEM certificate; delete it and its key to regenerate both")]
    BadCertificate(PathBuf),
    /// Key generation or signing failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Loads the mTLS material from `data_dir`, creating what is missing (see the module doc). Creates
/// `data_dir` if needed. Blocking (file I/O and key generation): call it at startup or from
/// `spawn_blocking`.
///
/// Errors: [`TlsError::Io`] (unreadable or unwritable files), [`TlsError::BadKey`] /
/// [`TlsError::BadCertificate`] (a present file is damaged: it is never overwritten silently),
/// [`TlsError::Generate`].
pub fn load_or_create(data_dir: &Path) -> Result<TlsMaterial, TlsError> {
    fs::create_dir_all(data_dir).map_err(|source| TlsError::Io {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let (ca_cert, ca_key, new_ca) = match load_pair(data_dir, CA_CERT, CA_KEY)? {
        Some((cert, key)) => (cert, key, false),
        None => {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?.pem();
            store_pair(data_dir, CA_CERT, &cert, CA_KEY, &key.serialize_pem())?;
            tracing::info!("admin API: created a new CA in {}", data_dir.display());
            (cert, key.serialize_pem(), true)
        }
    };
    let ca_key = KeyPair::from_pem(&ca_key).map_err(|source| TlsError::BadKey {
        path: data_dir.join(CA_KEY),
        source,
    })?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let (server_cert, server_key) = leaf(data_dir, Leaf::Server, &issuer, new_ca)?;
    let (client_cert, client_key) = leaf(data_dir, Leaf::Client, &issuer, new_ca)?;
    Ok(TlsMaterial {
        ca_cert,
        server_cert,
        server_key,
        client_cert,
        client_key,
    })
}

/// The two certificates the CA issues.
#[derive(Clone, Copy)]
enum Leaf {
    Server,
    Client,
}

impl Leaf {
    fn files(self) -> (&'static str, &'static str) {
        match self {
            Leaf::Server => (SERVER_CERT, SERVER_KEY),
            Leaf::Client => (CLIENT_CERT, CLIENT_KEY),
        }
    }
}

/// The CA's parameters; deterministic, so that an [`Issuer`] rebuilt from them and the CA key signs
/// certificates that chain to the CA certificate on disk.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Loads the leaf pair, or issues a new one when a file is missing or `force` (new CA).
fn leaf(
    dir: &Path,
    which: Leaf,
    issuer: &Issuer<'_, KeyPair>,
    force: bool,
) -> Result<(String, String), TlsError> {
    let (cert_file, key_file) = which.files();
    if !force && let Some(pair) = load_pair(dir, cert_file, key_file)? {
        KeyPair::from_pem(&pair.1).map_err(|source| TlsError::BadKey {
            path: dir.join(key_file),
            source,
        })?;
        return Ok(pair);
    }
    let (common_name, usage) = match which {
        Leaf::Server => ("teos grpc Server", ExtendedKeyUsagePurpose::ServerAuth),
        Leaf::Client => ("teos grpc Client", ExtendedKeyUsagePurpose::ClientAuth),
    };
    let mut params = CertificateParams::new(SUBJECT_ALT_NAMES.map(String::from).to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?.pem();
    let key = key.serialize_pem();
    store_pair(dir, cert_file, &cert, key_file, &key)?;
    tracing::info!("admin API: issued {cert_file} / {key_file}");
    Ok((cert, key))
}

/// Reads `(certificate, key)`; `None` if either file is missing.
fn load_pair(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
) -> Result<Option<(String, String)>, TlsError> {
    let (cert_path, key_path) = (dir.join(cert_file), dir.join(key_file));
    let (Some(cert), Some(key)) = (read_if_exists(&cert_path)?, read_if_exists(&key_path)?) else {
        return Ok(None);
    };
    if !cert.contains("-----BEGIN CERTIFICATE-----") {
        return Err(TlsError::BadCertificate(cert_path));
    }
    warn_if_readable_by_others(&key_path);
    Ok(Some((cert, key)))
}

fn read_if_exists(path: &Path) -> Result<Option<String>, TlsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Key files from elsewhere (rust-teos wrote them with the default umask) are used as they are, but
/// the operator is told.
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{} is accessible to other users (mode {:o}); consider chmod 600",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}

/// Writes the key (mode 0600) then the certificate (mode 0644), each atomically.
fn store_pair(
    dir: &Path,
    cert_file: &str,
    cert: &str,
    key_file: &str,
    key: &str,
) -> Result<(), TlsError> {
    write_atomic(&dir.join(key_file), key.as_bytes(), 0o600)?;
    write_atomic(&dir.join(cert_file), cert.as_bytes(), 0o644)
}

/// Writes `bytes` to `<path>.tmp` created with `mode`, syncs it, and renames it to `path`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    // A leftover temporary file may have another mode: remove it so `mode` applies at creation.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn first_start_writes_six_files_with_private_keys_0600() {
        let dir = tempfile::tempdir().unwrap();
        let material = load_or_create(dir.path()).unwrap();
        for key in [CA_KEY, SERVER_KEY, CLIENT_KEY] {
            assert_eq!(mode(&dir.path().join(key)), 0o600, "{key}");
        }
        for cert in [CA_CERT, SERVER_CERT, CLIENT_CERT] {
            let text = fs::read_to_string(dir.path().join(cert)).unwrap();
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        }
        assert_eq!(
            material.client_key,
            fs::read_to_string(dir.path().join(CLIENT_KEY)).unwrap()
        );
        assert!(!dir.path().join("ca-key.pem.tmp").exists());
    }

    #[test]
    fn later_starts_reuse_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(first.ca_cert, second.ca_cert);
        assert_eq!(first.server_cert, second.server_cert);
        assert_eq!(first.server_key, second.server_key);
        assert_eq!(first.client_cert, second.client_cert);
        assert_eq!(first.client_key, second.client_key);
    }

    #[test]
    fn a_missing_pair_is_reissued_by_the_same_ca_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        fs::remove_file(dir.path().join(CLIENT_KEY)).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(first.ca_cert, second.ca_cert);
        assert_eq!(first.server_cert, second.server_cert);
        assert_ne!(first.client_cert, second.client_cert);
        assert_ne!(first.client_key, second.client_key);
        assert_eq!(mode(&dir.path().join(CLIENT_KEY)), 0o600);
    }

    #[test]
    fn a_missing_ca_reissues_both_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        fs::remove_file(dir.path().join(CA_CERT)).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert_ne!(first.ca_cert, second.ca_cert);
        assert_ne!(first.server_key, second.server_key);
        assert_ne!(first.client_key, second.client_key);
    }

    #[test]
    fn a_damaged_key_is_an_error_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        fs::write(dir.path().join(SERVER_KEY), "garbage").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(TlsError::BadKey { .. })
        ));
        assert_eq!(
            fs::read_to_string(dir.path().join(SERVER_KEY)).unwrap(),
            "garbage"
        );
    }
}
