//! The key table (`teosd/src/config/keys.rs`) drives every source: each key is read from
//! `teos.toml`, from its `TEOS_<KEY>` variable and from its flag alike (or refused by the sources the
//! row excludes), and `--help` lists each with its documentation and default. Table-driven: a key
//! added to the table is covered here without editing this file.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use teosd::config::{Config, ConfigError, KEYS, KeySpec, Shown, Sources};

/// One source a value can come from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    File,
    Env,
    Flag,
}

/// Credentials that do not collide with `key` (the rule across the three credential keys).
fn base_env(key: &str) -> Vec<(String, String)> {
    let base = match key {
        "btc_rpc_user" => Some(("TEOS_BTC_RPC_PASSWORD", "p")),
        "btc_rpc_password" => Some(("TEOS_BTC_RPC_USER", "u")),
        "btc_rpc_cookie" => None,
        _ => Some(("TEOS_BTC_RPC_COOKIE", "/c")),
    };
    let mut env = vec![("HOME".to_string(), "/home/tester".to_string())];
    env.extend(base.map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Loads with `spec` set to `text` from `source` (and nothing else but credentials).
fn load_with(spec: &KeySpec, source: Source, text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<OsString> = vec!["teosd".into()];
    // The file is read from --datadir; data_dir itself is only tested through it from the file.
    if spec.name != "data_dir" || source == Source::File {
        args.extend(["--datadir".into(), dir.path().into()]);
    }
    let mut env = base_env(spec.name);
    match source {
        Source::File => {
            let value = match (spec.default)() {
                Shown::Text(_) => serde_json::to_string(text).unwrap(),
                Shown::Number(_) | Shown::Flag(_) => text.to_string(),
            };
            fs::write(
                dir.path().join("teos.toml"),
                format!("{} = {value}\n", spec.name),
            )
            .unwrap();
        }
        Source::Env => env.push((spec.env(), text.to_string())),
        Source::Flag => args.push(format!("{}={text}", spec.flag()).into()),
    }
    Config::load_from(args, env)
}

/// The `--print-config` line of `spec` (also for keys printed as comments).
fn line(config: &Config, spec: &KeySpec) -> String {
    let prefix = format!("{} = ", spec.name);
    config
        .masked()
        .lines()
        .map(|l| l.trim_start_matches("# ").to_string())
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{} missing from --print-config", spec.name))
}

/// Values to try, in order, until one the key accepts and that differs from its default.
fn candidates(spec: &KeySpec) -> Vec<String> {
    match (spec.default)() {
        Shown::Number(n) => vec![(n + 1).to_string()],
        Shown::Flag(b) => vec![(!b).to_string()],
        Shown::Text(_) => [
            "/nonexistent/teosd-sample",
            "regtest",
            "debug",
            "json",
            "127.0.0.2",
            "tcp://127.0.0.1:28332",
            "127.0.0.1:9815",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// The sources the row lets set the key.
fn allowed(spec: &KeySpec) -> Vec<Source> {
    match spec.sources {
        Sources::All => vec![Source::File, Source::Env, Source::Flag],
        Sources::NotInFile(_) => vec![Source::Env, Source::Flag],
        Sources::FlagOnly(_) => vec![Source::Flag],
    }
}

#[test]
fn every_key_round_trips_through_the_file_its_variable_and_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = Config::load_from(
        vec![
            OsString::from("teosd"),
            "--datadir".into(),
            dir.path().into(),
        ],
        base_env("any"),
    )
    .unwrap();
    for spec in KEYS {
        let default_line = line(&defaults, spec);
        let sample = candidates(spec).into_iter().find(|text| {
            load_with(spec, Source::Flag, text).is_ok_and(|c| line(&c, spec) != default_line)
        });
        let Some(sample) = sample else {
            // A key whose every other value is refused (tor_support): each source must still
            // reach its check, which names the key and the source.
            let text = &candidates(spec)[0];
            for source in [Source::File, Source::Env, Source::Flag] {
                let err = load_with(spec, source, text).unwrap_err().to_string();
                assert!(
                    err.contains(spec.name),
                    "{} from {source:?}: {err}",
                    spec.name
                );
            }
            continue;
        };
        let expected = line(&load_with(spec, Source::Flag, &sample).unwrap(), spec);
        for source in [Source::File, Source::Env, Source::Flag] {
            let loaded = load_with(spec, source, &sample);
            if allowed(spec).contains(&source) {
                let config =
                    loaded.unwrap_or_else(|e| panic!("{} from {source:?}: {e}", spec.name));
                assert_eq!(
                    line(&config, spec),
                    expected,
                    "{} from {source:?}",
                    spec.name
                );
            } else {
                let err = loaded.unwrap_err().to_string();
                assert!(
                    err.contains(spec.name) && err.contains(&spec.flag()),
                    "{} from {source:?} must be refused naming its flag: {err}",
                    spec.name
                );
            }
        }
    }
}

#[test]
fn help_lists_every_key_with_its_summary_and_default() {
    let err =
        Config::load_from(vec![OsString::from("teosd"), "--help".into()], Vec::new()).unwrap_err();
    let ConfigError::Cli(err) = err else {
        panic!("not a clap error: {err}")
    };
    let help = err.to_string();
    for spec in KEYS {
        let flag = spec.flag();
        let entry = help
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(&format!("{flag} ")) || l.starts_with(&format!("{flag}[")))
            .unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        assert!(entry.contains(spec.summary()), "{entry}");
        let default = format!("[default: {}]", (spec.default)().help());
        assert!(entry.ends_with(&default), "{entry}");
    }
}

#[test]
fn every_key_has_a_documented_summary_and_a_unique_flag() {
    let mut flags: Vec<String> = KEYS.iter().map(|k| k.flag()).collect();
    flags.sort();
    flags.dedup();
    assert_eq!(flags.len(), KEYS.len(), "two keys share a flag");
    for spec in KEYS {
        assert!(spec.summary().len() > 10, "{} has no summary", spec.name);
    }
}

#[test]
fn print_example_config_prints_the_generated_example() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_teosd"))
        .arg("--print-example-config")
        .env_remove("HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let checked_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/teos.toml.example");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        fs::read_to_string(checked_in).unwrap()
    );
}

#[test]
fn non_utf8_teos_variables_warn_unless_they_name_a_key() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let not_utf8 = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let run = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_teosd"))
            .arg("--datadir")
            .arg(dir.path())
            .arg("--print-config")
            .env("TEOS_BTC_RPC_COOKIE", "/c")
            .env(name, not_utf8)
            .output()
            .unwrap()
    };
    let out = run("TEOS_SOMETHING_ELSE");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("TEOS_SOMETHING_ELSE"));
    let out = run("TEOS_API_PORT");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("api_port") && stderr.contains("UTF-8"),
        "{stderr}"
    );
}
