//! A post as its shelf holds it ([`super`]): the part fixed when it is
//! written, packed into one string, and the keys beside it that change
//! after.

use automerge::{ObjId, ObjType, ReadDoc, Value};
use serde::{Deserialize, Serialize};

use crate::{MemberId, Millis};

/// What writing a post fixes, as JSON. Nothing else: a field the rules do
/// not know is refused (every node keeps a record as long as the feed
/// lives).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub author: MemberId,
    pub created_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<MemberId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

impl Record {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a record always serialises")
    }

    /// Reads a record; the error says what is wrong with it.
    pub fn decode(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("an unreadable post record: {e}"))
    }

    /// Post `id` as its record says, before what stands beside it.
    pub fn into_post(self, id: &str) -> super::Post {
        super::Post {
            id: id.to_owned(),
            author: self.author,
            body: None,
            created_at: self.created_at,
            reply_to: self.reply_to,
            edited_at: None,
            deleted: false,
            mentions: self.mentions,
            files: self.files,
            reactions: Default::default(),
        }
    }
}

/// A key beside a record on its shelf: `<post id>/<what>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Beside<'a> {
    Body,
    EditedAt,
    Deleted,
    /// A member's reaction.
    Reaction(&'a str, &'a str),
}

/// The longest reaction, in characters.
pub(crate) const MAX_EMOJI: usize = 16;

impl<'a> Beside<'a> {
    /// Splits a shelf's key into the post it names and what it is: `None`
    /// for the record itself, `Err` for a key of no known shape.
    pub fn parse(key: &'a str) -> (&'a str, Result<Option<Self>, ()>) {
        let Some((id, rest)) = key.split_once('/') else {
            return (key, Ok(None));
        };
        let what = match rest {
            "body" => Ok(Self::Body),
            "edited_at" => Ok(Self::EditedAt),
            "deleted" => Ok(Self::Deleted),
            _ => match rest.strip_prefix("r/").and_then(|r| r.split_once('/')) {
                Some((member, emoji))
                    if member.len() == 64
                        && crate::is_lower_hex(member)
                        && (1..=MAX_EMOJI).contains(&emoji.chars().count()) =>
                {
                    Ok(Self::Reaction(member, emoji))
                }
                _ => Err(()),
            },
        };
        (id, what.map(Some))
    }

    pub fn key(&self, id: &str) -> String {
        match self {
            Self::Body => format!("{id}/body"),
            Self::EditedAt => format!("{id}/edited_at"),
            Self::Deleted => format!("{id}/deleted"),
            Self::Reaction(member, emoji) => format!("{id}/r/{member}/{emoji}"),
        }
    }
}

/// Where a post is, and in which form.
#[derive(Clone, Debug)]
pub(crate) enum Place {
    /// A map of fields (the layout before shelves).
    Map(ObjId),
    /// Packed on `shelf`, with what changes after beside it.
    Shelved { shelf: ObjId, text: String },
}

/// Where post `id` is in `posts`: on its shelf, or a map directly in
/// `posts`. `slot` reads what is under a key of a map, in the document now
/// (readers, writers) or at some heads (the rules), so that all of them
/// look in the same places.
pub(crate) fn locate(
    posts: &ObjId,
    id: &str,
    slot: impl Fn(&ObjId, &str) -> Option<(Value<'static>, ObjId)>,
) -> Option<Place> {
    if let Some(key) = super::shelf_of(id) {
        if let Some((Value::Object(ObjType::Map), shelf)) = slot(posts, &key) {
            if let Some((Value::Scalar(s), _)) = slot(&shelf, id) {
                if let Some(text) = s.as_str() {
                    let text = text.to_owned();
                    return Some(Place::Shelved { shelf, text });
                }
            }
        }
    }
    match slot(posts, id)? {
        (Value::Object(ObjType::Map), obj) => Some(Place::Map(obj)),
        _ => None,
    }
}

/// [`locate`] in the document as it is now.
pub(crate) fn locate_now<R: ReadDoc>(doc: &R, posts: &ObjId, id: &str) -> Option<Place> {
    locate(posts, id, |obj, key| {
        doc.get(obj, key)
            .ok()
            .flatten()
            .map(|(v, o)| (v.into_owned(), o))
    })
}
