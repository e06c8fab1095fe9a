//! Config values: networks and ports, bitcoind credentials, `~` expansion, derived paths and URLs,
//! masking, `--help`, and the `contrib/teos.toml.example` sample. Uses `Config::load_from` with
//! temporary directories and an explicit environment.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use teosd::config::{BtcAuth, BtcNetwork, Config, ConfigError, KEYS};

const AUTH: [(&str, &str); 2] = [("TEOS_BTC_RPC_USER", "u"), ("TEOS_BTC_RPC_PASSWORD", "p")];

/// Loads with the given file (if any) in `dir`, flags after `--datadir <dir>`, and `env` plus `HOME`.
fn load_in(
    dir: &Path,
    home: &str,
    file: Option<&str>,
    env: &[(&str, &str)],
    flags: &[&str],
) -> Result<Config, ConfigError> {
    if let Some(text) = file {
        fs::write(dir.join("teos.toml"), text).unwrap();
    }
    let mut args: Vec<OsString> = vec!["teosd".into(), "--datadir".into(), dir.into()];
    args.extend(flags.iter().map(OsString::from));
    let mut vars = vec![("HOME".to_string(), home.to_string())];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load_from(args, vars)
}

fn load(file: Option<&str>, env: &[(&str, &str)], flags: &[&str]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    load_in(dir.path(), "/home/tester", file, env, flags)
}

#[test]
fn network_aliases_normalize_and_pick_the_default_rpc_port() {
    let cases = [
        ("mainnet", "main", 8332, BtcNetwork::Mainnet),
        ("main", "main", 8332, BtcNetwork::Mainnet),
        ("bitcoin", "main", 8332, BtcNetwork::Mainnet),
        ("testnet", "test", 18332, BtcNetwork::Testnet),
        ("test", "test", 18332, BtcNetwork::Testnet),
        ("testnet4", "testnet4", 48332, BtcNetwork::Testnet4),
        ("signet", "signet", 38332, BtcNetwork::Signet),
        ("regtest", "regtest", 18443, BtcNetwork::Regtest),
        ("RegTest", "regtest", 18443, BtcNetwork::Regtest),
    ];
    for (name, chain, port, network) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = load_in(dir.path(), "/h", None, &AUTH, &["--btcnetwork", name]).unwrap();
        assert_eq!(config.btc_network, network, "{name}");
        assert_eq!(config.btc_network.chain_name(), chain, "{name}");
        assert_eq!(config.btc_rpc_port, port, "{name}");
        assert_eq!(config.network_dir(), dir.path().join(chain), "{name}");
        assert_eq!(
            config.db_path(),
            dir.path().join(chain).join("teos_db.sql3"),
            "{name}"
        );
    }
    let config = load(Some("btc_network = \"testnet4\"\n"), &AUTH, &[]).unwrap();
    assert_eq!(
        config.btc_network.bitcoin_network(),
        bitcoin::Network::Testnet4
    );
}

#[test]
fn explicit_rpc_port_is_kept_and_zero_means_the_network_default() {
    let config = load(
        Some("btc_network = \"regtest\"\nbtc_rpc_port = 18888\n"),
        &AUTH,
        &[],
    )
    .unwrap();
    assert_eq!(config.btc_rpc_port, 18888);
    let config = load(
        Some("btc_rpc_port = 18888\n"),
        &AUTH,
        &["--btcrpcport", "0"],
    )
    .unwrap();
    assert_eq!(config.btc_rpc_port, 8332);
}

#[test]
fn cookie_alone_is_cookie_auth_with_tilde_expanded() {
    let dir = tempfile::tempdir().unwrap();
    let file = "btc_rpc_cookie = \"~/.bitcoin/regtest/.cookie\"\n";
    let config = load_in(dir.path(), "/home/alice", Some(file), &[], &[]).unwrap();
    let path = PathBuf::from("/home/alice/.bitcoin/regtest/.cookie");
    assert_eq!(config.btc_rpc_cookie, Some(path.clone()));
    assert_eq!(config.btc_auth(), BtcAuth::Cookie(path));
}

#[test]
fn user_and_password_together_are_user_pass_auth() {
    let config = load(
        None,
        &[],
        &["--btcrpcuser", "alice", "--btcrpcpassword", "pw"],
    )
    .unwrap();
    assert_eq!(
        config.btc_auth(),
        BtcAuth::UserPass("alice".into(), "pw".into())
    );
    assert_eq!(config.btc_rpc_cookie, None);
}

#[test]
fn cookie_and_user_or_password_together_are_refused_naming_both_keys() {
    let file = "btc_rpc_cookie = \"/c\"\n";
    let err = load(Some(file), &AUTH, &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Conflict { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("btc_rpc_cookie") && err.contains("btc_rpc_user"),
        "{err}"
    );
    assert!(
        err.contains("TEOS_BTC_RPC_USER") && err.contains("teos.toml"),
        "{err}"
    );

    let err = load(Some(file), &[("TEOS_BTC_RPC_PASSWORD", "p")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("btc_rpc_cookie") && err.contains("btc_rpc_password"),
        "{err}"
    );
}

#[test]
fn half_or_no_credentials_are_refused_naming_what_is_missing() {
    let err = load(None, &[("TEOS_BTC_RPC_USER", "u")], &[]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                key: "btc_rpc_password",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("TEOS_BTC_RPC_USER"), "{err}");

    let err = load(None, &[], &["--btcrpcpassword", "p"]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                key: "btc_rpc_user",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--btcrpcpassword"), "{err}");

    let err = load(None, &[], &[]).unwrap_err().to_string();
    for key in ["btc_rpc_user", "btc_rpc_password", "btc_rpc_cookie"] {
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn empty_value_in_a_later_source_unsets_an_earlier_credential() {
    let file = "btc_rpc_cookie = \"/c\"\n";
    let env = [AUTH[0], AUTH[1], ("TEOS_BTC_RPC_COOKIE", "")];
    let config = load(Some(file), &env, &[]).unwrap();
    assert_eq!(config.btc_auth(), BtcAuth::UserPass("u".into(), "p".into()));
}

#[test]
fn user_with_a_colon_is_refused() {
    let err = load(None, &[("TEOS_BTC_RPC_USER", "a:b"), AUTH[1]], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("btc_rpc_user") && err.contains("TEOS_BTC_RPC_USER"),
        "{err}"
    );
}

#[test]
fn data_dir_tilde_expands_to_home_and_the_file_is_read_there() {
    let home = tempfile::tempdir().unwrap();
    fs::create_dir(home.path().join("teos-data")).unwrap();
    fs::write(home.path().join("teos-data/teos.toml"), "api_port = 1234\n").unwrap();
    let env = [("HOME", home.path().to_str().unwrap()), AUTH[0], AUTH[1]];
    let vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    let args: Vec<OsString> = vec!["teosd".into(), "--datadir".into(), "~/teos-data".into()];
    let config = Config::load_from(args, vars.clone()).unwrap();
    assert_eq!(config.data_dir, home.path().join("teos-data"));
    assert_eq!(config.api_port, 1234);
    assert_eq!(
        config.config_file(),
        home.path().join("teos-data/teos.toml")
    );

    let mut with_env = vars.clone();
    with_env.push(("TEOS_DATA_DIR".into(), "~/teos-data".into()));
    let config = Config::load_from(vec![OsString::from("teosd")], with_env).unwrap();
    assert_eq!(
        config.api_port, 1234,
        "TEOS_DATA_DIR is used without --datadir"
    );

    let config = Config::load_from(vec![OsString::from("teosd")], vars).unwrap();
    assert_eq!(
        config.data_dir,
        home.path().join(".teos"),
        "default ~/.teos"
    );
}

#[test]
fn tilde_without_home_is_an_error_naming_the_key() {
    let args: Vec<OsString> = vec!["teosd".into()];
    let env: Vec<(String, String)> = AUTH
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let err = Config::load_from(args, env).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::NoHome {
                key: "data_dir",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn urls_and_addresses_bracket_ipv6() {
    let config = load(
        None,
        &AUTH,
        &[
            "--btcrpcconnect",
            "[::1]",
            "--apibind",
            "::",
            "--rpcport",
            "9",
        ],
    )
    .unwrap();
    assert_eq!(config.btc_rpc_connect, "::1");
    assert_eq!(config.btc_rpc_url(), "http://[::1]:8332");
    assert_eq!(config.api_address(), "[::]:9814");
    assert_eq!(config.rpc_address(), "127.0.0.1:9");
    let config = load(
        Some("btc_rpc_connect = \"bitcoind\"\nbtc_rpc_port = 1\n"),
        &AUTH,
        &[],
    )
    .unwrap();
    assert_eq!(config.btc_rpc_url(), "http://bitcoind:1");
}

#[test]
fn zmq_endpoint_is_optional() {
    let config = load(None, &AUTH, &["--btczmqhashblock", "tcp://127.0.0.1:28332"]).unwrap();
    assert_eq!(
        config.btc_zmq_hashblock.as_deref(),
        Some("tcp://127.0.0.1:28332")
    );
    let config = load(Some("btc_zmq_hashblock = \"\"\n"), &AUTH, &[]).unwrap();
    assert_eq!(config.btc_zmq_hashblock, None);
}

#[test]
fn masked_output_and_debug_hide_the_password_and_parse_back() {
    let env = [
        ("TEOS_BTC_RPC_USER", "alice"),
        ("TEOS_BTC_RPC_PASSWORD", "s3cr3t-pw"),
    ];
    let config = load(None, &env, &["--btcnetwork", "signet", "--apiport", "9999"]).unwrap();
    let masked = config.masked();
    assert!(!masked.contains("s3cr3t-pw"), "{masked}");
    assert!(
        masked.contains("btc_rpc_password = \"********\""),
        "{masked}"
    );
    assert!(masked.contains("btc_rpc_user = \"alice\""), "{masked}");
    for text in [format!("{config:?}"), format!("{:?}", config.btc_auth())] {
        assert!(!text.contains("s3cr3t-pw"), "{text}");
    }

    let dir = tempfile::tempdir().unwrap();
    let reloaded = load_in(dir.path(), "/h", Some(&masked), &[], &[]).unwrap();
    assert_eq!(reloaded.btc_rpc_password, "********");
    let restored = Config {
        btc_rpc_password: "s3cr3t-pw".into(),
        data_dir: config.data_dir.clone(),
        ..reloaded
    };
    assert_eq!(restored, config);
}

#[test]
fn log_filter_follows_log_level_debug_and_deps_debug() {
    let config = load(None, &AUTH, &[]).unwrap();
    assert_eq!(config.log_filter(), "warn,teosd=info,teos_common=info");
    let config = load(None, &AUTH, &["--debug", "--depsdebug"]).unwrap();
    assert_eq!(config.log_filter(), "debug,teosd=debug,teos_common=debug");
    let config = load(None, &AUTH, &["--loglevel", "ERROR"]).unwrap();
    assert_eq!(config.log_level, "error");
    assert_eq!(config.log_filter(), "error,teosd=error,teos_common=error");
    let config = load(None, &AUTH, &["--loglevel", "trace", "--debug"]).unwrap();
    assert_eq!(config.log_filter(), "warn,teosd=trace,teos_common=trace");
}

#[test]
fn help_documents_every_flag_with_its_default() {
    let args: Vec<OsString> = vec!["teosd".into(), "--help".into()];
    let err = Config::load_from(args, Vec::new()).unwrap_err();
    let ConfigError::Cli(err) = err else {
        panic!("not a clap error: {err}")
    };
    assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    let help = err.to_string();
    let expected = [
        ("--datadir", "~/.teos"),
        ("--apibind", "127.0.0.1"),
        ("--apiport", "9814"),
        ("--rpcbind", "127.0.0.1"),
        ("--rpcport", "8814"),
        ("--btcnetwork", "mainnet"),
        ("--btcrpcuser", "none"),
        ("--btcrpcpassword", "none"),
        ("--btcrpccookie", "none"),
        ("--btcrpcconnect", "localhost"),
        ("--btcrpcport", "0"),
        ("--btczmqhashblock", "none"),
        ("--pollingdelta", "60"),
        ("--loglevel", "info"),
        ("--debug", "false"),
        ("--depsdebug", "false"),
        ("--overwritekey", "false"),
        ("--forceupdate", "false"),
        ("--torsupport", "false"),
        ("--torcontrolport", "9051"),
        ("--onionhiddenserviceport", "9814"),
    ];
    for (flag, default) in expected {
        let entry = help
            .lines()
            .find(|line| {
                line.trim_start().starts_with(&format!("{flag} "))
                    || line.trim_start().starts_with(&format!("{flag}["))
            })
            .unwrap_or_else(|| panic!("{flag} missing from help:\n{help}"));
        assert!(entry.contains(&format!("[default: {default}]")), "{entry}");
    }
    assert!(
        help.contains("TEOS_"),
        "help explains the environment variables"
    );
}

/// The sample shipped to users, read from the repository.
fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/teos.toml.example");
    fs::read_to_string(path).unwrap()
}

#[test]
fn example_file_is_generated_from_the_table() {
    // Regenerate with: cargo run -p teosd -- --print-example-config > contrib/teos.toml.example
    assert!(
        example() == teosd::config::example(),
        "contrib/teos.toml.example differs from the key table; regenerate it with\n  \
         cargo run -p teosd -- --print-example-config > contrib/teos.toml.example"
    );
}

#[test]
fn example_file_lists_every_key_in_table_order_under_its_doc() {
    let text = example();
    let lines: Vec<&str> = text.lines().collect();
    let mut keys = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_start_matches("# ");
        let Some((key, _)) = line
            .split_once(" = ")
            .filter(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        else {
            continue;
        };
        keys.push(key.trim().to_string());
        let spec = KEYS.iter().find(|k| k.name == key.trim()).unwrap();
        assert!(
            lines[..i]
                .iter()
                .any(|l| l.trim_start_matches("# ") == spec.summary()),
            "{key} has no doc above it"
        );
    }
    let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    assert_eq!(keys, names);
}

#[test]
fn example_file_loads_and_its_values_are_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = load_in(dir.path(), "/h", Some(&example()), &AUTH, &[]).unwrap();
    let defaults = Config::new(
        dir.path().to_path_buf(),
        BtcNetwork::Mainnet,
        BtcAuth::UserPass("u".into(), "p".into()),
    );
    assert_eq!(config, defaults);
}

#[test]
fn locator_cache_size_is_bounded_by_the_blocks_the_tower_remembers() {
    let config = load(Some("locator_cache_size = 288\n"), &AUTH, &[]).unwrap();
    assert_eq!(config.locator_cache_size, 288);
    let err = load(Some("locator_cache_size = 289\n"), &AUTH, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("locator_cache_size") && err.contains("at most 288"),
        "{err}"
    );
}

#[test]
fn database_url_comes_from_file_env_or_flag_and_never_shows_its_password() {
    // Absent: SQLite in the data directory.
    assert_eq!(load(None, &AUTH, &[]).unwrap().database_url, None);

    let url = "postgresql://teos:pg-s3cr3t@db.example:5433/tower";
    let file = format!("database_url = \"{url}\"\n");
    let env = [AUTH[0], AUTH[1], ("TEOS_DATABASE_URL", url)];
    for config in [
        load(Some(&file), &AUTH, &[]).unwrap(),
        load(None, &env, &[]).unwrap(),
        load(None, &AUTH, &["--databaseurl", url]).unwrap(),
    ] {
        let db = config.database_url.clone().expect("database_url set");
        assert_eq!((db.user(), db.dbname()), ("teos", "tower"));
        assert!(db.has_password());
        let masked = config.masked();
        assert!(
            masked.contains("database_url = \"postgresql://teos:********@db.example:5433/tower\""),
            "{masked}"
        );
        for text in [
            masked,
            format!("{config:?}"),
            db.to_string(),
            format!("{db:?}"),
        ] {
            assert!(!text.contains("pg-s3cr3t"), "{text}");
        }
    }

    // A malformed URL is refused at start, naming the key and where it came from, not the password.
    for (flags, env) in [
        (vec!["--databaseurl", "db.example:5432"], vec![]),
        (
            vec![],
            vec![("TEOS_DATABASE_URL", "postgresql://:pg-s3cr3t@db/x")],
        ),
        (
            vec!["--databaseurl", "postgresql://teos:pg-s3cr3t@db:port/x"],
            vec![],
        ),
    ] {
        let env: Vec<(&str, &str)> = AUTH.iter().copied().chain(env).collect();
        let err = load(None, &env, &flags).unwrap_err().to_string();
        assert!(err.contains("database_url"), "{err}");
        assert!(!err.contains("pg-s3cr3t"), "{err}");
    }
}
