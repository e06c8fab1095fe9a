//! Writing the table and a [`Config`] back out: [`Config::masked`] (`--print-config`), `Debug`, and
//! [`example`] (`--print-example-config`, checked in as `contrib/teos.toml.example`). Secrets are
//! masked in the first two.

use std::fmt::{self, Write as _};

use super::spec::{KeySpec, Sources};
use super::value::Shown;
use super::{Config, KEYS};

/// What replaces a non-empty secret.
const MASK: &str = "********";

/// The opening comment of `teos.toml.example`.
const EXAMPLE_HEADER: &str = "\
# teosd configuration: copy to <datadir>/teos.toml (default ~/.teos/teos.toml) and edit.
#
# Generated from teosd's key table (teosd/src/config/keys.rs) by `teosd --print-example-config`;
# every key is listed with its default value. Later sources override earlier ones, key by key:
#   built-in defaults < this file < TEOS_<KEY> environment variables < command-line flags
# e.g. TEOS_API_PORT=9000 or --apiport 9000 override api_port. `teosd --help` lists the flags.
# An unknown key, a value of the wrong type or a broken rule stops teosd with an error naming the key;
# teosd never falls back to defaults silently. An unknown TEOS_* variable is logged as a warning.
# Keys and flags are those of rust-teos.
";

impl Config {
    /// Every key with its effective value, in [`KEYS`] order; secrets masked.
    fn shown(&self) -> impl Iterator<Item = (&'static KeySpec, Shown)> {
        KEYS.iter()
            .zip(self.values())
            .map(|(spec, value)| match (spec.secret, value) {
                (true, Shown::Text(text)) if !text.is_empty() => (spec, Shown::Text(MASK.into())),
                (_, value) => (spec, value),
            })
    }

    /// The effective configuration as `teos.toml` text, one `key = value` line per key in the order
    /// of `contrib/teos.toml.example`, secrets (`btc_rpc_password`) replaced by `"********"`. Keys
    /// the file may not set (`data_dir`, `overwrite_key`) are comments, so the text parses back as a
    /// `teos.toml`. For `--print-config`.
    pub fn masked(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(out, "# effective teosd configuration (secrets masked)");
        for (spec, value) in self.shown() {
            let comment = match spec.sources {
                Sources::All => "",
                Sources::NotInFile(_) | Sources::FlagOnly(_) => "# ",
            };
            let _ = writeln!(out, "{comment}{} = {}", spec.name, value.toml());
        }
        out
    }
}

impl fmt::Debug for Config {
    /// All fields, secrets masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Config");
        for (spec, value) in self.shown() {
            s.field(spec.name, &format_args!("{}", value.toml()));
        }
        s.field("print_config", &self.print_config)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// `contrib/teos.toml.example`: every key under its group's heading, its documentation as comments
/// and its default. Keys the file may not set are shown as comments saying why.
pub fn example() -> String {
    let mut out = String::from(EXAMPLE_HEADER);
    let mut group = None;
    for spec in KEYS {
        if group != Some(spec.group) {
            group = Some(spec.group);
            let _ = write!(out, "\n# --- {} ---\n", spec.group.title());
        }
        for line in spec.doc_lines() {
            let _ = writeln!(out, "# {line}");
        }
        let default = (spec.default)().toml();
        match spec.sources {
            Sources::All => {
                let _ = writeln!(out, "{} = {default}", spec.name);
            }
            Sources::NotInFile(why) | Sources::FlagOnly(why) => {
                for line in wrap(&format!("Not read from this file: {why}."), 98) {
                    let _ = writeln!(out, "# {line}");
                }
                let _ = writeln!(out, "# {} = {default}", spec.name);
            }
        }
    }
    out
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::super::{BtcAuth, BtcNetwork};
    use super::*;

    #[test]
    fn masked_lists_every_key_in_table_order() {
        let config = Config::new(
            "/d".into(),
            BtcNetwork::Regtest,
            BtcAuth::UserPass("u".into(), "pw-123".into()),
        );
        let masked = config.masked();
        let keys: Vec<&str> = masked
            .lines()
            .skip(1)
            .map(|l| l.trim_start_matches("# ").split(" = ").next().unwrap())
            .collect();
        let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        assert_eq!(keys, names);
        assert!(!masked.contains("pw-123"), "{masked}");
    }
}
