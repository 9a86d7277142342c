//! The command line's shape. Names and flags here are a contract scripts
//! rely on: add, never rename.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Meshwork: a serverless workspace. Departments, feeds and files,
/// replicated among your colleagues' machines — no server, no operator.
#[derive(Parser, Debug)]
#[command(name = "meshwork", version, propagate_version = true)]
pub(crate) struct Cli {
    /// The node's home directory (identity, database, API address).
    /// Two nodes on one machine need two homes.
    #[arg(long, global = true, env = "MESHWORK_HOME")]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create this device's identity (offline; no daemon needed).
    Init {
        /// Your display name, as colleagues will see it.
        #[arg(long)]
        name: String,
    },
    /// Run the node in the foreground until Ctrl-C or SIGTERM.
    Daemon(DaemonArgs),
    /// Start here: create an identity and a workspace if there are none, run
    /// the node, and print its addresses, a fresh invite and a login link
    /// to its web app.
    Up(UpArgs),
    /// Workspace commands.
    #[command(subcommand)]
    Workspace(WorkspaceCmd),
    /// Your profile: `meshwork profile set name "Ada Lovelace"`.
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Create an invite and print its one-line token (admins only).
    Invite {
        /// Department the joiner is added to.
        #[arg(long)]
        dept: Option<String>,
        /// The joiner's role.
        #[arg(long, value_enum, default_value_t = RoleArg::Member)]
        role: RoleArg,
        /// How long the invite stays valid (90s, 30m, 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = crate::duration::parse)]
        expires: Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Join a workspace with an invite token.
    Join {
        /// The token `meshwork invite` printed.
        token: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Department commands.
    #[command(subcommand)]
    Dept(DeptCmd),
    /// List members, of the workspace or of one department.
    Members {
        /// Only this department's members.
        #[arg(long)]
        dept: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Member commands (admins only).
    #[command(subcommand)]
    Member(MemberCmd),
    /// Print (and, on a desktop, open) a one-time link that logs a browser
    /// into this node's web app. The daemon must be running.
    Open {
        /// Only print the link.
        #[arg(long)]
        no_browser: bool,
    },
    /// This node: identity, workspace, addresses, peers, documents.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Post to a department's feed; prints the new post's id.
    Post {
        /// Department name.
        dept: String,
        /// The text (`@Name` mentions a member).
        text: String,
        /// Answer this post.
        #[arg(long, value_name = "POST_ID")]
        reply_to: Option<String>,
        /// Attach a file or folder of the department's library (its id, or
        /// its name if no other file has it); repeat to attach more.
        #[arg(long = "file", value_name = "FILE")]
        files: Vec<String>,
    },
    /// A department's feed, newest first, replies under their posts.
    Feed {
        /// Department name (not needed with --mentions).
        #[arg(required_unless_present = "mentions")]
        dept: Option<String>,
        /// At most this many posts (with their replies).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only posts older than this one (for paging).
        #[arg(long, value_name = "POST_ID")]
        before: Option<String>,
        /// Keep printing new posts and replies as they arrive, until interrupted.
        #[arg(long, conflicts_with = "json")]
        follow: bool,
        /// Posts that mention me, across my departments.
        #[arg(long, conflicts_with_all = ["dept", "follow", "before"])]
        mentions: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a direct message, readable by the two of you alone.
    Dm {
        /// Member id or display name.
        member: String,
        /// The text.
        text: String,
    },
    /// Find posts, replies, direct messages and shared files (by name) in
    /// what you may read, best match first. Every word must match;
    /// "quoted words" match as a phrase. The index is on this machine and
    /// built from your own copies: nothing is sent anywhere.
    Search {
        /// What to look for.
        query: String,
        /// Only this department's feed and files.
        #[arg(long)]
        dept: Option<String>,
        /// At most this many matches (1 to 200).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=200))]
        limit: u16,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What is new: unread posts per department and conversation, and how
    /// many mention you. Reading a feed or a conversation here (`feed`,
    /// `dms MEMBER`, not with --json) or in the web app marks it read.
    Unread {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark a department's feed read (or, with --dm, a conversation).
    Read {
        /// Department name.
        #[arg(required_unless_present = "dm", conflicts_with = "dm")]
        dept: Option<String>,
        /// The member whose conversation with you is read.
        #[arg(long, value_name = "MEMBER")]
        dm: Option<String>,
    },
    /// Your direct conversations, or the one with MEMBER (oldest first).
    Dms {
        /// Member id or display name.
        member: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Share a file or a folder with a department: encrypted on this
    /// machine, fetched by colleagues from whoever holds it. A folder is one
    /// entry holding every regular file under it, with its relative path.
    /// Prints the id. Ctrl-C before it is sealed shares nothing.
    Share {
        /// The department (name, id, or the start of its id).
        dept: String,
        /// The file or directory.
        path: PathBuf,
        /// The name colleagues see (default: the file's or directory's own name).
        #[arg(long)]
        name: Option<String>,
        /// Share without a post: by default the department's feed says
        /// "shared NAME", with the file attached.
        #[arg(long)]
        no_post: bool,
    },
    /// A department's files: name, size, type, uploader, shared at,
    /// available until, how many peers hold it.
    Files {
        /// The department (name, id, or the start of its id).
        dept: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a shared file or folder from the peers that hold it; resumes
    /// where an interrupted fetch stopped, and writes the file (or the whole
    /// folder) only once complete and verified.
    Get {
        /// The file's id, or its name if no other file has it (`meshwork
        /// files DEPT` lists them).
        file_id: String,
        /// Where to write it (default: its name, in the current directory;
        /// an existing directory: its name, in there); for a folder, the
        /// directory to create.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// React to a post or a direct message with an emoji.
    React {
        /// The post.
        post_id: String,
        /// The emoji (👍, 🎉…), or a name: thumbsup, thumbsdown, heart,
        /// tada, smile, laugh, eyes, rocket, check, pray.
        emoji: String,
    },
    /// Replace the text of your post or direct message.
    Edit {
        /// The post.
        post_id: String,
        /// The new text.
        text: String,
    },
    /// Delete a post or direct message (yours; admins may delete any post
    /// in a department). A tombstone stays.
    Delete {
        /// The post.
        post_id: String,
    },
    /// Follow live events until interrupted: who posted, replied, reacted,
    /// wrote to you, shared a file, joined or came online — one line each,
    /// with its time and names; the node's events as JSON lines with --json.
    Events {
        /// Print each event as one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connected peers.
    Peers {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every pinned blob the workspace knows: file (where you may see it),
    /// size, pinners, until when, and whether it meets the replica target;
    /// then pin nodes and their quota.
    Pins {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Keep a file on this node for longer than the workspace's retention
    /// (fetching it first if it is not here).
    Pin {
        /// The file id (`meshwork files DEPT` lists them).
        file_id: String,
        /// How long from now (90s, 30m, 24h, 7d).
        #[arg(long = "for", default_value = "7d", value_parser = crate::duration::parse)]
        duration: Duration,
    },
    /// Stop keeping a file on this node (it is deleted once its deadline
    /// has passed and nothing else keeps it here).
    Unpin {
        /// The file id.
        file_id: String,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DaemonArgs {
    /// Address to listen on for peers (repeatable). Default: all interfaces, a free port.
    #[arg(long = "listen", value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// A peer to dial at start (repeatable), e.g. /ip4/192.168.1.7/tcp/4001.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    pub peers: Vec<String>,
    /// Do not discover peers on the LAN with mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// Where the control API listens (loopback only). Default: a free port on 127.0.0.1.
    #[arg(long, value_name = "127.0.0.1:PORT")]
    pub api: Option<SocketAddr>,
    /// Run as a headless pin node: fetch and keep every shared file's
    /// ciphertext until its deadline (admit it with `meshwork member
    /// add-pinner` or an invite with `--role pinner`). See docs/pin-node.md.
    #[arg(long)]
    pub pin: bool,
    /// The most a pin node keeps (500G, 2T…); beyond it, it refuses new
    /// pins and says so.
    #[arg(long, value_name = "SIZE", requires = "pin", default_value = "100G", value_parser = crate::size::parse)]
    pub pin_quota: u64,
    /// Disk space this node always leaves free (on the file system of its
    /// home): it refuses to share, fetch or keep a file that would eat
    /// into it, and says so.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = crate::size::parse)]
    pub min_free: u64,
    /// Do not volunteer this node's disk to keep colleagues' files when
    /// too few pinners hold them (your own `meshwork pin`s still hold).
    #[arg(long, conflicts_with = "pin")]
    pub no_volunteer: bool,
}

/// `up`: a daemon's options, and the names to start with.
#[derive(clap::Args, Debug)]
pub(crate) struct UpArgs {
    /// Your display name (default: your login name). On a home that has one
    /// already, renames you everywhere.
    #[arg(long)]
    pub name: Option<String>,
    /// The workspace's name, if `up` creates it (default: "NAME's
    /// workspace"). On an existing workspace, renames it (admins only).
    #[arg(long)]
    pub workspace: Option<String>,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// Your own profile.
#[derive(Subcommand, Debug)]
pub(crate) enum ProfileCmd {
    /// Change your profile: `name "Ada Lovelace"` renames you for everyone.
    Set {
        /// What to change.
        #[arg(value_enum)]
        key: ProfileKey,
        /// Its new value.
        value: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ProfileKey {
    /// Your display name.
    Name,
}

#[derive(Subcommand, Debug)]
pub(crate) enum WorkspaceCmd {
    /// Rename the workspace (admins only).
    Rename {
        /// Its new name.
        name: String,
    },
    /// Create a workspace; you become its first admin.
    Create {
        /// Its name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a workspace policy (admins only): `retention 72h` (how long
    /// shared files stay available; at least 72h) or `replicas 2` (how
    /// many pinners keep each file).
    Set {
        /// What to set.
        #[arg(value_enum)]
        key: PolicyKey,
        /// Its value: a duration for retention (72h, 7d), a count for replicas.
        value: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum PolicyKey {
    /// How long shared files stay available (at least 72h).
    Retention,
    /// How many pinners keep each file (1 to 16).
    Replicas,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeptCmd {
    /// Create a department, with you in it.
    Create {
        /// Its name.
        name: String,
    },
    /// Rename a department.
    Rename {
        /// Current name (or id, or label: `Ops (3f2a)`).
        old: String,
        /// New name.
        new: String,
    },
    /// Add a member (id or unambiguous name) to a department.
    Add {
        /// Member id or display name.
        member: String,
        /// Department name.
        dept: String,
    },
    /// Take a member out of a department.
    Remove {
        /// Member id or display name.
        member: String,
        /// Department name.
        dept: String,
    },
    /// List departments; a name that two departments share (created apart,
    /// during a partition) shows with the start of each id: `Ops (3f2a)`.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum MemberCmd {
    /// Make a member an admin.
    Promote {
        /// Member id or display name.
        member: String,
    },
    /// Remove a member from the workspace; their node is disconnected and refused.
    Remove {
        /// Member id or display name.
        member: String,
    },
    /// Admit a pin node by its peer id (`meshwork status` on the pin node
    /// prints it); prints the token the pin node joins with.
    AddPinner {
        /// The pin node's peer id (12D3Koo…) or member id.
        peer_id: String,
        /// Its display name (default: pin-<short id>).
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum RoleArg {
    Member,
    Admin,
    /// A pin node: keeps ciphertext, belongs to no department.
    Pinner,
}
