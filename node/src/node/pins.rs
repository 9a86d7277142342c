//! Pinning: every shared file stays fetchable until its deadline.
//!
//! Sharing publishes a pin request (blob, size, department, deadline) in the
//! workspace's pin ledger. A pass of [`Node::reconcile_pins`] — run on every
//! change of the ledger, the roster or the peers, and on a timer — does what
//! this node owes:
//!
//! - a pin node (`meshwork daemon --pin`) fetches and commits to every live
//!   request, within its quota, and reports its quota use;
//! - a member of the request's department volunteers while fewer than k
//!   pinners hold the blob — the ones picked by rendezvous hashing among
//!   the department's members in sight, so that not all of them do (and the
//!   next in rank steps in, a [`VOLUNTEER_STAGGER_MS`] later, should those
//!   not);
//! - a pinner out of sight for [`LOST_AFTER_MS`] counts as lost, so its
//!   commitments no longer count and someone takes over;
//! - blobs past their deadline (plus [`SKEW_MARGIN_MS`]) that no local pin
//!   keeps are deleted, and the node withdraws as their holder.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use std::time::Duration;

use libp2p::PeerId;
use meshwork_blobs::BlobHash;
use meshwork_crdt::library::{self, Library};
use meshwork_crdt::pins::{self, Epoch, PinRequest, Pins};
use meshwork_crdt::roster::{PinPolicy, Roster};
use meshwork_crdt::{MemberId, Millis};
use serde::Serialize;
use tracing::{debug, info, warn};

use super::audit::AuditBook;
use super::ledger::{Ledger, SKEW_MARGIN_MS};
pub use super::pin_plan::VOLUNTEER_STAGGER_MS;
use super::pin_plan::{self, Duty, MyFile, Refusal, Sight, World};
use super::Node;
use crate::error::Context;
use crate::wire::DocRef;
use crate::{NodeError, NodeEvent};

/// A pinner out of this node's sight for this long counts as lost: its
/// commitments stop counting towards the replica target.
pub const LOST_AFTER_MS: Millis = 10 * 60 * 1000;

/// How many blobs a pass fetches at once.
const PIN_FETCHES: usize = 8;

/// How many new commitments a pass gathers into one change of the ledger.
const COMMIT_BATCH: usize = 256;

/// How a pin node runs.
#[derive(Clone, Copy, Debug)]
pub struct PinNodeConfig {
    /// The most bytes it commits to keep.
    pub quota: u64,
}

/// A pinned blob, as `meshwork pins` shows it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct PinInfo {
    /// Hex hash of the blob (ciphertext).
    pub blob: String,
    /// The file it is, if this node may see the department's library.
    pub file_id: Option<String>,
    /// The file's name, likewise.
    pub name: Option<String>,
    /// The department, as [`Roster::dept_labels`] shows it (its id if
    /// the roster no longer has it).
    pub dept: String,
    /// Size in bytes.
    pub size: u64,
    /// Until when it must stay available.
    pub until: Millis,
    /// Who committed to keep it.
    pub pinners: Vec<PinnerInfo>,
    /// Pinners that count: unexpired and not lost.
    pub replicas: usize,
    /// The workspace's replica target (k).
    pub target: u32,
    /// Whether `replicas >= target`.
    pub meets_target: bool,
    /// Whether this node keeps it.
    pub here: bool,
}

/// One pinner of a blob.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct PinnerInfo {
    /// Its member id.
    pub member_id: MemberId,
    /// Its display name.
    pub name: String,
    /// Until when it committed.
    pub until: Millis,
    /// Out of sight for longer than [`LOST_AFTER_MS`].
    pub lost: bool,
    /// Its last audit by this node failed: it did not have the blob.
    pub failed_audit: bool,
}

/// A pin node's quota, as it reported it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct PinNodeInfo {
    /// Its member id.
    pub member_id: MemberId,
    /// Its display name.
    pub name: String,
    /// Its quota in bytes.
    pub quota: u64,
    /// Bytes committed.
    pub used: u64,
    /// Requests it refused for lack of room.
    pub refused: u64,
    /// Whether it refused any: its quota is full.
    pub full: bool,
}

/// Everything `meshwork pins` shows.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct PinsView {
    /// The workspace's policy.
    pub policy: PinPolicy,
    /// Live pins, soonest deadline first.
    pub pins: Vec<PinInfo>,
    /// Pin nodes and their quota.
    pub nodes: Vec<PinNodeInfo>,
}

/// What one reconcile pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Reconciled {
    /// Blobs this node committed to keep.
    pub committed: Vec<String>,
    /// Blobs a pin node's quota could not take.
    pub refused: Vec<String>,
    /// Blobs it could not fetch (retried next pass).
    pub failed: Vec<String>,
    /// Blobs past their deadline that were deleted.
    pub collected: Vec<String>,
    /// Blobs this member had volunteered to keep and let go, since pin
    /// nodes meet the replica target without it.
    pub stepped_down: Vec<String>,
    /// What this pass's audits of other pinners found.
    pub audits: Vec<super::audit::AuditResult>,
}

impl Node {
    /// The pin ledger as this node sees it: live pins with their pinners
    /// (lost or not), and pin nodes' quota use.
    pub fn pins(&self) -> Result<PinsView, NodeError> {
        let now = self.shared.clock.now();
        let me = self.member_id();
        let ledger = self.ledger()?;
        let local = self.shared.store.pins()?;
        let files = self.my_files_by_blob(ledger.requests.iter().map(|r| r.blob.as_str()))?;
        let k = ledger.roster.policy.replicas;
        let audits = self.audit_book();
        let sight = self.sight(&ledger.roster, now, &audits);
        let name = |id: &MemberId| {
            ledger
                .roster
                .member(id)
                .map_or_else(|| id.short(), |m| m.name.clone())
        };
        let mut out = Vec::new();
        for r in ledger.requests.iter() {
            let commits = ledger
                .commits
                .get(&r.blob)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if r.until.saturating_add(SKEW_MARGIN_MS) < now && commits.iter().all(|c| c.until < now)
            {
                continue;
            }
            let pinners: Vec<PinnerInfo> = commits
                .iter()
                .map(|c| PinnerInfo {
                    member_id: c.member,
                    name: name(&c.member),
                    until: c.until,
                    lost: c.member != me && sight.lost.contains(&c.member),
                    failed_audit: audits.has_failed(&c.member, &r.blob),
                })
                .collect();
            let replicas = sight.counting(&ledger.roster, &r.blob, commits, None);
            let file = files.get(&r.blob);
            out.push(PinInfo {
                blob: r.blob.clone(),
                file_id: file.map(|f| f.id.clone()),
                name: file.map(|f| f.name.clone()),
                dept: ledger
                    .roster
                    .dept_label(&r.dept)
                    .unwrap_or_else(|| r.dept.clone()),
                size: r.size,
                until: r.until,
                pinners,
                replicas,
                target: k,
                meets_target: replicas >= k as usize,
                here: local
                    .get(&r.blob)
                    .is_some_and(|u| u.saturating_add(SKEW_MARGIN_MS) >= now),
            });
        }
        let nodes = ledger
            .nodes
            .iter()
            .map(|n| PinNodeInfo {
                name: name(&n.member),
                member_id: n.member,
                quota: n.quota,
                used: n.used,
                refused: n.refused,
                full: n.refused > 0,
            })
            .collect();
        Ok(PinsView {
            policy: ledger.roster.policy,
            pins: out,
            nodes,
        })
    }

    /// Keeps file `id` on this node until `for_` from now (fetching it
    /// first if need be), and says so in the pin ledger.
    pub async fn pin(&self, id: &str, for_: Duration) -> Result<PinInfo, NodeError> {
        // Not while a pass runs: its collection must not delete what this
        // pins, nor release the commitment this writes.
        let _no_pass = self.pin_pass.lock().await;
        let (_, info) = self.file(id)?;
        self.ensure_blob(&info, None).await?;
        let ms = Millis::try_from(for_.as_millis()).unwrap_or(Millis::MAX);
        let until = self
            .shared
            .store
            .pin(&info.entry.blob, self.shared.clock.now().saturating_add(ms))?;
        self.commit_pins(&[(info.entry.blob.clone(), until)], &[], None)
            .await?;
        self.pin_info(&info.entry.blob)
    }

    /// Stops keeping file `id` on this node (it is deleted once its
    /// deadline has passed and no other pin keeps it).
    pub async fn unpin(&self, id: &str) -> Result<(), NodeError> {
        let _no_pass = self.pin_pass.lock().await;
        let (_, info) = self.file(id)?;
        let blob = info.entry.blob;
        let committed = self
            .ledger()?
            .commits
            .get(&blob)
            .is_some_and(|cs| cs.iter().any(|c| c.member == self.member_id()));
        if self.shared.store.pinned(&blob)?.is_none() && !committed {
            return Err(NodeError::NotFound(format!(
                "this node does not pin {id}; `meshwork pins` lists what it keeps"
            )));
        }
        self.shared.store.unpin(&blob)?;
        if committed {
            self.commit_pins(&[], &[blob], None).await?;
        } else {
            self.shared.store.flush().await?;
        }
        Ok(())
    }

    /// One pass of what this node owes the pinning promise (see the module
    /// doc). Passes never overlap.
    pub async fn reconcile_pins(&self) -> Result<Reconciled, NodeError> {
        // Audits first, and outside the pass lock (they wait on the
        // network): a pinner found not to hold a blob does not count in
        // what this pass decides.
        let audits = self
            .audit_pinners(&self.ledger()?, self.shared.clock.now())
            .await;
        let _one_at_a_time = self.pin_pass.lock().await;
        let now = self.shared.clock.now();
        let past = self.shared.drop_past_ledger_days(now)?;
        if !past.is_empty() {
            info!(days = ?past, "dropped the pin ledger's days that are over");
        }
        let ledger = self.ledger()?;
        let mut done = Reconciled {
            audits,
            ..Reconciled::default()
        };
        let (complete, partial) = self.stored_blobs().await?;
        let here: HashSet<String> = complete.iter().map(BlobHash::to_hex).collect();
        // The files of what is requested and what is stored: all the pass
        // asks the libraries about.
        let partial_hex: Vec<String> = partial.iter().map(BlobHash::to_hex).collect();
        let files = self.my_files_by_blob(
            (ledger.requests.iter().map(|r| r.blob.as_str()))
                .chain(here.iter().map(String::as_str))
                .chain(partial_hex.iter().map(String::as_str)),
        )?;
        let partial_bytes = self.partial_bytes(&partial).await?;
        let volunteered = self.volunteered_blobs(&ledger)?;
        let duty = match self.cfg.pin {
            Some(cfg) => Duty::PinNode { quota: cfg.quota },
            None => Duty::Member {
                volunteer: self.cfg.volunteer,
            },
        };
        let room = self.cfg.disk.room(self.shared.blobs.dir())?;
        let plan = {
            let audits = self.audit_book();
            let sight = self.sight(&ledger.roster, now, &audits);
            let world = World {
                sight: &sight,
                duty,
                ledger: &ledger,
                files: &files,
                here: &here,
                partial: &partial_bytes,
                volunteered: &volunteered,
                room,
            };
            let mut below_since = self
                .below_target_since
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pin_plan::plan(&world, &mut below_since)
        };
        for blob in &plan.missing {
            warn!(%blob, "a blob this node committed to is missing here: fetching it again");
        }
        for (r, why) in &plan.refused {
            match why {
                Refusal::Quota { taken, quota } => warn!(
                    blob = %r.blob,
                    size = r.size,
                    taken,
                    quota,
                    "pin quota reached: refusing to pin this blob; other nodes will take it"
                ),
                Refusal::Disk { room } => warn!(
                    blob = %r.blob,
                    size = r.size,
                    room,
                    "not enough disk to pin this blob (daemon --min-free keeps the rest free); other nodes will take it"
                ),
            }
            done.refused.push(r.blob.clone());
        }
        for r in &plan.no_room {
            debug!(blob = %r.blob, size = r.size, room, "no disk to spare for this blob");
        }
        let pin_node = self.cfg.pin;
        let mut used = plan.kept_bytes;
        let wanted = plan.fetch;
        // Fetch a few at a time; commit in batches, so that others see the
        // work as it lands rather than after the whole pass.
        let mut fetches = futures::stream::iter(wanted)
            .map(|(r, sources)| async move {
                let fetched = self.fetch_for_pin(&r, &sources).await;
                (r, fetched)
            })
            .buffer_unordered(PIN_FETCHES);
        let mut batch: Vec<(String, Millis)> = Vec::new();
        while let Some((r, fetched)) = fetches.next().await {
            match fetched {
                Ok(()) => {
                    if pin_node.is_some() {
                        self.shared.store.pin(&r.blob, r.until)?;
                    } else {
                        self.shared.store.pin_volunteered(&r.blob, r.until)?;
                    }
                    batch.push((r.blob.clone(), r.until));
                    used += r.size;
                    done.committed.push(r.blob.clone());
                }
                Err(e) => {
                    warn!(blob = %r.blob, "cannot fetch a blob to pin: {e}");
                    done.failed.push(r.blob.clone());
                }
            }
            if batch.len() >= COMMIT_BATCH {
                self.commit_pins(&std::mem::take(&mut batch), &[], None)
                    .await?;
            }
        }
        drop(fetches);
        let stored: Vec<BlobHash> = complete.into_iter().chain(partial).collect();
        let mut released = self
            .collect(&ledger, &files, &stored, now, &mut done)
            .await?;
        for r in plan.step_down {
            self.step_down(&r, files.get(&r.blob)).await?;
            released.push(r.blob.clone());
            done.stepped_down.push(r.blob);
        }
        let report = pin_node
            .map(|cfg| (cfg.quota, used, done.refused.len() as u64))
            .filter(|&(quota, used, refused)| {
                ledger
                    .reported
                    .is_none_or(|r| (r.quota, r.used, r.refused) != (quota, used, refused))
            });
        if !batch.is_empty() || !released.is_empty() || report.is_some() {
            self.commit_pins(&batch, &released, report).await?;
        } else {
            self.shared.store.flush().await?;
        }
        // The pass read the ledger's live days and dropped what it read.
        crate::memory::release_freed();
        if !done.committed.is_empty() || !done.collected.is_empty() || !done.stepped_down.is_empty()
        {
            info!(
                committed = done.committed.len(),
                collected = done.collected.len(),
                stepped_down = done.stepped_down.len(),
                "pins reconciled"
            );
        }
        Ok(done)
    }

    /// Records this node's new commitments, released ones and its quota
    /// report: one change per day of the ledger it touches. A commitment
    /// goes in the day of its deadline, a report in today's; a release
    /// wherever a commitment of this node's to the blob is.
    async fn commit_pins(
        &self,
        commits: &[(String, Millis)],
        released: &[String],
        report: Option<(u64, u64, u64)>,
    ) -> Result<(), NodeError> {
        let me = self.member_id();
        let now = self.shared.clock.now();
        let today = pins::epoch_of(now);
        let mut days: Vec<Epoch> = commits
            .iter()
            .map(|(_, until)| pins::epoch_of(*until))
            .collect();
        if !released.is_empty() {
            days.extend(self.shared.ledger_days(now)?);
        }
        if report.is_some() {
            days.push(today);
        }
        days.sort_unstable();
        days.dedup();
        for day in days {
            // Which of the released blobs this node committed to in this day.
            let releases_here = |_: &Roster, doc: &meshwork_crdt::SignedDoc| {
                let here = Pins::new(doc.doc());
                Ok(released
                    .iter()
                    .filter(|blob| here.commitments(blob).iter().any(|c| c.member == me))
                    .collect::<Vec<_>>())
            };
            self.change(DocRef::Pins(day), releases_here, |tx, releases| {
                for (blob, until) in commits.iter().filter(|(_, u)| pins::epoch_of(*u) == day) {
                    pins::write::commit(tx, blob, &me, *until)?;
                }
                for blob in releases {
                    pins::write::release(tx, blob, &me)?;
                }
                if let Some((quota, used, refused)) = report.filter(|_| day == today) {
                    pins::write::report(tx, &me, quota, used, refused)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Starts the task that runs a pass whenever the ledger, the roster, a
    /// library or the set of peers changes, and every sync interval (which
    /// is what notices lost pinners and deadlines).
    pub(super) fn spawn_pin_keeper(&self) {
        use tokio::sync::broadcast::error::RecvError;
        let node = self.clone();
        let mut events = self.shared.events.subscribe();
        let every = self.cfg.net.sync_interval;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    event = events.recv() => match event {
                        Ok(NodeEvent::FeedChanged { .. }) => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                }
                // Whatever else arrived meanwhile is covered by this pass.
                while events.try_recv().is_ok() {}
                if let Err(e) = node.reconcile_pins().await {
                    debug!("pin pass: {e}");
                }
            }
        });
        let old = self
            .pin_keeper
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Deletes blob `hash` from the store, on a blocking thread, and then
    /// its image's thumbnail, if one was kept.
    async fn delete_blob(&self, hash: BlobHash) -> Result<(), NodeError> {
        let blobs = self.shared.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.delete(&hash))
            .await
            .context("a background task failed")??;
        self.shared.store.forget_thumbnail(hash.as_bytes())
    }

    /// Lets a volunteered copy go: the local pin, and the bytes unless this
    /// member holds the file for itself (shared or fetched it). The caller
    /// releases the commitment.
    async fn step_down(&self, r: &PinRequest, file: Option<&MyFile>) -> Result<(), NodeError> {
        let me = self.member_id();
        self.shared.store.unpin(&r.blob)?;
        let holds = r.by == me || file.is_some_and(|f| f.holders.contains(&me));
        if !holds {
            if let Ok(hash) = r.blob.parse::<BlobHash>() {
                self.delete_blob(hash).await?;
            }
        }
        info!(blob = %r.blob, kept = holds, "pin nodes meet the replica target: this volunteer lets its copy go");
        Ok(())
    }

    /// What this node sees of the others now: who is lost, who is
    /// connected, what its audits found (`audits`, held by the caller).
    pub(super) fn sight<'a>(
        &self,
        roster: &Roster,
        now: Millis,
        audits: &'a AuditBook,
    ) -> Sight<'a> {
        let me = self.member_id();
        let others = roster.members.iter().map(|m| m.id).filter(|m| *m != me);
        let (mut lost, mut connected) = (HashSet::new(), HashSet::new());
        for m in others {
            if self.lost(&m, now) {
                lost.insert(m);
            }
            if self.in_sight(&m) {
                connected.insert(m);
            }
        }
        Sight {
            me,
            now,
            lost,
            connected,
            audits,
        }
    }

    /// Whether `member` has been out of this node's sight for longer than
    /// [`LOST_AFTER_MS`].
    pub(super) fn lost(&self, member: &MemberId, now: Millis) -> bool {
        let Some(peer) = self.shared.peer_of(member) else {
            return true;
        };
        self.shared
            .presence(|p| p.absent_for(&peer, now) > LOST_AFTER_MS)
    }

    /// Whether `member` is connected to this node now.
    fn in_sight(&self, member: &MemberId) -> bool {
        self.shared
            .peer_of(member)
            .is_some_and(|peer: PeerId| self.shared.presence(|p| p.connected(&peer)))
    }

    /// Makes sure the blob of `r` is here, fetching it from `sources`.
    async fn fetch_for_pin(&self, r: &PinRequest, sources: &[MemberId]) -> Result<(), NodeError> {
        let hash: BlobHash = r
            .blob
            .parse()
            .map_err(|_| NodeError::BadRequest(format!("{} is not a blob hash", r.blob)))?;
        if self.have(hash).await? {
            return Ok(());
        }
        let what = format!("blob {}", &r.blob[..16]);
        self.download(&what, hash, r.size, sources, None, None)
            .await
    }

    /// Deletes blobs past their deadline that no local pin keeps
    /// ([`pin_plan::collection`]); returns the blobs whose commitments this
    /// node withdraws.
    async fn collect(
        &self,
        ledger: &Ledger,
        files: &HashMap<String, MyFile>,
        stored: &[BlobHash],
        now: Millis,
        done: &mut Reconciled,
    ) -> Result<Vec<String>, NodeError> {
        let me = self.member_id();
        let local = self.shared.store.pins()?;
        let plan = pin_plan::collection(me, now, ledger, files, &local, stored);
        for hash in &plan.delete {
            self.delete_blob(*hash).await?;
            info!(blob = %hash.to_hex(), "deleted a blob past its deadline");
            done.collected.push(hash.to_hex());
        }
        for blob in &plan.unpin {
            self.shared.store.unpin(blob)?;
        }
        // Off the files' holders: one change per department, not per file.
        for (dept, ids) in &plan.withdraw {
            self.change_library(dept, |tx| {
                ids.iter()
                    .try_for_each(|id| library::write::hold(tx, id, me, false))
            })
            .await?;
        }
        Ok(plan.release)
    }

    /// Bytes already on disk of each download that never finished.
    async fn partial_bytes(&self, partial: &[BlobHash]) -> Result<HashMap<String, u64>, NodeError> {
        let blobs = self.shared.blobs.clone();
        let partial = partial.to_vec();
        tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
            let mut out = HashMap::new();
            for hash in partial {
                if let Some(p) = blobs.progress(&hash)? {
                    out.insert(hash.to_hex(), p.present_bytes());
                }
            }
            Ok(out)
        })
        .await
        .context("a background task failed")?
    }

    /// The requested blobs this node committed to as a volunteer (the only
    /// ones a pass may step down from).
    fn volunteered_blobs(&self, ledger: &Ledger) -> Result<HashSet<String>, NodeError> {
        let me = self.member_id();
        let mut out = HashSet::new();
        if self.cfg.pin.is_some() {
            return Ok(out); // a pin node's commitments are all its own
        }
        for r in ledger.requests.iter() {
            let mine = ledger
                .commits
                .get(&r.blob)
                .is_some_and(|cs| cs.iter().any(|c| c.member == me));
            if mine && self.shared.store.volunteered(&r.blob)? {
                out.insert(r.blob.clone());
            }
        }
        Ok(out)
    }

    /// Where a blob may be fetched from: the file's holders, its pinners and
    /// its requester.
    pub(super) fn sources(
        &self,
        blob: &str,
        holders: &[MemberId],
    ) -> Result<Vec<MemberId>, NodeError> {
        let ledger = self.ledger()?;
        let mut out: Vec<MemberId> = holders.to_vec();
        out.extend(
            ledger
                .commits
                .get(blob)
                .into_iter()
                .flatten()
                .map(|c| c.member),
        );
        out.extend(
            ledger
                .requests
                .iter()
                .filter(|r| r.blob == blob)
                .map(|r| r.by),
        );
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Publishes the pin request of a file just shared, and keeps it here
    /// until then.
    pub(super) async fn request_pin(&self, request: PinRequest) -> Result<(), NodeError> {
        self.shared.store.pin(&request.blob, request.until)?;
        let day = DocRef::Pins(pins::epoch_of(request.until));
        self.change(
            day,
            |_, _| Ok(()),
            |tx, ()| pins::write::request(tx, &request),
        )
        .await
    }

    fn pin_info(&self, blob: &str) -> Result<PinInfo, NodeError> {
        self.pins()?
            .pins
            .into_iter()
            .find(|p| p.blob == blob)
            .ok_or_else(|| NodeError::NotFound(format!("no pin request for blob {blob}")))
    }

    /// The blobs in this node's store: complete ones, and downloads that
    /// never finished.
    async fn stored_blobs(&self) -> Result<(Vec<BlobHash>, Vec<BlobHash>), NodeError> {
        let blobs = self.shared.blobs.clone();
        tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
            Ok((blobs.list()?, blobs.list_partial()?))
        })
        .await
        .context("a background task failed")?
    }

    /// Whether blob `hash` is complete in this node's store.
    pub(super) async fn have(&self, hash: BlobHash) -> Result<bool, NodeError> {
        let blobs = self.shared.blobs.clone();
        Ok(tokio::task::spawn_blocking(move || blobs.has(&hash))
            .await
            .context("a background task failed")??)
    }

    /// The files of my departments whose blob is among `blobs`, by blob.
    /// Found through each library's blob index, so a pass costs what is
    /// live (the blobs asked about), not every file ever shared.
    fn my_files_by_blob<'b>(
        &self,
        blobs: impl Iterator<Item = &'b str>,
    ) -> Result<HashMap<String, MyFile>, NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let blobs: HashSet<&str> = blobs.collect();
        let mut out = HashMap::new();
        for d in roster.depts.iter().filter(|d| d.members.contains(&me)) {
            let library = DocRef::Library(d.id.clone());
            let files = self.shared.with_blob_index(&library, |doc, index| {
                let library = Library::new(doc.doc());
                blobs
                    .iter()
                    .flat_map(|blob| index.files(&library, blob))
                    .collect::<Vec<_>>()
            })?;
            for f in files {
                let file = MyFile {
                    id: f.id,
                    name: f.name,
                    dept: d.id.clone(),
                    holders: f.holders,
                };
                out.insert(f.blob, file);
            }
        }
        Ok(out)
    }
}
