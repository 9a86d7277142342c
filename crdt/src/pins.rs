//! The workspace's pin ledger: which blobs must stay available until when,
//! and who has committed to keep them. One automerge document per
//! workspace and *day of deadlines* ([`Epoch`]), each laid out as
//!
//! ```text
//! { kind: "pins", dept: <workspace id>,
//!   requests: { <blob>: { dept, size, until, by } },
//!   commits:  { "<blob>/<member>": until },
//!   nodes:    { <member>: { quota, used, refused } } }
//! ```
//!
//! Hashes, sizes, deadlines and member ids only: nothing in it is readable
//! content, so every member — pin nodes included — holds it. A commitment's
//! key names its pinner, so two pinners committing at once never collide in
//! one automerge key. `nodes` is where pin nodes report their quota.
//!
//! A request or a commitment lives in the day its deadline falls in, and
//! nothing in a day's document is valid past that day: once the day (and the
//! skew margin) has passed, the whole document is dropped, unread. So what
//! a node holds follows what is live, not the workspace's history: with the
//! 72-hour floor, four or five days. A quota report goes in the day of its
//! writing (a pin node writes one again on a new day).
//!
//! Each day's first change is built alike on every node from the workspace
//! id and the day ([`genesis`]).

mod rules;
mod view;
pub mod write;

use automerge::{Automerge, AutomergeError, ObjType, ROOT};

pub(crate) use rules::authorize;
pub use rules::PinsRules;
pub use view::{Commitment, PinNodeReport, PinRequest, Pins};

use crate::Millis;

/// A day of deadlines: the `n`th since the Unix epoch (UTC). The pin
/// ledger's documents are per day.
pub type Epoch = i64;

/// How long an [`Epoch`] is. A day keeps the documents a node holds few and
/// even in size: with the 72-hour floor, four or five live days hold
/// between three and four days of shares (a week per document would swing
/// between three and ten).
pub const EPOCH_MS: Millis = 24 * 3600 * 1000;

/// How long past a deadline a blob is still kept, and its pinners still
/// count: clocks of different nodes may disagree by up to this much without
/// breaking the promise.
pub const SKEW_MARGIN_MS: Millis = 15 * 60 * 1000;

/// The day deadline `until` falls in.
pub fn epoch_of(until: Millis) -> Epoch {
    until.div_euclid(EPOCH_MS)
}

/// When day `epoch` ends: no deadline in its document is this late.
pub fn epoch_end(epoch: Epoch) -> Millis {
    epoch.saturating_add(1).saturating_mul(EPOCH_MS)
}

/// Whether day `epoch`'s ledger still matters at `now` (by the clock of the
/// node asking): some deadline in it, plus the skew margin, is still ahead,
/// and the day is no further ahead than the longest retention reaches. A
/// node keeps, offers and accepts only such days; the rest it drops whole.
pub fn day_is_live(epoch: Epoch, now: Millis) -> bool {
    use crate::roster::PinPolicy;
    let latest = now
        .saturating_add(PinPolicy::MAX_RETENTION_MS)
        .saturating_add(SKEW_MARGIN_MS);
    epoch_end(epoch).saturating_add(SKEW_MARGIN_MS) > now && epoch <= epoch_of(latest)
}

/// The deterministic first change of the ledger of day `epoch`.
pub fn genesis(workspace: &str, epoch: Epoch) -> Result<Automerge, AutomergeError> {
    crate::genesis::deterministic("pins", &format!("{workspace}/{epoch}"), |tx| {
        use automerge::transaction::Transactable;
        tx.put_object(ROOT, "requests", ObjType::Map)?;
        tx.put_object(ROOT, "commits", ObjType::Map)?;
        tx.put_object(ROOT, "nodes", ObjType::Map)?;
        Ok(())
    })
}

/// The key of `member`'s commitment to `blob`.
pub fn commit_key(blob: &str, member: &crate::MemberId) -> String {
    format!("{blob}/{member}")
}

/// Whether `s` is a blob hash as the ledger writes it: 64 lowercase hex digits.
pub(crate) fn is_blob_hex(s: &str) -> bool {
    s.len() == 64 && crate::is_lower_hex(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Millis = 1_800_000_000_000;

    #[test]
    fn a_day_lives_until_its_end_and_the_margin_and_no_further_ahead_than_retention_reaches() {
        let day = epoch_of(T);
        assert!(epoch_end(day) > T && epoch_end(day - 1) <= T);
        assert!(day_is_live(day, T));
        assert!(day_is_live(day, epoch_end(day) + SKEW_MARGIN_MS - 1));
        assert!(!day_is_live(day, epoch_end(day) + SKEW_MARGIN_MS));
        assert!(!day_is_live(day - 30, T), "a month ago");
        let ten_years = crate::roster::PinPolicy::MAX_RETENTION_MS;
        assert!(day_is_live(epoch_of(T + ten_years), T));
        assert!(
            !day_is_live(epoch_of(T + ten_years) + 2, T),
            "beyond any retention"
        );
        assert!(!day_is_live(Epoch::MAX, T) && !day_is_live(Epoch::MIN, T));
    }

    #[test]
    fn each_day_has_its_own_genesis() {
        let heads = |day| genesis("ws", day).unwrap().get_heads();
        assert_eq!(heads(1), heads(1));
        assert_ne!(heads(1), heads(2));
    }
}
