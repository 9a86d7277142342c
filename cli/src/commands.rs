//! Every command: its request to the daemon and how its answer is printed.
//! Read commands print exactly one JSON document with `--json`.

use anyhow::{Context, Result};

use meshwork_node::api::types::{
    DmBody, EditBody, GetBody, InviteBody, JoinBody, MemberBody, MemberDeptBody, NameBody, PinBody,
    PinnerBody, PolicyBody, PostBody, PostRef, ReactBody, ReadBody, RenameBody, ShareBody,
    UnpinBody,
};
use meshwork_node::crdt::roster::Role;
use meshwork_node::disk::human_size;
use meshwork_node::Home;
use serde_json::{json, Value};

use crate::args::{
    Cli, Command, DeptCmd, MemberCmd, PolicyKey, ProfileCmd, ProfileKey, RoleArg, WorkspaceCmd,
};
use crate::client::Client;
use crate::safe::{self, field};
use crate::text::{self, count, count_of, Names};

pub(crate) fn run(cli: Cli) -> Result<()> {
    let home = Home::new(match cli.home {
        Some(h) => h,
        None => default_home()?,
    });
    let client = || Client::connect(&home);
    match cli.command {
        Command::Init { name } => init(&home, &name)?,
        Command::Daemon(args) => crate::daemon::run(home, args, None)?,
        Command::Up(up) => {
            let names = crate::daemon::UpNames {
                name: up.name,
                workspace: up.workspace,
            };
            crate::daemon::run(home, up.daemon, Some(names))?
        }
        Command::Profile(ProfileCmd::Set {
            key: ProfileKey::Name,
            value,
        }) => {
            client()?.post(
                "/v1/profile/name",
                &NameBody {
                    name: value.clone(),
                },
            )?;
            println!("You are now \"{}\" for everyone", safe::line(&value));
        }
        Command::Workspace(WorkspaceCmd::Rename { name }) => {
            client()?.post("/v1/workspace/name", &NameBody { name: name.clone() })?;
            println!("The workspace is now \"{}\"", safe::line(&name));
        }
        Command::Workspace(WorkspaceCmd::Set { key, value }) => set_policy(&client()?, key, value)?,
        Command::Pins { json } => {
            let pins = client()?.get("/v1/pins")?;
            print(json, &pins, pins_text);
        }
        Command::Pin { file_id, duration } => {
            let pin = client()?.post(
                "/v1/pins",
                &PinBody {
                    id: file_id,
                    for_secs: duration.as_secs(),
                },
            )?;
            println!("kept here until {}", text::time(pin_until(&pin)));
        }
        Command::Unpin { file_id } => {
            client()?.post("/v1/pins/remove", &UnpinBody { id: file_id })?;
            println!("no longer pinned here");
        }
        Command::Workspace(WorkspaceCmd::Create { name, json }) => {
            let ws = client()?.post("/v1/workspace", &NameBody { name })?;
            print(json, &ws, |w| {
                format!(
                    "Created workspace \"{}\" ({}); you are its admin",
                    field(&w["name"]),
                    field(&w["id"])
                )
            });
        }
        Command::Invite {
            dept,
            role,
            expires,
            json,
        } => invite(&client()?, dept, role, expires, json)?,
        Command::Join { token, json } => {
            let ws = client()?.post("/v1/join", &JoinBody { token })?;
            print(json, &ws, |w| {
                format!(
                    "Joined workspace \"{}\" ({})",
                    field(&w["name"]),
                    count_of(&w["members"], "member", "members")
                )
            });
        }
        Command::Dept(cmd) => dept(client()?, cmd)?,
        Command::Members { dept, json } => members(&client()?, dept, json)?,
        Command::Member(MemberCmd::Promote { member }) => {
            let m = client()?.post("/v1/members/promote", &MemberBody { member })?;
            println!("{} is now an admin", field(&m["name"]));
        }
        Command::Member(MemberCmd::AddPinner {
            peer_id,
            name,
            json,
        }) => add_pinner(&client()?, peer_id, name, json)?,
        Command::Member(MemberCmd::Remove { member }) => {
            let m = client()?.post("/v1/members/remove", &MemberBody { member })?;
            println!("{} was removed from the workspace", field(&m["name"]));
        }
        Command::Open { no_browser } => {
            let link = client()?.post("/v1/login-links", &json!({}))?;
            let url = link["url"].as_str().unwrap_or_default();
            println!("{url}");
            if !no_browser {
                crate::daemon::open_browser(url);
            }
        }
        Command::Status { json } => status(&client()?, json)?,
        Command::Post {
            dept,
            text,
            reply_to,
            files,
        } => post(&client()?, dept, text, reply_to, files)?,
        Command::Feed {
            mentions: true,
            limit,
            json,
            ..
        } => {
            let client = client()?;
            let posts = client.get(&format!("/v1/mentions?limit={limit}"))?;
            let names = names_unless(json, &client)?;
            print(json, &posts, |t| feed_text(t, &names, true));
        }
        Command::Feed {
            dept,
            limit,
            before,
            follow,
            json,
            ..
        } => feed(&client()?, dept, limit, before, follow, json)?,
        Command::Dm { member, text } => {
            let p = client()?.post("/v1/dms", &DmBody { member, text })?;
            println!("{}", p["id"].as_str().unwrap_or_default());
        }
        Command::Share {
            dept,
            path,
            name,
            no_post,
        } => share(&client()?, dept, path, name, no_post)?,
        Command::Files { dept, json } => {
            let files = client()?.get(&format!("/v1/files?dept={}", urlencode(&dept)))?;
            print(json, &files, files_text);
        }
        Command::Get { file_id, output } => get(&client()?, file_id, output)?,
        Command::Search {
            query,
            dept,
            limit,
            json,
        } => crate::search::run(&client()?, &query, dept.as_deref(), limit, json)?,
        Command::Unread { json } => {
            let unread = client()?.get("/v1/unread")?;
            print(json, &unread, unread_text);
        }
        Command::Read { dept, dm } => read(&client()?, dept, dm)?,
        Command::Dms { member, json } => dms(&client()?, member, json)?,
        Command::React { post_id, emoji } => {
            client()?.post(
                "/v1/posts/react",
                &ReactBody {
                    post: post_id,
                    emoji,
                },
            )?;
        }
        Command::Edit { post_id, text } => {
            client()?.post(
                "/v1/posts/edit",
                &EditBody {
                    post: post_id,
                    text,
                },
            )?;
        }
        Command::Delete { post_id } => {
            client()?.post("/v1/posts/delete", &PostRef { post: post_id })?;
        }
        Command::Events { json } => crate::events::follow(&client()?, json)?,
        Command::Peers { json } => {
            let client = client()?;
            let p = client.get("/v1/peers")?;
            let names = names_unless(json, &client)?;
            print(json, &p, |ps| table(ps, |p| peer_text(p, &names)));
        }
    }
    Ok(())
}

/// `workspace set KEY VALUE`: the pinning policy.
fn set_policy(client: &Client, key: PolicyKey, value: String) -> Result<()> {
    let body = match key {
        PolicyKey::Retention => {
            let d = crate::duration::parse(&value).map_err(anyhow::Error::msg)?;
            PolicyBody {
                retention_secs: Some(d.as_secs()),
                replicas: None,
            }
        }
        PolicyKey::Replicas => {
            let k: u32 = value
                .parse()
                .map_err(|_| anyhow::anyhow!("replicas is a count, like 2 (got {value:?})"))?;
            PolicyBody {
                retention_secs: None,
                replicas: Some(k),
            }
        }
    };
    let policy = client.post("/v1/workspace/policy", &body)?;
    println!("{}", policy_text(&policy));
    Ok(())
}

/// `invite`: a token for a new member or pin node.
fn invite(
    client: &Client,
    dept: Option<String>,
    role: RoleArg,
    expires: std::time::Duration,
    json: bool,
) -> Result<()> {
    let role = match role {
        RoleArg::Member => Role::Member,
        RoleArg::Admin => Role::Admin,
        RoleArg::Pinner => Role::Pinner,
    };
    let body = InviteBody {
        dept,
        role,
        expires_secs: expires.as_secs(),
    };
    let invite = client.post("/v1/invites", &body)?;
    print(json, &invite, |i| {
        i["token"].as_str().unwrap_or_default().to_owned()
    });
    Ok(())
}

/// `members [DEPT]`.
fn members(client: &Client, dept: Option<String>, json: bool) -> Result<()> {
    let path = match &dept {
        Some(d) => format!("/v1/members?dept={}", urlencode(d)),
        None => "/v1/members".to_owned(),
    };
    let members = client.get(&path)?;
    print(json, &members, |ms| {
        table(ms, |m| {
            format!(
                "{:<24} {:<7} {}",
                field(&m["name"]),
                field(&m["role"]),
                field(&m["id"])
            )
        })
    });
    Ok(())
}

/// `status`.
fn status(client: &Client, json: bool) -> Result<()> {
    let s = client.get("/v1/status")?;
    // Before joining there are no members to name.
    let names = if json || s["workspace"].is_null() {
        Names::default()
    } else {
        names(client)?
    };
    print(json, &s, |s| status_text(s, &names));
    Ok(())
}

/// `post DEPT TEXT`: prints the new post's id.
fn post(
    client: &Client,
    dept: String,
    text: String,
    reply_to: Option<String>,
    files: Vec<String>,
) -> Result<()> {
    let files = files
        .iter()
        .map(|f| Ok(find_file(client, f)?["id"].as_str().unwrap_or(f).to_owned()))
        .collect::<Result<Vec<String>>>()?;
    let p = client.post(
        "/v1/posts",
        &PostBody {
            dept,
            text,
            reply_to,
            files,
        },
    )?;
    println!("{}", p["id"].as_str().unwrap_or_default());
    Ok(())
}

/// `feed DEPT`: newest threads first, marked read.
fn feed(
    client: &Client,
    dept: Option<String>,
    limit: usize,
    before: Option<String>,
    follow: bool,
    json: bool,
) -> Result<()> {
    let dept = dept.unwrap_or_default();
    let mut path = format!("/v1/feed?dept={}&limit={limit}", urlencode(&dept));
    if let Some(b) = before {
        path += &format!("&before={}", urlencode(&b));
    }
    let threads = client.get(&path)?;
    let names = names_unless(json, client)?;
    print(json, &threads, |t| feed_text(t, &names, false));
    if !json {
        // A fresh member's first minutes: say that the page is not all.
        let state: meshwork_node::FeedState =
            client.get_as(&format!("/v1/feed/state?dept={}", urlencode(&dept)))?;
        if state.arriving {
            eprintln!(
                "Older posts are still arriving ({} here so far); run this again in a while.",
                state.posts
            );
        }
        client.post(
            "/v1/read",
            &ReadBody {
                dept: Some(dept),
                member: None,
            },
        )?;
    }
    if follow {
        follow_feed(client, &path, &threads)?;
    }
    Ok(())
}

/// `share DEPT PATH`: prints the file's (or folder's) id.
fn share(
    client: &Client,
    dept: String,
    path: std::path::PathBuf,
    name: Option<String>,
    no_post: bool,
) -> Result<()> {
    let path = absolute(&path)?;
    let bar = progress_bar(&format!("sharing {}", safe::line(&short_name(&path))));
    let file = client.post_progress(
        "/v1/files",
        &ShareBody {
            dept,
            path,
            name,
            announce: !no_post,
        },
        |done, total| bar.update(done, total),
    );
    bar.finish();
    println!("{}", file?["id"].as_str().unwrap_or_default());
    Ok(())
}

/// `get ID`: the file (or folder) on this machine; prints where.
fn get(client: &Client, file_id: String, output: Option<std::path::PathBuf>) -> Result<()> {
    let info = find_file(client, &file_id)?;
    let file_id = info["id"].as_str().unwrap_or(&file_id).to_owned();
    let dest = match output {
        Some(o) => absolute(&o)?,
        None => {
            let name = info["name"].as_str().unwrap_or("download");
            // Never let a name from the library climb out of here.
            let name = std::path::Path::new(name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "download".into());
            std::env::current_dir()?.join(name)
        }
    };
    // The name may come from the library: shown, never obeyed.
    let shown = short_name(&dest);
    let bar = progress_bar(&format!("fetching {}", safe::line(&shown)));
    // Progress counts the encrypted blob; the bar shows the file's
    // own size (a 50.00 MiB file, not its 50.01 MiB ciphertext).
    let size = info["size"].as_u64().unwrap_or(0);
    let got = client.post_progress(
        "/v1/files/get",
        &GetBody { id: file_id, dest },
        |done, total| bar.update(scale(done, total, size), size),
    );
    bar.finish();
    println!("{}", safe::line(got?["path"].as_str().unwrap_or_default()));
    Ok(())
}

/// `dms [MEMBER]`: the conversations, or one of them (marked read).
fn dms(client: &Client, member: Option<String>, json: bool) -> Result<()> {
    match member {
        Some(m) => {
            let posts = client.get(&format!("/v1/dms?member={}", urlencode(&m)))?;
            let names = names_unless(json, client)?;
            print(json, &posts, |ps| table(ps, |p| message_text(p, &names)));
            if !json {
                let read = ReadBody {
                    dept: None,
                    member: Some(m),
                };
                client.post("/v1/read", &read)?;
            }
        }
        None => {
            let list = client.get("/v1/dms")?;
            let names = names_unless(json, client)?;
            print(json, &list, |cs| {
                table(cs, |c| conversation_text(c, &names))
            });
        }
    }
    Ok(())
}

/// `init --name NAME`: this device's identity.
fn init(home: &Home, name: &str) -> Result<()> {
    let id = home.init(name)?;
    println!(
        "Created identity {} for {:?} in {}",
        id.signer.id(),
        id.name,
        home.root().display()
    );
    println!(
        "Next: `meshwork daemon`, then `meshwork workspace create NAME` or `meshwork join TOKEN`."
    );
    Ok(())
}

/// `member add-pinner PEER`: prints the token the pin node joins with.
fn add_pinner(client: &Client, peer_id: String, name: Option<String>, json: bool) -> Result<()> {
    let got = client.post(
        "/v1/members/add-pinner",
        &PinnerBody {
            peer: peer_id,
            name,
        },
    )?;
    print(json, &got, |g| {
        format!(
            "{} is now a pin node of this workspace. On it (its `meshwork daemon --pin` running), run:\n\n  meshwork join {}",
            field(&g["member"]["name"]),
            g["token"].as_str().unwrap_or_default()
        )
    });
    Ok(())
}

/// `read DEPT` or `read --dm MEMBER`: marks it read.
fn read(client: &Client, dept: Option<String>, dm: Option<String>) -> Result<()> {
    let body = match (dept, dm) {
        (_, Some(m)) => ReadBody {
            dept: None,
            member: Some(m),
        },
        (d, None) => ReadBody {
            dept: d,
            member: None,
        },
    };
    let unread = client.post("/v1/read", &body)?;
    println!("{}", unread_text(&unread));
    Ok(())
}

fn dept(client: Client, cmd: DeptCmd) -> Result<()> {
    match cmd {
        DeptCmd::Create { name } => {
            client.post("/v1/depts", &NameBody { name: name.clone() })?;
            println!("Created department \"{}\"", safe::line(&name));
        }
        DeptCmd::Rename { old, new } => {
            let body = RenameBody {
                old: old.clone(),
                new: new.clone(),
            };
            client.post("/v1/depts/rename", &body)?;
            println!(
                "Renamed department \"{}\" to \"{}\"",
                safe::line(&old),
                safe::line(&new)
            );
        }
        DeptCmd::Add { member, dept } => {
            let body = MemberDeptBody {
                member: member.clone(),
                dept: dept.clone(),
            };
            client.post("/v1/depts/add", &body)?;
            println!(
                "Added {} to \"{}\"",
                member_name(&client, &member)?,
                safe::line(&dept)
            );
        }
        DeptCmd::Remove { member, dept } => {
            let body = MemberDeptBody {
                member: member.clone(),
                dept: dept.clone(),
            };
            client.post("/v1/depts/remove", &body)?;
            println!(
                "Removed {} from \"{}\"",
                member_name(&client, &member)?,
                safe::line(&dept)
            );
        }
        DeptCmd::List { json } => {
            let depts = client.get("/v1/depts")?;
            print(json, &depts, |ds| {
                table(ds, |d| {
                    format!(
                        "{:<24} {}",
                        safe::line(d["label"].as_str().or(d["name"].as_str()).unwrap_or("?")),
                        count(
                            d["members"].as_array().map_or(0, Vec::len) as u64,
                            "member",
                            "members"
                        )
                    )
                })
            });
        }
    }
    Ok(())
}

/// Prints `v` as JSON, or as `text` makes it read, with whatever control
/// characters its fields did not escape escaped (see [`safe`]).
fn print(json: bool, v: &Value, text: impl FnOnce(&Value) -> String) {
    if json {
        say(&v.to_string());
    } else {
        say(&safe::body(&text(v)));
    }
}

/// Writes `text` and a line break to stdout. A reader that has gone
/// (`meshwork dms | head -1`) ends the command quietly, as the end of a
/// pipe ends any Unix tool; `println!` would panic.
pub(crate) fn say(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            std::process::exit(1)
        }
    }
}

fn table(v: &Value, row: impl Fn(&Value) -> String) -> String {
    match v.as_array() {
        Some(rows) if rows.is_empty() => "(none)".to_owned(),
        Some(rows) => rows.iter().map(row).collect::<Vec<_>>().join("\n"),
        None => v.to_string(),
    }
}

/// Members' names, unless the output is JSON (which names no one).
fn names_unless(json: bool, client: &Client) -> Result<Names> {
    if json {
        Ok(Names::default())
    } else {
        names(client)
    }
}

/// Every member's name, by id.
pub(crate) fn names(client: &Client) -> Result<Names> {
    // Removed members too: their posts stay, under their names.
    Ok(Names::from_members(
        &client.get("/v1/members?removed=true")?,
    ))
}

/// The name of `member` as typed on the command line (an id or a name):
/// its display name when it is a member's id.
fn member_name(client: &Client, member: &str) -> Result<String> {
    let names = names(client)?;
    Ok(if names.knows(member) {
        names.of_str(member)
    } else {
        safe::line(member).into_owned()
    })
}

/// Prints posts and replies that appear after `seen`, each time the
/// department's feed changes, until interrupted.
fn follow_feed(client: &Client, path: &str, seen: &Value) -> Result<()> {
    use std::collections::HashSet;
    use std::io::Write;
    // Each post with its id and what its thread says of attachments.
    let ids = |threads: &Value| -> Vec<(String, Value, Value)> {
        let mut out = Vec::new();
        for t in threads.as_array().into_iter().flatten().rev() {
            let attached = t["attachments"].clone();
            let id = |p: &Value| p["id"].as_str().unwrap_or_default().to_owned();
            out.push((id(t), t.clone(), attached.clone()));
            for r in t["replies"].as_array().into_iter().flatten() {
                out.push((id(r), r.clone(), attached.clone()));
            }
        }
        out
    };
    let mut printed: HashSet<String> = ids(seen).into_iter().map(|(id, ..)| id).collect();
    let mut names = names(client)?;
    let mut failure = None;
    client.follow("/v1/events", |event| {
        let got = match event["type"].as_str() {
            Some("roster_changed") => self::names(client).map(|n| names = n).map(|()| None),
            Some("feed_changed") => client.get(path).map(Some),
            _ => Ok(None),
        };
        let threads = match got {
            Ok(Some(t)) => t,
            Ok(None) => return true,
            Err(e) => {
                failure = Some(e);
                return false;
            }
        };
        for (id, post, attached) in ids(&threads) {
            if printed.insert(id) {
                let indent = if post["reply_to"].is_string() {
                    "↳ "
                } else {
                    ""
                };
                let block =
                    safe::body(&post_text(&post, &attached, &names, indent, false)).into_owned();
                if writeln!(std::io::stdout(), "{block}").is_err() {
                    return false;
                }
            }
        }
        true
    })?;
    failure.map_or(Ok(()), Err)
}

/// A post (or reply, or message) as a block: a header with its id, author
/// and time, then its text, then its reactions.
///
/// ```text
/// [5799624f6d6315c31693b21f2111a9cd] Ada · 2026-12-03 09:14 +01:00
///   Kick-off at 10
///   👍 Bob · edited
/// ```
/// One post; `attached` describes the files it attaches, by id (its
/// thread's `attachments`).
fn post_text(p: &Value, attached: &Value, names: &Names, indent: &str, show_dept: bool) -> String {
    let author = match p["author_name"].as_str() {
        Some(name) => safe::line(name).into_owned(),
        None => names.of(&p["author"]),
    };
    let dept = match p["dept"].as_str() {
        Some(d) if show_dept => format!(" in {}", safe::line(d)),
        _ => String::new(),
    };
    let pad = " ".repeat(indent.chars().count() + 2);
    let body = match p["body"].as_str() {
        Some(b) if p["deleted"].as_bool() != Some(true) => safe::body(b).into_owned(),
        _ => "(deleted)".to_owned(),
    };
    let mut out = format!(
        "{indent}[{}] {author}{dept} · {}\n{pad}{body}",
        field(&p["id"]),
        text::time(p["created_at"].as_i64().unwrap_or(0)),
    );
    for file in p["files"].as_array().into_iter().flatten() {
        let id = field(file);
        let about = &attached[id.as_str()];
        let what = match (about["name"].as_str(), about["size"].as_u64()) {
            (Some(name), Some(size)) => {
                format!("{} ({})", safe::line(name), human_size(size))
            }
            _ => "a file no longer in the library".to_owned(),
        };
        out += &format!("\n{pad}📎 {what}  `meshwork get {id}`");
    }
    let mut notes = vec![text::reactions(&p["reactions"], names)];
    if !p["edited_at"].is_null() {
        notes.push("edited".to_owned());
    }
    notes.retain(|n| !n.is_empty());
    if !notes.is_empty() {
        out += &format!("\n{pad}{}", notes.join(" · "));
    }
    out
}

/// "Research  3 unread, 1 mention" per place with news, then the total.
fn unread_text(u: &Value) -> String {
    let line = |place: &Value, direct: bool| -> Option<String> {
        let n = place["unread"].as_u64().filter(|n| *n > 0)?;
        let more = if place["more"].as_bool() == Some(true) {
            "+"
        } else {
            ""
        };
        let name = safe::line(place["name"].as_str().unwrap_or("?")).into_owned();
        let name = if direct {
            format!("{name} (direct)")
        } else {
            name
        };
        let mentions = match place["mentions"].as_u64().unwrap_or(0) {
            0 => String::new(),
            m => format!(", {}", text::count(m, "mention", "mentions")),
        };
        Some(format!("{name:<24} {n}{more} unread{mentions}"))
    };
    let places = u["depts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p, false));
    let direct = u["dms"].as_array().into_iter().flatten().map(|p| (p, true));
    let mut lines: Vec<String> = places
        .chain(direct)
        .filter_map(|(p, d)| line(p, d))
        .collect();
    let total = u["total"].as_u64().unwrap_or(0);
    if total == 0 {
        return "Nothing new.".to_owned();
    }
    let mentions = match u["mentions"].as_u64().unwrap_or(0) {
        0 => String::new(),
        m => format!(", {}", text::count(m, "mention", "mentions")),
    };
    lines.push(format!("{total} unread in all{mentions}"));
    lines.join("\n")
}

fn feed_text(threads: &Value, names: &Names, show_dept: bool) -> String {
    match threads.as_array() {
        Some(ts) if !ts.is_empty() => ts
            .iter()
            .map(|t| {
                let attached = &t["attachments"];
                let mut out = post_text(t, attached, names, "", show_dept);
                for r in t["replies"].as_array().into_iter().flatten() {
                    out += &format!("\n{}", post_text(r, attached, names, "  ↳ ", false));
                }
                out
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => table(threads, |_| String::new()),
    }
}

/// One direct message: "2026-12-03 09:14 +01:00  Bob: see you [id]".
fn message_text(p: &Value, names: &Names) -> String {
    let body = match p["body"].as_str() {
        Some(b) if p["deleted"].as_bool() != Some(true) => safe::body(b).into_owned(),
        _ => "(deleted)".to_owned(),
    };
    let mut notes = vec![text::reactions(&p["reactions"], names)];
    if !p["edited_at"].is_null() {
        notes.push("edited".to_owned());
    }
    notes.retain(|n| !n.is_empty());
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join(" · "))
    };
    format!(
        "{}  {}: {body}{notes}  [{}]",
        text::time(p["created_at"].as_i64().unwrap_or(0)),
        names.of(&p["author"]),
        field(&p["id"]),
    )
}

/// One conversation: "Bob   2 messages, last 2026-12-03 09:14 +01:00, Ada: yes?".
fn conversation_text(c: &Value, names: &Names) -> String {
    let last = &c["last"];
    let last = if last.is_null() {
        String::new()
    } else {
        let body = match last["body"].as_str() {
            Some(b) if last["deleted"].as_bool() != Some(true) => text::snippet(b, 60),
            _ => "(deleted)".to_owned(),
        };
        format!(
            ", last {}, {}: {body}",
            text::time(last["created_at"].as_i64().unwrap_or(0)),
            names.of(&last["author"]),
        )
    };
    format!(
        "{:<24} {}{last}",
        field(&c["name"]),
        count_of(&c["messages"], "message", "messages"),
    )
}

/// A connected peer: who it is, then its peer id and addresses.
fn peer_text(p: &Value, names: &Names) -> String {
    let who = match p["member_id"].as_str() {
        Some(id) => names.of_str(id),
        None => "(not a member)".to_owned(),
    };
    let addrs: Vec<String> = p["addrs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(field)
        .collect();
    format!(
        "{who:<24} {}  {}",
        field(&p["peer_id"]),
        text::list(&addrs, "(no address)")
    )
}

fn status_text(s: &Value, names: &Names) -> String {
    let mut out = format!(
        "{} ({})\nmember id: {}\npeer id:   {}\n",
        field(&s["name"]),
        safe::line(s["workspace"]["role"].as_str().unwrap_or("no role")),
        field(&s["member_id"]),
        field(&s["peer_id"]),
    );
    match s["workspace"].as_object() {
        Some(w) => {
            out += &format!(
                "workspace: \"{}\" ({}, {})\n",
                field(&w["name"]),
                count_of(&w["members"], "member", "members"),
                count_of(&w["departments"], "department", "departments"),
            );
            if w["removed"].as_bool() == Some(true) {
                out += "this device was removed from the workspace by an admin: \
                        it no longer syncs, and what it holds stays as it was\n";
            }
            for d in w["documents"].as_array().into_iter().flatten() {
                let heads: Vec<String> = d["heads"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| text::short_id(h.as_str().unwrap_or("?")))
                    .collect();
                out += &format!(
                    "  {}: {}, {} {}\n",
                    field(&d["name"]),
                    count_of(&d["changes"], "change", "changes"),
                    if heads.len() == 1 { "head" } else { "heads" },
                    text::list(&heads, "none"),
                );
            }
        }
        None => {
            out +=
                "workspace: none yet (`meshwork workspace create NAME` or `meshwork join TOKEN`)\n"
        }
    }
    for a in s["listen_addrs"].as_array().into_iter().flatten() {
        out += &format!("listening on {}\n", field(a));
    }
    if let Some(d) = s["disk"].as_object() {
        let size = |k: &str| human_size(d[k].as_u64().unwrap_or(0));
        out += &format!(
            "disk: {} free (keeping {} free), files {}\n",
            size("free"),
            size("min_free"),
            size("blobs")
        );
    }
    let peers: Vec<String> = s["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| match p["member_id"].as_str() {
            Some(id) => names.of_str(id),
            None => format!("{} (not a member)", text::short_id(&field(&p["peer_id"]))),
        })
        .collect();
    out += &format!(
        "{} connected{}",
        count(peers.len() as u64, "peer", "peers"),
        if peers.is_empty() {
            String::new()
        } else {
            format!(": {}", text::list(&peers, ""))
        }
    );
    out
}

fn files_text(files: &Value) -> String {
    table(files, |f| {
        // A folder is one row: how many files, and their total size.
        let kind = match f["entries"].as_array() {
            Some(e) => format!("folder, {}", count(e.len() as u64, "file", "files")),
            None => field(&f["media_type"]),
        };
        format!(
            "{}  {:<32} {:>10}  {:<24} {:<16} shared {}  until {}  on {}",
            field(&f["id"]),
            field(&f["name"]),
            human_size(f["size"].as_u64().unwrap_or(0)),
            kind,
            field(&f["uploader_name"]),
            text::time(f["shared_at"].as_i64().unwrap_or(0)),
            text::time(f["available_until"].as_i64().unwrap_or(0)),
            count_of(&f["peers"], "peer", "peers"),
        )
    })
}

/// "retention 72 h, 2 replicas".
fn policy_text(policy: &Value) -> String {
    format!(
        "retention {} h, {}",
        policy["retention_ms"].as_u64().unwrap_or(0) / 3_600_000,
        count_of(&policy["replicas"], "replica", "replicas")
    )
}

fn pins_text(view: &Value) -> String {
    let policy = &view["policy"];
    let mut out = format!("policy: {}\n", policy_text(policy));
    out += &table(&view["pins"], |p| {
        let what = match (p["name"].as_str(), p["file_id"].as_str()) {
            (Some(name), Some(id)) => format!("{}  {}", safe::line(id), safe::line(name)),
            _ => {
                let blob = field(&p["blob"]);
                format!("blob {}…", blob.get(..16).unwrap_or(&blob))
            }
        };
        let pinners: Vec<String> = p["pinners"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                let state = if x["lost"].as_bool() == Some(true) {
                    " (lost)"
                } else if x["failed_audit"].as_bool() == Some(true) {
                    " (failed audit)"
                } else {
                    ""
                };
                format!("{}{state}", field(&x["name"]))
            })
            .collect();
        format!(
            "{what}  {:>10}  {}  until {}  {}/{}{}  pinners: {}",
            human_size(p["size"].as_u64().unwrap_or(0)),
            field(&p["dept"]),
            text::time(p["until"].as_i64().unwrap_or(0)),
            p["replicas"],
            count_of(&p["target"], "replica", "replicas"),
            if p["meets_target"].as_bool() == Some(true) {
                ""
            } else {
                "  BELOW TARGET"
            },
            text::list(&pinners, "none"),
        )
    });
    let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
    if !nodes.is_empty() {
        out += "\npin nodes:\n";
        for n in nodes {
            out += &format!(
                "  {}  {} of {} used{}\n",
                field(&n["name"]),
                human_size(n["used"].as_u64().unwrap_or(0)),
                human_size(n["quota"].as_u64().unwrap_or(0)),
                if n["full"].as_bool() == Some(true) {
                    format!(
                        "  FULL (quota or disk): refused {}",
                        count_of(&n["refused"], "request", "requests")
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    out
}

/// Until when this node keeps a pin: its own commitment.
fn pin_until(pin: &Value) -> i64 {
    pin["pinners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["until"].as_i64())
        .max()
        .unwrap_or(0)
}

/// A file of one of my departments, by id: (department id, record).
/// A file or folder by id, or by a name only one of them has.
fn find_file(client: &Client, id: &str) -> Result<Value> {
    client.get(&format!("/v1/files/find?id={}", urlencode(id)))
}

/// A path made absolute against this process's directory: the daemon has
/// its own.
fn absolute(p: &std::path::Path) -> Result<std::path::PathBuf> {
    Ok(std::env::current_dir()?.join(p))
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
fn progress_bar(what: &str) -> Bar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return Bar(None);
    }
    // Hidden until the first report says how much there is: a bar of
    // length 0 draws as full.
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    Bar(Some(bar))
}

struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn update(&self, done: u64, total: u64) {
        if let Some(b) = &self.0 {
            if b.is_hidden() && total > 0 {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            b.set_length(total);
            b.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// A path's last component, for a progress line that fits a terminal.
fn short_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `done` of `total` as the same share of `size`.
fn scale(done: u64, total: u64, size: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    u64::try_from(u128::from(done.min(total)) * u128::from(size) / u128::from(total))
        .unwrap_or(size)
}

/// `s` as one component of a query string.
pub(crate) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn default_home() -> Result<std::path::PathBuf> {
    directories::ProjectDirs::from("org", "Meshwork", "meshwork")
        .map(|d| d.data_dir().to_path_buf())
        .context("cannot find a data directory for this user; pass --home DIR")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_the_files_own_size_not_its_ciphertext() {
        let (size, blob) = (50 << 20, (50 << 20) + 12_800);
        assert_eq!(scale(blob, blob, size), size);
        assert_eq!(scale(0, blob, size), 0);
        assert!(scale(blob / 2, blob, size) <= size / 2);
        assert_eq!(scale(5, 0, size), 0);
    }

    #[test]
    fn a_progress_line_names_the_file_not_its_whole_path() {
        let p = std::path::Path::new("/very/long/path/to/Q3 report.xlsx");
        assert_eq!(short_name(p), "Q3 report.xlsx");
    }
}
