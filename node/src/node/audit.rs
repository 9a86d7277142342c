//! Audits: proof that a pinner holds what it committed to keep.
//!
//! A commitment in the pin ledger is only a claim. A pin node whose disk
//! lost blobs without its noticing, or one that lies, would be counted as
//! a replica while it cannot serve one. So now and then (a round at most
//! every [`AUDIT_EVERY_MS`], with its pass) a member asks a pinner of its
//! departments' files — picked at random among the commitments of pinners
//! in sight — for a random piece of a blob it committed to, and checks it
//! against the blob's hash (without storing it). A pinner that says it does not have the blob, or sends a piece
//! that does not verify, stops counting as a pinner of that blob on this
//! node, exactly as a lost one does: others step in. A later audit that
//! finds the blob there again restores it.
//!
//! Each member runs its own audits and trusts only them: a verdict is
//! never written to the ledger, where a hostile member could forge one.
//!
//! The load on a pinner must not grow with a department: in one of more
//! than [`AUDITORS_PER_DEPT`] members, each member audits its files only
//! in that fraction of its rounds. A department of 1,000 then costs its
//! pinners about 50 × 2 pieces (25 MiB) every 5 minutes, whatever its size.

use std::collections::HashSet;

use meshwork_blobs::{check_piece, piece_count, BlobHash};
use meshwork_crdt::pins::PinRequest;
use meshwork_crdt::{MemberId, Millis};
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::pins::{Ledger, SKEW_MARGIN_MS};
use super::Node;
use crate::net::Command;
use crate::wire::{BlobRequest, BlobResponse};

/// The least time between two rounds of audits on one node (node clock).
pub const AUDIT_EVERY_MS: Millis = 5 * 60 * 1000;
/// Commitments a round audits at most.
pub const AUDITS_PER_ROUND: usize = 2;
/// About how many of a department's members audit its pinners per round
/// interval (see the module doc).
pub const AUDITORS_PER_DEPT: usize = 50;

/// What this node's audits have found, and when it last ran a round.
#[derive(Default)]
pub(super) struct AuditBook {
    /// Pinners whose last audit of a blob failed, as (pinner, blob).
    failed: HashSet<(MemberId, String)>,
    last_round: Option<Millis>,
}

pub(super) type Audits = std::sync::Mutex<AuditBook>;

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

impl Node {
    /// A round of audits, if one is due: up to [`AUDITS_PER_ROUND`]
    /// commitments of others on live requests of this member's departments.
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
    /// than [`AUDIT_EVERY_MS`] ago.
    fn pick_audits<'a>(&self, ledger: &'a Ledger, now: Millis) -> Vec<(MemberId, &'a PinRequest)> {
        {
            let mut book = self.audit_book();
            if book
                .last_round
                .is_some_and(|last| now.saturating_sub(last) < AUDIT_EVERY_MS)
            {
                return Vec::new();
            }
            book.last_round = Some(now);
        }
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
        let mut candidates: Vec<(MemberId, &PinRequest)> = Vec::new();
        for r in ledger
            .requests
            .iter()
            .filter(|r| auditable(r.until) && in_round.contains(r.dept.as_str()))
        {
            for c in ledger.commits.get(&r.blob).into_iter().flatten() {
                if c.member != me && auditable(c.until) && !self.lost(&c.member, now) {
                    candidates.push((c.member, r));
                }
            }
        }
        candidates
            .choose_multiple(&mut rng, AUDITS_PER_ROUND)
            .copied()
            .collect()
    }

    /// Asks `pinner` for a random piece of `r`'s blob: Some(verdict), or
    /// None when nothing could be learnt (not connected, no answer).
    async fn audit(&self, pinner: MemberId, r: &PinRequest) -> Option<bool> {
        let hash: BlobHash = r.blob.parse().ok()?;
        let peer = self.shared.peer_of(&pinner)?;
        let workspace = self.shared.with_ws(|ws| Ok(ws.meta.id)).ok()?;
        let piece = rand::random::<u64>() % piece_count(r.size);
        let net = self.net().await?;
        let (tx, rx) = oneshot::channel();
        let request = BlobRequest {
            workspace,
            hash: *hash.as_bytes(),
            piece,
        };
        net.send(Command::FetchPiece(peer, request, tx)).await;
        let failure = match rx.await {
            Ok(Ok(BlobResponse::Piece(bytes))) => {
                let size = r.size;
                let checked =
                    tokio::task::spawn_blocking(move || check_piece(&hash, size, piece, &bytes))
                        .await
                        .ok()?;
                match checked {
                    Ok(()) => None,
                    Err(e) => {
                        let why = format!(
                            "sent piece {piece} of a blob it pins that does not verify: {e}"
                        );
                        net.send(Command::Penalise(peer, why.clone())).await;
                        Some(why)
                    }
                }
            }
            Ok(Ok(BlobResponse::NotHere)) => Some("says it does not have it".to_owned()),
            // Refusals and transport errors prove nothing about its disk.
            Ok(Ok(BlobResponse::Refused(_))) | Ok(Err(_)) | Err(_) => return None,
        };
        let failed = &mut self.audit_book().failed;
        match failure {
            None => {
                if failed.remove(&(pinner, r.blob.clone())) {
                    info!(%pinner, blob = %r.blob, "a pinner that failed an audit holds the blob again");
                }
                Some(true)
            }
            Some(why) => {
                warn!(%pinner, blob = %r.blob, "pinner failed an audit ({why}): it no longer counts for this blob here");
                failed.insert((pinner, r.blob.clone()));
                Some(false)
            }
        }
    }

    /// Whether `pinner`'s last audit of `blob` on this node failed.
    pub(super) fn failed_audit(&self, pinner: &MemberId, blob: &str) -> bool {
        self.audit_book()
            .failed
            .contains(&(*pinner, blob.to_owned()))
    }

    fn audit_book(&self) -> std::sync::MutexGuard<'_, AuditBook> {
        self.audits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
