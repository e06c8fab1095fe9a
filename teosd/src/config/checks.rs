//! The checks a row of the key table (`keys.rs`) can name with `check = checks::...`: each takes the
//! value the sources gave (or the default) and returns it as [`super::Config`] keeps it, or why it is
//! refused. The caller adds the key and where the value came from.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::spec::{Ctx, Refusal};

/// A listening or connecting port: 0 is refused.
pub(crate) fn port(value: u16, _: &Ctx) -> Result<u16, Refusal> {
    match value {
        0 => Err(Refusal::Invalid(
            "port 0 is not allowed; expected 1 to 65535".into(),
        )),
        port => Ok(port),
    }
}

/// A count or duration that must be at least 1.
pub(crate) fn positive<T: Copy + PartialEq + From<u8>>(value: T, _: &Ctx) -> Result<T, Refusal> {
    match value == T::from(0) {
        true => Err(Refusal::Invalid("must be at least 1, found 0".into())),
        false => Ok(value),
    }
}

/// `leader_takeover_seconds`: at least 2 (the leader renews its lease every second, and each of its
/// statements has half the takeover time to finish).
pub(crate) fn at_least_two(value: u16, _: &Ctx) -> Result<u16, Refusal> {
    match value < 2 {
        true => Err(Refusal::Invalid(format!(
            "must be at least 2, found {value}"
        ))),
        false => Ok(value),
    }
}

/// `locator_cache_size`: 1 to [`crate::block_processor::KEPT_BLOCKS`], the blocks the tower remembers.
pub(crate) fn kept_blocks(value: u32, ctx: &Ctx) -> Result<u32, Refusal> {
    let max = crate::block_processor::KEPT_BLOCKS;
    let value = positive(value, ctx)?;
    match value > max {
        true => Err(Refusal::Invalid(format!(
            "must be at most {max} (the blocks the tower remembers), found {value}"
        ))),
        false => Ok(value),
    }
}

/// An IP literal or a host name, returned without IPv6 brackets (see [`parse_host`]).
pub(crate) fn host(value: String, _: &Ctx) -> Result<String, Refusal> {
    parse_host(&value).map_err(Refusal::Invalid)
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

/// `external_address`: `HOST` or `HOST:PORT`, HOST a host name, an IPv4 address or an IPv6 address
/// in brackets; not a wildcard (0.0.0.0, [::]), which is no address. Kept as written.
pub(crate) fn external_address(value: Option<String>, _: &Ctx) -> Result<Option<String>, Refusal> {
    match value {
        None => Ok(None),
        Some(text) => {
            let text = text.trim().to_string();
            split_external_address(&text).map_err(Refusal::Invalid)?;
            Ok(Some(text))
        }
    }
}

/// Splits an `external_address` into its host (IPv6 without brackets) and its port, if given.
///
/// Errors: the reason, for [`external_address`].
pub(crate) fn split_external_address(text: &str) -> Result<(String, Option<u16>), String> {
    let shape = || {
        format!(
            "expected HOST or HOST:PORT (a host name, an IPv4 address or an IPv6 address in \
             brackets, e.g. tower.example.com:9814 or [2001:db8::1]:9814), found {text:?}"
        )
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(shape)?;
        inner.parse::<Ipv6Addr>().map_err(|_| shape())?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(shape)?),
        };
        (inner.to_string(), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        // A bare IPv6 address has more colons than a port separator: it needs brackets.
        if port.is_some_and(|p| p.contains(':')) || !is_host_name(host) {
            return Err(shape());
        }
        (host.to_string(), port)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => Some(n),
            _ => return Err(shape()),
        },
    };
    if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(format!(
            "{host} means every local interface, not an address users can reach; give the host \
             name or public IP address of this tower"
        ));
    }
    Ok((host, port))
}

/// `btc_zmq_hashblock`: unset (ask bitcoind), `tcp://HOST:PORT` or `ipc://PATH`, the endpoint forms
/// bitcoind's `-zmqpubhashblock` takes.
pub(crate) fn zmq_endpoint(value: Option<String>, _: &Ctx) -> Result<Option<String>, Refusal> {
    let Some(text) = value else {
        return Ok(None);
    };
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
        true => Ok(Some(text)),
        false => Err(Refusal::Invalid(format!(
            "expected tcp://HOST:PORT or ipc://PATH (or empty to ask bitcoind), found {text:?}"
        ))),
    }
}

/// `log_level`, lowercased: off, error, warn, info, debug or trace.
pub(crate) fn log_level(value: String, _: &Ctx) -> Result<String, Refusal> {
    let level = value.to_ascii_lowercase();
    match level.as_str() {
        "off" | "error" | "warn" | "info" | "debug" | "trace" => Ok(level),
        _ => Err(Refusal::Invalid(format!(
            "expected off, error, warn, info, debug or trace, found {value:?}"
        ))),
    }
}

/// `log_format`, lowercased: auto, human, journald or json.
pub(crate) fn log_format(value: String, _: &Ctx) -> Result<String, Refusal> {
    let format = value.to_ascii_lowercase();
    match format.as_str() {
        "auto" | "human" | "journald" | "json" => Ok(format),
        _ => Err(Refusal::Invalid(format!(
            "expected auto, human, journald or json, found {value:?}"
        ))),
    }
}

/// An optional path with a leading `~` expanded (see [`expand_tilde`]).
pub(crate) fn path(value: Option<PathBuf>, ctx: &Ctx) -> Result<Option<PathBuf>, Refusal> {
    value.map(|p| expand_tilde(&p, ctx.home)).transpose()
}

/// `data_dir`: not empty, `~` expanded.
pub(crate) fn data_dir(value: PathBuf, ctx: &Ctx) -> Result<PathBuf, Refusal> {
    match value.as_os_str().is_empty() {
        true => Err(Refusal::Invalid("must not be empty".into())),
        false => expand_tilde(&value, ctx.home),
    }
}

/// Expands a leading `~` or `~/` to `home`. `~user` forms are left as they are.
///
/// Errors: [`Refusal::NoHome`] when the path needs `home` and there is none.
pub(crate) fn expand_tilde(path: &Path, home: Option<&Path>) -> Result<PathBuf, Refusal> {
    let text = path.to_string_lossy();
    let rest = match text.strip_prefix('~') {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        _ => return Ok(path.to_path_buf()),
    };
    match home {
        Some(home) if !home.as_os_str().is_empty() => Ok(home.join(rest)),
        _ => Err(Refusal::NoHome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<impl std::fmt::Debug, Refusal>) -> String {
        match result {
            Err(Refusal::Invalid(reason)) => reason,
            other => panic!("not refused as invalid: {:?}", other.ok()),
        }
    }

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
        let expand = |p: &str| expand_tilde(Path::new(p), home).ok().unwrap();
        assert_eq!(expand("~"), PathBuf::from("/home/u"));
        assert_eq!(expand("~/x/y"), PathBuf::from("/home/u/x/y"));
        assert_eq!(expand("~bob/x"), PathBuf::from("~bob/x"));
        assert!(matches!(
            expand_tilde(Path::new("/abs"), None),
            Ok(p) if p == Path::new("/abs")
        ));
        assert!(matches!(
            expand_tilde(Path::new("~/x"), None),
            Err(Refusal::NoHome)
        ));
    }

    #[test]
    fn zmq_endpoints_accept_tcp_and_ipc_forms() {
        let ctx = Ctx { home: None };
        let check = |v: &str| zmq_endpoint(Some(v.to_string()), &ctx);
        assert!(matches!(zmq_endpoint(None, &ctx), Ok(None)));
        assert!(matches!(check("tcp://127.0.0.1:28332"), Ok(Some(_))));
        assert!(matches!(check("tcp://[::1]:28332"), Ok(Some(_))));
        assert!(matches!(check("ipc:///tmp/bitcoind.sock"), Ok(Some(_))));
        for bad in [
            "127.0.0.1:28332",
            "tcp://127.0.0.1",
            "tcp://h:0",
            "udp://h:1",
            "ipc://",
        ] {
            assert!(reason(check(bad)).contains("tcp://HOST:PORT"), "{bad}");
        }
    }

    #[test]
    fn external_addresses_are_host_names_ipv4_or_bracketed_ipv6_with_an_optional_port() {
        let split = |t: &str| split_external_address(t).unwrap();
        assert_eq!(
            split("tower.example.com"),
            ("tower.example.com".into(), None)
        );
        assert_eq!(
            split("203.0.113.7:9814"),
            ("203.0.113.7".into(), Some(9814))
        );
        assert_eq!(split("[2001:db8::1]"), ("2001:db8::1".into(), None));
        assert_eq!(
            split("[2001:db8::1]:443"),
            ("2001:db8::1".into(), Some(443))
        );
        assert_eq!(
            split("abcdefghijklmnop.onion:9814"),
            ("abcdefghijklmnop.onion".into(), Some(9814))
        );
        for bad in [
            "2001:db8::1",
            "[2001:db8::1",
            "[2001:db8::1]9814",
            "[nothost]:1",
            "host:0",
            "host:65536",
            "host:",
            "http://host",
            "host:1:2",
            "",
            "a b",
        ] {
            let err = split_external_address(bad).unwrap_err();
            assert!(err.contains("HOST:PORT"), "{bad}: {err}");
        }
        for wildcard in ["0.0.0.0", "0.0.0.0:9814", "[::]:9814"] {
            let err = split_external_address(wildcard).unwrap_err();
            assert!(err.contains("every local interface"), "{wildcard}: {err}");
        }
    }
}
