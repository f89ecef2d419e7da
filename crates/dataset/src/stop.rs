//! The workspace's one cancellation type: every long operation (scraping,
//! renaming, training) takes a [`StopFlag`] and stops cleanly at its next
//! safe point when it is raised (Ctrl-C), leaving work a re-run resumes.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A flag that asks running work to stop at its next safe point. Clones
/// share the flag.
///
/// ```
/// let stop = gemstones_dataset::StopFlag::new();
/// let handler = stop.clone(); // e.g. moved into a Ctrl-C handler
/// handler.stop();
/// assert!(stop.is_stopped());
/// ```
#[derive(Debug, Clone)]
pub struct StopFlag {
    raised: Arc<AtomicBool>,
    /// Checks left before the flag raises itself (`u64::MAX`: never).
    countdown: Arc<AtomicU64>,
}

impl Default for StopFlag {
    fn default() -> Self {
        Self::new()
    }
}

impl StopFlag {
    /// A lowered flag.
    pub fn new() -> Self {
        Self { raised: Arc::default(), countdown: Arc::new(AtomicU64::new(u64::MAX)) }
    }

    /// A flag that raises itself at its `checks`-th check (0: at the
    /// first): work stops after exactly that many safe points, as if
    /// interrupted there (for tests and demonstrations of resuming).
    pub fn after_checks(checks: u64) -> Self {
        Self { raised: Arc::default(), countdown: Arc::new(AtomicU64::new(checks)) }
    }

    /// Raise it.
    pub fn stop(&self) {
        self.raised.store(true, Ordering::SeqCst);
    }

    /// Whether it was raised (each call is one check).
    pub fn is_stopped(&self) -> bool {
        if self.raised.load(Ordering::SeqCst) {
            return true;
        }
        let left = self.countdown.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
            u64::MAX | 0 => None,
            n => Some(n - 1),
        });
        if left == Err(0) {
            self.stop();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_countdown_flag_raises_itself_at_its_check() {
        let flag = StopFlag::after_checks(2);
        assert!(!flag.is_stopped() && !flag.is_stopped());
        assert!(flag.is_stopped() && flag.clone().is_stopped());
        assert!(!StopFlag::default().is_stopped());
        let never = StopFlag::new();
        assert!((0..1000).all(|_| !never.is_stopped()));
        never.clone().stop();
        assert!(never.is_stopped());
        assert!(StopFlag::after_checks(0).is_stopped());
    }
}
