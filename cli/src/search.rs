//! `meshwork search`: the daemon finds, this prints. Each hit is a line
//! naming what and where, then its snippet with the matched words in bold
//! on a terminal.

use anyhow::Result;
use meshwork_node::node::HitKind;
use meshwork_node::{SearchHit, SearchResults};

use crate::client::Client;
use crate::commands::urlencode;
use crate::output::{self, say};
use crate::{safe, text};

pub(crate) fn run(
    client: &Client,
    query: &str,
    dept: Option<&str>,
    limit: u16,
    json: bool,
) -> Result<()> {
    let mut path = format!("/v1/search?q={}&limit={limit}", urlencode(query));
    if let Some(d) = dept {
        path += &format!("&dept={}", urlencode(d));
    }
    let found: SearchResults = client.get(&path)?;
    if json {
        say(&output::json(&found)?);
    } else {
        // Not through `output::print`, which would escape the bold: what
        // peers wrote is made safe piece by piece in `results_text`.
        use std::io::IsTerminal;
        say(&results_text(&found, std::io::stdout().is_terminal()));
    }
    Ok(())
}

/// The hits, best first, then how many matched.
fn results_text(found: &SearchResults, bold: bool) -> String {
    let quoted = format!("\"{}\"", safe::line(&found.query));
    if found.hits.is_empty() {
        return format!("no matches for {quoted}");
    }
    let mut out: Vec<String> = found.hits.iter().map(|h| hit_text(h, bold)).collect();
    out.push(if found.total > found.hits.len() {
        format!(
            "the best {} of {} for {quoted} (--limit shows more)",
            found.hits.len(),
            text::count(found.total as u64, "match", "matches")
        )
    } else {
        format!(
            "{} for {quoted}",
            text::count(found.total as u64, "match", "matches")
        )
    });
    out.join("\n\n")
}

/// "[id] reply by Ada in Sales · 2026-12-03 09:14 +01:00", then the snippet.
fn hit_text(h: &SearchHit, bold: bool) -> String {
    let who = safe::line(&h.author_name);
    let what = match h.kind {
        HitKind::Post => format!("post by {who}"),
        HitKind::Reply => format!("reply by {who}"),
        HitKind::Message => format!("message from {who}"),
        HitKind::File => format!("file shared by {who}"),
        HitKind::Folder => format!("folder shared by {who}"),
    };
    let place = match (&h.dept, &h.with_name) {
        (Some(d), _) => format!(" in {}", safe::line(d)),
        (None, Some(w)) => format!(" (conversation with {})", safe::line(w)),
        (None, None) => String::new(),
    };
    let mut out = format!(
        "[{}] {what}{place} · {}\n  {}",
        safe::line(&h.id),
        text::time(h.at),
        marked(&h.snippet, &h.highlights, bold)
    );
    if matches!(h.kind, HitKind::File | HitKind::Folder) {
        out += &format!("  `meshwork get {}`", safe::line(&h.id));
    }
    out
}

/// `snippet` on one line, made safe to print, with the `highlights` (byte
/// ranges) in bold when `bold`.
fn marked(snippet: &str, highlights: &[[usize; 2]], bold: bool) -> String {
    // Line breaks become spaces: the same byte length, so ranges hold.
    let one_line = snippet.replace(['\n', '\r', '\t'], " ");
    let mut out = String::new();
    let mut at = 0;
    for &[start, end] in highlights {
        let (Some(before), Some(word)) = (one_line.get(at..start), one_line.get(start..end)) else {
            continue; // a range that does not fall on characters: ignored
        };
        out += &safe::line(before);
        if bold {
            out += &format!("\x1b[1m{}\x1b[22m", safe::line(word));
        } else {
            out += &safe::line(word);
        }
        at = end;
    }
    out += &safe::line(one_line.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matched_words_are_bold_on_a_terminal_and_plain_elsewhere() {
        let s = "the Q3 budget\nis final";
        assert_eq!(marked(s, &[[7, 13]], false), "the Q3 budget is final");
        assert_eq!(
            marked(s, &[[7, 13]], true),
            "the Q3 \x1b[1mbudget\x1b[22m is final"
        );
    }

    #[test]
    fn a_peer_cannot_smuggle_escapes_through_a_snippet_or_its_ranges() {
        let s = "a\x1b[2Jb budget";
        assert_eq!(
            marked(s, &[[7, 13]], true),
            "a\\u{1b}[2Jb \x1b[1mbudget\x1b[22m"
        );
        // Ranges out of bounds, inside a character, or backwards: ignored.
        assert_eq!(
            marked("é budget", &[[1, 2], [40, 50], [5, 3]], true),
            "é budget"
        );
    }
}
