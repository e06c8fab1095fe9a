//! The address the tower advertises to its users (issue 14 item 5): `tower_id@host:port`, the line
//! a Lightning node's watchtower client takes (`lightning-cli registertower <tower_id>@<host>:<port>`
//! for Core Lightning's plugin). A bind address such as `0.0.0.0` is not an address: it says "every
//! local interface", and no user can connect to it.

use std::fmt;
use std::net::IpAddr;

use super::Config;
use super::checks::split_external_address;

/// What the tower tells users to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advertised {
    /// The public API at `host:port` (`host` an IPv6 address without brackets, an IPv4 address or a
    /// host name).
    At {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// No address to advertise; the text says why and what to set.
    Nowhere(String),
}

impl Advertised {
    /// `tower_id@host:port` (IPv6 in brackets), or `None` without an address.
    pub fn tower_address(&self, tower_id: &impl fmt::Display) -> Option<String> {
        match self {
            Advertised::At { host, port } => {
                Some(format!("{tower_id}@{}", super::join_host_port(host, *port)))
            }
            Advertised::Nowhere(_) => None,
        }
    }
}

impl Config {
    /// The address to advertise when the public API listens on port `bound_port`:
    /// `external_address` (its port, else `bound_port`) when set; else `api_bind:bound_port`,
    /// unless `api_bind` is a wildcard (`0.0.0.0`, `::`), which is [`Advertised::Nowhere`].
    /// Loopback and other specific binds are advertised as they are.
    pub fn advertised(&self, bound_port: u16) -> Advertised {
        if let Some(external) = &self.external_address {
            // Checked at load; a hand-built Config with a bad value falls through to api_bind.
            if let Ok((host, port)) = split_external_address(external) {
                return Advertised::At {
                    host,
                    port: port.unwrap_or(bound_port),
                };
            }
        }
        match self.api_bind.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => Advertised::Nowhere(format!(
                "api_bind {} listens on every interface and is not an address users can reach; \
                 set external_address to the host name or public IP address of this tower",
                self.api_bind
            )),
            _ => Advertised::At {
                host: self.api_bind.clone(),
                port: bound_port,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BtcAuth, BtcNetwork};
    use super::*;

    fn config(api_bind: &str, external: Option<&str>) -> Config {
        let mut config = Config::new(
            "/d".into(),
            BtcNetwork::Regtest,
            BtcAuth::Cookie("/c".into()),
        );
        config.api_bind = api_bind.into();
        config.external_address = external.map(String::from);
        config
    }

    #[test]
    fn wildcard_bind_without_external_address_advertises_nothing() {
        for bind in ["0.0.0.0", "::"] {
            let Advertised::Nowhere(why) = config(bind, None).advertised(9814) else {
                panic!("{bind} advertised")
            };
            assert!(why.contains("external_address"), "{why}");
            assert_eq!(
                config(bind, None).advertised(9814).tower_address(&"id"),
                None
            );
        }
    }

    #[test]
    fn specific_binds_are_advertised_as_they_are_with_the_bound_port() {
        let at = |bind: &str| config(bind, None).advertised(4000).tower_address(&"02ab");
        assert_eq!(at("127.0.0.1").as_deref(), Some("02ab@127.0.0.1:4000"));
        assert_eq!(at("::1").as_deref(), Some("02ab@[::1]:4000"));
        assert_eq!(at("tower.lan").as_deref(), Some("02ab@tower.lan:4000"));
    }

    #[test]
    fn external_address_wins_and_its_port_is_optional() {
        let at = |external: &str| {
            config("0.0.0.0", Some(external))
                .advertised(4000)
                .tower_address(&"02ab")
        };
        assert_eq!(
            at("tower.example.com").as_deref(),
            Some("02ab@tower.example.com:4000")
        );
        assert_eq!(
            at("203.0.113.7:9814").as_deref(),
            Some("02ab@203.0.113.7:9814")
        );
        assert_eq!(
            at("[2001:db8::1]:443").as_deref(),
            Some("02ab@[2001:db8::1]:443")
        );
    }
}
