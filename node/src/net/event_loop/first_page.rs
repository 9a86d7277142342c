//! A department feed's first page, ahead of its history
//! ([`meshwork_crdt::feed::page`]): a node that holds nothing of a feed
//! asks a member it syncs that feed with for the newest threads, beside
//! the sync itself: one member at a time, each once per run, until a page
//! shows something. The page is made and checked off
//! the loop; the node shows it as a preview until the history holds its
//! newest post (`Node::feed`).

use std::collections::HashSet;

use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use meshwork_crdt::feed::page::{self, PAGE_REPLIES, PAGE_THREADS};
use meshwork_crdt::signed::Rules;
use meshwork_crdt::SignedChange;
use tracing::{debug, info};

use super::{EventLoop, PendingResponse};
use crate::net::Command;
use crate::shared::{NodeEvent, Shared};
use crate::wire::{DocRef, PageRequest, PageResponse};
use crate::NodeError;

impl EventLoop {
    /// Asks `peer` for the first page of `doc` if it is a department feed
    /// this node holds nothing of: one peer at a time, each at most once
    /// per run, until one sends a page that shows something.
    pub(super) fn ask_first_page(&mut self, peer: PeerId, doc: &DocRef) {
        if !matches!(doc, DocRef::Feed(_)) {
            return;
        }
        let paging = self.paged.entry(doc.clone()).or_default();
        if paging.done || paging.in_flight || !paging.asked.insert(peer) {
            return;
        }
        let key = doc.store_key(&self.workspace);
        if self.shared.store.has_changes(&key).unwrap_or(true) {
            paging.done = true;
            return;
        }
        paging.in_flight = true;
        let request = PageRequest {
            workspace: self.workspace,
            doc: doc.clone(),
        };
        let id = self.swarm.behaviour_mut().page.send_request(&peer, request);
        self.pages.insert(id, doc.clone());
    }

    /// A member asks for a feed's first page: made off the loop.
    pub(super) fn on_page_request(
        &mut self,
        peer: PeerId,
        request: PageRequest,
        channel: ResponseChannel<PageResponse>,
    ) {
        let refusal = if request.workspace != self.workspace {
            Some("a different workspace")
        } else if !matches!(request.doc, DocRef::Feed(_)) {
            Some("only a department's feed has a first page")
        } else {
            None
        };
        let Some(them) = self.members.get(&peer).copied() else {
            return self.answer_page(channel, "not a member of this workspace");
        };
        if let Some(why) = refusal {
            return self.answer_page(channel, why);
        }
        let (shared, back) = (self.shared.clone(), self.commands_tx.clone());
        self.background.spawn_blocking(move || {
            let response = match first_page(&shared, &request.doc, them) {
                Ok(Some(changes)) => PageResponse::Page(changes),
                Ok(None) => PageResponse::Refused("this feed is not shared with you".into()),
                Err(e) => PageResponse::Refused(e.to_string()),
            };
            let _ = back.blocking_send(Command::Respond(PendingResponse::Page(channel, response)));
        });
    }

    fn answer_page(&mut self, channel: ResponseChannel<PageResponse>, why: &str) {
        let refused = PageResponse::Refused(why.into());
        let _ = self
            .swarm
            .behaviour_mut()
            .page
            .send_response(channel, refused);
    }

    /// A peer's first page: checked and kept off the loop; a forged one
    /// costs the peer its connection.
    pub(super) fn on_page_response(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        response: PageResponse,
    ) {
        let Some(doc) = self.pages.remove(&id) else {
            return;
        };
        let changes = match response {
            PageResponse::Page(changes) if !changes.is_empty() => changes,
            PageResponse::Page(_) => return self.page_not_had(&doc),
            PageResponse::Refused(why) => {
                debug!(%peer, ?doc, "first page refused: {why}");
                return self.page_not_had(&doc);
            }
        };
        // Checked off the loop; a peer whose page shows nothing (a fresh
        // member too, say) leaves the next session free to ask another.
        self.paged.entry(doc.clone()).or_default().done = true;
        let (shared, back) = (self.shared.clone(), self.commands_tx.clone());
        self.background
            .spawn_blocking(move || match take_page(&shared, &doc, changes) {
                Ok(threads) => info!(%peer, ?doc, "a first page of {threads} threads"),
                Err(why) => {
                    let _ = back.blocking_send(Command::Penalise(peer, why));
                }
            });
    }

    /// A first page that never came: the next session, with another peer,
    /// may ask.
    pub(super) fn on_page_failure(&mut self, id: OutboundRequestId) {
        if let Some(doc) = self.pages.remove(&id) {
            self.page_not_had(&doc);
        }
    }

    fn page_not_had(&mut self, doc: &DocRef) {
        if let Some(paging) = self.paged.get_mut(doc) {
            paging.in_flight = false;
        }
    }
}

/// Where asking for a feed's first page stands, in this run.
#[derive(Default)]
pub(super) struct Paging {
    /// The peers asked.
    asked: HashSet<PeerId>,
    /// A request is out.
    in_flight: bool,
    /// A page came (or the feed holds changes): no more asking.
    done: bool,
}

/// The first page of `doc` for member `them`, or `None` if it is not
/// shared with them.
fn first_page(
    shared: &Shared,
    doc: &DocRef,
    them: meshwork_crdt::MemberId,
) -> Result<Option<Vec<SignedChange>>, NodeError> {
    let (me, now) = (shared.identity.signer.id(), shared.clock.now());
    if !shared.with_ws(|ws| Ok(ws.may_share(doc, &me, &them, now)))? {
        return Ok(None);
    }
    let asked = std::time::Instant::now();
    let page = shared.read_doc(doc, |feed| {
        let got = std::time::Instant::now();
        let page = page::page_changes(feed, PAGE_THREADS, PAGE_REPLIES);
        debug!(
            ?doc,
            "a first page of {} changes: the document after {:?}, the page in {:?}",
            page.len(),
            got - asked,
            got.elapsed()
        );
        page
    })?;
    Ok(Some(page))
}

/// Checks a peer's first page of `doc` and keeps what it shows as the
/// feed's preview (unless the history already holds its newest post).
/// Returns how many threads it shows; `Err` says why the page is forged.
fn take_page(shared: &Shared, doc: &DocRef, changes: Vec<SignedChange>) -> Result<usize, String> {
    let opened = page::open(changes)?;
    let read = || -> Result<usize, NodeError> {
        let mut cited = shared.with_ws(|ws| Ok(opened.rosters(&mut ws.roster_at())))?;
        let (threads, kept) = shared.with_doc(doc, |state| {
            let Rules::Feed(rules) = state.signed.rules() else {
                return Ok((0, false));
            };
            let until = shared.clock.now() + meshwork_crdt::feed::MAX_AHEAD;
            let threads = opened.read(rules, &mut cited, PAGE_THREADS, until);
            let feed = meshwork_crdt::feed::Feed::new(state.signed.doc());
            let behind = threads.first().is_some_and(|(p, _)| !feed.contains(&p.id));
            let count = threads.len();
            if behind {
                state.preview = Some(threads);
            }
            Ok((count, behind))
        })?;
        if let (DocRef::Feed(dept), true) = (doc, threads > 0) {
            shared.emit(NodeEvent::FeedPreview {
                dept: dept.clone(),
                threads,
                kept,
            });
        }
        Ok(threads)
    };
    // A local failure (the store, a lock) is not the peer's fault.
    Ok(read().unwrap_or_else(|e| {
        debug!(?doc, "a first page not kept: {e}");
        0
    }))
}
