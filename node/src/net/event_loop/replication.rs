//! Keeping documents in step: roster gossip in and out, and sync sessions
//! for every document a peer may share — the roster with every member, a
//! department's feed only with that department's members.

use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use meshwork_crdt::{Ingest, MemberId};
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::net::sessions::Next;
use crate::net::sync_work::{self, Round, Stepped};
use crate::net::Command;
use crate::shared::Side;
use crate::wire::{DocRef, GossipChange, SyncRequest, SyncResponse};

impl EventLoop {
    pub(super) fn publish(&mut self, data: Vec<u8>) {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data)
        {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => debug!("publish: {e}"),
        }
    }

    /// Roster gossip. (Feeds are never gossiped: gossipsub cannot keep a
    /// topic from non-members, so feed changes travel by sync only.)
    pub(super) fn on_gossip(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        let Some(msg) = GossipChange::decode(data) else {
            warn!(%source, "malformed gossip");
            return MessageAcceptance::Reject;
        };
        if msg.workspace != self.workspace {
            return MessageAcceptance::Reject;
        }
        let report = self
            .shared
            .with_ws(|ws| Ok(ws.roster.ingest(vec![msg.change])));
        let Ok(report) = report else {
            return MessageAcceptance::Ignore;
        };
        let verdict = if !report.rejected.is_empty() {
            warn!(%source, "rejected gossip: {}", report.rejected[0]);
            MessageAcceptance::Reject
        } else if report.missing_deps > 0 {
            self.start_sync(source, DocRef::Roster);
            MessageAcceptance::Ignore
        } else if report.accepted.is_empty() {
            MessageAcceptance::Ignore
        } else {
            MessageAcceptance::Accept
        };
        self.record(&DocRef::Roster, report);
        verdict
    }

    /// Stores changes accepted on the loop (gossip, held-back ones) and
    /// does what follows ([`Self::recorded`]).
    pub(super) fn record(&mut self, doc: &DocRef, report: Ingest) {
        if report.accepted.is_empty() {
            return;
        }
        if let Err(e) = self.shared.record(&self.workspace, doc, &report.accepted) {
            warn!("cannot store changes: {e}");
            return;
        }
        self.recorded(doc);
    }

    /// After changes of `doc` were stored: flush them, and if the roster
    /// moved, see who is a member now and judge what waited for it.
    fn recorded(&mut self, doc: &DocRef) {
        let store = self.shared.store.clone();
        self.background.spawn(async move {
            if let Err(e) = store.flush().await {
                warn!("cannot flush: {e}");
            }
        });
        if *doc == DocRef::Roster {
            self.refresh_members();
            self.retry_held_back();
        }
    }

    /// The roster moved: department changes that waited for the roster
    /// heads they cite are judged now (off the loop: it takes document
    /// locks), stored, flushed, and offered on.
    fn retry_held_back(&mut self) {
        let shared = self.shared.clone();
        let workspace = self.workspace;
        let back = self.commands_tx.clone();
        self.background.spawn(async move {
            let judge = shared.clone();
            let Ok(retried) = tokio::task::spawn_blocking(move || judge.retry_held_back()).await
            else {
                return;
            };
            let mut arrived = Vec::new();
            for (doc, report) in retried {
                if let Some(first) = report.rejected.first() {
                    warn!(
                        ?doc,
                        "refused {} held-back change(s): {first}",
                        report.rejected.len()
                    );
                }
                if report.accepted.is_empty() {
                    continue;
                }
                match shared.record(&workspace, &doc, &report.accepted) {
                    Ok(()) => arrived.push(doc),
                    Err(e) => warn!("cannot store changes: {e}"),
                }
            }
            if arrived.is_empty() {
                return;
            }
            if let Err(e) = shared.store.flush().await {
                warn!("cannot flush: {e}");
                return;
            }
            for doc in arrived {
                let _ = back.send(Command::Push(doc)).await;
            }
        });
    }

    /// Changes from `peer` wait for roster heads this node lacks: ask that
    /// peer, who has them, for the roster.
    fn fetch_cited_roster(&mut self, peer: PeerId, report: &Ingest) {
        if report.waiting_for_roster > 0 {
            debug!(%peer, "{} change(s) wait for the roster they cite", report.waiting_for_roster);
            self.start_sync(peer, DocRef::Roster);
        }
    }

    /// Offers changes that arrived from `from` to the connected peers that
    /// share the document and that no one is known to be sending them to
    /// already (`covered`, as the pusher said). In a full mesh the author's
    /// push reaches everyone and nobody relays; around a hub, the hub
    /// relays to its other peers. (The roster travels by gossip instead.)
    fn relay(&mut self, doc: &DocRef, from: PeerId, covered: &[PeerId]) {
        if *doc == DocRef::Roster {
            return;
        }
        let mut skip: Vec<PeerId> = covered.to_vec();
        skip.push(from);
        self.offer(doc, skip);
    }

    /// Offers a document to every connected peer that shares it, except
    /// those in `skip`; each is told who else it is being offered to.
    fn offer(&mut self, doc: &DocRef, mut skip: Vec<PeerId>) {
        let me = *self.swarm.local_peer_id();
        let targets: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| **p != me && !skip.contains(p))
            .copied()
            .collect::<Vec<_>>()
            .into_iter()
            .filter(|p| self.shared_docs(p).contains(doc))
            .collect();
        if targets.is_empty() {
            return;
        }
        skip.push(me);
        skip.extend(targets.iter().copied());
        skip.sort();
        skip.dedup();
        let covered: std::sync::Arc<[PeerId]> = skip.into();
        for p in targets {
            self.start_sync_covering(p, doc.clone(), Some(covered.clone()));
        }
    }

    /// Every document this node shares with `peer`.
    pub(super) fn shared_docs(&self, peer: &PeerId) -> Vec<DocRef> {
        let Some(them) = self.members.get(peer).copied() else {
            return Vec::new();
        };
        let me = self.shared.identity.signer.id();
        let store = &self.shared.store;
        let now = self.shared.clock.now();
        let mut docs = vec![DocRef::Roster];
        docs.extend(
            self.shared
                .with_ws(|ws| Ok(ws.shared_docs(&me, &them, store, now)))
                .unwrap_or_default(),
        );
        docs
    }

    /// Syncs every document shared with `peer` but those in `skip`.
    pub(super) fn sync_peer(&mut self, peer: PeerId, skip: &std::collections::HashSet<DocRef>) {
        let docs = self.shared_docs(&peer);
        self.shared_with.insert(peer, docs.clone());
        for doc in docs.into_iter().filter(|d| !skip.contains(d)) {
            self.start_sync(peer, doc);
        }
    }

    /// The periodic sync: every shared document with every connected
    /// member, but those the member was last heard holding exactly as this
    /// node does (neither side has anything for the other; a side that
    /// takes in something new is out of step and syncs), and those leaving
    /// memory (`Shared::periodic_skips`). That is what lets a colleague's
    /// idle documents stay unloaded.
    pub(super) fn sync_all(&mut self) {
        let peers: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| self.members.contains_key(p))
            .copied()
            .collect();
        for peer in peers {
            let skips = self.shared.periodic_skips(&peer);
            self.sync_peer(peer, &skips);
        }
    }

    /// Offers a document that just changed here to every connected peer
    /// that shares it.
    pub(super) fn push(&mut self, doc: DocRef) {
        self.offer(&doc, Vec::new());
    }

    /// Starts a sync session, or — if one is running — asks for another
    /// round once it ends, so nothing new is left behind.
    pub(super) fn start_sync(&mut self, peer: PeerId, doc: DocRef) {
        self.start_sync_covering(peer, doc, None);
    }

    /// [`Self::start_sync`] for a push: the first request names the peers
    /// the change is already going to.
    fn start_sync_covering(
        &mut self,
        peer: PeerId,
        doc: DocRef,
        covered: Option<std::sync::Arc<[PeerId]>>,
    ) {
        if !self.sessions.open(peer, doc.clone()) {
            return;
        }
        self.ask_first_page(peer, &doc);
        let covered = covered
            .map(|c| {
                c.iter()
                    .map(|p| serde_bytes::ByteBuf::from(p.to_bytes()))
                    .collect()
            })
            .unwrap_or_default();
        // The first message (for a peer that has nothing, a summary of the
        // whole history) is made off the loop too.
        let round = Round {
            peer,
            side: Side::Initiator,
            doc,
            received: None,
            first: true,
            asker: None,
        };
        self.work(round, After::Start { covered });
    }

    fn send_sync(
        &mut self,
        peer: PeerId,
        doc: DocRef,
        payload: Option<meshwork_crdt::SyncPayload>,
        first: bool,
        covered: Vec<serde_bytes::ByteBuf>,
    ) {
        let request = SyncRequest {
            workspace: self.workspace,
            doc: doc.clone(),
            first,
            payload,
            covered,
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.sessions.sent(id, doc);
    }

    /// A round asked by `peer`: checked here, worked off the loop
    /// ([`sync_work::step`]), answered in [`Self::on_round`].
    pub(super) fn on_sync_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        if request.workspace != self.workspace {
            return self.answer(
                channel,
                SyncResponse::Refused("a different workspace".into()),
            );
        }
        let Some(them) = self.members.get(&peer).copied() else {
            let answer = match (self.removed.get(&peer), &request.doc) {
                (Some(member), DocRef::Roster) => self.removal_proof(peer, *member),
                _ => SyncResponse::Refused("not a member of this workspace".into()),
            };
            return self.answer(channel, answer);
        };
        let covered: Vec<PeerId> = request
            .covered
            .iter()
            .take(SyncRequest::MAX_COVERED)
            .filter_map(|b| PeerId::from_bytes(b).ok())
            .collect();
        let asker = sync_work::Asker {
            me: self.shared.identity.signer.id(),
            them,
        };
        let after = After::Answer {
            channel,
            first: request.first,
            covered,
        };
        let round = Round {
            peer,
            side: Side::Responder,
            doc: request.doc,
            received: request.payload,
            first: request.first,
            asker: Some(asker),
        };
        self.work(round, after);
    }

    /// Runs a round on a blocking thread; its result comes back to the
    /// loop as [`Command::Stepped`].
    fn work(&mut self, round: Round, after: After) {
        let shared = self.shared.clone();
        let workspace = self.workspace;
        let back = self.commands_tx.clone();
        self.background.spawn_blocking(move || {
            let (peer, doc) = (round.peer, round.doc.clone());
            let result = sync_work::step(&shared, &workspace, round);
            let round = SyncRound {
                peer,
                doc,
                result,
                after,
            };
            // Closed at shutdown: the round's answer is dropped with it.
            let _ = back.blocking_send(Command::Stepped(Box::new(round)));
        });
    }

    /// A round is done: answer the asker, or continue our session.
    pub(super) fn on_round(&mut self, round: SyncRound) {
        let SyncRound {
            peer,
            doc,
            result,
            after,
        } = round;
        let (report, next) = match result {
            Ok(Stepped::Done(report, next)) => (report, next),
            Ok(Stepped::InStep) => {
                let next = self.sessions.after_round(peer, doc.clone(), false, true);
                if let Some(Next::End { again: true }) = next {
                    self.start_sync(peer, doc);
                }
                return;
            }
            Ok(Stepped::NotShared) => {
                if let After::Answer { channel, .. } = after {
                    self.answer(
                        channel,
                        SyncResponse::Refused("this document is not shared with you".into()),
                    );
                }
                return;
            }
            Err(e) => {
                warn!(%peer, "bad sync message: {e}");
                match after {
                    After::Answer { channel, .. } => self.answer(
                        channel,
                        SyncResponse::Refused("malformed sync message".into()),
                    ),
                    After::Continue { .. } | After::Start { .. } => self.sessions.abort(peer, doc),
                }
                return;
            }
        };
        let refused = self.penalise_if_rejected(peer, &report);
        self.fetch_cited_roster(peer, &report);
        let arrived = !report.accepted.is_empty();
        if arrived {
            self.recorded(&doc);
        }
        match after {
            After::Answer {
                channel,
                first,
                covered,
            } => {
                if first {
                    // The change a push carries arrives in a later round:
                    // remember whom the pusher covers until the session's
                    // next start.
                    self.sessions.remember_covered(peer, doc.clone(), covered);
                }
                if arrived {
                    let covered = self.sessions.covered(peer, &doc).to_vec();
                    self.relay(&doc, peer, &covered);
                }
                self.answer(channel, SyncResponse::Sync(next));
            }
            After::Start { covered } => {
                if self.sessions.is_open(peer, &doc) {
                    self.send_sync(peer, doc, next, true, covered);
                }
            }
            After::Continue { their_silence } => {
                if arrived {
                    self.relay(&doc, peer, &[]);
                }
                let quiet = next.is_none() && their_silence;
                match self.sessions.after_round(peer, doc.clone(), refused, quiet) {
                    Some(Next::Send) => self.send_sync(peer, doc, next, false, Vec::new()),
                    Some(Next::End { again: true }) => self.start_sync(peer, doc),
                    // Over, or the peer left (the session was cut) meanwhile.
                    Some(Next::End { again: false }) | None => {}
                }
            }
        }
    }

    fn answer(&mut self, channel: ResponseChannel<SyncResponse>, response: SyncResponse) {
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    pub(super) fn on_sync_failure(&mut self, peer: PeerId, id: OutboundRequestId) {
        self.sessions.failed(peer, &id);
    }

    pub(super) fn on_sync_response(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        response: SyncResponse,
    ) {
        let Some(doc) = self.sessions.answered(&id) else {
            return;
        };
        let payload = match response {
            SyncResponse::Sync(p) => p,
            SyncResponse::Refused(why) => {
                debug!(%peer, ?doc, "sync refused: {why}");
                if self.sessions.refused(peer, doc.clone()) {
                    self.start_sync(peer, doc);
                }
                return;
            }
            SyncResponse::Removed(proof) => {
                self.sessions.abort(peer, doc);
                return self.on_removal_proof(peer, proof);
            }
        };
        let their_silence = payload.is_none();
        let round = Round {
            peer,
            side: Side::Initiator,
            doc,
            received: payload,
            first: false,
            asker: None,
        };
        self.work(round, After::Continue { their_silence });
    }

    /// What a removed member is told when it asks for the roster: the
    /// roster up to its removal, nothing after.
    fn removal_proof(&mut self, peer: PeerId, member: MemberId) -> SyncResponse {
        let proof = self.shared.with_ws(|ws| {
            let Some(removal) = meshwork_crdt::roster::removal_of(ws.roster.doc(), &member) else {
                return Ok(Vec::new());
            };
            Ok(ws.roster.history_to(removal)?)
        });
        match proof {
            Ok(proof) if !proof.is_empty() => {
                info!(%peer, "a removed member asked for the roster: sent it its removal");
                SyncResponse::Removed(proof)
            }
            _ => SyncResponse::Refused("not a member of this workspace".into()),
        }
    }

    /// A peer says this node was removed, with the roster changes that did
    /// it: they are checked like any roster change.
    fn on_removal_proof(&mut self, peer: PeerId, proof: Vec<meshwork_crdt::SignedChange>) {
        let report = self.shared.with_ws(|ws| Ok(ws.roster.ingest(proof)));
        let Ok(report) = report else { return };
        if self.penalise_if_rejected(peer, &report) {
            return;
        }
        self.record(&DocRef::Roster, report);
    }

    /// A peer that sent refused changes loses its connection; returns
    /// whether it did.
    pub(super) fn penalise_if_rejected(&mut self, peer: PeerId, report: &Ingest) -> bool {
        if let Some(first) = report.rejected.first() {
            warn!(%peer, "refused {} change(s) from this peer: {first}", report.rejected.len());
            let _ = self.swarm.disconnect_peer_id(peer);
            return true;
        }
        false
    }
}

/// A sync round done off the loop, on its way back to it.
pub(crate) struct SyncRound {
    peer: PeerId,
    doc: DocRef,
    result: Result<Stepped, crate::NodeError>,
    after: After,
}

/// What the loop does with a round's result.
enum After {
    /// Answer the peer that asked.
    Answer {
        channel: ResponseChannel<SyncResponse>,
        first: bool,
        /// The peers the asker said its push covers.
        covered: Vec<PeerId>,
    },
    /// Send the first message of a session this node starts.
    Start {
        /// The peers the change it pushes is already going to.
        covered: Vec<serde_bytes::ByteBuf>,
    },
    /// Continue the session this node runs.
    Continue {
        /// The peer sent nothing this round.
        their_silence: bool,
    },
}
