//! Fault injection for crash-safety tests.
//!
//! The production code path calls [`point`] at every step that matters and
//! writes through [`AtomicFile`](crate::AtomicFile), which consults
//! [`charge_write`]. Nothing happens unless a test sets one of these variables
//! in the environment of the process it starts:
//!
//! - `UPDRAFT_FAULT_KILL_AT=<name>`: the process aborts (as if killed by
//!   SIGKILL: no destructors, no cleanup) when it reaches the point `<name>`.
//! - `UPDRAFT_FAULT_ENOSPC_AFTER=<bytes>`: durable writes fail with ENOSPC
//!   once the process has written that many bytes through this crate.
//! - `UPDRAFT_FAULT_TRACE=<file>`: every point reached is appended to
//!   `<file>`, so a test can enumerate the steps and then kill at each one.
//! - `UPDRAFT_FAULT_PAUSE_AT=<name>:<milliseconds>`: the process sleeps at the
//!   point `<name>`, so a test can start a second process at that instant.

use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Config {
    kill_at: Option<String>,
    enospc_after: Option<u64>,
    trace: Option<std::path::PathBuf>,
    pause_at: Option<(String, u64)>,
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config {
        kill_at: std::env::var("UPDRAFT_FAULT_KILL_AT").ok(),
        enospc_after: std::env::var("UPDRAFT_FAULT_ENOSPC_AFTER")
            .ok()
            .and_then(|v| v.parse().ok()),
        trace: std::env::var_os("UPDRAFT_FAULT_TRACE").map(Into::into),
        pause_at: std::env::var("UPDRAFT_FAULT_PAUSE_AT").ok().and_then(|v| {
            let (name, millis) = v.rsplit_once(':')?;
            Some((name.to_owned(), millis.parse().ok()?))
        }),
    })
}

static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Marks a step of a crash-safe procedure; see the module docs.
pub fn point(name: &str) {
    let config = config();
    if let Some(trace) = &config.trace {
        // Tracing is a test aid: failing to record a point must not change the outcome.
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trace)
        {
            // One write per line: with O_APPEND a single small write is
            // never interleaved with another thread's or process's.
            let _ = file.write_all(format!("{name}\n").as_bytes());
        }
    }
    if let Some((pause, millis)) = &config.pause_at
        && pause == name
    {
        std::thread::sleep(std::time::Duration::from_millis(*millis));
    }
    if config.kill_at.as_deref() == Some(name) {
        std::process::abort();
    }
}

/// Accounts for `len` bytes about to be written; fails with ENOSPC when the
/// injected budget is exhausted.
pub fn charge_write(len: usize) -> io::Result<()> {
    let Some(limit) = config().enospc_after else {
        return Ok(());
    };
    let before = WRITTEN.fetch_add(len as u64, Ordering::Relaxed);
    if before + len as u64 > limit {
        return Err(io::Error::from(io::ErrorKind::StorageFull));
    }
    Ok(())
}
