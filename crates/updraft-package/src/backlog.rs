//! [`Backlog`]: how much of an unpack's input is not yet durable on disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// How far an unpack's input is durable, shared with whatever produces that
/// input (the download), so it need not run far ahead of the disk: what is
/// held between the input's producer and the last synced file is what a
/// power loss takes.
///
/// The input's reader reports how far it has read ([`read_to`](Self::read_to));
/// an [`Unpack`](crate::Unpack) given the backlog
/// ([`Unpack::backlog`](crate::Unpack::backlog)) reports the files it closes
/// and syncs. [`held_from`](Self::held_from) is then the first input byte
/// whose output may still be lost. It only paces; nothing trusts it.
#[derive(Default)]
pub struct Backlog {
    /// Input bytes read so far.
    read: AtomicU64,
    /// Input bytes read when the last file of the synced prefix was closed.
    durable: AtomicU64,
    /// Files closed and not yet synced.
    unsynced: AtomicU64,
    /// Called whenever [`held_from`](Self::held_from) or the read position may have moved.
    waker: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog")
            .field("read", &self.read.load(Ordering::Relaxed))
            .field("durable", &self.durable.load(Ordering::Relaxed))
            .field("unsynced", &self.unsynced.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Backlog {
    /// A backlog for input that starts at byte `from` (a resumed unpack
    /// starts inside its package).
    pub fn starting_at(from: u64) -> Self {
        Self {
            read: AtomicU64::new(from),
            durable: AtomicU64::new(from),
            ..Self::default()
        }
    }

    /// Calls `wake` whenever [`held_from`](Self::held_from) or the read
    /// position may have moved
    /// (from the reading thread or a sync thread), replacing an earlier one.
    pub fn on_change(&self, wake: impl Fn() + Send + Sync + 'static) {
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(wake));
    }

    /// The input has been read up to byte `position`.
    pub fn read_to(&self, position: u64) {
        self.read.store(position, Ordering::Release);
        self.wake();
    }

    /// Input bytes read so far.
    pub fn read_position(&self) -> u64 {
        self.read.load(Ordering::Acquire)
    }

    /// The first input byte whose output may not be on disk yet: where the
    /// input was when the last synced file was closed, or, when no closed
    /// file waits for its sync, how far it has been read (a file still being
    /// written cannot be synced before it is complete, so it never holds the
    /// input back).
    pub fn held_from(&self) -> u64 {
        if self.unsynced.load(Ordering::Acquire) == 0 {
            self.read.load(Ordering::Acquire)
        } else {
            self.durable.load(Ordering::Acquire)
        }
    }

    /// A file was closed: it waits for its sync. ([`Unpack`](crate::Unpack)
    /// calls this and [`synced`](Self::synced); a consumer that makes its
    /// output durable by other means can too.)
    pub fn closed(&self) {
        self.unsynced.fetch_add(1, Ordering::AcqRel);
    }

    /// A file's sync ended (well or not: a failure is reported by the
    /// unpack, and must not leave the producer waiting); `durable` is the
    /// input position at the close of the last file of the synced prefix,
    /// when that prefix grew.
    pub fn synced(&self, durable: Option<u64>) {
        if let Some(position) = durable {
            self.durable.fetch_max(position, Ordering::AcqRel);
        }
        let _ = self
            .unsynced
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.wake();
    }

    fn wake(&self) {
        if let Some(wake) = &*self.waker.lock().unwrap_or_else(PoisonError::into_inner) {
            wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_is_held_from_the_last_synced_close_until_nothing_waits() {
        let backlog = Backlog::starting_at(100);
        assert_eq!(backlog.held_from(), 100);
        backlog.read_to(300);
        // Nothing closed waits for a sync: a file being written holds nothing back.
        assert_eq!(backlog.held_from(), 300);
        backlog.closed(); // closed at 300
        backlog.read_to(500);
        backlog.closed(); // closed at 500
        backlog.read_to(700);
        assert_eq!(backlog.held_from(), 100, "two closed files wait");
        backlog.synced(Some(300));
        assert_eq!(backlog.held_from(), 300, "the first is synced");
        backlog.synced(Some(500));
        assert_eq!(backlog.held_from(), 700, "none waits: as far as read");
    }

    #[test]
    fn the_waker_hears_every_move() {
        let backlog = Backlog::starting_at(0);
        let calls = std::sync::Arc::new(AtomicU64::new(0));
        let counted = std::sync::Arc::clone(&calls);
        backlog.on_change(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        backlog.read_to(10);
        backlog.closed();
        backlog.read_to(20);
        backlog.synced(Some(10));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }
}
