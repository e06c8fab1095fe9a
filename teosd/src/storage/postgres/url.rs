//! The `database_url` key (issue 12): `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMS]`,
//! and where its password comes from.
//!
//! The password is a secret: [`DatabaseUrl`]'s `Display` and `Debug` (and so `--print-config`, logs
//! and error messages) show `********` in its place, and nothing in this module prints it.
//!
//! Password sources, in libpq's order (PostgreSQL docs, "Connection Strings", "Environment
//! Variables", "The Password File"):
//! 1. the URL itself (`user:password@`, or a `password=` parameter);
//! 2. the `PGPASSWORD` environment variable (an empty value counts as unset);
//! 3. the password file: `PGPASSFILE`, else `~/.pgpass`. Lines `hostname:port:database:username:password`;
//!    each of the first four fields is a literal or `*` (any); `\:` and `\\` escape a colon and a
//!    backslash; lines starting with `#` are comments; the first matching line wins. The file is
//!    ignored (with a warning) unless it is a regular file with no group or other permission bits
//!    (0600 or stricter), as libpq does. A Unix-socket host matches `localhost`; a URL without port
//!    matches 5432; without database, the user name.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio_postgres::config::Host;

/// What stands for the password in every shown form of the URL.
const MASK: &str = "********";
/// PostgreSQL's default port, which a password-file line matches when the URL names none.
const DEFAULT_PORT: u16 = 5432;

/// A parsed `postgresql://` URL (also `postgres://`). Compares by its text; shows itself with the
/// password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// As written (may hold the password: never shown).
    text: String,
    /// tokio-postgres' reading of it.
    config: tokio_postgres::Config,
}

/// Why a `database_url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Not a `postgresql://` / `postgres://` URL (key=value connection strings are not accepted).
    #[error(
        "expected postgresql://USER@HOST:PORT/DATABASE, found a value not starting with postgresql://"
    )]
    NotAUrl,
    /// tokio-postgres refused it; the reason names the option, never its value.
    #[error("invalid PostgreSQL URL: {0}")]
    Invalid(String),
    /// No user name before `@`.
    #[error("the PostgreSQL URL names no user (postgresql://USER@HOST:PORT/DATABASE)")]
    NoUser,
    /// No host after `@`.
    #[error("the PostgreSQL URL names no host (postgresql://USER@HOST:PORT/DATABASE)")]
    NoHost,
}

impl DatabaseUrl {
    /// Parses `text` (surrounding blanks ignored).
    ///
    /// Errors: [`DatabaseUrlError`]; its message never contains the password.
    pub fn parse(text: &str) -> Result<DatabaseUrl, DatabaseUrlError> {
        let text = text.trim();
        if !(text.starts_with("postgresql://") || text.starts_with("postgres://")) {
            return Err(DatabaseUrlError::NotAUrl);
        }
        // tokio-postgres' errors name the option ("invalid value for option `port`"), not its value.
        let config: tokio_postgres::Config = text
            .parse()
            .map_err(|e: tokio_postgres::Error| DatabaseUrlError::Invalid(e.to_string()))?;
        if config.get_user().is_none_or(str::is_empty) {
            return Err(DatabaseUrlError::NoUser);
        }
        if config.get_hosts().is_empty() {
            return Err(DatabaseUrlError::NoHost);
        }
        Ok(DatabaseUrl {
            text: text.to_string(),
            config,
        })
    }

    /// The URL with its password (if any) replaced by `********`: what logs and `--print-config` show.
    pub fn masked(&self) -> String {
        mask(&self.text)
    }

    /// Whether the URL itself carries a password.
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }

    /// The user name.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// The database name (the user name when the URL names none, as PostgreSQL does).
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or_else(|| self.user())
    }

    /// The client configuration to connect with: the URL's, with the password from the sources of
    /// the module doc when the URL has none. `env` gives `PGPASSWORD`, `PGPASSFILE` and `HOME`
    /// ([`PasswordEnv::from_process`] in production). Returns the configuration and the warnings to
    /// log (a password file ignored for its permissions); neither contains the password.
    pub fn client_config(&self, env: &PasswordEnv) -> (tokio_postgres::Config, Vec<String>) {
        let mut config = self.config.clone();
        let mut warnings = Vec::new();
        if config.get_password().is_some() {
            return (config, warnings);
        }
        if let Some(password) = env.password.as_deref().filter(|p| !p.is_empty()) {
            config.password(password);
            return (config, warnings);
        }
        let Some(file) = env.passfile() else {
            return (config, warnings);
        };
        match read_passfile(&file) {
            Ok(Some(entries)) => {
                if let Some(password) = self.lookup(&entries) {
                    config.password(password);
                }
            }
            Ok(None) => {}
            Err(warning) => warnings.push(warning),
        }
        (config, warnings)
    }

    /// The password of the first entry matching one of the URL's hosts (in URL order) with its
    /// port, database and user.
    fn lookup(&self, entries: &[PassEntry]) -> Option<String> {
        let ports = self.config.get_ports();
        self.config
            .get_hosts()
            .iter()
            .enumerate()
            .find_map(|(i, host)| {
                let host = match host {
                    Host::Tcp(name) => name.as_str(),
                    // libpq: a socket directory matches the entry `localhost`.
                    Host::Unix(_) => "localhost",
                };
                // One port for all hosts, or one per host, or none (5432).
                let port = match ports {
                    [] => DEFAULT_PORT,
                    [port] => *port,
                    ports => ports.get(i).copied().unwrap_or(DEFAULT_PORT),
                };
                let port = port.to_string();
                entries
                    .iter()
                    .find(|e| e.matches(host, &port, self.dbname(), self.user()))
                    .map(|e| e.password.clone())
            })
    }
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatabaseUrl::parse(s)
    }
}

impl fmt::Display for DatabaseUrl {
    /// The masked URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for DatabaseUrl {
    /// `DatabaseUrl("<masked URL>")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.masked()).finish()
    }
}

/// Masks the password in `text` where tokio-postgres' URL parser finds one (so the two always agree):
/// after the first `:` of everything before the first `@`, and the value of any `password=`
/// parameter after the first `?` that follows the `@`.
fn mask(text: &str) -> String {
    let (prefix, rest) = match text.find("://") {
        Some(i) => text.split_at(i + 3),
        None => return text.to_string(),
    };
    let mut out = String::from(prefix);
    let rest = match rest.find('@') {
        Some(at) => {
            let (creds, tail) = rest.split_at(at);
            match creds.find(':') {
                Some(colon) => {
                    out.push_str(&creds[..=colon]);
                    out.push_str(MASK);
                }
                None => out.push_str(creds),
            }
            tail
        }
        None => rest,
    };
    match rest.find('?') {
        Some(q) => {
            out.push_str(&rest[..=q]);
            let params: Vec<String> = rest[q + 1..]
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if decoded_key(key) == "password" => format!("{key}={MASK}"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

/// A parameter key percent-decoded (as tokio-postgres decodes keys), lossy.
fn decoded_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = key.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The environment the password lookup reads: `PGPASSWORD`, `PGPASSFILE`, `HOME`.
#[derive(Clone, Debug, Default)]
pub struct PasswordEnv {
    /// `PGPASSWORD`.
    pub password: Option<String>,
    /// `PGPASSFILE`.
    pub passfile: Option<PathBuf>,
    /// `HOME` (for `~/.pgpass`).
    pub home: Option<PathBuf>,
}

impl PasswordEnv {
    /// Reads the three variables from this process's environment.
    pub fn from_process() -> PasswordEnv {
        PasswordEnv {
            password: std::env::var("PGPASSWORD").ok(),
            passfile: std::env::var_os("PGPASSFILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            home: std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// `PGPASSFILE`, else `$HOME/.pgpass`, else none.
    fn passfile(&self) -> Option<PathBuf> {
        self.passfile
            .clone()
            .or_else(|| self.home.as_ref().map(|home| home.join(".pgpass")))
    }
}

/// One line of a password file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PassEntry {
    host: String,
    port: String,
    database: String,
    user: String,
    password: String,
}

impl PassEntry {
    fn matches(&self, host: &str, port: &str, database: &str, user: &str) -> bool {
        let field = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        field(&self.host, host)
            && field(&self.port, port)
            && field(&self.database, database)
            && field(&self.user, user)
    }
}

/// Reads a password file: `Ok(None)` if it does not exist or cannot be read (libpq skips it
/// silently), `Err(warning)` if it is ignored for its type or permissions.
fn read_passfile(path: &Path) -> Result<Option<Vec<PassEntry>>, String> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Err(format!(
            "password file {} is not a plain file: ignored",
            path.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "password file {} has group or world access: ignored (permissions must be u=rw, \
                 0600, or less)",
                path.display()
            ));
        }
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    Ok(Some(parse_passfile(&text)))
}

/// The entries of a password file's text; malformed lines (fewer than five fields) are skipped.
fn parse_passfile(text: &str) -> Vec<PassEntry> {
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_passline)
        .collect()
}

/// Splits a line at its first four unescaped colons, un-escaping `\:` and `\\` (and any `\x` to
/// `x`, as libpq does); the fifth field is the rest of the line.
fn parse_passline(line: &str) -> Option<PassEntry> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut()?.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    let [host, port, database, user, password]: [String; 5] = fields.try_into().ok()?;
    Some(PassEntry {
        host,
        port,
        database,
        user,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr:et@pw";

    #[test]
    fn display_debug_and_masked_never_show_the_password() {
        let encoded = "s3cr%3Aet%40pw";
        for text in [
            format!("postgresql://teos:{encoded}@db.example:5433/teos"),
            format!("postgres://teos:{encoded}@[::1]:5432,10.0.0.2/teos?application_name=x"),
            format!("postgresql://teos@db.example/teos?password={encoded}&connect_timeout=3"),
            format!("postgresql://teos@db.example/teos?pass%77ord={encoded}"),
        ] {
            let url = DatabaseUrl::parse(&text).unwrap();
            assert!(url.has_password(), "{text}");
            for shown in [
                url.to_string(),
                format!("{url:?}"),
                url.masked(),
                format!("{:?}", Some(url.clone())),
            ] {
                assert!(!shown.contains(encoded), "{shown}");
                assert!(!shown.contains("s3cr"), "{shown}");
                assert!(shown.contains(MASK), "{shown}");
            }
        }
        let url = DatabaseUrl::parse("postgresql://teos:pw@h:1/d").unwrap();
        assert_eq!(url.to_string(), "postgresql://teos:********@h:1/d");
        let url = DatabaseUrl::parse("postgresql://teos@h:1/d").unwrap();
        assert_eq!(url.to_string(), "postgresql://teos@h:1/d");
        assert!(!url.has_password());
        assert_eq!(
            url.client_config(&PasswordEnv::default()).0.get_password(),
            None
        );
    }

    #[test]
    fn the_password_in_the_url_reaches_the_client_config() {
        let url = DatabaseUrl::parse("postgresql://teos:s3cr%3Aet%40pw@h:1/d").unwrap();
        let env = PasswordEnv {
            password: Some("from-env".into()),
            ..PasswordEnv::default()
        };
        let (config, warnings) = url.client_config(&env);
        assert_eq!(config.get_password(), Some(SECRET.as_bytes()));
        assert!(warnings.is_empty());
    }

    #[test]
    fn malformed_urls_are_refused_with_a_reason_naming_no_secret() {
        for (text, want) in [
            ("", DatabaseUrlError::NotAUrl),
            (
                "host=db user=teos password=hunter2",
                DatabaseUrlError::NotAUrl,
            ),
            ("mysql://teos@h/d", DatabaseUrlError::NotAUrl),
            ("postgresql://h:5432/d", DatabaseUrlError::NoUser),
            ("postgresql://:hunter2@h/d", DatabaseUrlError::NoUser),
            ("postgresql://teos:hunter2@/d", DatabaseUrlError::NoHost),
        ] {
            assert_eq!(DatabaseUrl::parse(text).unwrap_err(), want, "{text}");
        }
        let err = DatabaseUrl::parse("postgresql://teos:hunter2@h:notaport/d").unwrap_err();
        assert!(matches!(err, DatabaseUrlError::Invalid(_)), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!err.to_string().contains("notaport"), "{err}");
    }

    #[test]
    fn pgpassword_is_used_when_the_url_has_none() {
        let url = DatabaseUrl::parse("postgresql://teos@h:1/d").unwrap();
        let env = PasswordEnv {
            password: Some("from-env".into()),
            ..PasswordEnv::default()
        };
        assert_eq!(
            url.client_config(&env).0.get_password(),
            Some(&b"from-env"[..])
        );
        // Empty = unset.
        let env = PasswordEnv {
            password: Some(String::new()),
            ..PasswordEnv::default()
        };
        assert_eq!(url.client_config(&env).0.get_password(), None);
    }

    #[test]
    fn password_file_lines_follow_libpq_escapes_and_wildcards() {
        let entries = parse_passfile(
            "# comment\n\
             \n\
             short:line\n\
             db\\:host:5432:teos:teos:a\\:b\\\\c:d\n\
             *:*:*:*:star\r\n",
        );
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].host, "db:host");
        assert_eq!(entries[0].password, "a:b\\c:d");
        assert!(entries[1].matches("any", "1", "x", "y"));
    }

    #[cfg(unix)]
    #[test]
    fn the_password_file_is_matched_and_refused_when_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "other:5433:teos:teos:wrong-host\n\
             db.example:5432:teos:other:wrong-user\n\
             db.example:5433:*:teos:wrong-port\n\
             db.example:5432:teos:teos:right\n\
             *:*:*:*:too-late\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = PasswordEnv {
            passfile: Some(path.clone()),
            ..PasswordEnv::default()
        };
        // No port in the URL: 5432; no database: the user name.
        let url = DatabaseUrl::parse("postgresql://teos@db.example").unwrap();
        let (config, warnings) = url.client_config(&env);
        assert_eq!(config.get_password(), Some(&b"right"[..]));
        assert!(warnings.is_empty());

        // PGPASSWORD comes before the file.
        let with_env = PasswordEnv {
            password: Some("env".into()),
            ..env.clone()
        };
        assert_eq!(
            url.client_config(&with_env).0.get_password(),
            Some(&b"env"[..])
        );

        // ~/.pgpass when PGPASSFILE is unset.
        std::fs::copy(&path, dir.path().join(".pgpass")).unwrap();
        std::fs::set_permissions(
            dir.path().join(".pgpass"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        let home = PasswordEnv {
            home: Some(dir.path().to_path_buf()),
            ..PasswordEnv::default()
        };
        assert_eq!(
            url.client_config(&home).0.get_password(),
            Some(&b"right"[..])
        );

        // Group- or world-readable: ignored with a warning that names no password.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (config, warnings) = url.client_config(&env);
        assert_eq!(config.get_password(), None);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("0600"), "{}", warnings[0]);
        assert!(!warnings[0].contains("right"));

        // A missing file is skipped silently.
        let missing = PasswordEnv {
            passfile: Some(dir.path().join("missing")),
            ..PasswordEnv::default()
        };
        assert_eq!(url.client_config(&missing), (url.config.clone(), vec![]));
    }
}
