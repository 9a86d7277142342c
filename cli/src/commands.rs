//! Every command: its request to the daemon and what it prints of the
//! answer. `run` only dispatches; the commands live by what they are about
//! (the workspace and its people, posts and messages, files and pins), and
//! the answers' text for people is [`crate::format`]'s. Read commands print
//! exactly one JSON document with `--json`.

mod files;
mod posts;
mod workspace;

use anyhow::{Context, Result};
use meshwork_node::crdt::roster::Member;
use meshwork_node::Home;

use crate::args::{Cli, Command, ProfileCmd, ProfileKey};
use crate::client::Client;
use crate::text::Names;

pub(crate) fn run(cli: Cli) -> Result<()> {
    let home = Home::new(match cli.home {
        Some(h) => h,
        None => default_home()?,
    });
    let client = || Client::connect(&home);
    match cli.command {
        Command::Init { name } => workspace::init(&home, &name),
        Command::Daemon(args) => crate::daemon::run(home, args, None),
        Command::Up(up) => {
            let names = crate::daemon::UpNames {
                name: up.name,
                workspace: up.workspace,
            };
            crate::daemon::run(home, up.daemon, Some(names))
        }
        Command::Profile(ProfileCmd::Set {
            key: ProfileKey::Name,
            value,
        }) => workspace::rename_self(&client()?, value),
        Command::Workspace(cmd) => workspace::workspace(&client()?, cmd),
        Command::Invite {
            dept,
            role,
            expires,
            json,
        } => workspace::invite(&client()?, dept, role, expires, json),
        Command::Join { token, json } => workspace::join(&client()?, token, json),
        Command::Dept(cmd) => workspace::dept(&client()?, cmd),
        Command::Members { dept, json } => workspace::members(&client()?, dept, json),
        Command::Member(cmd) => workspace::member(&client()?, cmd),
        Command::Open { no_browser } => workspace::open(&client()?, no_browser),
        Command::Status { json } => workspace::status(&client()?, json),
        Command::Peers { json } => workspace::peers(&client()?, json),
        Command::Post {
            dept,
            text,
            reply_to,
            files,
        } => posts::post(&client()?, dept, text, reply_to, files),
        Command::Feed {
            mentions: true,
            limit,
            json,
            ..
        } => posts::mentions(&client()?, limit, json),
        Command::Feed {
            dept,
            limit,
            before,
            follow,
            json,
            ..
        } => posts::feed(&client()?, dept, limit, before, follow, json),
        Command::Dm { member, text } => posts::dm(&client()?, member, text),
        Command::Dms { member, json } => posts::dms(&client()?, member, json),
        Command::Unread { json } => posts::unread(&client()?, json),
        Command::Read { dept, dm } => posts::read(&client()?, dept, dm),
        Command::React { post_id, emoji } => posts::react(&client()?, post_id, emoji),
        Command::Edit { post_id, text } => posts::edit(&client()?, post_id, text),
        Command::Delete { post_id } => posts::delete(&client()?, post_id),
        Command::Search {
            query,
            dept,
            limit,
            json,
        } => crate::search::run(&client()?, &query, dept.as_deref(), limit, json),
        Command::Events { json } => crate::events::follow(&client()?, json),
        Command::Share {
            dept,
            path,
            name,
            no_post,
        } => files::share(&client()?, dept, path, name, no_post),
        Command::Files { dept, json } => files::files(&client()?, dept, json),
        Command::Get { file_id, output } => files::get(&client()?, file_id, output),
        Command::Pins { json } => files::pins(&client()?, json),
        Command::Pin { file_id, duration } => files::pin(&client()?, file_id, duration),
        Command::Unpin { file_id } => files::unpin(&client()?, file_id),
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
fn names(client: &Client) -> Result<Names> {
    // Removed members too: their posts stay, under their names.
    let members: Vec<Member> = client.get("/v1/members?removed=true")?;
    Ok(Names::from_members(&members))
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
