//! What CMD runs under: the lock, a semaphore lease (`--limit`), or a
//! leadership (`baton elect`); all answer the same calls.

use std::future::Future;

use baton_client::{Leadership, LockGuard, SemGuard};

/// A lock, a lease or a leadership, as the supervision of CMD sees it.
pub(super) enum Held {
    Lock(LockGuard),
    Lease(SemGuard),
    Leadership(Leadership),
}

impl Held {
    pub(super) fn key(&self) -> &str {
        match self {
            Held::Lock(g) => g.key(),
            Held::Lease(g) => g.key(),
            Held::Leadership(g) => g.name(),
        }
    }

    pub(super) fn fence(&self) -> u64 {
        match self {
            Held::Lock(g) => g.fence(),
            Held::Lease(g) => g.fence(),
            Held::Leadership(g) => g.term(),
        }
    }

    /// The token of a lock or lease (a leadership keeps its own).
    pub(super) fn token(&self) -> Option<&str> {
        match self {
            Held::Lock(g) => Some(g.token()),
            Held::Lease(g) => Some(g.token()),
            Held::Leadership(_) => None,
        }
    }

    pub(super) fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        match self {
            Held::Lock(g) => g.lost_token(),
            Held::Lease(g) => g.lost_token(),
            Held::Leadership(g) => g.lost_token(),
        }
        .cancelled_owned()
    }

    pub(super) fn is_lost(&self) -> bool {
        match self {
            Held::Lock(g) => g.is_lost(),
            Held::Lease(g) => g.is_lost(),
            Held::Leadership(g) => g.is_lost(),
        }
    }

    pub(super) async fn release(self) -> baton_client::Result<bool> {
        match self {
            Held::Lock(g) => g.release().await,
            Held::Lease(g) => g.release().await,
            Held::Leadership(g) => g.resign().await,
        }
    }
}
