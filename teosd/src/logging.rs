//! Log output: human-readable lines on stderr, level from `--debug` / `log_level` / `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// Installs the global subscriber. `debug` raises teosd's own modules to debug; `deps_debug` raises
/// dependencies too. `RUST_LOG`, when set, wins.
pub fn init(config: &Config) {
    let own = if config.debug {
        "debug"
    } else {
        config.log_level.as_str()
    };
    let deps = if config.deps_debug { "debug" } else { "warn" };
    let default = format!("{deps},teosd={own},teos_common={own}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
