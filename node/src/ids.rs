//! A member and its node's libp2p peer are one ed25519 key under two
//! names. This is the one mapping between them.

use std::collections::HashMap;
use std::sync::Mutex;

use libp2p::PeerId;
use meshwork_crdt::MemberId;

/// The member whose key `peer` is, if it is an ed25519 key.
pub(crate) fn member_of(peer: &PeerId) -> Option<MemberId> {
    let multihash = peer.as_ref();
    // An ed25519 peer id is the key itself, not a hash of it.
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    MemberId::from_bytes(&key.try_into_ed25519().ok()?.to_bytes())
}

/// The peer ids of members, remembered: making one decompresses a curve
/// point (tens of microseconds), and the roster's thousand members are
/// mapped at every roster change.
#[derive(Default)]
pub(crate) struct PeerIds(Mutex<HashMap<MemberId, Option<PeerId>>>);

impl PeerIds {
    /// The libp2p peer id of `member` (`None` if its bytes are no key).
    pub(crate) fn peer_of(&self, member: &MemberId) -> Option<PeerId> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(*member)
            .or_insert_with(|| peer_id(member))
    }
}

fn peer_id(member: &MemberId) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(member.as_bytes()).ok()?;
    Some(libp2p::identity::PublicKey::from(key).to_peer_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_id_names_its_member_and_back() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let member = member_of(&peer).unwrap();
        let ids = PeerIds::default();
        assert_eq!(ids.peer_of(&member), Some(peer));
        assert_eq!(ids.peer_of(&member), Some(peer), "remembered");
        // Not an ed25519 key: a hash, not the key itself.
        assert_eq!(member_of(&PeerId::random()), None);
    }
}
