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

    pub(crate) fn get(&self, obj: &ObjId, prop: impl Into<Prop>) -> Option<(Value<'a>, ObjId)> {
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

/// The keys of a shelf (a library's or a feed's) that stand beside record
/// `id`, `<id>/…`, lie in this range.
pub(crate) fn beside_range(id: &str) -> std::ops::Range<String> {
    // '0' is the character after '/'.
    format!("{id}/")..format!("{id}0")
}

/// The map under `key` in `obj`, made there if there is none: a shelf its
/// owner writes on (or, before shelves, a post's reactions).
pub(crate) fn child_map_or_make<T: automerge::transaction::Transactable>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
) -> Result<ObjId, automerge::AutomergeError> {
    match tx.get(obj, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => tx.put_object(obj, key, ObjType::Map),
    }
}

/// The map stored under `key` in `obj`, in the current document.
pub(crate) fn child_map<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ObjId> {
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

/// The records of a document that an index keeps: a feed's posts or a
/// library's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Records {
    /// A feed's `posts`: on shelves ([`crate::feed`]), or directly in
    /// `posts` in a feed from before shelves.
    Posts,
    /// A library's `files`: on shelves ([`crate::library`]), or directly
    /// in `files` in a library from before shelves.
    Files,
}

impl Records {
    fn root(self) -> &'static str {
        match self {
            Self::Posts => "posts",
            Self::Files => "files",
        }
    }

    /// Whether `key` of the root map is a shelf rather than a record.
    fn is_shelf(self, key: &str) -> bool {
        match self {
            Self::Posts => crate::feed::is_shelf(key),
            Self::Files => crate::library::is_shelf(key),
        }
    }
}

/// The ids of the records of `kind` under which the changes after `since` wrote
/// anything: what an index of those records must look at again. A record
/// on a shelf is named by its id, and so is a key written beside it (a
/// file's holder `<id>/<member>`, a post's `<id>/body`, …). `None` when `since` names a change the document does
/// not hold, or when more than `at_most` changes came after it; then the
/// caller reads the records whole.
///
/// Costs what changed, not the document's history: each new operation's
/// object is placed by walking up from it.
pub fn touched_since(
    doc: &Automerge,
    since: &[ChangeHash],
    kind: Records,
    at_most: usize,
) -> Option<std::collections::BTreeSet<String>> {
    use automerge::legacy::Key;
    use std::collections::{BTreeSet, HashMap};

    if since.iter().any(|h| doc.get_change_by_hash(h).is_none()) {
        return None;
    }
    let changes = doc.get_changes(since);
    if changes.len() > at_most {
        return None;
    }
    let (records, shelf) = (kind.root(), |key: &str| kind.is_shelf(key));
    let mut touched = BTreeSet::new();
    let mut paths: HashMap<String, Option<Vec<String>>> = HashMap::new();
    for change in &changes {
        for op in change.decode().operations {
            let obj = op.obj.to_string();
            let path = paths
                .entry(obj)
                .or_insert_with_key(|obj| object_path(doc, obj));
            let record = match (path.as_deref(), &op.key) {
                // A shelf made: nothing on it yet.
                (Some([root]), Key::Map(key)) if root == records && shelf(key) => None,
                // A record itself, made or replaced: directly under `records`
                // or on a shelf.
                (Some([root]), Key::Map(key)) if root == records => Some(key.to_string()),
                // On a shelf: a record, or a holder beside it (`<id>/<member>`).
                (Some([root, on]), Key::Map(key)) if root == records && shelf(on) => {
                    key.split('/').next().map(str::to_owned)
                }
                // Anything inside one.
                (Some([root, on, key, ..]), _) if root == records && shelf(on) => Some(key.clone()),
                (Some([root, key, ..]), _) if root == records => Some(key.clone()),
                _ => None,
            };
            touched.extend(record);
        }
    }
    Some(touched)
}

#[cfg(test)]
mod tests {
    use automerge::{Automerge, ChangeHash};

    use super::{touched_since, Records};
    use crate::feed::write::{self, NewPost};
    use crate::MemberId;

    fn commit(doc: &mut Automerge, f: impl FnOnce(&mut automerge::transaction::Transaction<'_>)) {
        let mut tx = doc.transaction();
        f(&mut tx);
        tx.commit();
    }

    fn post(id: &str, author: MemberId) -> NewPost<'_> {
        NewPost {
            id,
            author,
            body: "hello",
            created_at: 1,
            reply_to: None,
            mentions: &[],
            files: &[],
        }
    }

    #[test]
    fn names_the_records_later_changes_wrote_and_only_those() {
        let me = MemberId::from_bytes(&[7; 32]).unwrap();
        let mut doc = crate::feed::genesis("dept").unwrap();
        commit(&mut doc, |tx| write::post(tx, &post("a", me)).unwrap());
        commit(&mut doc, |tx| write::post(tx, &post("b", me)).unwrap());
        let mark = doc.get_heads();
        assert_eq!(
            touched_since(&doc, &mark, Records::Posts, 10),
            Some(Default::default())
        );

        commit(&mut doc, |tx| write::edit(tx, "a", "edited", 2).unwrap());
        commit(&mut doc, |tx| write::post(tx, &post("c", me)).unwrap());
        commit(&mut doc, |tx| {
            write::react(tx, "b", "👍", me, true).unwrap()
        });
        let touched = touched_since(&doc, &mark, Records::Posts, 10).unwrap();
        assert_eq!(touched.into_iter().collect::<Vec<_>>(), ["a", "c"]);

        commit(&mut doc, |tx| write::delete(tx, "b").unwrap());
        let touched = touched_since(&doc, &mark, Records::Posts, 10).unwrap();
        assert_eq!(touched.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        // Too many changes since, or a mark the document never held: read whole.
        assert_eq!(touched_since(&doc, &mark, Records::Posts, 3), None);
        assert_eq!(
            touched_since(&doc, &[ChangeHash([9; 32])], Records::Posts, 10),
            None
        );
        // Everything from the beginning.
        let all = touched_since(&doc, &[], Records::Posts, 10).unwrap();
        assert_eq!(all.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    /// A feed's records are never on shelves, whatever their ids look like
    /// (an old node's post may have any id).
    #[test]
    fn a_post_whose_id_looks_like_a_shelf_is_a_post() {
        let me = MemberId::from_bytes(&[7; 32]).unwrap();
        let id = "0123456789abcdef.1";
        let mut doc = crate::feed::genesis("dept").unwrap();
        commit(&mut doc, |tx| write::post(tx, &post(id, me)).unwrap());
        let mark = doc.get_heads();
        commit(&mut doc, |tx| write::delete(tx, id).unwrap());
        let touched = touched_since(&doc, &mark, Records::Posts, 10).unwrap();
        assert_eq!(touched.into_iter().collect::<Vec<_>>(), [id]);
    }

    /// In a library, a file on a shelf is named by its id, not its shelf's.
    #[test]
    fn names_files_on_shelves_by_their_ids() {
        use crate::library::write::{hold, share, NewFile};
        let me = MemberId::from_bytes(&[7; 32]).unwrap();
        let id = |n: u8| crate::library::file_id(&me, [n; 8]);
        let new = |id: &str| {
            let id = id.to_owned();
            move |tx: &mut automerge::transaction::Transaction<'_>| {
                let f = NewFile {
                    id: &id,
                    name: "a.txt",
                    size: 1,
                    media_type: "text/plain",
                    blob: "b",
                    blob_size: 1,
                    key: "k",
                    uploader: me,
                    shared_at: 1,
                    entries: None,
                };
                share(tx, &f).unwrap()
            }
        };
        let mut doc = crate::library::genesis("dept").unwrap();
        commit(&mut doc, new(&id(1)));
        commit(&mut doc, new(&id(2)));
        let mark = doc.get_heads();
        commit(&mut doc, |tx| hold(tx, &id(1), me, false).unwrap());
        commit(&mut doc, new(&id(3)));
        let touched = touched_since(&doc, &mark, Records::Files, 10).unwrap();
        assert_eq!(touched.into_iter().collect::<Vec<_>>(), [id(1), id(3)]);
    }
}
