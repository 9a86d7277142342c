//! The second half of a record id (a post's, a file's): what makes it
//! unique among its author's, in the order the author made them.
//!
//! Why the order matters: automerge keeps a map's operations sorted by key,
//! and finds an object's parent (which every rule asks, for each operation
//! of a change it judges) by looking its creating operation up by counter,
//! through a per-block index of counters. Under random keys each new record
//! lands in a random block of its map, every block soon spans the whole
//! history's counters, and each lookup walks all of them: in a library of
//! 300,000 random ids, placing the holders map of a file three days old
//! took 2.5 ms, against 6 µs when the ids ascend (`examples/id_order.rs`,
//! retired since files are no longer objects;
//! BENCHMARKS.md, "The year, with ascending ids"). Every change judged
//! pays that for each of its operations, so shares and holder changes
//! cost more as the library grew.
//!
//! A nonce is the time in milliseconds, shifted up 16 bits, with 16 random
//! bits below; and always above the last one this [`Nonces`] gave, so a
//! clock that stands still (a test's, a simulation's) or steps back still
//! gives ids that ascend and never repeat. Ids made by two nodes of one
//! member (one key on two machines) rarely meet: the same millisecond and
//! the same 16 random bits; the rules then refuse the second as a record
//! that already exists, and the share or post fails with that error.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Millis;

/// A record id's author prefix and nonce: `None` unless it is 32 lowercase
/// hex digits, as `feed::post_id` and `library::file_id` make them.
pub(crate) fn split_id(id: &str) -> Option<(&str, u64)> {
    if id.len() != 32 || !crate::is_lower_hex(id) {
        return None;
    }
    Some((&id[..16], u64::from_str_radix(&id[16..], 16).ok()?))
}

/// The time a nonce carries: its top 48 bits, milliseconds (so always an
/// `i64`).
pub(crate) fn time_of(nonce: u64) -> Millis {
    (nonce >> 16) as Millis
}

/// Hands out ascending nonces: one per node.
#[derive(Debug, Default)]
pub struct Nonces {
    last: AtomicU64,
}

impl Nonces {
    /// A nonce for a record made at `now`: above every one given before.
    pub fn next(&self, now: Millis) -> [u8; 8] {
        let at = u64::try_from(now).unwrap_or(0) << 16 | u64::from(rand::random::<u16>());
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = at.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next.to_be_bytes(),
                Err(seen) => last = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_800_000_000_000;

    #[test]
    fn nonces_ascend_as_time_goes_on() {
        let nonces = Nonces::default();
        let a = nonces.next(T);
        let b = nonces.next(T + 1);
        let c = nonces.next(T + 60_000);
        assert!(a < b && b < c, "{a:?} {b:?} {c:?}");
        // The time is readable in the top 48 bits.
        assert_eq!(u64::from_be_bytes(c) >> 16, (T + 60_000) as u64);
    }

    #[test]
    fn a_clock_that_stands_still_or_steps_back_still_gives_new_ones() {
        let nonces = Nonces::default();
        let mut seen = Vec::new();
        for now in [T, T, T, T - 5_000, T - 5_000, T] {
            for _ in 0..1000 {
                seen.push(nonces.next(now));
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "not ascending");
    }

    #[test]
    fn ids_made_from_them_sort_in_the_order_they_were_made() {
        let nonces = Nonces::default();
        let author = crate::Signer::from_secret([7; 32]).id();
        let ids: Vec<String> = (0..100)
            .map(|i| crate::library::file_id(&author, nonces.next(T + i / 10)))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|id| crate::library::is_file_id(id)));
    }

    #[test]
    fn threads_sharing_one_never_get_the_same() {
        let nonces = std::sync::Arc::new(Nonces::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let nonces = nonces.clone();
                std::thread::spawn(move || (0..5000).map(|_| nonces.next(T)).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<[u8; 8]> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("a thread panicked"))
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
