//! Device identity: one ed25519 key per device. The member id *is* the public
//! key, so a peer's transport identity and its roster identity are one thing.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier, VerifyingKey};
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
        VerifyingKey::from_bytes(&self.0).is_ok()
    }

    /// The raw public-key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks `signature` over the change `hash` against this key.
    pub fn verify_change(&self, hash: &[u8; 32], signature: &[u8; 64]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify(&change_message(hash), &Signature::from_bytes(signature))
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

/// Checks many change signatures at once: each author's key is decompressed
/// once, and the work is spread over the machine's cores (all but one for a
/// long history). A catch-up of thousands of changes from a handful of
/// authors is mostly this.
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
    let verify_all = |part: &[(MemberId, [u8; 32], [u8; 64])]| -> Vec<bool> {
        let mut keys: std::collections::HashMap<MemberId, Option<VerifyingKey>> =
            Default::default();
        part.iter()
            .map(|(author, hash, sig)| {
                let key = keys
                    .entry(*author)
                    .or_insert_with(|| VerifyingKey::from_bytes(&author.0).ok());
                key.as_ref().is_some_and(|k| {
                    k.verify(&change_message(hash), &Signature::from_bytes(sig))
                        .is_ok()
                })
            })
            .collect()
    };
    if threads == 1 {
        return verify_all(items);
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(size)
            .map(|part| (part.len(), s.spawn(move || verify_all(part))))
            .collect();
        parts
            .into_iter()
            // A panicking verifier thread verifies nothing (and keeps the
            // verdicts of the other parts in line with their items).
            .flat_map(|(n, h)| h.join().unwrap_or_else(|_| vec![false; n]))
            .collect()
    })
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
            .find(|m| VerifyingKey::from_bytes(&m.0).is_err())
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
}
