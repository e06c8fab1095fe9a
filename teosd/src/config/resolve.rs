//! From the stacked sources to a checked [`Config`]: each key's own check (named in its row of
//! `keys.rs`), then the rules that span several keys, which are written here:
//!
//! - Credentials: exactly one of {`btc_rpc_user` and `btc_rpc_password`} or `btc_rpc_cookie`; an empty
//!   string counts as unset. The user may not contain `:` (HTTP Basic auth, RFC 7617 §2).
//! - `btc_rpc_port` 0 → the network's default port.
//!
//! Per-key rules (ports ≠ 0, hosts, counts ≥ 1, ...) are in `checks.rs`.

use std::path::{Path, PathBuf};

use super::Config;
use super::error::{ConfigError, Origin};
use super::keys::Layer;
use super::spec::{Ctx, Setting};

/// Where `setting` came from ([`Origin::Default`] when no source set it).
fn origin<T>(setting: &Option<Setting<T>>) -> Origin {
    setting
        .as_ref()
        .map_or(Origin::Default, |s| s.origin.clone())
}

/// Builds the final [`Config`] from the stacked `layer`.
///
/// `home` expands a leading `~` in paths. Errors: the first key whose check refuses its value (in
/// table order), then a broken rule across keys (see the module doc).
pub(crate) fn resolve(layer: &Layer, home: Option<&Path>) -> Result<Config, ConfigError> {
    let mut config = layer.checked(&Ctx { home })?;
    if config.btc_rpc_port == 0 {
        config.btc_rpc_port = config.btc_network.default_rpc_port();
    }
    // Checked last: a per-key mistake is easier to fix first than a combination of keys.
    credentials(&config, layer)?;
    if config.btc_rpc_cookie.is_some() {
        config.btc_rpc_user.clear();
        config.btc_rpc_password.clear();
    }
    Ok(config)
}

/// The credential rules.
fn credentials(config: &Config, layer: &Layer) -> Result<(), ConfigError> {
    const BOTH: &str = "use either btc_rpc_user + btc_rpc_password or btc_rpc_cookie, not both";
    let has_user = !config.btc_rpc_user.is_empty();
    let has_password = !config.btc_rpc_password.is_empty();
    let user = || origin(&layer.btc_rpc_user);
    let password = || origin(&layer.btc_rpc_password);
    if config.btc_rpc_cookie.is_some() {
        let other = match (has_user, has_password) {
            (true, _) => Some(("btc_rpc_user", user())),
            (false, true) => Some(("btc_rpc_password", password())),
            (false, false) => None,
        };
        return match other {
            Some((other, other_origin)) => Err(ConfigError::Conflict {
                key: "btc_rpc_cookie",
                origin: origin(&layer.btc_rpc_cookie),
                other,
                other_origin,
                reason: BOTH,
            }),
            None => Ok(()),
        };
    }
    match (has_user, has_password) {
        (true, true) if config.btc_rpc_user.contains(':') => Err(ConfigError::invalid(
            "btc_rpc_user",
            &user(),
            "must not contain ':' (HTTP Basic authentication splits user and password there)",
        )),
        (true, true) => Ok(()),
        (true, false) => Err(ConfigError::Missing {
            key: "btc_rpc_password",
            reason: format!(
                "btc_rpc_user is set {}; set btc_rpc_password too, or use btc_rpc_cookie instead",
                user()
            ),
        }),
        (false, true) => Err(ConfigError::Missing {
            key: "btc_rpc_user",
            reason: format!(
                "btc_rpc_password is set {}; set btc_rpc_user too, or use btc_rpc_cookie instead",
                password()
            ),
        }),
        (false, false) => Err(ConfigError::Missing {
            key: "btc_rpc_user and btc_rpc_password, or btc_rpc_cookie",
            reason: "teosd needs bitcoind RPC credentials (teos.toml, TEOS_BTC_RPC_* variables or \
                     --btcrpcuser/--btcrpcpassword/--btcrpccookie)"
                .to_string(),
        }),
    }
}

/// The data directory the sources before the file ask for (`--datadir`, else `TEOS_DATA_DIR`, else
/// the default), checked by its row: the file is read from there.
///
/// Errors: the first key of `early` whose check refuses its value (every key is checked again once
/// the file is stacked under `early`).
pub(crate) fn data_dir(early: &Layer, home: Option<&Path>) -> Result<PathBuf, ConfigError> {
    Ok(early.checked(&Ctx { home })?.data_dir)
}
