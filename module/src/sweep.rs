//! The keyspace scanner: rebuilds the expiry schedule after a load (RDB, AOF,
//! full sync) and on promotion to primary, and sweeps the keyspace
//! periodically as a backstop. Both schedule every held lock they visit
//! (scheduling is idempotent), so a lock that arrived without a command
//! (RESTORE, RENAME, a slot migration) is expired all the same.
//!
//! It scans with `RM_Scan` in small steps from a timer, so a large keyspace is
//! covered without stalling the event loop.

use crate::lock_type::{LockValue, LOCK_TYPE};
use crate::node::KeyRef;
use crate::sem_type::{SemValue, SEM_TYPE};
use crate::{expiry, ffi, node};
use std::cell::RefCell;
use std::ffi::c_void;

/// Time between two backstop steps.
const SWEEP_INTERVAL_MS: u64 = 100;
/// Work per step, in µs.
const STEP_BUDGET_US: u64 = 500;

/// How fast the scanner goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Step after step, as fast as the budget allows.
    Rebuild,
    /// One step every `SWEEP_INTERVAL_MS`.
    Sweep,
}

struct Scanner {
    mode: Mode,
    db: i32,
    cursor: Option<ffi::ScanCursor>,
    timer: Option<u64>,
}

thread_local! {
    static SCANNER: RefCell<Scanner> = const {
        RefCell::new(Scanner { mode: Mode::Sweep, db: 0, cursor: None, timer: None })
    };
}

/// Starts the backstop sweep (at module load).
pub fn start(ctx: ffi::Ctx) {
    restart(ctx, Mode::Sweep, SWEEP_INTERVAL_MS);
}

/// Rebuilds the schedule from the keyspace: after a load and on promotion.
/// A replica keeps no schedule.
pub fn rebuild(ctx: ffi::Ctx) {
    expiry::disarm(ctx);
    if ffi::is_primary(ctx) {
        restart(ctx, Mode::Rebuild, 0);
    }
}

fn restart(ctx: ffi::Ctx, mode: Mode, delay_ms: u64) {
    let old = SCANNER.with(|s| {
        let mut s = s.borrow_mut();
        s.mode = mode;
        s.db = 0;
        s.cursor = None;
        s.timer.take()
    });
    if let Some(timer) = old {
        ffi::stop_timer(ctx, timer);
    }
    schedule_step(ctx, delay_ms);
}

fn schedule_step(ctx: ffi::Ctx, delay_ms: u64) {
    let timer = ffi::create_timer(ctx, delay_ms, Some(on_step));
    SCANNER.with(|s| s.borrow_mut().timer = Some(timer));
}

extern "C" fn on_step(ctx: ffi::Ctx, _data: *mut c_void) {
    // Redis frees this timer after we return; forget its id first.
    let (mode, db, cursor) = SCANNER.with(|s| {
        let mut s = s.borrow_mut();
        s.timer = None;
        (s.mode, s.db, s.cursor.take())
    });
    if !ffi::is_primary(ctx) {
        schedule_step(ctx, SWEEP_INTERVAL_MS);
        return;
    }
    let Some(mut cursor) = cursor.or_else(ffi::ScanCursor::new) else {
        schedule_step(ctx, SWEEP_INTERVAL_MS);
        return;
    };
    if !ffi::select_db(ctx, db) {
        // Past the last database: the pass is over.
        expiry::ensure_armed(ctx);
        SCANNER.with(|s| {
            let mut s = s.borrow_mut();
            s.mode = Mode::Sweep;
            s.db = 0;
        });
        schedule_step(ctx, SWEEP_INTERVAL_MS);
        return;
    }
    let started = ffi::monotonic_us();
    let mut more = true;
    while more && ffi::monotonic_us().saturating_sub(started) < STEP_BUDGET_US {
        more = cursor.step(ctx, &mut |name, key| visit(db, name, key));
    }
    expiry::ensure_armed(ctx);
    SCANNER.with(|s| {
        let mut s = s.borrow_mut();
        if more {
            s.cursor = Some(cursor);
        } else {
            s.db += 1;
        }
    });
    schedule_step(
        ctx,
        if mode == Mode::Rebuild {
            0
        } else {
            SWEEP_INTERVAL_MS
        },
    );
}

fn visit(db: i32, name: &[u8], key: *mut redis_module::raw::RedisModuleKey) {
    let ty = ffi::key_module_type(key);
    let value = ffi::key_module_value(key);
    // Every stored lock has a holder and every stored semaphore a lease: a
    // free one has no key, and loading refuses a value without one.
    let marks: Vec<(u64, u64)> = if ty == *LOCK_TYPE.raw_type.borrow() {
        ffi::value_ref::<LockValue>(value)
            .and_then(|lock| lock.holder())
            .map(|h| (h.expires_at, h.fence))
            .into_iter()
            .collect()
    } else if ty == *SEM_TYPE.raw_type.borrow() {
        ffi::value_ref::<SemValue>(value)
            .map(|sem| sem.leases().map(|(_, l)| (l.expires_at, l.fence)).collect())
            .unwrap_or_default()
    } else {
        return;
    };
    if marks.is_empty() {
        return;
    }
    let at = KeyRef {
        db,
        key: name.into(),
    };
    node::with(|node| {
        for (expires_at, fence) in marks {
            node.schedule.insert(expires_at, fence, at.clone());
        }
    });
}
