//! Config sources and their precedence (defaults < teos.toml < TEOS_* env < flags), and the errors a
//! broken source gives. Every test uses `Config::load_from` with a temporary data directory and an
//! explicit environment; the process environment is never touched.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use teosd::config::{BtcAuth, BtcNetwork, Config, ConfigError, ConfigWarning};

/// Credentials given through the environment, so tests about other keys load successfully.
const AUTH: [(&str, &str); 2] = [("TEOS_BTC_RPC_USER", "u"), ("TEOS_BTC_RPC_PASSWORD", "p")];

/// Writes `file` (if any) as `<dir>/teos.toml` and loads with `--datadir <dir>`, the given flags, and
/// `env` plus `HOME=/home/tester` and an unrelated variable.
fn load(
    dir: &Path,
    file: Option<&str>,
    env: &[(&str, &str)],
    flags: &[&str],
) -> Result<Config, ConfigError> {
    if let Some(text) = file {
        fs::write(dir.join("teos.toml"), text).unwrap();
    }
    let mut args: Vec<OsString> = vec!["teosd".into(), "--datadir".into(), dir.into()];
    args.extend(flags.iter().map(OsString::from));
    let mut vars = vec![
        ("HOME".to_string(), "/home/tester".to_string()),
        ("PATH".into(), "/usr/bin".into()),
    ];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load_from(args, vars)
}

/// Loads expecting an error; returns its message.
fn load_err(file: Option<&str>, env: &[(&str, &str)], flags: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), file, env, flags).unwrap_err().to_string();
    (err, dir.path().join("teos.toml").display().to_string())
}

#[test]
fn defaults_apply_when_only_credentials_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let config = load(dir.path(), None, &AUTH, &[]).unwrap();
    let expected = Config::new(
        dir.path().to_path_buf(),
        BtcNetwork::Mainnet,
        BtcAuth::UserPass("u".into(), "p".into()),
    );
    assert_eq!(config, expected);
    assert_eq!(config.api_port, 9814);
    assert_eq!(config.rpc_port, 8814);
    assert_eq!(config.btc_rpc_port, 8332);
    assert_eq!(config.max_encrypted_blob_size, 2048);
    assert_eq!(config.locator_cache_size, 6);
    assert_eq!(config.log_level, "info");
    assert_eq!(config.btc_zmq_hashblock, None);
}

#[test]
fn file_beats_defaults_env_beats_file_and_flags_beat_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = r#"
        api_port = 1001
        rpc_port = 2001
        polling_delta = 10
        btc_network = "testnet"
        log_level = "warn"
        subscription_slots = 5
    "#;
    let env = [
        AUTH[0],
        AUTH[1],
        ("TEOS_RPC_PORT", "2002"),
        ("TEOS_POLLING_DELTA", "20"),
        ("TEOS_BTC_NETWORK", "signet"),
        ("TEOS_SUBSCRIPTION_SLOTS", "7"),
    ];
    let flags = ["--pollingdelta", "30", "--btcnetwork", "regtest"];
    let config = load(dir.path(), Some(file), &env, &flags).unwrap();
    assert_eq!(config.api_bind, "127.0.0.1", "default");
    assert_eq!(config.api_port, 1001, "file over default");
    assert_eq!(config.log_level, "warn", "file over default");
    assert_eq!(config.rpc_port, 2002, "env over file");
    assert_eq!(
        config.subscription_slots, 7,
        "env over file (no flag exists)"
    );
    assert_eq!(config.polling_delta, 30, "flag over env over file");
    assert_eq!(
        config.btc_network,
        BtcNetwork::Regtest,
        "flag over env over file"
    );
    assert_eq!(config.btc_rpc_port, 18443, "port follows the final network");
}

#[test]
fn flags_override_credentials_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = "btc_rpc_user = \"file-user\"\nbtc_rpc_password = \"file-pass\"\n";
    let flags = ["--btcrpcuser", "flag-user", "--btcrpcpassword", "flag-pass"];
    let config = load(dir.path(), Some(file), &[], &flags).unwrap();
    assert_eq!(
        config.btc_auth(),
        BtcAuth::UserPass("flag-user".into(), "flag-pass".into())
    );
}

#[test]
fn boolean_flag_alone_means_true_and_explicit_false_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = "debug = true\nforce_update = true\n";
    let flags = ["--debug=false", "--depsdebug", "--overwritekey"];
    let config = load(dir.path(), Some(file), &AUTH, &flags).unwrap();
    assert!(!config.debug);
    assert!(config.deps_debug);
    assert!(config.overwrite_key);
    assert!(config.force_update, "file value kept when no flag is given");
}

#[test]
fn overwrite_key_true_in_the_file_or_the_environment_is_refused_with_the_reason() {
    let (err, path) = load_err(Some("overwrite_key = true\n"), &AUTH, &[]);
    assert!(
        err.contains("overwrite_key") && err.contains(&path) && err.contains("--overwritekey"),
        "{err}"
    );
    assert!(err.contains("tower id"), "says why: {err}");
    let env = [AUTH[0], AUTH[1], ("TEOS_OVERWRITE_KEY", "1")];
    let (err, _) = load_err(None, &env, &[]);
    assert!(
        err.contains("TEOS_OVERWRITE_KEY") && err.contains("--overwritekey"),
        "{err}"
    );
    // A rust-teos teos.toml holding the default is still accepted.
    let dir = tempfile::tempdir().unwrap();
    let config = load(dir.path(), Some("overwrite_key = false\n"), &AUTH, &[]).unwrap();
    assert!(!config.overwrite_key);
}

#[test]
fn env_booleans_accept_true_false_one_zero() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        AUTH[0],
        AUTH[1],
        ("TEOS_DEBUG", "1"),
        ("TEOS_DEPS_DEBUG", "TRUE"),
    ];
    let config = load(dir.path(), None, &env, &[]).unwrap();
    assert!(config.debug && config.deps_debug);
}

#[test]
fn a_missing_file_means_defaults_but_an_unreadable_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("teos.toml")).unwrap();
    let err = load(dir.path(), None, &AUTH, &[]).unwrap_err();
    assert!(matches!(err, ConfigError::ReadFile { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&dir.path().join("teos.toml").display().to_string())
    );
}

#[test]
fn toml_syntax_error_names_the_file_and_the_line() {
    let (err, path) = load_err(Some("api_port = 9814\nrpc_port = \n"), &AUTH, &[]);
    assert!(err.contains(&path), "{err}");
    assert!(err.contains("not valid TOML"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn unknown_file_key_is_refused_with_its_name_and_the_file() {
    let (err, path) = load_err(Some("api_prot = 1\n"), &AUTH, &[]);
    assert!(err.contains("`api_prot`") && err.contains(&path), "{err}");
}

#[test]
fn table_in_the_file_is_an_unknown_key() {
    let (err, path) = load_err(Some("[bitcoind]\nuser = \"x\"\n"), &AUTH, &[]);
    assert!(err.contains("`bitcoind`") && err.contains(&path), "{err}");
}

#[test]
fn data_dir_in_the_file_is_refused() {
    let (err, path) = load_err(Some("data_dir = \"/x\"\n"), &AUTH, &[]);
    assert!(
        err.contains("data_dir") && err.contains(&path) && err.contains("--datadir"),
        "{err}"
    );
}

#[test]
fn unknown_teos_env_variable_is_a_warning_and_loading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        AUTH[0],
        AUTH[1],
        ("TEOS_API_PROT", "1"),
        ("TEOS_PORT", "tcp://10.0.0.7:9814"),
    ];
    let config = load(dir.path(), None, &env, &[]).unwrap();
    assert_eq!(
        config.warnings,
        [
            ConfigWarning::UnknownEnv {
                name: "TEOS_API_PROT".into()
            },
            ConfigWarning::UnknownEnv {
                name: "TEOS_PORT".into()
            },
        ]
    );
    assert!(config.warnings[0].to_string().contains("TEOS_API_PROT"));
    assert_eq!(config.api_port, 9814);
}

#[test]
fn unrelated_env_variables_and_teos_data_dir_are_not_keys() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let data_dir = other.path().display().to_string();
    let env = [
        AUTH[0],
        AUTH[1],
        ("TEOSX", "1"),
        ("RUST_LOG", "x"),
        ("TEOS_DATA_DIR", &data_dir),
    ];
    let config = load(dir.path(), None, &env, &[]).unwrap();
    assert_eq!(config.data_dir, dir.path(), "--datadir beats TEOS_DATA_DIR");
}

#[test]
fn env_variables_differing_only_in_case_are_refused() {
    let env = [
        AUTH[0],
        AUTH[1],
        ("TEOS_API_PORT", "1"),
        ("TEOS_api_port", "2"),
    ];
    let (err, _) = load_err(None, &env, &[]);
    assert!(err.contains("api_port") && err.contains("TEOS_"), "{err}");
}

/// A source to load from (file text, env, flags) and the key and origin its error must name.
type Case = (
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
    &'static str,
    &'static str,
);

#[test]
fn wrong_types_name_the_key_and_where_they_came_from() {
    let cases: [Case; 8] = [
        (
            Some("api_port = \"abc\"\n"),
            &[],
            &[],
            "api_port",
            "teos.toml",
        ),
        (
            Some("api_port = 70000\n"),
            &[],
            &[],
            "api_port",
            "teos.toml",
        ),
        (
            Some("btc_rpc_connect = 5\n"),
            &[],
            &[],
            "btc_rpc_connect",
            "teos.toml",
        ),
        (Some("debug = \"maybe\"\n"), &[], &[], "debug", "teos.toml"),
        (
            Some("polling_delta = 1.5\n"),
            &[],
            &[],
            "polling_delta",
            "teos.toml",
        ),
        (
            None,
            &[("TEOS_API_PORT", "abc")],
            &[],
            "api_port",
            "TEOS_API_PORT",
        ),
        (
            None,
            &[("TEOS_EXPIRY_DELTA", "-1")],
            &[],
            "expiry_delta",
            "TEOS_EXPIRY_DELTA",
        ),
        (None, &[], &["--apiport", "abc"], "api_port", "--apiport"),
    ];
    for (file, env, flags, key, origin) in cases {
        let env: Vec<(&str, &str)> = AUTH.iter().copied().chain(env.iter().copied()).collect();
        let (err, _) = load_err(file, &env, flags);
        assert!(
            err.contains(key) && err.contains(origin),
            "{file:?} {env:?} {flags:?}: {err}"
        );
    }
}

#[test]
fn a_bad_file_value_is_reported_even_when_env_overrides_it() {
    let env = [AUTH[0], AUTH[1], ("TEOS_API_PORT", "9000")];
    let (err, path) = load_err(Some("api_port = \"x\"\n"), &env, &[]);
    assert!(err.contains("api_port") && err.contains(&path), "{err}");
}

#[test]
fn out_of_rule_values_name_their_key() {
    let cases = [
        ("api_port = 0", "api_port"),
        ("rpc_port = 0", "rpc_port"),
        ("btc_network = \"liquid\"", "btc_network"),
        ("polling_delta = 0", "polling_delta"),
        ("subscription_slots = 0", "subscription_slots"),
        ("subscription_duration = 0", "subscription_duration"),
        ("max_encrypted_blob_size = 0", "max_encrypted_blob_size"),
        ("locator_cache_size = 0", "locator_cache_size"),
        ("log_level = \"loud\"", "log_level"),
        ("api_bind = \"http://0.0.0.0\"", "api_bind"),
        ("rpc_bind = \"\"", "rpc_bind"),
        ("btc_rpc_connect = \"localhost:8332\"", "btc_rpc_connect"),
        (
            "btc_zmq_hashblock = \"127.0.0.1:28332\"",
            "btc_zmq_hashblock",
        ),
        ("internal_api_bind = \"not a host\"", "internal_api_bind"),
    ];
    for (line, key) in cases {
        let (err, path) = load_err(Some(&format!("{line}\n")), &AUTH, &[]);
        assert!(err.contains(key) && err.contains(&path), "{line}: {err}");
    }
}

#[test]
fn port_zero_from_a_flag_names_key_and_flag() {
    let (err, _) = load_err(None, &AUTH, &["--rpcport", "0"]);
    assert!(
        err.contains("rpc_port") && err.contains("--rpcport"),
        "{err}"
    );
}

#[test]
fn tor_support_is_read_from_the_file_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!load(dir.path(), None, &AUTH, &[]).unwrap().tor_support);
    let on = load(dir.path(), Some("tor_support = true\n"), &AUTH, &[]).unwrap();
    assert!(on.tor_support);
    let dir = tempfile::tempdir().unwrap();
    assert!(
        load(dir.path(), None, &AUTH, &["--torsupport"])
            .unwrap()
            .tor_support
    );
    let (err, _) = load_err(None, &AUTH, &["--torcontrolport", "0"]);
    assert!(
        err.contains("tor_control_port") && err.contains("--torcontrolport"),
        "{err}"
    );
}

#[test]
fn tor_ports_and_internal_api_keys_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = "tor_support = false\ntor_control_port = 9999\nonion_hidden_service_port = 9815\n\
                internal_api_bind = \"0.0.0.0\"\ninternal_api_port = 50052\n";
    let config = load(dir.path(), Some(file), &AUTH, &["--torcontrolport", "9998"]).unwrap();
    assert_eq!(config.tor_control_port, 9998);
    assert_eq!(config.onion_hidden_service_port, 9815);
    assert_eq!(config.internal_api_bind, "0.0.0.0");
    assert_eq!(config.internal_api_port, 50052);
}

#[test]
fn bad_command_line_is_a_cli_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), None, &AUTH, &["--nosuchflag"]).unwrap_err();
    assert!(matches!(err, ConfigError::Cli(_)), "{err}");
    assert!(err.to_string().contains("--nosuchflag"), "{err}");
}

#[test]
fn print_config_flag_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!load(dir.path(), None, &AUTH, &[]).unwrap().print_config);
    assert!(
        load(dir.path(), None, &AUTH, &["--print-config"])
            .unwrap()
            .print_config
    );
}
