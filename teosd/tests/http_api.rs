//! Black-box tests of the public HTTP API (`teosd::api::http`): a mock `TowerApi` behind `serve` on
//! 127.0.0.1:0, driven by a real HTTP client (reqwest) and, for framing cases reqwest cannot produce
//! (no Content-Length, chunked, oversized), raw TCP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Transaction, Txid};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::errors::{ApiError, ErrorCode};
use teos_common::protocol::{
    AddAppointmentResponse, GetAppointmentResponse, GetSubscriptionInfoResponse, RegisterResponse,
    TrackerData,
};
use teosd::api::TowerApi;
use teosd::api::http::serve;

const USER_ID: &str = "03b513fa949c462e4553dc7283f8535c56c77d222e74d5d8e93682aec802be6ec5";
const LOCATOR: &str = "33d984bf580d0ab4ce348217461ac1a1";
const SIG: &str = "rnqsg6mxmdj455bn7zruujsdh4onsa4uwh4j7y4jr9uyf1xaoap9gkx738s7n4a34k6qtws6xkyaazei1xajzcyhim87j86qste7kbif";
const DEADLINE: Duration = Duration::from_secs(10);

/// A call the mock tower received.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Register(UserId),
    AddAppointment(Appointment, String),
    GetAppointment(Locator, String),
    GetSubscriptionInfo(String),
}

/// How the mock tower answers every call.
#[derive(Debug, Clone, Default)]
enum Mode {
    /// Canned success.
    #[default]
    Succeed,
    /// This error.
    Fail(ApiError),
    /// A panic inside the tower.
    Panic,
    /// Answer `get_appointment` with a tracker.
    Responded,
    /// Signal `entered`, then wait for `release` before succeeding.
    Block,
}

#[derive(Default)]
struct MockTower {
    calls: Mutex<Vec<Call>>,
    mode: Mutex<Mode>,
    entered: Notify,
    release: Notify,
    /// Calls inside the tower right now, and the most there ever were at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl MockTower {
    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Records the call, then behaves as the mode says; `ok` builds the canned success.
    async fn answer<R>(&self, call: Call, ok: impl FnOnce() -> R) -> Result<R, ApiError> {
        self.calls.lock().unwrap().push(call);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let answer = self.behave(ok).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    async fn behave<R>(&self, ok: impl FnOnce() -> R) -> Result<R, ApiError> {
        let mode = self.mode.lock().unwrap().clone();
        match mode {
            Mode::Succeed | Mode::Responded => Ok(ok()),
            Mode::Fail(error) => Err(error),
            Mode::Panic => panic!("mock tower panics on purpose"),
            Mode::Block => {
                self.entered.notify_one();
                self.release.notified().await;
                Ok(ok())
            }
        }
    }
}

fn locator() -> Locator {
    LOCATOR.parse().unwrap()
}

fn penalty() -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn::default()],
        output: vec![],
    }
}

impl TowerApi for MockTower {
    fn register(
        &self,
        user_id: UserId,
    ) -> impl Future<Output = Result<RegisterResponse, ApiError>> + Send {
        self.answer(Call::Register(user_id), move || RegisterResponse {
            user_id,
            available_slots: 10000,
            subscription_start: 120,
            subscription_expiry: 4440,
            subscription_signature: "tower-sig".into(),
        })
    }

    fn add_appointment(
        &self,
        appointment: Appointment,
        signature: String,
    ) -> impl Future<Output = Result<AddAppointmentResponse, ApiError>> + Send {
        let locator = appointment.locator;
        self.answer(Call::AddAppointment(appointment, signature), move || {
            AddAppointmentResponse {
                locator,
                start_block: 120,
                signature: "receipt-sig".into(),
                available_slots: 9999,
                subscription_expiry: 4440,
            }
        })
    }

    fn get_appointment(
        &self,
        locator: Locator,
        signature: String,
    ) -> impl Future<Output = Result<GetAppointmentResponse, ApiError>> + Send {
        let responded = matches!(*self.mode.lock().unwrap(), Mode::Responded);
        self.answer(Call::GetAppointment(locator, signature), move || {
            if responded {
                GetAppointmentResponse::DisputeResponded(TrackerData {
                    dispute_txid: Txid::from_byte_array([0xaa; 32]),
                    penalty_txid: penalty().compute_txid(),
                    penalty_rawtx: penalty(),
                })
            } else {
                GetAppointmentResponse::BeingWatched(Appointment {
                    locator,
                    encrypted_blob: vec![0xde, 0xad],
                    to_self_delay: 42,
                })
            }
        })
    }

    fn get_subscription_info(
        &self,
        signature: String,
    ) -> impl Future<Output = Result<GetSubscriptionInfoResponse, ApiError>> + Send {
        self.answer(Call::GetSubscriptionInfo(signature), || {
            GetSubscriptionInfoResponse {
                available_slots: 9999,
                subscription_expiry: 4440,
                locators: vec![locator()],
            }
        })
    }
}

/// A running API server over a mock tower.
struct Server {
    addr: SocketAddr,
    tower: Arc<MockTower>,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tower = Arc::new(MockTower::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(listener, tower.clone(), shutdown));
        Server {
            addr,
            tower,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` as JSON; returns status, content type and the JSON answer.
    async fn post(&self, path: &str, body: &Value) -> (u16, String, Value) {
        self.post_raw(path, body.to_string()).await
    }

    /// POSTs `body` as JSON on a fresh connection: `Err` when the server closed it without an answer.
    async fn post_or_closed(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(u16, Value), reqwest::Error> {
        let send = reqwest::Client::new()
            .post(self.url(path))
            .body(body.to_string())
            .send();
        let response = tokio::time::timeout(DEADLINE, send).await.unwrap()?;
        let status = response.status().as_u16();
        Ok((status, response.json::<Value>().await?))
    }

    /// POSTs `body` verbatim (with a Content-Length).
    async fn post_raw(&self, path: &str, body: String) -> (u16, String, Value) {
        let response = self
            .http
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let json = response.json::<Value>().await.unwrap();
        (status, content_type, json)
    }
}

/// Sends `request` verbatim on a fresh connection and reads until the server closes it.
/// Returns the status code and the whole answer.
async fn raw_request(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    };
    let answer = tokio::time::timeout(DEADLINE, exchange).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

fn add_body() -> Value {
    json!({
        "appointment": {"locator": LOCATOR, "encrypted_blob": "abcd", "to_self_delay": 42},
        "signature": SIG
    })
}

#[tokio::test]
async fn register_answers_the_tower_response_as_json() {
    let server = Server::start().await;
    let (status, content_type, body) = server.post("/register", &json!({"user_id": USER_ID})).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        body,
        json!({
            "user_id": USER_ID,
            "available_slots": 10000,
            "subscription_start": 120,
            "subscription_expiry": 4440,
            "subscription_signature": "tower-sig"
        })
    );
    assert_eq!(
        server.tower.calls(),
        vec![Call::Register(USER_ID.parse().unwrap())]
    );
}

#[tokio::test]
async fn add_appointment_passes_the_parsed_appointment_and_signature() {
    let server = Server::start().await;
    let (status, content_type, body) = server.post("/add_appointment", &add_body()).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        body,
        json!({
            "locator": LOCATOR,
            "start_block": 120,
            "signature": "receipt-sig",
            "available_slots": 9999,
            "subscription_expiry": 4440
        })
    );
    let expected = Appointment {
        locator: locator(),
        encrypted_blob: vec![0xab, 0xcd],
        to_self_delay: 42,
    };
    assert_eq!(
        server.tower.calls(),
        vec![Call::AddAppointment(expected, SIG.into())]
    );
}

#[tokio::test]
async fn add_appointment_passes_an_empty_blob_to_the_tower() {
    let server = Server::start().await;
    let mut body = add_body();
    body["appointment"]["encrypted_blob"] = json!("");
    server
        .tower
        .set_mode(Mode::Fail(ApiError::appointment_field_too_small(
            "empty blob",
        )));
    let (status, _, answer) = server.post("/add_appointment", &body).await;
    assert_eq!(status, 400);
    assert_eq!(answer, json!({"error": "empty blob", "error_code": 33}));
    assert_eq!(server.tower.calls().len(), 1);
}

#[tokio::test]
async fn get_appointment_answers_a_watched_appointment() {
    let server = Server::start().await;
    let request = json!({"locator": LOCATOR, "signature": SIG});
    let (status, content_type, body) = server.post("/get_appointment", &request).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        body,
        json!({
            "appointment": {"locator": LOCATOR, "encrypted_blob": "dead", "to_self_delay": 42},
            "status": "being_watched"
        })
    );
    assert_eq!(
        server.tower.calls(),
        vec![Call::GetAppointment(locator(), SIG.into())]
    );
}

#[tokio::test]
async fn get_appointment_answers_a_responded_dispute_in_display_order() {
    let server = Server::start().await;
    server.tower.set_mode(Mode::Responded);
    let request = json!({"locator": LOCATOR, "signature": SIG});
    let (status, _, body) = server.post("/get_appointment", &request).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "appointment": {
                "dispute_txid": "aa".repeat(32),
                "penalty_txid": penalty().compute_txid().to_string(),
                "penalty_rawtx": bitcoin::consensus::encode::serialize_hex(&penalty()),
            },
            "status": "dispute_responded"
        })
    );
}

#[tokio::test]
async fn get_subscription_info_answers_slots_expiry_and_locators() {
    let server = Server::start().await;
    let (status, content_type, body) = server
        .post("/get_subscription_info", &json!({"signature": SIG}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        body,
        json!({"available_slots": 9999, "subscription_expiry": 4440, "locators": [LOCATOR]})
    );
    assert_eq!(
        server.tower.calls(),
        vec![Call::GetSubscriptionInfo(SIG.into())]
    );
}

#[tokio::test]
async fn ping_answers_200_with_an_empty_body() {
    let server = Server::start().await;
    let response = server.http.get(server.url("/ping")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_requests_get_their_parser_codes_and_never_reach_the_tower() {
    let server = Server::start().await;
    let appointment = |field: &str, value: Value| {
        let mut body = add_body();
        body["appointment"][field] = value;
        body.to_string()
    };
    let cases: Vec<(&str, String, u8)> = vec![
        ("/register", "not json".into(), 6),
        ("/register", "[]".into(), 6),
        ("/register", "{}".into(), 1),
        ("/register", r#"{"user_id":""}"#.into(), 2),
        ("/register", r#"{"user_id":1}"#.into(), 3),
        ("/register", r#"{"user_id":"0203"}"#.into(), 4),
        ("/register", r#"{"user_id":"xyz"}"#.into(), 5),
        (
            "/register",
            format!(r#"{{"user_id":"02{}"}}"#, "ff".repeat(32)),
            5,
        ),
        ("/add_appointment", format!(r#"{{"signature":"{SIG}"}}"#), 1),
        ("/add_appointment", r#"{"appointment":{}}"#.into(), 1),
        ("/add_appointment", appointment("locator", json!("")), 2),
        ("/add_appointment", appointment("locator", json!(5)), 3),
        ("/add_appointment", appointment("locator", json!("ab")), 4),
        ("/add_appointment", appointment("locator", json!("abc")), 5),
        (
            "/add_appointment",
            appointment("encrypted_blob", json!("0")),
            5,
        ),
        (
            "/add_appointment",
            appointment("to_self_delay", json!(-1)),
            3,
        ),
        (
            "/add_appointment",
            appointment("to_self_delay", json!(4294967296u64)),
            3,
        ),
        (
            "/add_appointment",
            json!({"appointment": 1, "signature": SIG}).to_string(),
            3,
        ),
        ("/get_appointment", format!(r#"{{"signature":"{SIG}"}}"#), 1),
        (
            "/get_appointment",
            format!(r#"{{"locator":"{LOCATOR}","signature":""}}"#),
            2,
        ),
        (
            "/get_appointment",
            format!(r#"{{"locator":"{LOCATOR}","signature":"0O"}}"#),
            5,
        ),
        ("/get_subscription_info", "{}".into(), 1),
        ("/get_subscription_info", r#"{"signature":""}"#.into(), 2),
        ("/get_subscription_info", r#"{"signature":[]}"#.into(), 3),
        ("/get_subscription_info", r#"{"signature":"!"}"#.into(), 5),
        ("/get_subscription_info", "{".into(), 6),
    ];
    for (path, body, code) in cases {
        let (status, content_type, answer) = server.post_raw(path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}");
        assert_eq!(content_type, "application/json");
        assert_eq!(answer["error_code"], json!(code), "{path} {body}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(answer.as_object().unwrap().len(), 2);
    }
    assert_eq!(server.tower.calls(), vec![]);
}

#[tokio::test]
async fn tower_errors_map_to_their_http_statuses() {
    let server = Server::start().await;
    let expected: Vec<(ErrorCode, u16)> = vec![
        (ErrorCode::InvalidSignatureOrSubscriptionError, 401),
        (ErrorCode::ServiceUnavailable, 503),
        (ErrorCode::AppointmentFieldTooSmall, 400),
        (ErrorCode::AppointmentFieldTooBig, 400),
        (ErrorCode::AppointmentAlreadyTriggered, 400),
        (ErrorCode::AppointmentNotFound, 404),
        (ErrorCode::RegistrationResourceExhausted, 400),
        (ErrorCode::UnexpectedError, 500),
    ];
    let requests: Vec<(&str, Value)> = vec![
        ("/register", json!({"user_id": USER_ID})),
        ("/add_appointment", add_body()),
        (
            "/get_appointment",
            json!({"locator": LOCATOR, "signature": SIG}),
        ),
        ("/get_subscription_info", json!({"signature": SIG})),
    ];
    for (code, http_status) in expected {
        server
            .tower
            .set_mode(Mode::Fail(ApiError::new(code, "canned failure")));
        for (path, body) in &requests {
            let cannot_serve = matches!(
                code,
                ErrorCode::ServiceUnavailable | ErrorCode::UnexpectedError
            );
            if *path == "/add_appointment" && cannot_serve {
                // Held back: "retry later" with code 7 (see the next test).
                let (status, _, answer) = server.post(path, body).await;
                assert_eq!(
                    (status, answer["error_code"].clone()),
                    (401, json!(7)),
                    "{code:?}"
                );
                continue;
            }
            let (status, content_type, answer) = server.post(path, body).await;
            assert_eq!(status, http_status, "{path} {code:?}");
            assert_eq!(content_type, "application/json");
            assert_eq!(
                answer,
                json!({"error": "canned failure", "error_code": code.as_u8()})
            );
        }
    }
}

#[tokio::test]
async fn add_appointment_is_told_to_retry_later_with_code_7_when_the_tower_cannot_serve() {
    let server = Server::start().await;
    for mode in [
        Mode::Fail(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "Service currently unavailable",
        )),
        Mode::Panic,
    ] {
        server.tower.set_mode(mode.clone());
        // Code 7 is the one refusal the reference client keeps the appointment for (pending,
        // re-register, retry); 32 or 255 would make it file the appointment as invalid.
        let (status, answer) = server
            .post_or_closed("/add_appointment", &add_body())
            .await
            .unwrap();
        assert_eq!(status, 401, "{mode:?}: {answer}");
        assert_eq!(answer["error_code"], json!(7), "{mode:?}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("retry later"),
            "{mode:?}: {answer}"
        );
        // The other endpoints still answer with their JSON error.
        let (status, answer) = server
            .post_or_closed("/get_subscription_info", &json!({"signature": SIG}))
            .await
            .unwrap();
        assert!(
            status == 503 && answer["error_code"] == json!(32)
                || status == 500 && answer["error_code"] == json!(255),
            "{mode:?}: {status} {answer}"
        );
    }
    assert_eq!(
        server
            .tower
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::AddAppointment(..)))
            .count(),
        2,
        "the tower was asked both times"
    );
    server.tower.set_mode(Mode::Succeed);
    let (status, _) = server
        .post_or_closed("/add_appointment", &add_body())
        .await
        .unwrap();
    assert_eq!(status, 200, "served again");
}

#[tokio::test]
async fn tower_calls_left_running_by_departed_clients_are_bounded() {
    use teosd::api::http::serve_with_limits;
    use teosd::api::limits::HttpLimits;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tower = Arc::new(MockTower::default());
    tower.set_mode(Mode::Block);
    // Two connections, so at most two tower calls at once.
    let limits = HttpLimits {
        max_connections: 2,
        ..HttpLimits::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_limits(
        listener,
        tower.clone(),
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    let body = json!({"user_id": USER_ID}).to_string();
    let request = format!(
        "POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let send = || async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream
    };
    let calls_reach = |n: usize| {
        let tower = tower.clone();
        async move {
            tokio::time::timeout(DEADLINE, async {
                while tower.calls().len() < n {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{n} calls never reached the tower"));
        }
    };
    // Two clients start calls that block in the tower, then go away: their calls keep running.
    let (first, second) = (send().await, send().await);
    calls_reach(2).await;
    drop((first, second));
    // Two more clients come in on the freed connections.
    let mut later = vec![send().await, send().await];
    // Each call that ends lets one more in, never more than two at once.
    for n in 3..=4 {
        tower.release.notify_one();
        calls_reach(n).await;
    }
    tower.release.notify_one();
    tower.release.notify_one();
    for stream in &mut later {
        let mut answer = vec![0u8; 12];
        tokio::time::timeout(DEADLINE, stream.read_exact(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
    }
    assert_eq!(tower.calls().len(), 4);
    assert_eq!(
        tower.max_in_flight.load(Ordering::SeqCst),
        2,
        "calls of departed clients were not counted against the bound"
    );
    stop.send(()).unwrap();
    drop(later);
    tokio::time::timeout(DEADLINE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_panicking_tower_gets_500_and_the_server_keeps_serving() {
    let server = Server::start().await;
    server.tower.set_mode(Mode::Panic);
    let (status, _, answer) = server
        .post("/get_subscription_info", &json!({"signature": SIG}))
        .await;
    assert_eq!(status, 500);
    assert_eq!(answer["error_code"], json!(255));

    server.tower.set_mode(Mode::Succeed);
    let (status, _, _) = server
        .post("/get_subscription_info", &json!({"signature": SIG}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_post_without_content_length_gets_411() {
    let server = Server::start().await;
    let (status, answer) = raw_request(
        server.addr,
        b"POST /register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 411, "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert_eq!(server.tower.calls(), vec![]);
}

#[tokio::test]
async fn an_empty_body_with_content_length_zero_is_invalid_request_format() {
    let server = Server::start().await;
    let (status, answer) = raw_request(
        server.addr,
        b"POST /register HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains(r#""error_code":6"#), "{answer}");
}

#[tokio::test]
async fn a_chunked_post_gets_411() {
    let server = Server::start().await;
    let body = format!(r#"{{"user_id":"{USER_ID}"}}"#);
    let request = format!(
        "POST /register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let (status, answer) = raw_request(server.addr, request.as_bytes()).await;
    assert_eq!(status, 411, "{answer}");
    assert_eq!(server.tower.calls(), vec![]);
}

#[tokio::test]
async fn bodies_over_each_limit_get_413_and_bodies_at_the_limit_pass() {
    let server = Server::start().await;
    let requests: Vec<(&str, usize, String)> = vec![
        ("/register", 87, json!({"user_id": USER_ID}).to_string()),
        ("/add_appointment", 2048, add_body().to_string()),
        (
            "/get_appointment",
            178,
            json!({"locator": LOCATOR, "signature": SIG}).to_string(),
        ),
        (
            "/get_subscription_info",
            127,
            json!({"signature": SIG}).to_string(),
        ),
    ];
    for (path, limit, body) in requests {
        // JSON allows trailing whitespace: pad the valid body to exactly the limit, then one more.
        let at_limit = format!("{body:<limit$}");
        let (status, _, answer) = server.post_raw(path, at_limit).await;
        assert_eq!(status, 200, "{path} at its limit: {answer}");

        let over = format!("{body:<width$}", width = limit + 1);
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{over}",
            over.len()
        );
        let (status, answer) = raw_request(server.addr, request.as_bytes()).await;
        assert_eq!(status, 413, "{path}: {answer}");
        assert!(answer.contains("application/json"), "{answer}");
    }
    assert_eq!(server.tower.calls().len(), 4);
}

#[tokio::test]
async fn a_huge_declared_length_gets_413_without_sending_the_body() {
    let server = Server::start().await;
    let (status, _) = raw_request(
        server.addr,
        b"POST /add_appointment HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
          Content-Length: 99999999999\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn unknown_paths_get_404_and_wrong_methods_405() {
    let server = Server::start().await;
    let response = server
        .http
        .post(server.url("/unknown"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let response = server.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);

    let response = server
        .http
        .get(server.url("/register"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error_code"], json!(6));

    let response = server
        .http
        .post(server.url("/ping"))
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
    assert_eq!(server.tower.calls(), vec![]);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_finishes_requests_in_flight() {
    let mut server = Server::start().await;
    server.tower.set_mode(Mode::Block);
    let entered = server.tower.entered.notified();
    let in_flight = {
        let http = server.http.clone();
        let url = server.url("/register");
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"user_id": USER_ID}))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        })
    };
    tokio::time::timeout(DEADLINE, entered).await.unwrap();

    server.stop.take().unwrap().send(()).unwrap();
    // New connections are refused once the listener is closed.
    let refused = async {
        while TcpStream::connect(server.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(DEADLINE, refused).await.unwrap();
    assert!(
        !server.task.is_finished(),
        "server returned with a request in flight"
    );

    server.tower.release.notify_one();
    let status = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    tokio::time::timeout(DEADLINE, &mut server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn rate_limited_requests_get_429_or_code_7_before_reaching_the_tower() {
    use teosd::api::http::serve_with_limits;
    use teosd::api::limits::{HttpLimits, RateLimit};

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tower = Arc::new(MockTower::default());
    // One per minute: the next turn is beyond the hold, so the second request is not held.
    let limits = HttpLimits {
        register_rate: RateLimit::per_minute(1, 1),
        add_appointment_rate: RateLimit::per_minute(1, 1),
        ..HttpLimits::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_limits(
        listener,
        tower.clone(),
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/register");
    let body = json!({"user_id": USER_ID}).to_string();
    let first = http.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let second = http.post(&url).body(body).send().await.unwrap();
    assert_eq!(second.status().as_u16(), 429);
    assert!(second.headers().contains_key("retry-after"));
    let json: Value = second.json().await.unwrap();
    assert_eq!(json["error_code"], 32);

    let url = format!("http://{addr}/add_appointment");
    let first = http.post(&url).body(add_body().to_string()).send().await;
    assert_eq!(first.unwrap().status().as_u16(), 200);
    let second = reqwest::Client::new()
        .post(&url)
        .body(add_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(second.status().as_u16(), 401);
    assert!(second.headers().contains_key("retry-after"));
    let json: Value = second.json().await.unwrap();
    assert_eq!(json["error_code"], 7, "{json}");
    assert_eq!(
        tower.calls().len(),
        2,
        "the refused requests never reached the tower"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(DEADLINE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
