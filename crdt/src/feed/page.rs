//! A feed's first page, ahead of its history.
//!
//! A fresh member of a long-lived department would see its feed fill oldest
//! first: automerge sends changes in causal order, and the newest post
//! depends on every earlier one through the order list, so it comes last.
//! At 100,000 posts that is minutes of checking and applying. So the node
//! first asks one peer for the page ([`page_changes`]): the signed changes
//! that wrote what the newest threads show — each post's creation, and the
//! changes that set its current text or deleted it.
//!
//! The receiver ([`open`], then [`OpenedPage::read`]) checks each change as
//! the history will, as far as a change can be checked without the
//! history: its signature, its author's membership of the department in the
//! roster it cites, and the rules on a post itself — the id carries the
//! author's prefix, the author field names the signer, the body and the
//! attachments are within bounds, only the author edits, only the author
//! or an admin deletes. What a dishonest peer can still do is leave posts
//! out, or send an older edit of a post: the page is shown as a preview,
//! until the history itself holds its newest post.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{Key, OpType};
use automerge::{Change, ObjType, ReadDoc, ScalarValue, Value, ROOT};

use super::record::{locate_now, Beside, Place, Record};
use super::{FeedRules, Post, Thread, MAX_ATTACHED, MAX_BODY};
use crate::{cite, MemberId, RosterAt, SignedChange, SignedDoc};

/// How many threads a first page holds.
pub const PAGE_THREADS: usize = 50;

/// How many of a thread's newest replies a first page holds.
pub const PAGE_REPLIES: usize = 20;

/// The most bytes of changes a sender puts in a page: a page stops at the
/// thread that crosses it. Posts are small; 64 KiB bodies are not.
pub const PAGE_BUDGET: usize = 2 << 20;

/// The most changes a receiver takes in one page: each post needs at most
/// four (its shelf, its creation, its text, its deletion).
pub const MAX_PAGE_CHANGES: usize = 4 * PAGE_THREADS * (1 + PAGE_REPLIES);

/// The signed changes that wrote what the newest `threads` threads of
/// `feed` show (each with its `replies` newest replies), within
/// [`PAGE_BUDGET`] bytes.
pub fn page_changes(feed: &SignedDoc, threads: usize, replies: usize) -> Vec<SignedChange> {
    let doc = feed.doc();
    let Ok(Some((Value::Object(ObjType::Map), posts))) = doc.get(ROOT, "posts") else {
        return Vec::new();
    };
    let Ok(page) = super::Feed::new(doc).threads(threads, None) else {
        return Vec::new();
    };
    let (mut out, mut seen, mut bytes) = (Vec::new(), HashSet::new(), 0);
    for (root, answers) in &page {
        if bytes > PAGE_BUDGET {
            break;
        }
        for post in std::iter::once(root).chain(answers.iter().rev().take(replies)) {
            let ops = match locate_now(doc, &posts, &post.id) {
                // The shelf, the record, its text and its deletion.
                Some(Place::Shelved { shelf, .. }) => {
                    let mut ops = vec![shelf.clone()];
                    let keys = [Beside::Body.key(&post.id), Beside::Deleted.key(&post.id)];
                    for key in std::iter::once(post.id.clone()).chain(keys) {
                        if let Ok(Some((_, op))) = doc.get(&shelf, key) {
                            ops.push(op);
                        }
                    }
                    ops
                }
                Some(Place::Map(obj)) => {
                    let mut ops = vec![obj.clone()];
                    for key in ["body", "deleted"] {
                        if let Ok(Some((_, op))) = doc.get(&obj, key) {
                            ops.push(op);
                        }
                    }
                    ops
                }
                None => continue,
            };
            for hash in ops.iter().filter_map(|op| doc.hash_for_opid(op)) {
                if !seen.insert(hash) {
                    continue;
                }
                if let Some(change) = feed.signed_change(&hash) {
                    bytes += change.bytes.len();
                    out.push(change);
                }
            }
        }
    }
    out
}

/// A page whose changes decoded and whose signatures hold.
pub struct OpenedPage {
    changes: Vec<(Change, MemberId)>,
}

/// Decodes a page a peer sent and checks every signature. A page with a
/// malformed change, a forged signature or too many changes is refused
/// whole: its sender is not honest.
pub fn open(page: Vec<SignedChange>) -> Result<OpenedPage, String> {
    if page.len() > MAX_PAGE_CHANGES {
        return Err(format!(
            "a first page of {} changes (at most {MAX_PAGE_CHANGES})",
            page.len()
        ));
    }
    let mut changes = Vec::with_capacity(page.len());
    let mut items = Vec::with_capacity(page.len());
    for signed in page {
        let change = Change::from_bytes(signed.bytes)
            .map_err(|e| format!("a malformed change in a first page: {e}"))?;
        let author = MemberId::from_bytes(change.actor_id().to_bytes())
            .ok_or("a change in a first page whose actor is not a key")?;
        let signature: [u8; 64] = signed
            .signature
            .try_into()
            .map_err(|_| "a change in a first page with a malformed signature")?;
        items.push((author, change.hash().0, signature));
        changes.push((change, author));
    }
    let verdicts = crate::identity::verify_changes(&items);
    if let Some(i) = verdicts.iter().position(|ok| !ok) {
        return Err(format!(
            "change {} in a first page has a forged signature",
            changes[i].0.hash()
        ));
    }
    Ok(OpenedPage { changes })
}

/// What an object a page's change made belongs to.
#[derive(Clone)]
enum Part {
    Post(String),
    Mentions(String),
    Files(String),
}

impl OpenedPage {
    /// How many changes it holds.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The rosters its changes cite, read now from `roster` (under
    /// whatever lock guards it), so that [`Self::read`] can run without it.
    pub fn rosters(&self, roster: &mut RosterAt<'_>) -> RosterAt<'static> {
        roster.cited_by(self.changes.iter().map(|(c, _)| c))
    }

    /// The threads the page shows, newest first, each with its replies
    /// oldest first, at most `limit`. A change that breaks a rule, was
    /// written by someone outside the department, or cites a roster this
    /// node does not hold yet, is left out; a change for anything but a
    /// post's creation, text or deletion is ignored. So is a post dated
    /// after `until` (the reader's clock and [`super::MAX_AHEAD`]): a
    /// preview stays until the history holds its newest post, which for
    /// a post dated years ahead would be for good.
    pub fn read(
        &self,
        rules: &FeedRules,
        roster: &mut RosterAt<'_>,
        limit: usize,
        until: crate::Millis,
    ) -> Vec<Thread> {
        let Some(posts) = posts_obj(rules).filter(|_| rules.pair.is_none()) else {
            return Vec::new();
        };
        let mut book = Book::default();
        let mut judged = Vec::new();
        for (change, author) in &self.changes {
            let Ok(Some(heads)) = cite::cited(change) else {
                continue;
            };
            let Some(at) = roster.at(&heads) else {
                continue;
            };
            let member = at
                .dept(&rules.dept)
                .is_some_and(|d| d.members.contains(author))
                && at.is_active(author);
            if member {
                judged.push((change, *author, at.is_admin(author)));
            }
        }
        // Shelves, then creations, so that a post finds its shelf and an
        // edit its post whatever the order the changes came in.
        for (change, author, _) in &judged {
            book.shelves(change, *author, &posts);
        }
        for (change, author, _) in &judged {
            book.create(change, *author, &posts);
        }
        for (change, author, admin) in &judged {
            book.amend(change, *author, *admin);
        }
        book.posts.retain(|_, post| super::rank(post).0 <= until);
        book.threads(limit)
    }
}

/// The object id of the `posts` map in this feed: made by its genesis, so
/// the same on every node, and different in every feed.
fn posts_obj(rules: &FeedRules) -> Option<String> {
    let genesis = super::genesis(&rules.dept).ok()?;
    match genesis.get(ROOT, "posts") {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id.to_string()),
        _ => None,
    }
}

/// The posts a page's changes wrote, as they are read.
#[derive(Default)]
struct Book {
    posts: HashMap<String, Post>,
    /// The object id of each post's map → the post.
    objects: HashMap<String, String>,
    /// The edit of each post that is shown: the latest by its time.
    edits: HashMap<String, (i64, String)>,
    /// The object id of each shelf the page's changes made → its key.
    shelves: HashMap<String, String>,
}

impl Book {
    /// The shelves `change` makes: its author's, in the feed's `posts`.
    fn shelves(&mut self, change: &Change, author: MemberId, posts: &str) {
        let actor = change.actor_id().to_hex_string();
        let start = change.start_op().get();
        let prefix = &author.to_string()[..16];
        for (i, op) in change.decode().operations.iter().enumerate() {
            let (Key::Map(key), OpType::Make(ObjType::Map)) = (&op.key, &op.action) else {
                continue;
            };
            if op.obj.to_string() == posts && super::is_shelf(key) && key.ends_with(prefix) {
                let id = format!("{}@{actor}", start + i as u64);
                self.shelves.insert(id, key.to_string());
            }
        }
    }

    /// The posts `change` writes on shelves, if each keeps the rules on a
    /// new post, with their text; none if the change writes anything else
    /// (the history would refuse it whole, or it is not a post's creation).
    fn create_shelved(&mut self, change: &Change, author: MemberId, posts: &str) {
        let mut made: Vec<Post> = Vec::new();
        let mut other = false;
        for op in change.decode().operations {
            let obj = op.obj.to_string();
            let Some(shelf) = self.shelves.get(&obj) else {
                // Only the making of a shelf goes with a post's creation.
                let makes_shelf = obj == posts
                    && matches!(op.action, OpType::Make(ObjType::Map))
                    && matches!(&op.key, Key::Map(k) if super::is_shelf(k));
                other |= !makes_shelf;
                continue;
            };
            let (Key::Map(key), OpType::Put(ScalarValue::Str(text))) = (&op.key, &op.action) else {
                other = true;
                continue;
            };
            let (id, what) = Beside::parse(key);
            if super::shelf_of(id).as_deref() != Some(shelf) {
                return;
            }
            match what {
                Ok(None) => {
                    let Ok(record) = Record::decode(text) else {
                        return;
                    };
                    let made_here = made.iter().any(|p| p.id == id);
                    if made_here
                        || record.encode() != **text
                        || !super::is_post_id_of(id, &author)
                        || super::rules::check_record(id, &record, &author).is_err()
                    {
                        return;
                    }
                    made.push(record.into_post(id));
                }
                Ok(Some(Beside::Body)) => match made.iter_mut().find(|p| p.id == id) {
                    Some(post) => post.body = Some(text.to_string()),
                    None => other = true,
                },
                _ => other = true,
            }
        }
        if !other {
            self.keep(made);
        }
    }

    /// Keeps the new posts whose text is within bounds, each once; the
    /// ids it kept.
    fn keep(&mut self, made: Vec<Post>) -> Vec<String> {
        let mut kept = Vec::new();
        for mut post in made {
            let body_fits = post.body.as_ref().is_some_and(|b| b.len() <= MAX_BODY);
            if !body_fits || self.posts.contains_key(&post.id) {
                continue;
            }
            post.mentions.sort();
            kept.push(post.id.clone());
            self.posts.insert(post.id.clone(), post);
        }
        kept
    }

    /// The posts `change` creates, if it keeps every rule on a new post.
    fn create(&mut self, change: &Change, author: MemberId, posts: &str) {
        self.create_shelved(change, author, posts);
        let actor = change.actor_id().to_hex_string();
        let start = change.start_op().get();
        let mut parts: HashMap<String, Part> = HashMap::new();
        let mut made: Vec<Post> = Vec::new();
        for (i, op) in change.decode().operations.iter().enumerate() {
            let id = format!("{}@{actor}", start + i as u64);
            let obj = op.obj.to_string();
            let key = match &op.key {
                Key::Map(k) => Some(k.to_string()),
                Key::Seq(_) => None,
            };
            let text = match &op.action {
                OpType::Put(ScalarValue::Str(s)) => Some(s.to_string()),
                _ => None,
            };
            if obj == posts {
                if let (Some(post), OpType::Make(ObjType::Map)) = (key, &op.action) {
                    if !super::is_post_id_of(&post, &author) {
                        return;
                    }
                    parts.insert(id, Part::Post(post.clone()));
                    made.push(new_post(post, author));
                }
                continue;
            }
            let Some(part) = parts.get(&obj).cloned() else {
                continue;
            };
            let Some(post) = made.iter_mut().find(|p| match &part {
                Part::Post(x) | Part::Mentions(x) | Part::Files(x) => *x == p.id,
            }) else {
                continue;
            };
            match (&part, key.as_deref(), &op.action) {
                (Part::Post(_), Some("author"), _)
                    if text.as_deref() != Some(author.to_string().as_str()) =>
                {
                    return;
                }
                (Part::Post(_), Some("body"), _) => post.body = text,
                (Part::Post(_), Some("created_at"), OpType::Put(v)) => {
                    post.created_at = millis(v).unwrap_or(0);
                }
                (Part::Post(_), Some("reply_to"), _) => post.reply_to = text,
                (Part::Post(_), Some("mentions"), OpType::Make(ObjType::Map)) => {
                    parts.insert(id, Part::Mentions(post.id.clone()));
                }
                (Part::Post(_), Some("files"), OpType::Make(ObjType::List)) => {
                    parts.insert(id, Part::Files(post.id.clone()));
                }
                (Part::Mentions(_), Some(m), _) => post.mentions.extend(m.parse::<MemberId>().ok()),
                (Part::Files(_), None, _) if op.insert => {
                    match text.filter(|f| crate::library::is_file_id(f)) {
                        Some(f) if post.files.len() < MAX_ATTACHED => post.files.push(f),
                        _ => return,
                    }
                }
                _ => {}
            }
        }
        // Edits reach a post through its map's object id.
        for id in self.keep(made) {
            let obj = parts
                .iter()
                .find(|(_, p)| matches!(p, Part::Post(x) if *x == id))
                .map(|(o, _)| o.clone());
            if let Some(obj) = obj {
                self.objects.insert(obj, id);
            }
        }
    }

    /// A later change to a post of the page: its author's new text, or
    /// its deletion by the author or an admin.
    fn amend(&mut self, change: &Change, author: MemberId, admin: bool) {
        let mut edit: Option<(String, String)> = None;
        let mut edited_at = None;
        for op in change.decode().operations {
            let obj = op.obj.to_string();
            if let (Some(shelf), Key::Map(key)) = (self.shelves.get(&obj), &op.key) {
                let (id, what) = Beside::parse(key);
                let on_shelf = super::shelf_of(id).as_deref() == Some(shelf.as_str());
                let Some(post) = self.posts.get_mut(id).filter(|_| on_shelf) else {
                    continue;
                };
                let mine = post.author == author;
                match (what, &op.action) {
                    (Ok(Some(Beside::Body)), OpType::Put(ScalarValue::Str(s)))
                        if mine && s.len() <= MAX_BODY =>
                    {
                        edit = Some((id.to_owned(), s.to_string()));
                    }
                    (Ok(Some(Beside::EditedAt)), OpType::Put(v)) if mine => {
                        edited_at = millis(v);
                    }
                    (Ok(Some(Beside::Deleted)), OpType::Put(ScalarValue::Boolean(true)))
                        if mine || admin =>
                    {
                        post.deleted = true;
                        post.body = None;
                    }
                    _ => {}
                }
                continue;
            }
            let Some(id) = self.objects.get(&obj).cloned() else {
                continue;
            };
            let Some(post) = self.posts.get_mut(&id) else {
                continue;
            };
            let Key::Map(key) = &op.key else { continue };
            let mine = post.author == author;
            match (key.as_str(), &op.action) {
                ("body", OpType::Put(ScalarValue::Str(s))) if mine && s.len() <= MAX_BODY => {
                    edit = Some((id, s.to_string()));
                }
                ("edited_at", OpType::Put(v)) if mine => edited_at = millis(v),
                ("deleted", OpType::Put(ScalarValue::Boolean(true))) if mine || admin => {
                    post.deleted = true;
                    post.body = None;
                }
                _ => {}
            }
        }
        // An edit writes its time too; the text a post is written with is
        // not an edit.
        let (Some((id, body)), Some(edited_at)) = (edit, edited_at) else {
            return;
        };
        if self.edits.get(&id).is_some_and(|(at, _)| *at >= edited_at) {
            return;
        }
        self.edits.insert(id.clone(), (edited_at, body.clone()));
        if let Some(post) = self.posts.get_mut(&id).filter(|p| !p.deleted) {
            post.body = Some(body);
            post.edited_at = Some(edited_at);
        }
    }

    /// Threads as [`super::Feed::threads`] makes them, in the feed's order
    /// ([`super::rank`]; the page has no order list for posts from before
    /// shelves, so those go by their authors' clocks): a reply whose parent
    /// is not in the page stands as a thread of its own.
    fn threads(self, limit: usize) -> Vec<Thread> {
        let ids: HashSet<String> = self.posts.keys().cloned().collect();
        let mut replies: HashMap<String, Vec<Post>> = HashMap::new();
        let mut roots = Vec::new();
        for post in self.posts.into_values() {
            match &post.reply_to {
                Some(parent) if ids.contains(parent) => {
                    replies.entry(parent.clone()).or_default().push(post);
                }
                _ => roots.push(post),
            }
        }
        let newest_first = |a: &Post, b: &Post| super::rank(b).cmp(&super::rank(a));
        roots.sort_by(newest_first);
        roots.truncate(limit);
        for answers in replies.values_mut() {
            answers.sort_by(newest_first);
        }
        roots
            .into_iter()
            .map(|root| {
                let answers = super::gather(&mut replies, &root.id);
                (root, answers)
            })
            .collect()
    }
}

fn new_post(id: String, author: MemberId) -> Post {
    Post {
        id,
        author,
        body: None,
        created_at: 0,
        reply_to: None,
        edited_at: None,
        deleted: false,
        mentions: Vec::new(),
        files: Vec::new(),
        reactions: Default::default(),
    }
}

fn millis(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int(n) | ScalarValue::Timestamp(n) => Some(*n),
        ScalarValue::Uint(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}
