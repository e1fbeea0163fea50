//! The leases of one semaphore, found by token and by expiry.
//!
//! Most semaphores hold a handful of leases, and a key holds one semaphore:
//! a hash map and an expiry tree per key would cost more memory than the
//! leases themselves (a tree's first node alone is some 380 bytes). So a
//! few leases sit in a vector sized to fit, scanned (as fast as hashing
//! for so few); past [`FEW`] they move to a map by token and a tree by
//! expiry, and stay there until the semaphore is forgotten.

use std::collections::{BTreeMap, HashMap};

use crate::semaphore::Lease;

/// The most leases kept in a scanned vector.
pub(crate) const FEW: usize = 16;

/// A set of leases with distinct tokens.
#[derive(Debug)]
pub(crate) enum Leases {
    /// Up to [`FEW`] leases, in no order.
    Few(Vec<(Box<[u8]>, Lease)>),
    /// More: indexed both ways.
    Many(Box<Indexed>),
}

/// The indexed form of many leases.
#[derive(Debug, Default)]
pub(crate) struct Indexed {
    by_token: HashMap<Box<[u8]>, Lease>,
    /// `(expires_at, fence)`: fences are unique, so the pair names a lease.
    by_expiry: BTreeMap<(u64, u64), Box<[u8]>>,
}

impl Default for Leases {
    fn default() -> Self {
        Leases::Few(Vec::new())
    }
}

impl Leases {
    pub(crate) fn len(&self) -> usize {
        match self {
            Leases::Few(few) => few.len(),
            Leases::Many(many) => many.by_token.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get(&self, token: &[u8]) -> Option<&Lease> {
        match self {
            Leases::Few(few) => few.iter().find(|(t, _)| **t == *token).map(|(_, l)| l),
            Leases::Many(many) => many.by_token.get(token),
        }
    }

    /// Every lease, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &Lease)> {
        let (few, many) = match self {
            Leases::Few(few) => (Some(few.iter().map(|(t, l)| (&**t, l))), None),
            Leases::Many(many) => (None, Some(many.by_token.iter().map(|(t, l)| (&**t, l)))),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    /// The lease that expires first (the lowest fence among equal times),
    /// with its token.
    pub(crate) fn earliest(&self) -> Option<(&[u8], &Lease)> {
        match self {
            Leases::Few(few) => few
                .iter()
                .min_by_key(|(_, l)| (l.expires_at, l.fence))
                .map(|(t, l)| (&**t, l)),
            Leases::Many(many) => {
                let (_, token) = many.by_expiry.first_key_value()?;
                many.by_token.get_key_value(token).map(|(t, l)| (&**t, l))
            }
        }
    }

    /// Adds a lease; `token` must hold none (callers remove it first).
    pub(crate) fn insert(&mut self, token: Box<[u8]>, lease: Lease) {
        match self {
            Leases::Few(few) if few.len() < FEW => {
                // Grow by one: a vector's first push reserves four.
                few.reserve_exact(1);
                few.push((token, lease));
            }
            Leases::Few(few) => {
                let mut many = Box::<Indexed>::default();
                for (t, l) in few.drain(..).chain(std::iter::once((token, lease))) {
                    many.insert(t, l);
                }
                *self = Leases::Many(many);
            }
            Leases::Many(many) => many.insert(token, lease),
        }
    }

    pub(crate) fn remove(&mut self, token: &[u8]) -> Option<Lease> {
        match self {
            Leases::Few(few) => {
                let at = few.iter().position(|(t, _)| **t == *token)?;
                let (_, lease) = few.swap_remove(at);
                if few.is_empty() {
                    // Give the allocation back: an idle key keeps nothing.
                    *few = Vec::new();
                }
                Some(lease)
            }
            Leases::Many(many) => {
                let lease = many.by_token.remove(token)?;
                many.by_expiry.remove(&(lease.expires_at, lease.fence));
                Some(lease)
            }
        }
    }
}

impl Indexed {
    fn insert(&mut self, token: Box<[u8]>, lease: Lease) {
        self.by_expiry
            .insert((lease.expires_at, lease.fence), token.clone());
        self.by_token.insert(token, lease);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lease(fence: u64, expires_at: u64) -> Lease {
        Lease {
            permits: 1,
            fence,
            expires_at,
        }
    }

    #[test]
    fn one_lease_past_few_moves_them_to_the_indexed_form_with_nothing_lost() {
        let mut leases = Leases::default();
        for i in 0..FEW as u64 {
            leases.insert(format!("t{i}").into_bytes().into(), lease(i + 1, 100 + i));
        }
        assert!(matches!(leases, Leases::Few(_)));
        leases.insert(b"last"[..].into(), lease(FEW as u64 + 1, 50));
        assert!(matches!(leases, Leases::Many(_)));
        assert_eq!(leases.len(), FEW + 1);
        assert_eq!(leases.get(b"t3"), Some(&lease(4, 103)));
        assert_eq!(
            leases.earliest(),
            Some((&b"last"[..], &lease(FEW as u64 + 1, 50)))
        );
    }

    #[test]
    fn a_lone_lease_costs_one_slot() {
        let mut leases = Leases::default();
        leases.insert(b"t"[..].into(), lease(1, 10));
        let Leases::Few(few) = &leases else {
            panic!("one lease is kept in the vector");
        };
        assert_eq!(few.capacity(), 1);
    }

    proptest! {
        /// Both forms answer like a plain map: same leases, same earliest.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((0u8..24, any::<bool>(), 0u64..50), 0..200)) {
            let mut leases = Leases::default();
            let mut model: HashMap<Vec<u8>, Lease> = HashMap::new();
            for (fence, (token, insert, at)) in (1u64..).zip(ops) {
                let token = vec![token];
                if insert && !model.contains_key(&token) {
                    leases.insert(token.clone().into(), lease(fence, at));
                    model.insert(token, lease(fence, at));
                } else {
                    prop_assert_eq!(leases.remove(&token), model.remove(&token));
                }
                prop_assert_eq!(leases.len(), model.len());
                let want = model
                    .iter()
                    .min_by_key(|(_, l)| (l.expires_at, l.fence))
                    .map(|(t, l)| (t.as_slice(), l));
                prop_assert_eq!(leases.earliest(), want);
                for (t, l) in &model {
                    prop_assert_eq!(leases.get(t), Some(l));
                }
                let mut seen: Vec<_> = leases.iter().map(|(t, l)| (t.to_vec(), l.clone())).collect();
                let mut expected: Vec<_> = model.iter().map(|(t, l)| (t.clone(), l.clone())).collect();
                seen.sort_by(|a, b| a.0.cmp(&b.0));
                expected.sort_by(|a, b| a.0.cmp(&b.0));
                prop_assert_eq!(seen, expected);
            }
        }
    }
}
