//! What crosses the network between nodes, and the invite token.

use base64::Engine;
use meshwork_crdt::{SignedChange, SyncPayload};
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// Which document of a workspace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DocRef {
    /// The roster: every member's.
    Roster,
    /// A department's feed (by department id): its members' only.
    Feed(String),
    /// A direct conversation (by [`meshwork_crdt::feed::direct_id`]): its
    /// two members' only.
    Direct(String),
    /// A department's library of shared files (by department id): its
    /// members' only.
    Library(String),
    /// A day of the workspace's pin ledger ([`meshwork_crdt::pins::Epoch`]):
    /// every member's (hashes, sizes and deadlines only).
    Pins(meshwork_crdt::pins::Epoch),
}

impl DocRef {
    /// The two members of a direct conversation.
    pub fn pair(&self) -> Option<[meshwork_crdt::MemberId; 2]> {
        let DocRef::Direct(id) = self else {
            return None;
        };
        let (a, b) = id.strip_prefix("dm-")?.split_once('-')?;
        Some([a.parse().ok()?, b.parse().ok()?])
    }

    /// The key its changes are stored under.
    pub fn store_key(&self, workspace: &[u8; 32]) -> [u8; 32] {
        match self {
            DocRef::Roster => *workspace,
            DocRef::Feed(id) | DocRef::Direct(id) => {
                let mut h = blake3::Hasher::new_derive_key("meshwork feed document v1");
                h.update(workspace);
                h.update(id.as_bytes());
                *h.finalize().as_bytes()
            }
            DocRef::Library(id) => {
                let mut h = blake3::Hasher::new_derive_key("meshwork library document v1");
                h.update(workspace);
                h.update(id.as_bytes());
                *h.finalize().as_bytes()
            }
            DocRef::Pins(epoch) => {
                let mut h = blake3::Hasher::new_derive_key("meshwork pins document v2");
                h.update(workspace);
                h.update(&epoch.to_be_bytes());
                *h.finalize().as_bytes()
            }
        }
    }
}

/// A request for a run of consecutive pieces of a blob, on a stream of the
/// piece protocol ([`crate::net::PIECES_PROTOCOL`]): pieces `first`,
/// `first + 1`, … `first + count - 1`, answered in that order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The workspace.
    pub workspace: [u8; 32],
    /// The blob (hash of its ciphertext).
    pub hash: [u8; 32],
    /// The run's first piece.
    pub first: u64,
    /// How many pieces, at most [`crate::net::MAX_RUN`].
    pub count: u32,
}

/// A request for one piece of a blob.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlobRequest {
    /// The workspace.
    pub workspace: [u8; 32],
    /// The blob (hash of its ciphertext).
    pub hash: [u8; 32],
    /// Which piece ([`meshwork_blobs::PIECE_SIZE`] bytes each).
    pub piece: u64,
}

/// The answer to a [`BlobRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum BlobResponse {
    /// The piece with its proof, to check against the hash before use.
    Piece(#[serde(with = "serde_bytes")] Vec<u8>),
    /// This peer does not hold that piece.
    NotHere,
    /// This peer will not serve that blob to the asker; the text says why.
    Refused(String),
}

/// One round of document sync, initiator to responder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The workspace (roster genesis hash).
    pub workspace: [u8; 32],
    /// The document.
    pub doc: DocRef,
    /// The first round of a session: both sides start from what they know
    /// they share, forgetting what earlier (perhaps cut-off) sessions sent.
    pub first: bool,
    /// The initiator's sync message, or `None` to poll for more.
    pub payload: Option<SyncPayload>,
    /// When a change is being pushed: the peers (libp2p peer id bytes) it is
    /// already on its way to, so the receiver relays it only to the others.
    /// Empty in an ordinary sync.
    #[serde(default)]
    pub covered: Vec<serde_bytes::ByteBuf>,
}

impl SyncRequest {
    /// The most peers a request may name as covered; more are ignored.
    pub const MAX_COVERED: usize = 4096;
}

/// The responder's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncResponse {
    /// The responder's sync message, or `None` when it has nothing to say.
    Sync(Option<SyncPayload>),
    /// The responder will not sync with this peer; the text says why.
    Refused(String),
    /// The asker was removed from the workspace: the roster changes up to
    /// and including its removal (nothing written after), so that its node
    /// learns it.
    Removed(Vec<SignedChange>),
}

/// A fresh member asking one peer for a department feed's newest threads
/// ahead of its history ([`meshwork_crdt::feed::page`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageRequest {
    /// The workspace.
    pub workspace: [u8; 32],
    /// The feed (a department's; conversations have no first page).
    pub doc: DocRef,
}

/// The answer to a [`PageRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PageResponse {
    /// The signed changes that wrote the newest threads, each to be
    /// checked by the asker.
    Page(Vec<SignedChange>),
    /// The peer will not send it; the text says why.
    Refused(String),
}

/// A joiner presenting its invite to any member.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The workspace the invite is for.
    pub workspace: [u8; 32],
    /// The invite's id.
    pub invite_id: String,
    /// The invite's secret (its hash is in the roster).
    pub invite_secret: [u8; 32],
    /// The joiner's display name.
    pub name: String,
}

/// The member's answer to a join.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JoinResponse {
    /// The joiner is on the roster now; sync to receive it.
    Admitted,
    /// Refused, with a reason the joiner can act on.
    Refused(String),
}

/// A signed change as gossiped live.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GossipChange {
    /// The workspace.
    pub workspace: [u8; 32],
    /// The change and its signature.
    pub change: SignedChange,
}

impl GossipChange {
    /// Encodes for gossipsub.
    pub fn encode(&self) -> Result<Vec<u8>, NodeError> {
        Ok(postcard::to_stdvec(self)?)
    }

    /// Decodes from gossipsub; `None` for malformed bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Everything a joiner needs: how to pass the network's pre-shared key, which
/// invite to present, and where members may be reached.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InviteToken {
    /// The workspace id.
    pub workspace: [u8; 32],
    /// Seed of the network's pre-shared key.
    pub secret: [u8; 32],
    /// The workspace's name, to show the joiner.
    pub name: String,
    /// The invite's id.
    pub invite_id: String,
    /// The invite's secret.
    pub invite_secret: [u8; 32],
    /// Multiaddrs (with `/p2p/`) of members at the time of the invite.
    pub addrs: Vec<String>,
}

const TOKEN_PREFIX: &str = "mw1-";

impl InviteToken {
    /// The one-line form users copy.
    pub fn encode(&self) -> Result<String, NodeError> {
        let bytes = postcard::to_stdvec(self)?;
        Ok(format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// Parses a token a user pasted.
    pub fn decode(s: &str) -> Result<Self, NodeError> {
        let bad = || {
            NodeError::BadRequest(
                "that is not a Meshwork invite token (it should start with `mw1-`; copy the whole line `meshwork invite` printed)"
                    .into(),
            )
        };
        let body = s.trim().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad())?;
        postcard::from_bytes(&bytes).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_garbage_is_refused() {
        let t = InviteToken {
            workspace: [1; 32],
            secret: [2; 32],
            name: "Acme".into(),
            invite_id: "abc".into(),
            invite_secret: [3; 32],
            addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
        };
        assert_eq!(InviteToken::decode(&t.encode().unwrap()).unwrap(), t);
        for bad in ["", "mw1-", "mw1-!!!", "hello", "mw1-AAAA"] {
            assert!(InviteToken::decode(bad).is_err(), "{bad}");
        }
    }
}
