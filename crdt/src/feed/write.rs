//! The only functions that write the feed layout.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc, Value, ROOT};

use crate::{MemberId, Millis};

/// What a new post says.
#[derive(Clone, Debug)]
pub struct NewPost<'a> {
    /// Its id (random, chosen by the author's node).
    pub id: &'a str,
    /// The author: the signer.
    pub author: MemberId,
    /// The text.
    pub body: &'a str,
    /// When, by the author's clock.
    pub created_at: Millis,
    /// The post it answers.
    pub reply_to: Option<&'a str>,
    /// Members it mentions.
    pub mentions: &'a [MemberId],
}

impl NewPost<'_> {
    /// The post as the feed will show it once written.
    pub fn to_post(&self) -> super::Post {
        super::Post {
            id: self.id.to_owned(),
            author: self.author,
            body: Some(self.body.to_owned()),
            created_at: self.created_at,
            reply_to: self.reply_to.map(str::to_owned),
            edited_at: None,
            deleted: false,
            mentions: self.mentions.to_vec(),
            files: Vec::new(),
            reactions: Default::default(),
        }
    }
}

/// Adds a post at the front of the feed.
pub fn post<T: Transactable>(tx: &mut T, p: &NewPost<'_>) -> Result<(), AutomergeError> {
    let posts = map(tx, &ROOT, "posts")?;
    let obj = tx.put_object(&posts, p.id, ObjType::Map)?;
    tx.put(&obj, "author", p.author.to_string())?;
    tx.put(&obj, "body", p.body)?;
    tx.put(&obj, "created_at", p.created_at)?;
    if let Some(parent) = p.reply_to {
        tx.put(&obj, "reply_to", parent)?;
    }
    let mentions = tx.put_object(&obj, "mentions", ObjType::Map)?;
    for m in p.mentions {
        tx.put(&mentions, m.to_string(), true)?;
    }
    // Newest first: the front of the list is found without counting it.
    let order = list(tx, "order")?;
    tx.insert(&order, 0, p.id)?;
    Ok(())
}

/// Attaches files (library ids) to post `id`, which this same change
/// creates: a post's attachments are fixed when it is written.
pub fn attach<T: Transactable>(tx: &mut T, id: &str, files: &[&str]) -> Result<(), AutomergeError> {
    let Some((Value::Object(ObjType::Map), post)) = tx.get(map(tx, &ROOT, "posts")?, id)? else {
        return Err(AutomergeError::InvalidOp(ObjType::Map));
    };
    let list = tx.put_object(&post, "files", ObjType::List)?;
    for (i, file) in files.iter().enumerate() {
        tx.insert(&list, i, *file)?;
    }
    Ok(())
}

/// Replaces a post's text.
pub fn edit<T: Transactable>(
    tx: &mut T,
    id: &str,
    body: &str,
    now: Millis,
) -> Result<(), AutomergeError> {
    let obj = map(tx, &map(tx, &ROOT, "posts")?, id)?;
    tx.put(&obj, "body", body)?;
    tx.put(&obj, "edited_at", now)
}

/// Deletes a post: its text goes, a tombstone stays.
pub fn delete<T: Transactable>(tx: &mut T, id: &str) -> Result<(), AutomergeError> {
    let obj = map(tx, &map(tx, &ROOT, "posts")?, id)?;
    tx.delete(&obj, "body")?;
    tx.put(&obj, "deleted", true)
}

/// Adds (`on`) or takes back a member's reaction.
pub fn react<T: Transactable>(
    tx: &mut T,
    post: &str,
    emoji: &str,
    member: MemberId,
    on: bool,
) -> Result<(), AutomergeError> {
    let all = map(tx, &ROOT, "reactions")?;
    let per_post = match map(tx, &all, post) {
        Ok(o) => o,
        Err(_) => tx.put_object(&all, post, ObjType::Map)?,
    };
    let per_emoji = match map(tx, &per_post, emoji) {
        Ok(o) => o,
        Err(_) => tx.put_object(&per_post, emoji, ObjType::Map)?,
    };
    if on {
        tx.put(&per_emoji, member.to_string(), true)
    } else {
        tx.delete(&per_emoji, member.to_string())
    }
}

fn map<T: ReadDoc>(tx: &T, obj: &ObjId, key: &str) -> Result<ObjId, AutomergeError> {
    match tx.get(obj, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(AutomergeError::InvalidObjId(format!(
            "feed has no map at {key:?}"
        ))),
    }
}

fn list<T: ReadDoc>(tx: &T, key: &str) -> Result<ObjId, AutomergeError> {
    match tx.get(ROOT, key)? {
        Some((Value::Object(ObjType::List), id)) => Ok(id),
        _ => Err(AutomergeError::InvalidObjId(format!(
            "feed has no list at {key:?}"
        ))),
    }
}
