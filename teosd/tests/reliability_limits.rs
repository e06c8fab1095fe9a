//! Limits of the public API (issue 6, item 4): connection cap, header and body timeouts (slowloris),
//! per-IP rate limits, caps on users and appointments. A valid appointment is never refused with a
//! code its client would drop it for: it is held, then told to retry later with code 7
//! (`teosd::api::http`, "Held back"). A real tower (real SQLite) behind the real server on
//! 127.0.0.1:0; slow and idle clients are raw TCP sockets.
//!
//! Body limits per endpoint are covered by `http_api.rs` (`bodies_over_each_limit_get_413...`).

mod reliability_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reliability_support::*;
use teos_common::appointment::AppointmentId;
use teosd::api::limits::{HttpLimits, RateLimit};
use teosd::gatekeeper::Capacity;

/// Reads until the server closes the connection or `deadline` passes; returns the bytes and whether
/// the server closed it.
fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> (String, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + deadline;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&answer).into_owned(), true),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&answer).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&answer).into_owned(), false)
}

/// One ping on a fresh connection with `Connection: close`; the status line, or `None` if no answer
/// came within `within`.
fn ping(tower: &LocalTower, within: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(tower.addr).unwrap();
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream, within);
    answer.lines().next().map(str::to_owned)
}

#[test]
fn connections_over_the_cap_wait_until_a_slot_frees() {
    let limits = HttpLimits {
        max_connections: 2,
        ..relaxed_limits()
    };
    let tower = LocalTower::start(limits, Capacity::default());
    // Two idle connections take both slots (the header timeout is 30 s).
    let first = TcpStream::connect(tower.addr).unwrap();
    let _second = TcpStream::connect(tower.addr).unwrap();
    // Wait until the server has accepted both (a ping now gets no answer).
    let mut third = TcpStream::connect(tower.addr).unwrap();
    third
        .write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(&mut third, Duration::from_millis(700));
    assert_eq!(
        answer, "",
        "a third connection is not served while two are open"
    );
    drop(first);
    let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed);
}

#[test]
fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(1),
        ..relaxed_limits()
    };
    let tower = LocalTower::start(limits, Capacity::default());

    let mut idle = TcpStream::connect(tower.addr).unwrap();
    let mut slow = TcpStream::connect(tower.addr).unwrap();
    slow.write_all(b"POST /register HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let started = Instant::now();
    let (_, idle_closed) = read_until_closed(&mut idle, Duration::from_secs(10));
    let (_, slow_closed) = read_until_closed(&mut slow, Duration::from_secs(10));
    assert!(idle_closed, "an idle connection is closed");
    assert!(
        slow_closed,
        "a connection with unfinished headers is closed"
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    // A keep-alive connection that goes idle after one request is closed too.
    let mut keep_alive = TcpStream::connect(tower.addr).unwrap();
    keep_alive
        .write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut keep_alive, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "an idle keep-alive connection is closed");
}

#[test]
fn a_body_slower_than_the_body_timeout_gets_408() {
    let limits = HttpLimits {
        body_timeout: Duration::from_secs(1),
        ..relaxed_limits()
    };
    let tower = LocalTower::start(limits, Capacity::default());
    let mut stream = TcpStream::connect(tower.addr).unwrap();
    stream
        .write_all(b"POST /register HTTP/1.1\r\nHost: t\r\nContent-Length: 80\r\n\r\n{\"user_id\":")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains(r#""error_code":6"#), "{answer:?}");
    assert!(closed, "the connection is closed after a 408");
    assert_eq!(tower.counts(), (0, 0));
}

#[test]
fn a_swarm_of_slow_clients_does_not_lock_out_a_good_client() {
    let limits = HttpLimits {
        max_connections: 8,
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        ..relaxed_limits()
    };
    let tower = LocalTower::start(limits, Capacity::default());
    // 24 slowloris connections: three times the cap, each sending a header byte now and then.
    let mut swarm: Vec<TcpStream> = (0..24)
        .map(|_| {
            let mut s = TcpStream::connect(tower.addr).unwrap();
            let _ = s.write_all(b"POST /register HTTP/1.1\r\n");
            s
        })
        .collect();
    let started = Instant::now();
    let mut served = None;
    while started.elapsed() < Duration::from_secs(30) {
        for s in &mut swarm {
            let _ = s.write_all(b"X: y\r\n");
        }
        if let Some(status) = ping(&tower, Duration::from_millis(500)) {
            served = Some(status);
            break;
        }
    }
    let status = served.expect("the good client was never served");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Slots are freed by the timeouts, so it is served within a few header timeouts.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn over_the_rate_registrations_get_429_and_appointments_are_told_to_retry_later_with_code_7() {
    // One per minute: the next turn is a minute away, beyond the 10 s hold, so nothing is held.
    let limits = HttpLimits {
        register_rate: RateLimit::per_minute(1, 3),
        add_appointment_rate: RateLimit::per_minute(1, 2),
        ..relaxed_limits()
    };
    let tower = LocalTower::start(limits, Capacity::default());
    for seed in 1..=3 {
        let (status, _) = tower.post("/register", register_body(&user_key(seed).1));
        assert_eq!(status, 200);
    }
    // A registration refused with a JSON error is harmless to clients (shown, or retried).
    let (status, headers, json) = tower.post_full("/register", register_body(&user_key(4).1));
    assert_eq!(status, 429);
    assert_eq!(code(&json), Some(32));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        tower.counts().0,
        3,
        "the refused registration stored nothing"
    );

    let (sk, _) = user_key(1);
    for n in 0..2 {
        let (status, json) = tower.post("/add_appointment", add_body(&appointment(n, 100), &sk));
        assert_eq!(status, 200, "{json}");
    }
    // An appointment refused with any code but 7 would be filed as invalid by the reference client
    // and never sent again: it is told to retry later with code 7 (and Retry-After).
    let (status, headers, json) =
        tower.post_full("/add_appointment", add_body(&appointment(9, 100), &sk));
    assert_eq!((status, code(&json)), (401, Some(7)), "{json}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert_eq!(
        tower.counts().1,
        2,
        "the refused appointment stored nothing"
    );
    // get_subscription_info is not rate limited.
    let info = serde_json::json!({
        "signature": teos_common::cryptography::sign(b"get subscription info", &sk)
    });
    for _ in 0..5 {
        assert_eq!(
            tower.post("/get_subscription_info", info.to_string()).0,
            200
        );
    }
}

#[test]
fn appointments_over_the_rate_are_held_until_their_turn_then_accepted() {
    // A turn every 100 ms after a burst of 2, a 10 s hold: a client sending back to back is slowed
    // down to the rate, never refused.
    let limits = HttpLimits {
        add_appointment_rate: RateLimit::per_minute(600, 2),
        ..relaxed_limits()
    };
    let tower = LocalTower::start(limits, Capacity::default());
    let (sk, user) = user_key(1);
    assert_eq!(tower.post("/register", register_body(&user)).0, 200);
    for n in 0..6 {
        let answer = tower.post_or_closed("/add_appointment", add_body(&appointment(n, 100), &sk));
        let (status, json) = answer.expect("held appointment dropped instead of served");
        assert_eq!(status, 200, "appointment {n}: {json}");
    }
    assert_eq!(tower.counts(), (1, 6));
}

#[test]
fn new_users_over_max_users_get_503_while_renewals_pass() {
    let capacity = Capacity {
        max_users: 2,
        max_appointments: 0,
    };
    let tower = LocalTower::start(relaxed_limits(), capacity);
    for seed in [1, 2] {
        assert_eq!(
            tower.post("/register", register_body(&user_key(seed).1)).0,
            200
        );
    }
    let (status, json) = tower.post("/register", register_body(&user_key(3).1));
    assert_eq!((status, code(&json)), (503, Some(32)));
    assert!(
        json["error"].as_str().unwrap().contains("new users"),
        "{json}"
    );
    assert_eq!(tower.counts(), (2, 0), "the refused user was not stored");
    let (status, json) = tower.post("/register", register_body(&user_key(1).1));
    assert_eq!(status, 200, "a renewal is not growth: {json}");
    assert_eq!(json["available_slots"], 20);
    assert_eq!(tower.counters(), tower.counts());
}

#[test]
fn new_appointments_over_max_appointments_are_told_to_retry_later_and_accepted_once_room_is_made() {
    let capacity = Capacity {
        max_users: 0,
        max_appointments: 3,
    };
    let tower = LocalTower::start(relaxed_limits(), capacity);
    let (sk1, u1) = user_key(1);
    let (sk2, u2) = user_key(2);
    tower.post("/register", register_body(&u1));
    tower.post("/register", register_body(&u2));
    for n in 0..3 {
        let (status, json) = tower.post("/add_appointment", add_body(&appointment(n, 100), &sk1));
        assert_eq!(status, 200, "{json}");
    }
    // Full: "retry later" with code 7 (any other code would make the reference client drop it).
    let refused = add_body(&appointment(3, 100), &sk2);
    let (status, json) = tower.post("/add_appointment", refused.clone());
    assert_eq!((status, code(&json)), (401, Some(7)), "{json}");
    assert_eq!(tower.counts(), (2, 3));
    // The refused request charged nothing.
    let info = serde_json::json!({
        "signature": teos_common::cryptography::sign(b"get subscription info", &sk2)
    });
    let (_, json) = tower.post("/get_subscription_info", info.to_string());
    assert_eq!(json["available_slots"], 10);
    assert_eq!(json["locators"], serde_json::json!([]));
    // Updating an existing appointment is not growth.
    let mut update = appointment(1, 300);
    update.to_self_delay = 50;
    let (status, json) = tower.post("/add_appointment", add_body(&update, &sk1));
    assert_eq!(status, 200, "{json}");
    assert_eq!(tower.counters(), tower.counts());

    // Room is made (as when a tracker completes and its appointment is deleted): the same request,
    // sent again as a client's retry would, is accepted.
    let (locator, owner) = (appointment(0, 100).locator, u1);
    let deleted = tower
        .store
        .write_blocking(move |conn| conn.delete_appointment(&AppointmentId::new(&locator, &owner)))
        .unwrap();
    assert!(deleted);
    let (status, json) = tower.post("/add_appointment", refused);
    assert_eq!(status, 200, "{json}");
    assert_eq!(tower.counts(), (2, 3));
}

#[test]
fn the_counters_follow_cascading_deletes_so_freed_room_is_usable_again() {
    let capacity = Capacity {
        max_users: 2,
        max_appointments: 2,
    };
    let tower = LocalTower::start(relaxed_limits(), capacity);
    let (sk1, u1) = user_key(1);
    let (_, u2) = user_key(2);
    tower.post("/register", register_body(&u1));
    tower.post("/register", register_body(&u2));
    for n in 0..2 {
        assert_eq!(
            tower
                .post("/add_appointment", add_body(&appointment(n, 10), &sk1))
                .0,
            200
        );
    }
    // The Gatekeeper deletes both users as outdated (expiry 1500 + delta 6): the cascade removes the
    // appointments, and the triggers keep the counts exact.
    let deleted = tower
        .store
        .write_blocking(|conn| conn.delete_outdated_users(HEIGHT + 2000, 6))
        .unwrap();
    assert_eq!(deleted.len(), 2);
    assert_eq!(tower.counters(), (0, 0));
    let (sk3, u3) = user_key(3);
    assert_eq!(tower.post("/register", register_body(&u3)).0, 200);
    for n in 10..12 {
        assert_eq!(
            tower
                .post("/add_appointment", add_body(&appointment(n, 10), &sk3))
                .0,
            200
        );
    }
    assert_eq!(tower.counters(), tower.counts());
    assert_eq!(tower.counts(), (1, 2));
}

/// The limits and caps of `teos.toml` reach the running daemon (end to end, the real binary).
#[test]
fn limits_and_caps_from_teos_toml_apply_to_the_running_daemon() {
    #[path = "common/mod.rs"]
    mod common;
    use common::{Chain, TowerOptions, TowerProcess, User};

    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["max_users = 1".into(), "api_header_timeout = 1".into()],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    assert!(User::new(&tower.url(), 1).register().is_ok());
    assert_eq!(
        common::error_code(User::new(&tower.url(), 2).register()),
        (503, 32)
    );
    let mut idle = TcpStream::connect(("127.0.0.1", tower.api_port)).unwrap();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(8));
    assert!(
        closed,
        "api_header_timeout = 1 did not close an idle connection"
    );
}

#[test]
fn oversized_request_heads_are_refused_without_buffering_them() {
    let tower = LocalTower::start(relaxed_limits(), Capacity::default());
    let mut stream = TcpStream::connect(tower.addr).unwrap();
    let mut head = b"POST /register HTTP/1.1\r\nHost: t\r\n".to_vec();
    // 64 KiB of headers, four times what the server buffers for one connection.
    for i in 0..1024 {
        head.extend_from_slice(format!("X-Pad-{i:04}: {}\r\n", "a".repeat(50)).as_bytes());
    }
    let _ = stream.write_all(&head);
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:?}"
    );
    assert!(closed, "the connection is closed");
    assert_eq!(
        ping(&tower, Duration::from_secs(5)).as_deref(),
        Some("HTTP/1.1 200 OK")
    );
}
