//! The public API as a Tor onion service (`tor_support`), created through Tor's control port as
//! rust-teos does (research/rust-teos.md §3.5), with the control protocol of the `torut` crate.
//!
//! - **Control port.** teosd connects to `127.0.0.1:<tor_control_port>`, asks `PROTOCOLINFO` how to
//!   authenticate and uses no authentication if Tor allows it, else the cookie file Tor names
//!   (`CookieAuthentication 1`). A Tor that only takes a password (`HashedControlPassword`) is
//!   refused with [`TorError::NoAuthMethod`].
//! - **Service.** `ADD_ONION ED25519-V3:<key>` maps `<onion>:<onion_hidden_service_port>` to a
//!   listener of teosd's own on loopback ([`crate::api::http::ClientKeying::PerConnection`]): every
//!   Tor client arrives from 127.0.0.1, so that listener limits requests per connection instead of
//!   per IP address, which would be one limit shared by every Tor user (`api/limits.rs`). The service
//!   lives as long as teosd's control connection; it is removed (`DEL_ONION`) at shutdown, and
//!   re-created if Tor restarts ([`OnionService::keep`]).
//! - **Key.** The service's ed25519 key is kept in `<datadir>/<network>/onion_v3_sk`, the file and
//!   format of rust-teos: the 64 bytes of an expanded ed25519 secret key (scalar ‖ nonce prefix),
//!   the key blob Tor's `ADD_ONION ED25519-V3:` takes (base64-encoded). So the onion address is the
//!   same at every start, and a rust-teos data dir's file keeps its address. A new key is written with
//!   mode 0600; a file of another size is an error, never replaced.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpStream;
use torut::control::{AsyncEvent, AuthenticatedConn, ConnError, UnauthenticatedConn};
use torut::onion::TorSecretKeyV3;

/// Name of the onion service key file in the network directory (rust-teos's name).
pub const KEY_FILE: &str = "onion_v3_sk";

/// Size of the key file: an expanded ed25519 secret key, bytes.
pub const KEY_LEN: usize = 64;

/// Longest teosd waits for one answer of Tor's control port.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the control connection is checked (a `NOOP`), and how often a lost service is retried.
const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Why the onion service could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TorError {
    /// Tor's control port did not accept a connection (Tor not running, `ControlPort` not set).
    #[error("cannot connect to Tor's control port at {addr} (tor_control_port): {source}")]
    Connect {
        /// The control port's address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// Tor allows neither cookie nor no authentication.
    #[error(
        "Tor's control port offers no authentication teosd supports: enable CookieAuthentication 1 \
         in torrc (and let teosd's user read the cookie file)"
    )]
    NoAuthMethod,
    /// The cookie file Tor named could not be read.
    #[error("cannot read Tor's control cookie: {0}")]
    Cookie(std::io::Error),
    /// A control command failed or Tor answered with an error code.
    #[error("Tor's control port, {step}: {reason}")]
    Control {
        /// The command (`PROTOCOLINFO`, `AUTHENTICATE`, `ADD_ONION`, ...).
        step: &'static str,
        /// Tor's error, as torut reports it.
        reason: String,
    },
    /// The key file could not be read or written.
    #[error("onion service key {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold [`KEY_LEN`] bytes.
    #[error(
        "onion service key {path} holds {len} bytes, not the {KEY_LEN} of an onion v3 key \
         (rust-teos's onion_v3_sk format); move it away to get a new address"
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Its size, bytes.
        len: usize,
    },
}

/// The onion service key file of a network directory.
pub fn key_path(network_dir: &Path) -> PathBuf {
    network_dir.join(KEY_FILE)
}

/// Reads the onion service key from `path`, or creates one there (mode 0600) if there is none.
/// Blocking file I/O: call it from a thread that may block. Returns the key and whether it is new.
///
/// Errors: [`TorError::KeyFile`], [`TorError::BadKey`].
pub fn load_or_create_key(path: &Path) -> Result<(TorSecretKeyV3, bool), TorError> {
    let key_file = |source| TorError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: [u8; KEY_LEN] =
                bytes.as_slice().try_into().map_err(|_| TorError::BadKey {
                    path: path.to_path_buf(),
                    len: bytes.len(),
                })?;
            Ok((TorSecretKeyV3::from(bytes), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = TorSecretKeyV3::generate();
            let mut file = std::fs::OpenOptions::new();
            file.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
            let mut file = file.open(path).map_err(key_file)?;
            file.write_all(&key.as_bytes()).map_err(key_file)?;
            file.sync_all().map_err(key_file)?;
            Ok((key, true))
        }
        Err(e) => Err(key_file(e)),
    }
}

/// The onion address (`<56 base32 characters>.onion`) of `key`.
pub fn onion_address(key: &TorSecretKeyV3) -> String {
    key.public().get_onion_address().to_string()
}

/// Where the service is, and what it maps to.
#[derive(Clone, Debug)]
pub struct OnionSettings {
    /// Tor's control port (`127.0.0.1:<tor_control_port>`).
    pub control: SocketAddr,
    /// The port clients dial at the onion address (`onion_hidden_service_port`).
    pub port: u16,
    /// teosd's loopback listener Tor forwards the service's connections to.
    pub target: SocketAddr,
}

/// What torut calls for each asynchronous event of the control connection (none are asked for).
type EventHandler = fn(AsyncEvent<'static>) -> std::future::Ready<Result<(), ConnError>>;

fn ignore_event(_: AsyncEvent<'static>) -> std::future::Ready<Result<(), ConnError>> {
    std::future::ready(Ok(()))
}

/// An authenticated control connection.
type Control = AuthenticatedConn<TcpStream, EventHandler>;

/// A published onion service: alive while its control connection is open.
pub struct OnionService {
    /// The control connection the service belongs to; `None` after Tor went away, until re-created.
    control: Option<Control>,
    /// The service's key (to re-create it after Tor restarts).
    key: TorSecretKeyV3,
    /// The control port, the onion port and the target.
    settings: OnionSettings,
}

impl OnionService {
    /// Connects to Tor's control port, authenticates and publishes the service of `key`.
    ///
    /// Errors: [`TorError::Connect`], [`TorError::NoAuthMethod`], [`TorError::Cookie`],
    /// [`TorError::Control`] (e.g. Tor refusing the key, or an answer not within 10 s).
    pub async fn start(key: TorSecretKeyV3, settings: OnionSettings) -> Result<Self, TorError> {
        let control = publish(&key, &settings).await?;
        Ok(OnionService {
            control: Some(control),
            key,
            settings,
        })
    }

    /// `<onion address>:<port>`, what clients dial.
    pub fn address(&self) -> String {
        format!("{}:{}", onion_address(&self.key), self.settings.port)
    }

    /// Keeps the service until `shutdown` completes, then removes it (`DEL_ONION`). Every 10 s the
    /// control connection is checked; if Tor went away (a restart drops every service of its
    /// controllers), the service is published again as soon as Tor answers.
    pub async fn keep(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(CHECK_EVERY) => {}
            }
            if let Some(control) = &mut self.control {
                match control_call("NOOP", control.noop()).await {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(
                            "lost Tor's control connection ({e}); the onion service is down until Tor answers again"
                        );
                        self.control = None;
                    }
                }
            }
            match publish(&self.key, &self.settings).await {
                Ok(control) => {
                    tracing::info!(event = "onion_service", onion = %self.address(), target = %self.settings.target, "onion service published again");
                    self.control = Some(control);
                }
                Err(e) => tracing::debug!("onion service not published yet: {e}"),
            }
        }
        if let Some(mut control) = self.control.take() {
            let id = self
                .key
                .public()
                .get_onion_address()
                .get_address_without_dot_onion();
            if let Err(e) = control_call("DEL_ONION", control.del_onion(&id)).await {
                tracing::debug!("removing the onion service: {e}");
            }
        }
    }
}

/// Runs one control call with [`CONTROL_TIMEOUT`].
async fn control_call<T>(
    step: &'static str,
    call: impl Future<Output = Result<T, ConnError>>,
) -> Result<T, TorError> {
    match tokio::time::timeout(CONTROL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(TorError::Control {
            step,
            reason: e.to_string(),
        }),
        Err(_) => Err(TorError::Control {
            step,
            reason: format!("no answer within {CONTROL_TIMEOUT:?}"),
        }),
    }
}

/// Connects, authenticates as `PROTOCOLINFO` says, and sends `ADD_ONION` for `key`.
async fn publish(key: &TorSecretKeyV3, settings: &OnionSettings) -> Result<Control, TorError> {
    let stream = tokio::time::timeout(CONTROL_TIMEOUT, TcpStream::connect(settings.control))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        .map_err(|source| TorError::Connect {
            addr: settings.control,
            source,
        })?;
    let mut unauthenticated = UnauthenticatedConn::new(stream);
    let info = control_call("PROTOCOLINFO", unauthenticated.load_protocol_info())
        .await?
        .clone();
    // Null if Tor allows it, else the cookie (read from the file Tor names: 32 bytes).
    let auth = info
        .make_auth_data()
        .map_err(TorError::Cookie)?
        .ok_or(TorError::NoAuthMethod)?;
    control_call("AUTHENTICATE", unauthenticated.authenticate(&auth)).await?;
    let mut control: Control = unauthenticated.into_authenticated().await;
    control.set_async_event_handler(Some(ignore_event as EventHandler));
    let ports = [(settings.port, settings.target)];
    control_call(
        "ADD_ONION",
        control.add_onion_v3(key, false, false, false, None, &mut ports.iter()),
    )
    .await?;
    Ok(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_kept_private_and_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        let (key, new) = load_or_create_key(&path).unwrap();
        assert!(new);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read(&path).unwrap().len(), KEY_LEN);
        let (again, new) = load_or_create_key(&path).unwrap();
        assert!(!new);
        assert_eq!(again.as_bytes(), key.as_bytes());
        assert_eq!(onion_address(&again), onion_address(&key));
    }

    #[test]
    fn the_address_is_the_one_tor_derives_from_the_same_key() {
        // The expanded ed25519 key of the seed 00 01 .. 1f, as rust-teos writes onion_v3_sk; Tor 0.4.9
        // wrote this hostname for a HiddenServiceDir holding the same 64 bytes.
        let bytes: [u8; KEY_LEN] = hex::decode(
            "3894eea49c580aef816935762be049559d6d1440dede12e6a125f1841fff8e6f\
             a9d71862a3e5746b571be3d187b0041046f52ebd850c7cbd5fde8ee38473b649",
        )
        .unwrap()
        .try_into()
        .unwrap();
        assert_eq!(
            onion_address(&TorSecretKeyV3::from(bytes)),
            "aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4bqead.onion"
        );
    }

    #[test]
    fn a_key_file_of_another_size_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        std::fs::write(&path, [7u8; 32]).unwrap();
        let err = load_or_create_key(&path).err().unwrap();
        assert!(matches!(err, TorError::BadKey { len: 32, .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 32]);
    }
}
