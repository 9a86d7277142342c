//! Where a command's answer goes: stdout, as JSON for scripts (`--json`,
//! one document) or as text for people.

use anyhow::Result;
use serde::Serialize;

use crate::safe;

/// Prints `v` as JSON, or as `text` words it, with whatever control
/// characters its fields did not escape escaped (see [`safe`]).
pub(crate) fn print<T: Serialize>(
    json: bool,
    v: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    if json {
        say(&self::json(v)?);
    } else {
        say(&safe::body(&text(v)));
    }
    Ok(())
}

/// An answer of the daemon as `--json` prints it. Scripts read it, so it
/// has exactly the daemon's fields: the same type, serialised as the
/// daemon serialises its answers (through a [`serde_json::Value`], which
/// sorts the keys).
pub(crate) fn json(v: &impl Serialize) -> Result<String> {
    Ok(serde_json::to_value(v)?.to_string())
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
