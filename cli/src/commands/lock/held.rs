//! What `baton lock` holds while CMD runs: the lock, or with `--limit` a
//! semaphore lease; both answer the same calls.

use std::future::Future;

use baton_client::{LockGuard, SemGuard};

/// A lock or a lease, as the supervision of CMD sees it.
pub(super) enum Held {
    Lock(LockGuard),
    Lease(SemGuard),
}

impl Held {
    pub(super) fn key(&self) -> &str {
        match self {
            Held::Lock(g) => g.key(),
            Held::Lease(g) => g.key(),
        }
    }

    pub(super) fn fence(&self) -> u64 {
        match self {
            Held::Lock(g) => g.fence(),
            Held::Lease(g) => g.fence(),
        }
    }

    pub(super) fn token(&self) -> &str {
        match self {
            Held::Lock(g) => g.token(),
            Held::Lease(g) => g.token(),
        }
    }

    pub(super) fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        match self {
            Held::Lock(g) => g.lost_token(),
            Held::Lease(g) => g.lost_token(),
        }
        .cancelled_owned()
    }

    pub(super) fn is_lost(&self) -> bool {
        match self {
            Held::Lock(g) => g.is_lost(),
            Held::Lease(g) => g.is_lost(),
        }
    }

    pub(super) async fn release(self) -> baton_client::Result<bool> {
        match self {
            Held::Lock(g) => g.release().await,
            Held::Lease(g) => g.release().await,
        }
    }
}
