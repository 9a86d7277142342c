//! [`BlobHash`]: the id of a blob, the BLAKE3 hash of its (cipher)text.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// The id of a blob: the BLAKE3 root hash of its bytes — for a sealed blob,
/// of the ciphertext, so the id reveals nothing about the plaintext.
///
/// Parsed from and shown as 64 lowercase hex digits, which is also its file
/// name in the store. Serialized as hex in human-readable formats (JSON) and
/// as 32 raw bytes otherwise (postcard).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

impl BlobHash {
    /// The hash with these 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes of the hash.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits. (Through BLAKE3's encoder, a table
    /// lookup per byte: `hex::encode` goes a `char` at a time, and a pin
    /// pass names every stored blob, which made it a sixth of an idle
    /// pass.)
    pub fn to_hex(&self) -> String {
        self.to_blake3().to_hex().to_string()
    }

    pub(crate) fn to_blake3(self) -> blake3::Hash {
        blake3::Hash::from_bytes(self.0)
    }
}

impl From<blake3::Hash> for BlobHash {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_blake3().to_hex().as_str())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a blob hash is 64 hex digits")]
pub struct ParseHashError;

impl FromStr for BlobHash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        // `decode_to_slice` checks the length: exactly 64 digits.
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseHashError)?;
        Ok(Self(bytes))
    }
}

impl Serialize for BlobHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HashVisitor;

        impl<'de> Visitor<'de> for HashVisitor {
            type Value = BlobHash;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a blob hash: 64 hex digits or 32 bytes")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<BlobHash, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<BlobHash, E> {
                <[u8; 32]>::try_from(v)
                    .map(BlobHash)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<BlobHash, A::Error> {
                let mut bytes = [0u8; 32];
                for (i, byte) in bytes.iter_mut().enumerate() {
                    *byte = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(de::Error::invalid_length(33, &self));
                }
                Ok(BlobHash(bytes))
            }
        }

        if deserializer.is_human_readable() {
            deserializer.deserialize_str(HashVisitor)
        } else {
            deserializer.deserialize_bytes(HashVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let counting = BlobHash::from_bytes(std::array::from_fn(|i| (i * 8) as u8));
        let hex: String = (0..32).map(|i| format!("{:02x}", i * 8)).collect();
        assert_eq!(
            (counting.to_hex(), counting.to_string()),
            (hex.clone(), hex)
        );
        let hash = BlobHash::from(blake3::hash(b"x"));
        assert_eq!(hash.to_string().parse::<BlobHash>(), Ok(hash));
        assert_eq!(
            hash.to_string().to_uppercase().parse::<BlobHash>(),
            Ok(hash)
        );
        for bad in [
            "",
            "00",
            &"0".repeat(63),
            &"0".repeat(65),
            &"g".repeat(64),
            "../etc/passwd",
        ] {
            assert_eq!(bad.parse::<BlobHash>(), Err(ParseHashError), "{bad:?}");
        }
    }

    #[test]
    fn serde_json_is_hex() {
        let hash = BlobHash::from(blake3::hash(b"x"));
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{hash}\""));
        assert_eq!(serde_json::from_str::<BlobHash>(&json).unwrap(), hash);
        assert!(serde_json::from_str::<BlobHash>("\"abcd\"").is_err());
    }
}
