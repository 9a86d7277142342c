//! This node's own pins: which blobs it keeps until when, and whether only
//! as a volunteer. Kept in sled, and mirrored in memory once read: a pin
//! pass reads every pin (every 30 s on a pin node), and a scan of the sled
//! tree was a fifth of an idle pin node's pass (BENCHMARKS.md, "Where a
//! pin node's idle pass goes"). Every write goes to sled, then to the
//! mirror, under one lock, so the mirror never differs from what sled
//! holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use meshwork_crdt::Millis;

use super::millis;
use crate::NodeError;

/// Every pin, by blob (hex): its deadline.
pub type PinMap = HashMap<String, Millis>;

/// A pin's value in sled: its deadline (8 bytes, big-endian), then this
/// marker if the pin is a volunteer's.
const VOLUNTEERED: u8 = b'v';

#[derive(Clone)]
pub(super) struct Pins {
    tree: sled::Tree,
    /// The deadlines, once read; copied on write while a reader holds
    /// them.
    mirror: Arc<Mutex<Option<Arc<PinMap>>>>,
}

impl Pins {
    pub(super) fn new(tree: sled::Tree) -> Self {
        Self {
            tree,
            mirror: Arc::default(),
        }
    }

    /// Keeps `blob` until `until`, a later deadline already set staying;
    /// volunteered only while every pin of it was. Returns the deadline
    /// kept.
    pub(super) fn pin(
        &self,
        blob: &str,
        until: Millis,
        volunteer: bool,
    ) -> Result<Millis, NodeError> {
        let mut mirror = self.lock();
        let old = self.tree.get(blob)?;
        let kept = old
            .as_deref()
            .and_then(millis)
            .map_or(until, |old| old.max(until));
        let volunteer = volunteer && old.as_deref().is_none_or(is_volunteered);
        let mut value = kept.to_be_bytes().to_vec();
        if volunteer {
            value.push(VOLUNTEERED);
        }
        self.tree.insert(blob, value)?;
        if let Some(map) = mirror.as_mut() {
            Arc::make_mut(map).insert(blob.to_owned(), kept);
        }
        Ok(kept)
    }

    /// Whether the pin of `blob` is a volunteer's alone.
    pub(super) fn volunteered(&self, blob: &str) -> Result<bool, NodeError> {
        Ok(self.tree.get(blob)?.is_some_and(|v| is_volunteered(&v)))
    }

    /// Until when `blob` is kept, if it is pinned.
    pub(super) fn until(&self, blob: &str) -> Result<Option<Millis>, NodeError> {
        Ok(self.tree.get(blob)?.and_then(|v| millis(&v)))
    }

    pub(super) fn unpin(&self, blob: &str) -> Result<(), NodeError> {
        let mut mirror = self.lock();
        self.tree.remove(blob)?;
        if let Some(map) = mirror.as_mut() {
            Arc::make_mut(map).remove(blob);
        }
        Ok(())
    }

    /// Every pin: read from sled the first time, from memory after.
    pub(super) fn all(&self) -> Result<Arc<PinMap>, NodeError> {
        let mut mirror = self.lock();
        if let Some(map) = mirror.as_ref() {
            return Ok(map.clone());
        }
        let map = self
            .tree
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let blob = String::from_utf8_lossy(&k).into_owned();
                Ok((blob, millis(&v).unwrap_or(0)))
            })
            .collect::<Result<PinMap, NodeError>>()?;
        Ok(mirror.insert(Arc::new(map)).clone())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<PinMap>>> {
        match self.mirror.lock() {
            Ok(mirror) => mirror,
            // A write that panicked may have left sled ahead of the mirror:
            // read it again.
            Err(poisoned) => {
                let mut mirror = poisoned.into_inner();
                *mirror = None;
                self.mirror.clear_poison();
                mirror
            }
        }
    }

    #[cfg(test)]
    pub(super) fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

fn is_volunteered(v: &[u8]) -> bool {
    v.get(8) == Some(&VOLUNTEERED)
}
