//! The transaction runner of [`PgStore`]: one PostgreSQL transaction per unit of work, run again
//! when PostgreSQL rolled it back whole (serialization failure, deadlock) or the connection broke
//! before COMMIT, waiting out an unreachable database; never after a COMMIT whose outcome is unknown.

use super::*;

impl PgStore {
    /// The retry loop around [`PgStore::attempt`]. `rerun`: whether `op` may run again after it
    /// ran once.
    pub(super) fn run<T, E: From<StorageError>>(
        &self,
        access: Access,
        rerun: bool,
        op: &mut dyn FnMut(&mut PgTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(E::from(StorageError::Closed));
        }
        let deadline = Instant::now() + self.inner.options.unavailable_wait;
        let mut conflicts = 0;
        let mut backoff = Duration::from_millis(50);
        loop {
            let (class, error, op_ran) = match self.attempt(access, op, deadline) {
                Ok(value) => return Ok(value),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Again {
                    class,
                    error,
                    op_ran,
                }) => (class, error, op_ran),
            };
            let may_rerun = rerun || !op_ran;
            match class {
                RetryClass::Conflict
                    if may_rerun && conflicts < self.inner.options.conflict_retries =>
                {
                    conflicts += 1;
                    tracing::debug!(event = "postgres_conflict_retry", attempt = conflicts, %error);
                    // A little spread so the two sides of a deadlock do not meet again.
                    std::thread::sleep(Duration::from_millis(spread(conflicts)));
                }
                RetryClass::Unreachable if may_rerun && Instant::now() < deadline => {
                    tracing::debug!(event = "postgres_unreachable_retry", %error);
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(backoff.min(left));
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                RetryClass::Unreachable => return Err(E::from(self.unavailable(&error))),
                _ => return Err(error.into_error().into_op()),
            }
        }
    }

    /// One transaction: BEGIN, `op`, COMMIT.
    fn attempt<T, E: From<StorageError>>(
        &self,
        access: Access,
        op: &mut dyn FnMut(&mut PgTx<'_>) -> Result<T, E>,
        deadline: Instant,
    ) -> Result<T, Failure<E>> {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        let mut conn = self
            .inner
            .pool
            .get_timeout(wait)
            .map_err(|e| Failure::Again {
                class: RetryClass::Unreachable,
                error: Detail::Text(e.to_string()),
                op_ran: false,
            })?;
        let (isolation, read_only) = match access {
            Access::Write => (IsolationLevel::ReadCommitted, false),
            Access::Read => (IsolationLevel::RepeatableRead, true),
        };
        let txn = conn
            .build_transaction()
            .isolation_level(isolation)
            .read_only(read_only)
            .start()
            .map_err(|e| Failure::from_pg(PgFailure::from(e), false))?;
        let mut tx = PgTx {
            txn,
            access,
            aborted: None,
        };
        // An Err (or a panic) drops the transaction: ROLLBACK.
        let result = op(&mut tx);
        let aborted = tx.aborted.take();
        let value = match (result, aborted) {
            (Ok(value), None) => value,
            (Err(e), Some(aborted)) if aborted.class != RetryClass::Never => {
                return Err(Failure::Again {
                    class: aborted.class,
                    error: Detail::Op(e, aborted.error),
                    op_ran: true,
                });
            }
            (Err(e), _) => return Err(Failure::Final(e)),
            // A statement failed, the op went on without a savepoint: COMMIT would roll back
            // silently. Report the failure instead.
            (Ok(_), Some(aborted)) => {
                let message = format!(
                    "a statement failed inside the transaction, which was rolled back: {}",
                    aborted.error
                );
                return Err(match aborted.class {
                    RetryClass::Never => Failure::Final(E::from(StorageError::Postgres(
                        PgFailure::new(PgErrorKind::Other, message),
                    ))),
                    class => Failure::Again {
                        class,
                        error: Detail::Text(message),
                        op_ran: true,
                    },
                });
            }
        };
        tx.txn.commit().map_err(|e| {
            let failure = PgFailure::from(e);
            match failure.kind {
                // A read-only transaction has nothing to lose: like a failure before COMMIT.
                PgErrorKind::Unavailable if access == Access::Write => {
                    Failure::Final(E::from(StorageError::Postgres(PgFailure {
                        kind: PgErrorKind::CommitUnknown,
                        message: format!(
                            "the connection broke during COMMIT, which may or may not have \
                             taken effect: {}",
                            failure.message
                        ),
                        ..failure
                    })))
                }
                _ => Failure::from_pg(failure, true),
            }
        })?;
        Ok(value)
    }
}

/// How an attempt failed, and so whether to run it again.
enum Failure<E> {
    /// PostgreSQL rolled the transaction back whole (or it never started): may run again.
    Again {
        class: RetryClass,
        error: Detail<E>,
        /// Whether the op ran (an `FnOnce` op cannot run again).
        op_ran: bool,
    },
    /// Returned as is.
    Final(E),
}

impl<E: From<StorageError>> Failure<E> {
    /// Sorts a failure of BEGIN or COMMIT.
    fn from_pg(failure: PgFailure, op_ran: bool) -> Failure<E> {
        let class = match failure.kind {
            PgErrorKind::Retryable => RetryClass::Conflict,
            PgErrorKind::Unavailable => RetryClass::Unreachable,
            _ => return Failure::Final(E::from(super::super::error::into_storage(failure))),
        };
        Failure::Again {
            class,
            error: Detail::Pg(failure),
            op_ran,
        }
    }
}

/// The error of a failed attempt, kept to be returned when no retry is left.
enum Detail<E> {
    /// The op's own error (and the database error behind it, for logs).
    Op(E, String),
    /// A PostgreSQL error of BEGIN or COMMIT.
    Pg(PgFailure),
    /// Any other text (a pool timeout).
    Text(String),
}

impl<E: From<StorageError>> Detail<E> {
    /// The error to return.
    fn into_error(self) -> StorageErrorOr<E> {
        match self {
            Detail::Op(e, _) => StorageErrorOr::Op(e),
            Detail::Pg(f) => StorageErrorOr::Storage(super::super::error::into_storage(f)),
            Detail::Text(t) => StorageErrorOr::Storage(StorageError::Postgres(PgFailure::new(
                PgErrorKind::Other,
                t,
            ))),
        }
    }
}

impl<E> std::fmt::Display for Detail<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Detail::Op(_, text) | Detail::Text(text) => f.write_str(text),
            Detail::Pg(failure) => f.write_str(&failure.message),
        }
    }
}

/// Either the op's error or a storage error, turned into the op's error type at the end.
enum StorageErrorOr<E> {
    Op(E),
    Storage(StorageError),
}

impl<E: From<StorageError>> StorageErrorOr<E> {
    fn into_op(self) -> E {
        match self {
            StorageErrorOr::Op(e) => e,
            StorageErrorOr::Storage(s) => E::from(s),
        }
    }
}

/// 5 to 25 ms times the attempt, from the clock's low bits (no RNG needed for a spread).
fn spread(attempt: u32) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(attempt) * (5 + u64::from(nanos % 21))
}
