//! Showing a [`Config`] without its secret: [`Config::masked`] (TOML text) and `Debug`.

use std::fmt::{self, Write as _};

use super::Config;

/// What replaces a non-empty password.
const MASK: &str = "********";

/// One rendered value.
enum Shown {
    Text(String),
    Number(u64),
    Flag(bool),
}

impl fmt::Debug for Shown {
    /// TOML syntax: strings quoted and escaped (a JSON string is a valid TOML basic string).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Text(text) => {
                let quoted = serde_json::to_string(text).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
            Shown::Number(n) => write!(f, "{n}"),
            Shown::Flag(b) => write!(f, "{b}"),
        }
    }
}

impl Config {
    /// Every `teos.toml` key with its effective value, in [`super::KEYS`] order; password masked.
    fn shown(&self) -> Vec<(&'static str, Shown)> {
        let text = |s: &str| Shown::Text(s.to_string());
        let number = |n: u64| Shown::Number(n);
        let password = match self.btc_rpc_password.is_empty() {
            true => "",
            false => MASK,
        };
        let cookie = self
            .btc_rpc_cookie
            .as_ref()
            .map(|p| p.display().to_string());
        vec![
            ("api_bind", text(&self.api_bind)),
            ("api_port", number(self.api_port.into())),
            ("rpc_bind", text(&self.rpc_bind)),
            ("rpc_port", number(self.rpc_port.into())),
            ("btc_network", text(self.btc_network.config_name())),
            ("btc_rpc_user", text(&self.btc_rpc_user)),
            ("btc_rpc_password", text(password)),
            ("btc_rpc_cookie", Shown::Text(cookie.unwrap_or_default())),
            ("btc_rpc_connect", text(&self.btc_rpc_connect)),
            ("btc_rpc_port", number(self.btc_rpc_port.into())),
            (
                "btc_zmq_hashblock",
                text(self.btc_zmq_hashblock.as_deref().unwrap_or("")),
            ),
            ("polling_delta", number(self.polling_delta.into())),
            ("mempool_watch", Shown::Flag(self.mempool_watch)),
            ("subscription_slots", number(self.subscription_slots.into())),
            (
                "subscription_duration",
                number(self.subscription_duration.into()),
            ),
            ("expiry_delta", number(self.expiry_delta.into())),
            ("min_to_self_delay", number(self.min_to_self_delay.into())),
            (
                "max_encrypted_blob_size",
                number(self.max_encrypted_blob_size as u64),
            ),
            ("locator_cache_size", number(self.locator_cache_size.into())),
            (
                "api_max_connections",
                number(self.api_max_connections.into()),
            ),
            ("api_header_timeout", number(self.api_header_timeout.into())),
            ("api_body_timeout", number(self.api_body_timeout.into())),
            (
                "register_rate_limit",
                number(self.register_rate_limit.into()),
            ),
            (
                "register_rate_burst",
                number(self.register_rate_burst.into()),
            ),
            (
                "add_appointment_rate_limit",
                number(self.add_appointment_rate_limit.into()),
            ),
            (
                "add_appointment_rate_burst",
                number(self.add_appointment_rate_burst.into()),
            ),
            ("max_users", number(self.max_users.into())),
            ("max_appointments", number(self.max_appointments.into())),
            ("log_level", text(&self.log_level)),
            ("log_format", text(&self.log_format)),
            (
                "log_file",
                text(
                    &self
                        .log_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                ),
            ),
            (
                "metrics_bind",
                text(&self.metrics_bind.map(|a| a.to_string()).unwrap_or_default()),
            ),
            ("debug", Shown::Flag(self.debug)),
            ("deps_debug", Shown::Flag(self.deps_debug)),
            ("overwrite_key", Shown::Flag(self.overwrite_key)),
            ("force_update", Shown::Flag(self.force_update)),
            ("internal_api_bind", text(&self.internal_api_bind)),
            ("internal_api_port", number(self.internal_api_port.into())),
            ("tor_support", Shown::Flag(false)),
            ("tor_control_port", number(self.tor_control_port.into())),
            (
                "onion_hidden_service_port",
                number(self.onion_hidden_service_port.into()),
            ),
        ]
    }

    /// The effective configuration as `teos.toml` text, one `key = value` line per key in the order
    /// of `contrib/teos.toml.example`, with a non-empty `btc_rpc_password` replaced by `"********"`
    /// and the data directory as a leading comment. For `--print-config` and the startup log; the text
    /// parses back as a `teos.toml`.
    pub fn masked(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(
            out,
            "# effective teosd configuration (btc_rpc_password masked)"
        );
        let _ = writeln!(
            out,
            "# data_dir = {:?}",
            Shown::Text(self.data_dir.display().to_string())
        );
        for (key, value) in self.shown() {
            let _ = writeln!(out, "{key} = {value:?}");
        }
        out
    }
}

impl fmt::Debug for Config {
    /// All fields, the password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Config");
        for (key, value) in self.shown() {
            s.field(key, &value);
        }
        s.field("data_dir", &self.data_dir)
            .field("print_config", &self.print_config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BtcAuth, BtcNetwork, KEYS};
    use super::*;

    #[test]
    fn shown_lists_every_key_in_keys_order() {
        let config = Config::new(
            "/d".into(),
            BtcNetwork::Regtest,
            BtcAuth::Cookie("/c".into()),
        );
        let keys: Vec<&str> = config.shown().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, KEYS);
    }
}
