//! Device identity: one ed25519 key per device. The member id *is* the public
//! key, so a peer's transport identity and its roster identity are one thing.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

/// Domain separation for change signatures: a signature over a change hash
/// can never be mistaken for a signature over anything else.
const CHANGE_CONTEXT: &[u8] = b"meshwork/change/v1";

/// A member's id: their device's ed25519 public key, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId([u8; 32]);

impl MemberId {
    /// The id for these 32 public-key bytes.
    ///
    /// The bytes are not checked to be a point on the curve here: that costs
    /// a point decompression (tens of µs), and reading a roster parses every
    /// member id. Whatever is not a valid key can never verify a signature,
    /// which is where validity matters; [`Self::is_valid_key`] checks it.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    /// Whether these bytes are a valid ed25519 public key.
    pub fn is_valid_key(&self) -> bool {
        ed25519_zebra::VerificationKey::try_from(self.0).is_ok()
    }

    /// The raw public-key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks `signature` over the change `hash` against this key, by the
    /// same equation as [`verify_changes`] (see there).
    pub fn verify_change(&self, hash: &[u8; 32], signature: &[u8; 64]) -> bool {
        let Ok(key) = ed25519_zebra::VerificationKey::try_from(self.0) else {
            return false;
        };
        key.verify(&Signature::from_bytes(signature), &change_message(hash))
            .is_ok()
    }

    /// A short form for logs and messages.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({})", self.short())
    }
}

/// A member id that is not 64 hex digits of a valid ed25519 key.
#[derive(Debug, thiserror::Error)]
#[error("not a member id (expected 64 hex digits of an ed25519 public key): {0:?}")]
pub struct BadMemberId(pub String);

impl FromStr for MemberId {
    type Err = BadMemberId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| BadMemberId(s.to_owned()))?;
        Ok(Self(bytes))
    }
}

impl Serialize for MemberId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MemberId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The signing half of a device identity.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// A signer from the 32 secret bytes kept in the node's home.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// This device's member id.
    pub fn id(&self) -> MemberId {
        MemberId(self.key.verifying_key().to_bytes())
    }

    /// Signs a change hash.
    pub fn sign_change(&self, hash: &[u8; 32]) -> [u8; 64] {
        self.key.sign(&change_message(hash)).to_bytes()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({:?})", self.id())
    }
}

/// Checks many change signatures at once: signatures are checked in
/// batches (each author's key decompressed once per batch), and the work is
/// spread over the machine's cores (all but one for a long history). A
/// catch-up of thousands of changes from a handful of authors is mostly
/// this.
///
/// **One equation everywhere.** A signature is valid when the cofactored
/// equation `[8][s]B = [8]R + [8][k]A` holds (RFC 8032's check, with the
/// encodings ZIP 215 accepts: ed25519-zebra). ed25519-dalek's single and
/// batch checks are cofactorless, and a cofactorless batch's verdict on a
/// crafted signature (a small-order component in `R` or the key) depends
/// on the random weights, that is on which other signatures share its
/// batch: two nodes could split on it. With the cofactored equation a batch
/// holds exactly when each of its signatures holds alone (but for a 2^-128
/// chance), so a change's verdict is a function of the change, whatever
/// arrived with it. A batch that fails is checked signature by signature.
///
/// Returns, for each `(author, hash, signature)`, whether it verifies.
pub fn verify_changes(items: &[(MemberId, [u8; 32], [u8; 64])]) -> Vec<bool> {
    /// Below this many signatures a thread costs more than it saves.
    const PER_THREAD: usize = 64;
    /// Past this many (a quarter second of work on one core), one core is
    /// left to the rest of the node — its network loop, whoever holds the
    /// workspace lock: a long history is checked in the background, never
    /// at the cost of live traffic. A roster's 2,000 changes still use all.
    const LONG: usize = 4_096;
    let spare = usize::from(items.len() > LONG);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| usize::from(n).saturating_sub(spare))
        .min(items.len().div_ceil(PER_THREAD))
        .max(1);
    if threads == 1 {
        return verify_part(items);
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(size)
            .map(|part| (part.len(), s.spawn(move || verify_part(part))))
            .collect();
        parts
            .into_iter()
            // A panicking verifier thread verifies nothing (and keeps the
            // verdicts of the other parts in line with their items).
            .flat_map(|(n, h)| h.join().unwrap_or_else(|_| vec![false; n]))
            .collect()
    })
}

/// Signatures checked in one batch: past a few dozen, a batch costs about
/// half as much per signature as checking each alone.
const BATCH: usize = 128;

/// [`verify_changes`] on one thread.
fn verify_part(items: &[(MemberId, [u8; 32], [u8; 64])]) -> Vec<bool> {
    use ed25519_zebra::{batch, VerificationKey};
    let mut keys: std::collections::HashMap<MemberId, bool> = Default::default();
    let mut verdicts = vec![false; items.len()];
    // Items whose author is a key (a batch holding one that is not would
    // fail whole), with their places among `items`.
    let keyed: Vec<usize> = (0..items.len())
        .filter(|i| {
            let author = items[*i].0;
            *keys
                .entry(author)
                .or_insert_with(|| VerificationKey::try_from(author.0).is_ok())
        })
        .collect();
    let item = |i: usize| {
        let (author, hash, sig) = &items[i];
        batch::Item::from((
            author.0.into(),
            Signature::from_bytes(sig),
            &change_message(hash),
        ))
    };
    for run in keyed.chunks(BATCH) {
        let mut batch = batch::Verifier::new();
        run.iter().for_each(|i| batch.queue(item(*i)));
        if batch.verify(rand::thread_rng()).is_ok() {
            run.iter().for_each(|i| verdicts[*i] = true);
        } else {
            // Someone's signature is bad: find whose, by the same equation.
            for i in run {
                verdicts[*i] = item(*i).verify_single().is_ok();
            }
        }
    }
    verdicts
}

fn change_message(hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHANGE_CONTEXT.len() + 32);
    m.extend_from_slice(CHANGE_CONTEXT);
    m.extend_from_slice(hash);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_id_round_trips_and_rejects_garbage() {
        let s = Signer::from_secret([7; 32]);
        let id = s.id();
        assert_eq!(id.to_string().parse::<MemberId>().unwrap(), id);
        assert!("zz".parse::<MemberId>().is_err());
        assert!("00".repeat(31).parse::<MemberId>().is_err());
        // About half of all y coordinates are not on the curve: find one.
        let not_a_point = (2u8..)
            .map(|i| MemberId([i; 32]))
            .find(|m| ed25519_dalek::VerifyingKey::from_bytes(&m.0).is_err())
            .unwrap();
        assert!(!not_a_point.is_valid_key());
        assert!(!not_a_point.verify_change(&[0; 32], &[0; 64]));
    }

    #[test]
    fn signature_binds_key_and_hash() {
        let s = Signer::from_secret([1; 32]);
        let other = Signer::from_secret([2; 32]);
        let sig = s.sign_change(&[9; 32]);
        assert!(s.id().verify_change(&[9; 32], &sig));
        assert!(!s.id().verify_change(&[8; 32], &sig));
        assert!(!other.id().verify_change(&[9; 32], &sig));
    }

    #[test]
    fn batch_verification_matches_one_by_one() {
        let signers: Vec<Signer> = (1..=3).map(|i| Signer::from_secret([i; 32])).collect();
        let items: Vec<_> = (0..500u32)
            .map(|i| {
                let s = &signers[i as usize % 3];
                let mut hash = [0u8; 32];
                hash[..4].copy_from_slice(&i.to_le_bytes());
                let mut sig = s.sign_change(&hash);
                if i % 7 == 0 {
                    sig[0] ^= 1;
                }
                let author = if i % 11 == 0 { signers[0].id() } else { s.id() };
                (author, hash, sig)
            })
            .collect();
        let batch = verify_changes(&items);
        let one_by_one: Vec<bool> = items
            .iter()
            .map(|(a, h, s)| a.verify_change(h, s))
            .collect();
        assert_eq!(batch, one_by_one);
        assert!(batch.iter().any(|ok| *ok) && batch.iter().any(|ok| !*ok));
    }

    /// A key with a small-order component signs so that the cofactored
    /// equation holds and the cofactorless one mostly does not: every path
    /// (alone, in a batch, in a batch with a forgery) gives each the same
    /// verdict.
    #[test]
    fn every_path_judges_a_signature_by_one_equation() {
        use curve25519_dalek::{constants, Scalar};
        use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
        use ed25519_dalek::Verifier;

        let secret = ExpandedSecretKey {
            scalar: Scalar::from_bytes_mod_order([5; 32]),
            hash_prefix: [6; 32],
        };
        let point =
            constants::ED25519_BASEPOINT_POINT * secret.scalar + constants::EIGHT_TORSION[1];
        let key = ed25519_dalek::VerifyingKey::from_bytes(&point.compress().to_bytes()).unwrap();
        let crafty = MemberId(key.to_bytes());
        let honest = Signer::from_secret([3; 32]);
        let mut items = Vec::new();
        for i in 0..200u32 {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&i.to_le_bytes());
            let sig = raw_sign::<sha2::Sha512>(&secret, &change_message(&hash), &key);
            items.push((crafty, hash, sig.to_bytes()));
            items.push((honest.id(), hash, honest.sign_change(&hash)));
        }
        let cofactorless = items
            .iter()
            .filter(|(a, h, s)| {
                *a == crafty
                    && key
                        .verify(&change_message(h), &Signature::from_bytes(s))
                        .is_ok()
            })
            .count();
        assert!(
            cofactorless < 100,
            "{cofactorless} of 200 hold cofactorless"
        );

        let batch = verify_changes(&items);
        let alone: Vec<bool> = items
            .iter()
            .map(|(a, h, s)| a.verify_change(h, s))
            .collect();
        assert_eq!(batch, alone);
        assert!(batch.iter().all(|ok| *ok));

        let mut forged = items.clone();
        forged[10].2[0] ^= 1;
        let verdicts = verify_changes(&forged);
        assert!(!verdicts[10]);
        assert_eq!(verdicts.iter().filter(|ok| !**ok).count(), 1);
    }
}
