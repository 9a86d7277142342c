//! Reads of a few keys of an automerge document as it was at some heads.
//!
//! Authorization asks "what did the roster say at this change's
//! dependencies?" about one member or one invite: a handful of lookups, so
//! they go key by key. Whole-roster reads hydrate the document instead.

use automerge::{Automerge, ChangeHash, ObjId, ObjType, Prop, ReadDoc, Value, ROOT};

/// A read-only view of a document at its current heads or at given heads.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    doc: &'a Automerge,
    heads: &'a [ChangeHash],
}

impl<'a> View<'a> {
    pub(crate) fn at(doc: &'a Automerge, heads: &'a [ChangeHash]) -> Self {
        Self { doc, heads }
    }

    fn get(&self, obj: &ObjId, prop: impl Into<Prop>) -> Option<(Value<'a>, ObjId)> {
        self.doc.get_at(obj, prop, self.heads).ok().flatten()
    }

    /// The map object stored under `key` in `obj`.
    pub(crate) fn map(&self, obj: &ObjId, key: &str) -> Option<ObjId> {
        match self.get(obj, key)? {
            (Value::Object(ObjType::Map), id) => Some(id),
            _ => None,
        }
    }

    /// The map at a path of keys from the root.
    pub(crate) fn path(&self, keys: &[&str]) -> Option<ObjId> {
        let mut obj = ROOT;
        for k in keys {
            obj = self.map(&obj, k)?;
        }
        Some(obj)
    }

    pub(crate) fn str(&self, obj: &ObjId, key: &str) -> Option<String> {
        match self.get(obj, key)? {
            (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
            _ => None,
        }
    }

    pub(crate) fn int(&self, obj: &ObjId, key: &str) -> Option<i64> {
        match self.get(obj, key)? {
            (Value::Scalar(s), _) => s.as_i64(),
            _ => None,
        }
    }

    pub(crate) fn bool(&self, obj: &ObjId, key: &str) -> Option<bool> {
        match self.get(obj, key)? {
            (Value::Scalar(s), _) => s.as_bool(),
            _ => None,
        }
    }

    /// Whether `obj` holds a value under `key`.
    pub(crate) fn has(&self, obj: &ObjId, key: &str) -> bool {
        self.get(obj, key).is_some()
    }

    pub(crate) fn keys(&self, obj: &ObjId) -> Vec<String> {
        self.doc.keys_at(obj, self.heads).collect()
    }
}

/// The map stored under `key` in `obj`, in the current document.
pub(crate) fn child_map(doc: &Automerge, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok()?? {
        (Value::Object(ObjType::Map), id) => Some(id),
        _ => None,
    }
}

/// The scalar stored under `key` in `obj`, in the current document.
pub(crate) fn scalar<'a>(doc: &'a Automerge, obj: &ObjId, key: &str) -> Option<Value<'a>> {
    match doc.get(obj, key).ok()?? {
        (v @ Value::Scalar(_), _) => Some(v),
        _ => None,
    }
}

/// Where an object sits: the keys from the root to it. `obj` is an object id
/// as a change's operations name it (`_root` or `counter@actor`).
pub(crate) fn object_path(doc: &Automerge, obj: &str) -> Option<Vec<String>> {
    if obj == "_root" {
        return Some(Vec::new());
    }
    // `import_obj` panics on an actor that is not hex: check first.
    let (_, actor) = obj.split_once('@')?;
    hex::decode(actor).ok()?;
    let id = doc.import_obj(obj).ok()?;
    let parents = doc.parents(&id).ok()?;
    Some(
        parents
            .path()
            .iter()
            .map(|(_, prop)| prop_str(prop))
            .collect(),
    )
}

pub(crate) fn prop_str(p: &Prop) -> String {
    match p {
        Prop::Map(k) => k.clone(),
        Prop::Seq(i) => i.to_string(),
    }
}
