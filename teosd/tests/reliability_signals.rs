//! teosd must stay stoppable when its log output goes away (issue 6: "the promise has to hold when
//! the process is killed"; a tower that ignores SIGTERM gets SIGKILLed by its supervisor instead of
//! finishing its block and closing the database).
//!
//! Found while testing file modes: when the pipe teosd logs to is closed (a log collector or
//! `journald` restarting, `teosd 2>&1 | head`), the next log line makes tracing-subscriber report
//! the failed write with `eprintln!`, which panics on EPIPE — in whichever thread logged. The
//! `signals` thread logs first when SIGTERM arrives, dies before `shutdown.trigger()`, and teosd then
//! ignores every further SIGTERM. Fixed in teosd/src/logging.rs: lines that cannot be written are
//! dropped (`log_internal_errors(false)`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_stops_teosd_after_its_log_pipe_closed() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let api_port = TowerProcess::start(&chain, dir.path(), &TowerOptions::default()).api_port;
    let _ = api_port; // the first start wrote teos.toml; that process is gone

    let mut child = Command::new(env!("CARGO_BIN_EXE_teosd"))
        .arg("--datadir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read until ready, then close the pipe, as a dying log collector would.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let ready = stderr
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("Tower ready"));
    assert!(ready, "teosd did not start");

    common::signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        status.is_some(),
        "teosd ignored SIGTERM after its stderr pipe closed (had to SIGKILL it)"
    );
}
