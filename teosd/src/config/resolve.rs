//! From the stacked sources to a checked [`Config`]: defaults for what nothing set, then the rules a
//! value must follow. Each rule names its key and the origin of the offending value.
//!
//! Rules (also in `contrib/README.md`):
//! - `api_port`, `rpc_port` ≠ 0 (an admin would not find a random port; tests build a `Config` directly).
//! - `api_bind`, `rpc_bind`, `btc_rpc_connect`, `internal_api_bind`: an IP literal (IPv6 with or
//!   without brackets) or a host name; no scheme, no port.
//! - Credentials: exactly one of {`btc_rpc_user` and `btc_rpc_password`} or `btc_rpc_cookie`; an empty
//!   string counts as unset. The user may not contain `:` (HTTP Basic auth, RFC 7617 §2).
//! - `btc_rpc_port` 0 → the network's default port.
//! - `btc_zmq_hashblock`: empty, `tcp://HOST:PORT` or `ipc://PATH`.
//! - `subscription_slots`, `subscription_duration`, `max_encrypted_blob_size`, `polling_delta`,
//!   `locator_cache_size`, `api_max_connections`, `api_header_timeout`, `api_body_timeout`,
//!   `register_rate_burst`, `add_appointment_rate_burst` ≥ 1; `expiry_delta`, `min_to_self_delay`,
//!   `register_rate_limit`, `add_appointment_rate_limit`, `max_users` and `max_appointments` may be 0
//!   (0 = no limit for the last four).
//! - `log_level` ∈ {off, error, warn, info, debug, trace}, any case.
//! - `tor_support = true` → [`ConfigError::Unsupported`].

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::Config;
use super::defaults as d;
use super::error::{ConfigError, Origin};
use super::layer::{Layer, Setting};

/// The value of an optional setting, or `default` with [`Origin::Default`].
fn take<T>(setting: Option<Setting<T>>, default: T) -> Setting<T> {
    setting.unwrap_or(Setting {
        value: default,
        origin: Origin::Default,
    })
}

/// Builds the final [`Config`] from the stacked `layer`.
///
/// `home` expands a leading `~` in `btc_rpc_cookie`. Errors: any broken rule (see the module doc).
pub(crate) fn resolve(
    layer: Layer,
    data_dir: PathBuf,
    home: Option<&Path>,
    print_config: bool,
) -> Result<Config, ConfigError> {
    let l = layer;
    tor_support(take(l.tor_support, false))?;
    let btc_network = take(l.btc_network, d::BTC_NETWORK).value;
    let btc_rpc_port = match take(l.btc_rpc_port, d::BTC_RPC_PORT).value {
        0 => btc_network.default_rpc_port(),
        port => port,
    };
    let mut config = Config {
        api_bind: host("api_bind", take(l.api_bind, d::API_BIND.into()))?,
        api_port: port("api_port", take(l.api_port, d::API_PORT))?,
        rpc_bind: host("rpc_bind", take(l.rpc_bind, d::RPC_BIND.into()))?,
        rpc_port: port("rpc_port", take(l.rpc_port, d::RPC_PORT))?,
        btc_network,
        btc_rpc_user: String::new(),
        btc_rpc_password: String::new(),
        btc_rpc_cookie: None,
        btc_rpc_connect: host(
            "btc_rpc_connect",
            take(l.btc_rpc_connect, d::BTC_RPC_CONNECT.into()),
        )?,
        btc_rpc_port,
        btc_zmq_hashblock: zmq_endpoint(take(l.btc_zmq_hashblock, String::new()))?,
        mempool_watch: take(l.mempool_watch, true).value,
        subscription_slots: positive(
            "subscription_slots",
            take(l.subscription_slots, d::SUBSCRIPTION_SLOTS),
        )?,
        subscription_duration: positive(
            "subscription_duration",
            take(l.subscription_duration, d::SUBSCRIPTION_DURATION),
        )?,
        expiry_delta: take(l.expiry_delta, d::EXPIRY_DELTA).value,
        min_to_self_delay: take(l.min_to_self_delay, d::MIN_TO_SELF_DELAY).value,
        max_encrypted_blob_size: positive(
            "max_encrypted_blob_size",
            take(l.max_encrypted_blob_size, d::MAX_ENCRYPTED_BLOB_SIZE),
        )?,
        polling_delta: positive("polling_delta", take(l.polling_delta, d::POLLING_DELTA))?,
        locator_cache_size: at_most(
            "locator_cache_size",
            take(l.locator_cache_size, d::LOCATOR_CACHE_SIZE),
            crate::block_processor::KEPT_BLOCKS,
            "the blocks the tower remembers",
        )?,
        api_max_connections: positive(
            "api_max_connections",
            take(l.api_max_connections, d::API_MAX_CONNECTIONS),
        )?,
        api_header_timeout: positive(
            "api_header_timeout",
            take(l.api_header_timeout, d::API_HEADER_TIMEOUT),
        )?,
        api_body_timeout: positive(
            "api_body_timeout",
            take(l.api_body_timeout, d::API_BODY_TIMEOUT),
        )?,
        register_rate_limit: take(l.register_rate_limit, d::REGISTER_RATE_LIMIT).value,
        register_rate_burst: positive(
            "register_rate_burst",
            take(l.register_rate_burst, d::REGISTER_RATE_BURST),
        )?,
        add_appointment_rate_limit: take(
            l.add_appointment_rate_limit,
            d::ADD_APPOINTMENT_RATE_LIMIT,
        )
        .value,
        add_appointment_rate_burst: positive(
            "add_appointment_rate_burst",
            take(l.add_appointment_rate_burst, d::ADD_APPOINTMENT_RATE_BURST),
        )?,
        max_users: take(l.max_users, d::MAX_USERS).value,
        max_appointments: take(l.max_appointments, d::MAX_APPOINTMENTS).value,
        debug: take(l.debug, false).value,
        deps_debug: take(l.deps_debug, false).value,
        log_level: log_level(take(l.log_level, d::LOG_LEVEL.into()))?,
        log_format: log_format(take(l.log_format, d::LOG_FORMAT.into()))?,
        log_file: optional_path("log_file", take(l.log_file, String::new()), home)?,
        metrics_bind: metrics_bind(take(l.metrics_bind, String::new()))?,
        overwrite_key: take(l.overwrite_key, false).value,
        force_update: take(l.force_update, false).value,
        data_dir,
        print_config,
        internal_api_bind: host(
            "internal_api_bind",
            take(l.internal_api_bind, d::INTERNAL_API_BIND.into()),
        )?,
        internal_api_port: take(l.internal_api_port, d::INTERNAL_API_PORT).value,
        tor_control_port: take(l.tor_control_port, d::TOR_CONTROL_PORT).value,
        onion_hidden_service_port: take(l.onion_hidden_service_port, d::ONION_HIDDEN_SERVICE_PORT)
            .value,
    };
    // Checked last: a per-key mistake is easier to fix first than a combination of keys.
    (
        config.btc_rpc_user,
        config.btc_rpc_password,
        config.btc_rpc_cookie,
    ) = credentials(
        take(l.btc_rpc_user, String::new()),
        take(l.btc_rpc_password, String::new()),
        take(l.btc_rpc_cookie, String::new()),
        home,
    )?;
    Ok(config)
}

/// `tor_support = true` is refused loudly instead of being ignored.
fn tor_support(setting: Setting<bool>) -> Result<(), ConfigError> {
    match setting.value {
        false => Ok(()),
        true => Err(ConfigError::Unsupported {
            key: "tor_support",
            origin: setting.origin,
            feature: "Tor support",
            hint: "set tor_support = false and publish the API through a HiddenService of your own \
                   Tor daemon pointing at api_bind:api_port",
        }),
    }
}

/// A listening or connecting port: 0 is refused.
fn port(key: &str, setting: Setting<u16>) -> Result<u16, ConfigError> {
    match setting.value {
        0 => Err(ConfigError::invalid(
            key,
            &setting.origin,
            "port 0 is not allowed; expected 1 to 65535",
        )),
        port => Ok(port),
    }
}

/// A count or duration that must be at least 1.
fn positive<T: Copy + PartialEq + From<u8>>(
    key: &str,
    setting: Setting<T>,
) -> Result<T, ConfigError> {
    if setting.value == T::from(0) {
        return Err(ConfigError::invalid(
            key,
            &setting.origin,
            "must be at least 1, found 0",
        ));
    }
    Ok(setting.value)
}

/// A setting between 1 and `max` (`what` says where the bound comes from).
fn at_most(key: &str, setting: Setting<u32>, max: u32, what: &str) -> Result<u32, ConfigError> {
    let value = positive(key, setting.clone())?;
    if value > max {
        return Err(ConfigError::invalid(
            key,
            &setting.origin,
            format!("must be at most {max} ({what}), found {value}"),
        ));
    }
    Ok(value)
}

/// An IP literal or a host name, returned without IPv6 brackets.
fn host(key: &str, setting: Setting<String>) -> Result<String, ConfigError> {
    parse_host(&setting.value).map_err(|reason| ConfigError::invalid(key, &setting.origin, reason))
}

/// Accepts `1.2.3.4`, `::1`, `[::1]`, or a host name made of labels of ASCII letters, digits, `-` and
/// `_` (Docker service names) separated by dots. Returns the host without brackets.
pub(crate) fn parse_host(text: &str) -> Result<String, String> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if inner.parse::<Ipv6Addr>().is_ok() {
            return Ok(inner.to_string());
        }
    } else if text.parse::<IpAddr>().is_ok() || is_host_name(text) {
        return Ok(text.to_string());
    }
    Err(format!(
        "expected an IP address or a host name (no scheme, no port), found {text:?}"
    ))
}

/// RFC 1123 host-name shape, also allowing `_`.
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Applies the credential rules; returns (user, password, cookie path).
fn credentials(
    user: Setting<String>,
    password: Setting<String>,
    cookie: Setting<String>,
    home: Option<&Path>,
) -> Result<(String, String, Option<PathBuf>), ConfigError> {
    const BOTH: &str = "use either btc_rpc_user + btc_rpc_password or btc_rpc_cookie, not both";
    let (has_user, has_password) = (!user.value.is_empty(), !password.value.is_empty());
    if !cookie.value.is_empty() {
        let other = match (has_user, has_password) {
            (true, _) => Some(("btc_rpc_user", user.origin)),
            (false, true) => Some(("btc_rpc_password", password.origin)),
            (false, false) => None,
        };
        if let Some((other, other_origin)) = other {
            return Err(ConfigError::Conflict {
                key: "btc_rpc_cookie",
                origin: cookie.origin,
                other,
                other_origin,
                reason: BOTH,
            });
        }
        let path = expand_tilde("btc_rpc_cookie", &cookie.origin, &cookie.value, home)?;
        return Ok((String::new(), String::new(), Some(path)));
    }
    match (has_user, has_password) {
        (true, true) if user.value.contains(':') => Err(ConfigError::invalid(
            "btc_rpc_user",
            &user.origin,
            "must not contain ':' (HTTP Basic authentication splits user and password there)",
        )),
        (true, true) => Ok((user.value, password.value, None)),
        (true, false) => Err(ConfigError::Missing {
            key: "btc_rpc_password",
            reason: format!(
                "btc_rpc_user is set {}; set btc_rpc_password too, or use btc_rpc_cookie instead",
                user.origin
            ),
        }),
        (false, true) => Err(ConfigError::Missing {
            key: "btc_rpc_user",
            reason: format!(
                "btc_rpc_password is set {}; set btc_rpc_user too, or use btc_rpc_cookie instead",
                password.origin
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

/// Expands a leading `~` or `~/` to `home`. `~user` forms are left as they are.
///
/// Errors: [`ConfigError::NoHome`] when the path needs `home` and there is none.
pub(crate) fn expand_tilde(
    key: &'static str,
    origin: &Origin,
    text: &str,
    home: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    let rest = match text.strip_prefix('~') {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => return Ok(PathBuf::from(text)),
    };
    match home {
        Some(home) if !home.as_os_str().is_empty() => Ok(home.join(rest)),
        _ => Err(ConfigError::NoHome {
            key,
            origin: origin.clone(),
        }),
    }
}

/// `btc_zmq_hashblock`: empty = `None` (ask bitcoind), else `tcp://HOST:PORT` or `ipc://PATH`, the
/// endpoint forms bitcoind's `-zmqpubhashblock` takes.
fn zmq_endpoint(setting: Setting<String>) -> Result<Option<String>, ConfigError> {
    let text = setting.value.as_str();
    if text.is_empty() {
        return Ok(None);
    }
    let valid = if let Some(rest) = text.strip_prefix("tcp://") {
        rest.rsplit_once(':').is_some_and(|(host, port)| {
            parse_host(host).is_ok() && port.parse::<u16>().is_ok_and(|p| p != 0)
        })
    } else if let Some(path) = text.strip_prefix("ipc://") {
        !path.is_empty()
    } else {
        false
    };
    match valid {
        true => Ok(Some(setting.value)),
        false => Err(ConfigError::invalid(
            "btc_zmq_hashblock",
            &setting.origin,
            format!(
                "expected tcp://HOST:PORT or ipc://PATH (or empty to ask bitcoind), found {text:?}"
            ),
        )),
    }
}

/// `log_format`, lowercased: auto, human, journald or json.
fn log_format(setting: Setting<String>) -> Result<String, ConfigError> {
    let format = setting.value.to_ascii_lowercase();
    match format.as_str() {
        "auto" | "human" | "journald" | "json" => Ok(format),
        _ => Err(ConfigError::invalid(
            "log_format",
            &setting.origin,
            format!(
                "expected auto, human, journald or json, found {:?}",
                setting.value
            ),
        )),
    }
}

/// An optional path (`~` expanded with `home`); empty = unset.
fn optional_path(
    key: &'static str,
    setting: Setting<String>,
    home: Option<&Path>,
) -> Result<Option<PathBuf>, ConfigError> {
    let text = setting.value.trim();
    if text.is_empty() {
        return Ok(None);
    }
    expand_tilde(key, &setting.origin, text, home).map(Some)
}

/// `metrics_bind`: empty = off, else an `IP:port` socket address (IPv6 in brackets).
fn metrics_bind(setting: Setting<String>) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let text = setting.value.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ConfigError::invalid(
            "metrics_bind",
            &setting.origin,
            format!(
                "expected IP:PORT (e.g. 127.0.0.1:9815) or empty for no metrics, found {text:?}"
            ),
        )
    })
}

/// `log_level`, lowercased.
fn log_level(setting: Setting<String>) -> Result<String, ConfigError> {
    let level = setting.value.to_ascii_lowercase();
    match level.as_str() {
        "off" | "error" | "warn" | "info" | "debug" | "trace" => Ok(level),
        _ => Err(ConfigError::invalid(
            "log_level",
            &setting.origin,
            format!(
                "expected off, error, warn, info, debug or trace, found {:?}",
                setting.value
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_accept_ip_literals_and_names_and_refuse_urls() {
        assert_eq!(parse_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(parse_host("[::1]").unwrap(), "::1");
        assert_eq!(parse_host("::1").unwrap(), "::1");
        assert_eq!(parse_host("bitcoind_1.local").unwrap(), "bitcoind_1.local");
        for bad in [
            "",
            "http://localhost",
            "localhost:8332",
            "a b",
            "-x",
            "[nothost]",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tilde_expands_only_alone_or_before_a_slash() {
        let home = Some(Path::new("/home/u"));
        let o = Origin::Default;
        assert_eq!(
            expand_tilde("data_dir", &o, "~", home).unwrap(),
            PathBuf::from("/home/u")
        );
        assert_eq!(
            expand_tilde("data_dir", &o, "~/x/y", home).unwrap(),
            PathBuf::from("/home/u/x/y")
        );
        assert_eq!(
            expand_tilde("data_dir", &o, "~bob/x", home).unwrap(),
            PathBuf::from("~bob/x")
        );
        assert_eq!(
            expand_tilde("data_dir", &o, "/abs", None).unwrap(),
            PathBuf::from("/abs")
        );
        assert!(matches!(
            expand_tilde("data_dir", &o, "~/x", None),
            Err(ConfigError::NoHome {
                key: "data_dir",
                ..
            })
        ));
    }

    #[test]
    fn zmq_endpoints_accept_tcp_and_ipc_forms() {
        let s = |v: &str| Setting {
            value: v.to_string(),
            origin: Origin::Default,
        };
        assert_eq!(zmq_endpoint(s("")).unwrap(), None);
        assert!(zmq_endpoint(s("tcp://127.0.0.1:28332")).unwrap().is_some());
        assert!(zmq_endpoint(s("tcp://[::1]:28332")).unwrap().is_some());
        assert!(
            zmq_endpoint(s("ipc:///tmp/bitcoind.sock"))
                .unwrap()
                .is_some()
        );
        for bad in [
            "127.0.0.1:28332",
            "tcp://127.0.0.1",
            "tcp://h:0",
            "udp://h:1",
            "ipc://",
        ] {
            let err = zmq_endpoint(s(bad)).unwrap_err().to_string();
            assert!(err.contains("btc_zmq_hashblock"), "{err}");
        }
    }
}
