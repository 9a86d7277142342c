//! Audits: proof that a pinner holds what it committed to keep.
//!
//! A commitment in the pin ledger is only a claim. A pin node whose disk
//! lost blobs without its noticing, or one that lies, would be counted as
//! a replica while it cannot serve one. So now and then (a round at most
//! every [`AUDIT_EVERY_MS`], with its pass) a member asks a pinner of its
//! departments' files — picked at random among the commitments of
//! connected pinners — for a random piece of a blob it committed to, and
//! checks it against the blob's hash (without storing it). A pinner that says it
//! does not have the blob, sends a piece that does not verify, or leaves
//! [`UNANSWERED_LIMIT`] audits in a row refused or unanswered while
//! connected, stops counting as a pinner of that blob on this node, exactly
//! as a lost one does: others step in. The next round re-checks one failed
//! verdict first, and restores the pinner once it holds the blob again.
//!
//! Each member runs its own audits and trusts only them: a verdict is
//! never written to the ledger, where a hostile member could forge one.
//!
//! The load on a pinner must not grow with a department: in one of more
//! than [`AUDITORS_PER_DEPT`] members, each member audits its files only
//! in that fraction of its rounds. A department of 1,000 then costs its
//! pinners about 50 × 2 pieces (25 MiB) every 5 minutes, whatever its size
//! — per department: a pin node that keeps the files of 20 departments
//! serves about 20 times that.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use meshwork_blobs::{check_piece, piece_count, BlobHash};
use meshwork_crdt::pins::PinRequest;
use meshwork_crdt::{MemberId, Millis};
use rand::seq::SliceRandom;
use rand::Rng;
use tracing::{debug, info, warn};

use super::ledger::{Ledger, SKEW_MARGIN_MS};
use super::Node;
use crate::net::Command;
use crate::wire::BlobResponse;

/// The least time between two rounds of audits on one node (node clock).
pub const AUDIT_EVERY_MS: Millis = 5 * 60 * 1000;
/// Commitments a round audits at most: one that failed before, if any
/// (so that a verdict is re-checked soon), and the rest at random.
pub const AUDITS_PER_ROUND: usize = 2;
/// About how many of a department's members audit its pinners per round
/// interval (see the module doc).
pub const AUDITORS_PER_DEPT: usize = 50;
/// How long an audit waits for its piece.
pub const AUDIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Audits in a row a connected pinner may leave unanswered (refused, timed
/// out) before that counts as failing: once may be a roster that has not
/// reached it yet, or a busy disk.
pub const UNANSWERED_LIMIT: u8 = 2;

/// What this node's audits have found, and when it last ran a round.
#[derive(Default)]
pub(super) struct AuditBook {
    /// Blob → pinners whose last audit of it failed.
    failed: HashMap<String, HashSet<MemberId>>,
    /// Pinner → audits in a row it left unanswered while connected.
    unanswered: HashMap<MemberId, u8>,
    last_round: Option<Millis>,
}

pub(super) type Audits = std::sync::Mutex<AuditBook>;

impl AuditBook {
    /// Records what `pinner` answered about `blob`: Some(passed), or None
    /// while an unanswered audit is not yet a verdict.
    pub(super) fn record(&mut self, pinner: MemberId, blob: &str, answer: Answer) -> Option<bool> {
        let why = match answer {
            Answer::Holds => {
                self.unanswered.remove(&pinner);
                let was_failed = self.failed.get_mut(blob).is_some_and(|p| p.remove(&pinner));
                if was_failed {
                    info!(%pinner, blob, "a pinner that failed an audit holds the blob again");
                }
                return Some(true);
            }
            Answer::Lacks(why) => why,
            Answer::Unanswered(why) => {
                let strikes = self.unanswered.entry(pinner).or_default();
                *strikes = strikes.saturating_add(1);
                if *strikes < UNANSWERED_LIMIT {
                    debug!(%pinner, blob, "an audit went unanswered ({why})");
                    return None;
                }
                format!("{why}, {strikes} audits in a row")
            }
        };
        warn!(%pinner, blob, "pinner failed an audit ({why}): it no longer counts for this blob here");
        self.failed
            .entry(blob.to_owned())
            .or_default()
            .insert(pinner);
        Some(false)
    }

    pub(super) fn has_failed(&self, pinner: &MemberId, blob: &str) -> bool {
        self.failed.get(blob).is_some_and(|p| p.contains(pinner))
    }
}

/// What one audit found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditResult {
    /// The pinner asked.
    pub pinner: MemberId,
    /// The blob.
    pub blob: String,
    /// Whether it sent a piece that verified.
    pub passed: bool,
}

/// How an audit's question was answered.
pub(super) enum Answer {
    /// A piece that verified.
    Holds,
    /// "Not here", or a piece that does not verify.
    Lacks(String),
    /// A refusal, or no answer in time, from a connected pinner.
    Unanswered(String),
}

impl Node {
    /// A round of audits, if one is due: up to [`AUDITS_PER_ROUND`]
    /// commitments of others on live requests of this member's departments.
    /// Runs without the pass lock, each audit bounded by [`AUDIT_TIMEOUT`].
    pub(super) async fn audit_pinners(&self, ledger: &Ledger, now: Millis) -> Vec<AuditResult> {
        let audits = self
            .pick_audits(ledger, now)
            .into_iter()
            .map(|(pinner, r)| async move {
                let passed = self.audit(pinner, r).await?;
                Some(AuditResult {
                    pinner,
                    blob: r.blob.clone(),
                    passed,
                })
            });
        futures::future::join_all(audits)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The commitments this round audits: none if the last round was less
    /// than [`AUDIT_EVERY_MS`] ago. Forgets verdicts on commitments that
    /// have ended.
    fn pick_audits<'a>(&self, ledger: &'a Ledger, now: Millis) -> Vec<(MemberId, &'a PinRequest)> {
        let failed_before = {
            let mut book = self.audit_book();
            if book
                .last_round
                .is_some_and(|last| now.saturating_sub(last) < AUDIT_EVERY_MS)
            {
                return Vec::new();
            }
            book.last_round = Some(now);
            book.failed.retain(|blob, pinners| {
                let commits = ledger.commits.get(blob).map(Vec::as_slice).unwrap_or(&[]);
                pinners.retain(|p| {
                    commits
                        .iter()
                        .any(|c| c.member == *p && c.until.saturating_add(SKEW_MARGIN_MS) >= now)
                });
                !pinners.is_empty()
            });
            book.failed.clone()
        };
        let me = self.member_id();
        let mut rng = rand::thread_rng();
        // Each department's files take part in this round with a chance
        // that keeps its auditors to about AUDITORS_PER_DEPT.
        let in_round: HashSet<&str> = ledger
            .roster
            .depts
            .iter()
            .filter(|d| d.members.contains(&me))
            .filter(|d| {
                let share = AUDITORS_PER_DEPT as f64 / d.members.len().max(1) as f64;
                rng.gen_bool(share.min(1.0))
            })
            .map(|d| d.id.as_str())
            .collect();
        // Not near a deadline: a pinner whose clock runs ahead may rightly
        // have collected the blob already.
        let auditable = |until: Millis| until.saturating_sub(SKEW_MARGIN_MS) > now;
        let (mut again, mut fresh): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
        for r in ledger
            .requests
            .iter()
            .filter(|r| auditable(r.until) && in_round.contains(r.dept.as_str()))
        {
            for c in ledger.commits.get(&r.blob).into_iter().flatten() {
                if c.member == me || !auditable(c.until) || !self.connected(&c.member) {
                    continue;
                }
                let before = failed_before
                    .get(&r.blob)
                    .is_some_and(|p| p.contains(&c.member));
                if before { &mut again } else { &mut fresh }.push((c.member, r));
            }
        }
        let mut picked: Vec<(MemberId, &PinRequest)> =
            again.choose(&mut rng).copied().into_iter().collect();
        picked.extend(
            fresh
                .choose_multiple(&mut rng, AUDITS_PER_ROUND - picked.len())
                .copied(),
        );
        picked
    }

    /// Whether `member`'s device is connected to this node now.
    fn connected(&self, member: &MemberId) -> bool {
        self.shared
            .peer_of(member)
            .is_some_and(|peer| self.shared.presence(|p| p.connected(&peer)))
    }

    /// Asks `pinner` for a random piece of `r`'s blob and records the
    /// verdict: Some(passed), or None when nothing could be learnt yet.
    async fn audit(&self, pinner: MemberId, r: &PinRequest) -> Option<bool> {
        let answer = self.ask(pinner, r).await?;
        self.audit_book().record(pinner, &r.blob, answer)
    }

    /// Sends the audit's question; None when it could not be asked or the
    /// pinner is not connected.
    async fn ask(&self, pinner: MemberId, r: &PinRequest) -> Option<Answer> {
        let hash: BlobHash = r.blob.parse().ok()?;
        let peer = self.shared.peer_of(&pinner)?;
        let workspace = self.shared.with_ws(|ws| Ok(ws.meta.id)).ok()?;
        let piece = rand::random::<u64>() % piece_count(r.size);
        let net = self.net().await?;
        let rx = net.fetch_piece(peer, workspace, &hash, piece).await;
        let answer = match tokio::time::timeout(AUDIT_TIMEOUT, rx).await {
            Err(_) => Answer::Unanswered("no answer in time".into()),
            Ok(Ok(Ok(BlobResponse::Piece(bytes)))) => {
                let size = r.size;
                let checked =
                    tokio::task::spawn_blocking(move || check_piece(&hash, size, piece, &bytes))
                        .await
                        .ok()?;
                match checked {
                    Ok(()) => Answer::Holds,
                    Err(e) => {
                        let why = format!(
                            "sent piece {piece} of a blob it pins that does not verify: {e}"
                        );
                        net.send(Command::Penalise(peer, why.clone())).await;
                        Answer::Lacks(why)
                    }
                }
            }
            Ok(Ok(Ok(BlobResponse::NotHere))) => Answer::Lacks("says it does not have it".into()),
            Ok(Ok(Ok(BlobResponse::Refused(why)))) => Answer::Unanswered(format!("refused: {why}")),
            // Not connected, or the connection went: presence judges that.
            Ok(Ok(Err(_))) | Ok(Err(_)) => return None,
        };
        Some(answer)
    }

    pub(super) fn audit_book(&self) -> std::sync::MutexGuard<'_, AuditBook> {
        self.audits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u8) -> MemberId {
        MemberId::from_bytes(&[n; 32]).unwrap()
    }

    #[test]
    fn verdicts_fail_at_once_or_after_unanswered_strikes_and_clear_on_a_pass() {
        let mut book = AuditBook::default();
        let (pia, pete) = (member(1), member(2));
        assert_eq!(
            book.record(pia, "b1", Answer::Lacks("not here".into())),
            Some(false)
        );
        assert!(book.has_failed(&pia, "b1") && !book.has_failed(&pia, "b2"));
        assert_eq!(book.record(pia, "b1", Answer::Holds), Some(true));
        assert!(!book.has_failed(&pia, "b1"));

        // Once unanswered is no verdict; twice in a row is, for that blob.
        assert_eq!(
            book.record(pete, "b1", Answer::Unanswered("refused".into())),
            None
        );
        assert!(!book.has_failed(&pete, "b1"));
        assert_eq!(
            book.record(pete, "b2", Answer::Unanswered("timeout".into())),
            Some(false)
        );
        assert!(book.has_failed(&pete, "b2") && !book.has_failed(&pete, "b1"));
        // A pass in between starts the count again.
        assert_eq!(book.record(pete, "b2", Answer::Holds), Some(true));
        assert_eq!(
            book.record(pete, "b3", Answer::Unanswered("refused".into())),
            None
        );
        assert!(!book.has_failed(&pete, "b3"));
    }
}
