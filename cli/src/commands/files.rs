//! Files and pins: sharing, listing and fetching departments' files, and
//! keeping them on this node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use meshwork_node::api::types::{Fetched, GetBody, PinBody, ShareBody, UnpinBody};
use meshwork_node::{FileInfo, PinInfo, PinsView};

use super::urlencode;
use crate::client::Client;
use crate::format;
use crate::output::{print, say};
use crate::progress::{self, scale, short_name};
use crate::{safe, text};

/// `share DEPT PATH`: prints the file's (or folder's) id.
pub(super) fn share(
    client: &Client,
    dept: String,
    path: PathBuf,
    name: Option<String>,
    no_post: bool,
) -> Result<()> {
    let path = absolute(&path)?;
    let bar = progress::bar(&format!("sharing {}", safe::line(&short_name(&path))));
    let body = ShareBody {
        dept,
        path,
        name,
        announce: !no_post,
    };
    let shared =
        client.post_progress::<FileInfo>("/v1/files", &body, |done, total| bar.update(done, total));
    bar.finish();
    say(&shared?.entry.id);
    Ok(())
}

/// `files DEPT`: the department's library.
pub(super) fn files(client: &Client, dept: String, json: bool) -> Result<()> {
    let files: Vec<FileInfo> = client.get(&format!("/v1/files?dept={}", urlencode(&dept)))?;
    print(json, &files, |f| format::files_text(f))
}

/// `get ID`: the file (or folder) on this machine; prints where.
pub(super) fn get(client: &Client, file: String, output: Option<PathBuf>) -> Result<()> {
    let info = find_file(client, &file)?;
    // Never let a name from the library climb out of where it is put.
    let name = Path::new(&info.entry.name)
        .file_name()
        .unwrap_or("download".as_ref());
    let dest = match output {
        // An existing directory: the file goes in it, under its name (as
        // `cp` does).
        Some(o) if o.is_dir() => absolute(&o)?.join(name),
        Some(o) => absolute(&o)?,
        None => std::env::current_dir()?.join(name),
    };
    // The name may come from the library: shown, never obeyed.
    let bar = progress::bar(&format!("fetching {}", safe::line(&short_name(&dest))));
    // Progress counts the encrypted blob; the bar shows the file's
    // own size (a 50.00 MiB file, not its 50.01 MiB ciphertext).
    let size = info.entry.size;
    let body = GetBody {
        id: info.entry.id,
        dest,
    };
    let got = client.post_progress::<Fetched>("/v1/files/get", &body, |done, total| {
        bar.update(scale(done, total, size), size)
    });
    bar.finish();
    say(&safe::line(&got?.path.to_string_lossy()));
    Ok(())
}

/// A file or folder of my departments' libraries, by id or by a name only
/// one of them has: one request, the daemon looks in every department.
pub(super) fn find_file(client: &Client, id: &str) -> Result<FileInfo> {
    client.get(&format!("/v1/files/find?id={}", urlencode(id)))
}

/// A path made absolute against this process's directory: the daemon has
/// its own.
fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(std::env::current_dir()?.join(p))
}

/// `pins`: every pin the workspace knows, and the pin nodes.
pub(super) fn pins(client: &Client, json: bool) -> Result<()> {
    let pins: PinsView = client.get("/v1/pins")?;
    print(json, &pins, format::pins_text)
}

/// `pin ID --for DURATION`: prints until when this node keeps it.
pub(super) fn pin(client: &Client, id: String, duration: Duration) -> Result<()> {
    let body = PinBody {
        id,
        for_secs: duration.as_secs(),
    };
    let pin: PinInfo = client.post("/v1/pins", &body)?;
    say(&format!("kept here until {}", text::time(pin_until(&pin))));
    Ok(())
}

/// Until when this node keeps a pin: its own commitment.
fn pin_until(pin: &PinInfo) -> i64 {
    pin.pinners.iter().map(|p| p.until).max().unwrap_or(0)
}

/// `unpin ID`.
pub(super) fn unpin(client: &Client, id: String) -> Result<()> {
    client.send("/v1/pins/remove", &UnpinBody { id })?;
    say("no longer pinned here");
    Ok(())
}
