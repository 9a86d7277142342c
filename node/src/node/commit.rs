//! The one write path. Every local edit, of any document, goes the same
//! way: decide under the document's lock against what this node holds
//! (`plan`), write one signed change (`apply`), store it and make it durable,
//! and only then tell the peers. A change a peer may have seen is never lost
//! by a crash.

use meshwork_crdt::automerge::transaction::Transaction;
use meshwork_crdt::automerge::AutomergeError;
use meshwork_crdt::roster::Roster;
use meshwork_crdt::{SignedChange, SignedDoc};

use super::Node;
use crate::wire::DocRef;
use crate::NodeError;

impl Node {
    /// Edits `doc`: `plan` checks the request against the roster and the
    /// document as this node holds them, and returns what `apply` writes
    /// (and the caller gets back); an edit that writes nothing makes no
    /// change. A department document's change cites the roster it was
    /// made under.
    pub(super) async fn change<P>(
        &self,
        doc: DocRef,
        plan: impl FnOnce(&Roster, &SignedDoc) -> Result<P, NodeError>,
        apply: impl FnOnce(&mut Transaction<'_>, &P) -> Result<(), AutomergeError>,
    ) -> Result<P, NodeError> {
        let signer = &self.shared.identity.signer;
        let now = self.shared.clock.now();
        let (planned, change, workspace) = if doc == DocRef::Roster {
            self.shared.with_ws(|ws| {
                let planned = plan(&ws.roster_view(), &ws.roster)?;
                let change = ws.roster.change(signer, now, |tx| apply(tx, &planned))?;
                Ok((planned, change, ws.meta.id))
            })?
        } else {
            self.shared.with_judged(&doc, |state, ws| {
                let planned = plan(&ws.roster_view(), &state.signed)?;
                let change = state
                    .signed
                    .change_under(&mut ws.roster_at(), signer, now, |tx| apply(tx, &planned))?;
                Ok((planned, change, ws.meta.id))
            })?
        };
        if let Some(change) = change {
            self.commit(workspace, &doc, change).await?;
        }
        Ok(planned)
    }

    /// Stores a change this node made, makes it durable, then announces it
    /// ([`crate::net::announcement`]).
    async fn commit(
        &self,
        workspace: [u8; 32],
        doc: &DocRef,
        change: SignedChange,
    ) -> Result<(), NodeError> {
        self.shared.persist(&workspace, doc, &change).await?;
        if let Some(net) = self.net().await {
            net.announce(workspace, doc, change).await?;
        }
        Ok(())
    }
}
