//! The tower's address as users are given it: `tower_id@host:port`, the form teosd prints at start
//! and in `gettowerinfo` (and the form Core Lightning's `watchtower-client` plugin takes).

use std::fmt;
use std::str::FromStr;

use teos_common::appointment::TowerId;
use teos_common::constants::DEFAULT_API_PORT;

/// A tower: its id (public key, receipts are verified against it) and where its public HTTP API
/// listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TowerAddress {
    /// The tower's public key (66 hex characters).
    pub id: TowerId,
    /// Host name, IPv4 address, or IPv6 address in brackets (`[::1]`).
    pub host: String,
    /// TCP port of the public API; 9814 (`DEFAULT_API_PORT`) when the address has none.
    pub port: u16,
}

impl TowerAddress {
    /// `http://host:port`, the base URL of the public API (the protocol is plain HTTP; PROTOCOL.md
    /// "Endpoints").
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

impl fmt::Display for TowerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.id, self.host, self.port)
    }
}

impl FromStr for TowerAddress {
    type Err = String;

    /// Reads `tower_id@host[:port]`; `host` may be a bracketed IPv6 address.
    fn from_str(text: &str) -> Result<TowerAddress, String> {
        let (id, location) = text
            .split_once('@')
            .ok_or("expected tower_id@host:port (the address the tower prints)")?;
        let id: TowerId = id
            .parse()
            .map_err(|e| format!("bad tower id (66 hex characters, a public key): {e}"))?;
        let (host, port) = split_host_port(location)?;
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || "/@?#".contains(c)) {
            return Err(format!("bad host {host:?}"));
        }
        Ok(TowerAddress {
            id,
            host: host.to_owned(),
            port,
        })
    }
}

/// `host[:port]` or `[ipv6][:port]`.
fn split_host_port(location: &str) -> Result<(&str, u16), String> {
    let (host, port) = if location.starts_with('[') {
        let end = location
            .find(']')
            .ok_or("an IPv6 address needs its closing bracket")?;
        let (host, rest) = location.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected {rest:?} after the IPv6 address")),
            },
        }
    } else {
        match location.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("write an IPv6 address in brackets: tower_id@[::1]:9814".into());
            }
            Some((host, port)) => (host, Some(port)),
            None => (location, None),
        }
    };
    let port = match port {
        None => DEFAULT_API_PORT,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("bad port {text:?} (1 to 65535)")),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "02fcc947ae8831879d073eef32a5197784b451a9f4ec4241326abb73f133e796cc";

    #[test]
    fn addresses_are_read_as_teosd_prints_them() {
        let address: TowerAddress = format!("{ID}@127.0.0.1:9815").parse().unwrap();
        assert_eq!(address.id.to_string(), ID);
        assert_eq!(address.url(), "http://127.0.0.1:9815");
        assert_eq!(address.to_string(), format!("{ID}@127.0.0.1:9815"));

        let default_port: TowerAddress = format!("{ID}@tower.example.org").parse().unwrap();
        assert_eq!(default_port.url(), "http://tower.example.org:9814");

        let v6: TowerAddress = format!("{ID}@[::1]:1234").parse().unwrap();
        assert_eq!(v6.url(), "http://[::1]:1234");
        let v6_default: TowerAddress = format!("{ID}@[::1]").parse().unwrap();
        assert_eq!(v6_default.port, 9814);
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "127.0.0.1:9814".to_owned(),
            format!("{ID}@"),
            format!("{ID}@host:0"),
            format!("{ID}@host:99999"),
            format!("{ID}@host:port"),
            format!("{ID}@::1:9814"),
            format!("{ID}@[::1"),
            format!("{ID}@[::1]x"),
            format!("{ID}@http://host:1"),
            format!("{}@host:1", &ID[2..]),
            format!("07{}@host:1", &ID[2..]),
        ] {
            assert!(bad.parse::<TowerAddress>().is_err(), "{bad}");
        }
    }
}
