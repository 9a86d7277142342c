//! Who may stay connected (members, joiners on probation, the blocked), and
//! the peer book that finds members again.

use std::collections::HashMap;

use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId};
use meshwork_crdt::MemberId;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::wire::DocRef;

impl EventLoop {
    pub(super) fn on_connected(&mut self, peer: PeerId) {
        if self.i_was_removed {
            // A removed node takes part in nothing.
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        if self.members.contains_key(&peer) {
            self.sync_peer(peer, &Default::default());
        } else if self.i_am_member {
            self.probation
                .insert(peer, Instant::now() + self.cfg.probation);
        } else {
            // Not (yet) a member here: ask for the roster, which says
            // whether we were admitted (a pin node added by its peer id).
            self.start_sync(peer, DocRef::Roster);
        }
        self.try_join();
    }

    /// Re-reads the roster: who is a member, who was removed (and is told
    /// so, then disconnected, if it connects).
    pub(super) fn refresh_members(&mut self) {
        let Ok(roster) = self.shared.roster() else {
            return;
        };
        let me = self.shared.identity.signer.id();
        self.i_am_member = roster.is_active(&me);
        let was_removed = self.i_was_removed;
        self.i_was_removed = roster.member(&me).is_some_and(|m| m.removed);
        if self.i_was_removed && !was_removed {
            warn!(
                "this node was removed from the workspace: it disconnects and takes part no more"
            );
            let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
            for p in connected {
                let _ = self.swarm.disconnect_peer_id(p);
            }
        }
        // Who may fetch which blob follows department membership.
        self.blob_grants.clear();
        self.grants_epoch += 1;
        let peer_of = |id: &MemberId| self.shared.peer_of(id);
        self.members = roster
            .active_members()
            .filter_map(|m| Some((peer_of(&m.id)?, m.id)))
            .collect();
        let removed: HashMap<PeerId, MemberId> = roster
            .members
            .iter()
            .filter(|m| m.removed)
            .filter_map(|m| Some((peer_of(&m.id)?, m.id)))
            .collect();
        for (peer, member) in &removed {
            if !self.removed.contains_key(peer) && self.swarm.is_connected(peer) {
                info!(member = %member.short(), "removed from the workspace: disconnected");
                let _ = self.swarm.disconnect_peer_id(*peer);
            }
        }
        self.removed = removed;
        let members = &self.members;
        self.probation.retain(|p, _| !members.contains_key(p));
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            self.remember(p);
        }
        self.sync_newly_shared();
        if self.i_am_member {
            let now = Instant::now() + self.cfg.probation;
            let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
            for p in connected {
                if !self.members.contains_key(&p) {
                    self.probation.entry(p).or_insert(now);
                }
            }
        }
    }

    /// A connected member now shares documents it did not before: those
    /// are synced at once, instead of at the next sync interval. That is a
    /// peer that has just become a member (a joiner just admitted, or — on
    /// the joiner — the members it is connected to: all it shares is new),
    /// or a member just added to a department.
    fn sync_newly_shared(&mut self) {
        if !self.i_am_member {
            return;
        }
        let connected: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| self.members.contains_key(p))
            .copied()
            .collect();
        for p in connected {
            let now = self.shared_docs(&p);
            let before = self.shared_with.insert(p, now.clone()).unwrap_or_default();
            for doc in now.into_iter().filter(|d| !before.contains(d)) {
                self.start_sync(p, doc);
            }
        }
    }

    pub(super) fn expire_probation(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .probation
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.probation.remove(&peer);
            info!(%peer, "not a member and no valid invite: disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Writes a connected member's listen addresses into the peer book.
    pub(super) fn remember(&self, peer: PeerId) {
        let (true, Some(addrs)) = (self.members.contains_key(&peer), self.peer_addrs.get(&peer))
        else {
            return;
        };
        let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        if let Err(e) = self.shared.store.set_peer_addrs(&peer.to_bytes(), &addrs) {
            warn!("cannot update the peer book: {e}");
        }
    }

    /// Dials members from the peer book that are not connected: how a node
    /// finds its workspace again after a restart or a partition, with no
    /// `--peer` and no mDNS.
    pub(super) fn redial_members(&mut self) {
        let book = match self.shared.store.peer_addrs() {
            Ok(book) => book,
            Err(e) => return warn!("cannot read the peer book: {e}"),
        };
        if self.i_was_removed {
            return;
        }
        let me = *self.swarm.local_peer_id();
        for (peer, addrs) in book {
            let Ok(peer) = PeerId::from_bytes(&peer) else {
                continue;
            };
            if peer == me || !self.members.contains_key(&peer) || self.swarm.is_connected(&peer) {
                continue;
            }
            let addrs: Vec<Multiaddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .allocate_new_port()
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, "cannot redial: {e}");
            }
        }
    }
}
