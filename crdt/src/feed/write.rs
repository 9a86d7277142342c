//! The only functions that write the feed layout.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc, Value, ROOT};

use super::record::{locate_now, Beside, Place, Record};
use crate::read::child_map_or_make;
use crate::{MemberId, Millis};

/// What a new post says.
#[derive(Clone, Debug)]
pub struct NewPost<'a> {
    /// Its id ([`super::post_id`]; a reply's is newer than its post's).
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
    /// Files it attaches (library ids): fixed when it is written.
    pub files: &'a [String],
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
            files: self.files.to_vec(),
            reactions: Default::default(),
        }
    }
}

/// Writes a new post: packed on its shelf ([`super::shelf_of`], made if it
/// is not there yet), its text beside it. An id that carries no time goes
/// directly in `posts` as a map of fields, placed in `order`, as every
/// post did before shelves.
pub fn post<T: Transactable>(tx: &mut T, p: &NewPost<'_>) -> Result<(), AutomergeError> {
    let posts = map(tx, &ROOT, "posts")?;
    let Some(key) = super::shelf_of(p.id) else {
        return post_as_map(tx, &posts, p);
    };
    let shelf = child_map_or_make(tx, &posts, &key)?;
    let record = Record {
        author: p.author,
        created_at: p.created_at,
        reply_to: p.reply_to.map(str::to_owned),
        mentions: p.mentions.to_vec(),
        files: p.files.to_vec(),
    };
    tx.put(&shelf, p.id, record.encode())?;
    tx.put(&shelf, Beside::Body.key(p.id), p.body)
}

/// A post as a map of fields placed in the order list: the layout before
/// shelves, which tests of that layout still write.
fn post_as_map<T: Transactable>(
    tx: &mut T,
    posts: &ObjId,
    p: &NewPost<'_>,
) -> Result<(), AutomergeError> {
    let obj = tx.put_object(posts, p.id, ObjType::Map)?;
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
    if !p.files.is_empty() {
        let list = tx.put_object(&obj, "files", ObjType::List)?;
        for (i, file) in p.files.iter().enumerate() {
            tx.insert(&list, i, file.as_str())?;
        }
    }
    // Newest first: the front of the list is found without counting it.
    let order = list(tx, "order")?;
    tx.insert(&order, 0, p.id)
}

/// Replaces a post's text.
pub fn edit<T: Transactable>(
    tx: &mut T,
    id: &str,
    body: &str,
    now: Millis,
) -> Result<(), AutomergeError> {
    match find(tx, id)? {
        Place::Shelved { shelf, .. } => {
            tx.put(&shelf, Beside::Body.key(id), body)?;
            tx.put(&shelf, Beside::EditedAt.key(id), now)
        }
        Place::Map(obj) => {
            tx.put(&obj, "body", body)?;
            tx.put(&obj, "edited_at", now)
        }
    }
}

/// Deletes a post: its text goes, a tombstone stays.
pub fn delete<T: Transactable>(tx: &mut T, id: &str) -> Result<(), AutomergeError> {
    let (obj, body, deleted) = match find(tx, id)? {
        Place::Shelved { shelf, .. } => (shelf, Beside::Body.key(id), Beside::Deleted.key(id)),
        Place::Map(obj) => (obj, "body".to_owned(), "deleted".to_owned()),
    };
    if tx.get(&obj, body.as_str())?.is_some() {
        tx.delete(&obj, body.as_str())?;
    }
    tx.put(&obj, deleted, true)
}

/// Adds (`on`) or takes back a member's reaction.
pub fn react<T: Transactable>(
    tx: &mut T,
    post: &str,
    emoji: &str,
    member: MemberId,
    on: bool,
) -> Result<(), AutomergeError> {
    if let Place::Shelved { shelf, .. } = find(tx, post)? {
        let me = member.to_string();
        let key = Beside::Reaction(&me, emoji).key(post);
        return if on {
            tx.put(&shelf, key, true)
        } else {
            tx.delete(&shelf, key)
        };
    }
    let all = map(tx, &ROOT, "reactions")?;
    let per_post = child_map_or_make(tx, &all, post)?;
    let per_emoji = child_map_or_make(tx, &per_post, emoji)?;
    if on {
        tx.put(&per_emoji, member.to_string(), true)
    } else {
        tx.delete(&per_emoji, member.to_string())
    }
}

/// Where post `id` is, or an error that says it is not in this feed.
fn find<T: ReadDoc>(tx: &T, id: &str) -> Result<Place, AutomergeError> {
    locate_now(tx, &map(tx, &ROOT, "posts")?, id)
        .ok_or_else(|| AutomergeError::InvalidObjId(format!("the feed has no post {id:?}")))
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
