//! "Has shutdown been signalled?" — shared by threads and async tasks.
//!
//! One [`Shutdown`] is created by the daemon and handed to every component. Threads poll
//! [`Shutdown::is_triggered`] at loop boundaries or sleep with [`Shutdown::wait_timeout`] (which returns
//! early when shutdown starts); async tasks await [`Shutdown::wait`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A one-way flag: once triggered it stays triggered.
#[derive(Default)]
pub struct Shutdown {
    triggered: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
    notify: tokio::sync::Notify,
}

impl Shutdown {
    /// A new, untriggered flag.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Signals shutdown and wakes every waiter. Idempotent.
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cv.notify_all();
        self.notify.notify_waiters();
    }

    /// Whether shutdown has been signalled.
    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Sleeps up to `timeout` (blocking), returning early with `true` once shutdown is signalled.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_triggered() {
            return true;
        }
        let _unused = self
            .cv
            .wait_timeout_while(guard, timeout, |_| !self.is_triggered())
            .unwrap_or_else(|e| e.into_inner());
        self.is_triggered()
    }

    /// Resolves once shutdown is signalled.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// A coalescing wake-up for a thread that sleeps between bursts of work (the block processor).
///
/// Any number of [`Wakeup::wake`] calls while the thread is busy collapse into one pending wake-up.
#[derive(Default)]
pub struct Wakeup {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Wakeup {
    /// A wake-up with nothing pending.
    pub fn new() -> Wakeup {
        Wakeup::default()
    }

    /// Marks work as pending and wakes the sleeper.
    pub fn wake(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *pending = true;
        self.cv.notify_all();
    }

    /// Sleeps until woken or `timeout` passes; clears the pending mark. Returns whether it was woken.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (mut pending, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |pending| !*pending)
            .unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *pending, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wait_timeout_returns_early_once_triggered() {
        let shutdown = Arc::new(Shutdown::new());
        let s2 = shutdown.clone();
        let t = std::thread::spawn(move || s2.wait_timeout(Duration::from_secs(60)));
        shutdown.trigger();
        assert!(t.join().unwrap());
        assert!(shutdown.wait_timeout(Duration::from_secs(60)));
    }

    #[test]
    fn wait_timeout_reports_false_when_not_triggered() {
        let shutdown = Shutdown::new();
        let start = Instant::now();
        assert!(!shutdown.wait_timeout(Duration::from_millis(10)));
        assert!(start.elapsed() >= Duration::from_millis(10));
    }

    #[tokio::test]
    async fn async_wait_resolves_after_trigger() {
        let shutdown = Arc::new(Shutdown::new());
        let s2 = shutdown.clone();
        let waiter = tokio::spawn(async move { s2.wait().await });
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn wakeups_coalesce_and_are_consumed() {
        let wakeup = Wakeup::new();
        wakeup.wake();
        wakeup.wake();
        assert!(wakeup.wait(Duration::from_secs(10)));
        assert!(!wakeup.wait(Duration::from_millis(1)));
    }
}
