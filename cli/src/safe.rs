//! Text that peers wrote (posts, names, file names…), made safe to print
//! on a terminal: a control character would otherwise reach it raw, and
//! `ESC ] 0 ; … BEL` retitles the reader's terminal, `ESC [ 2 J` clears it.
//! Every control character (C0, DEL, C1) is shown as Rust writes it in a
//! string, `\u{1b}`, instead, and so is every bidirectional override or
//! isolate (U+202A–U+202E, U+2066–U+2069): one of those makes a line read
//! in an order other than its bytes' ("Trojan Source"). `--json` needs none
//! of this: JSON escapes control characters itself, and a program reads
//! the bytes in order.

use std::borrow::Cow;

/// A body (post, reply, message, error): keeps its line breaks and tabs,
/// escapes every other control character.
pub(crate) fn body(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n' || c == '\t')
}

/// A single-line field (a name, an id): escapes every control character,
/// line breaks and tabs too, so that it stays on its line.
pub(crate) fn line(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// Whether `c` reorders the text around it when displayed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| (c.is_control() && !keep(c)) || is_bidi_control(c);
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_bidi_control(c) {
            out.extend(c.escape_unicode());
        } else if unsafe_char(c) {
            // `\u{1b}`, `\u{7}`, `\u{9b}`; `\n`, `\t`, `\r` for those.
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_keeps_line_breaks_and_tabs_and_escapes_the_rest() {
        assert_eq!(
            body("hi \x1b]0;pwned\x07\x1b[2J there"),
            r"hi \u{1b}]0;pwned\u{7}\u{1b}[2J there"
        );
        assert_eq!(body("a\n\tb"), "a\n\tb");
        assert_eq!(body("a\rb\0c"), r"a\rb\0c");
        // DEL and C1 (a single-byte CSI in some terminals).
        assert_eq!(body("\x7f\u{9b}31m\u{85}"), r"\u{7f}\u{9b}31m\u{85}");
    }

    #[test]
    fn bidirectional_overrides_and_isolates_are_shown_not_obeyed() {
        // "file\u{202e}fdp.exe" displays as "fileexe.pdf".
        assert_eq!(line("file\u{202e}fdp.exe"), r"file\u{202e}fdp.exe");
        assert_eq!(
            body("a\u{2066}b\u{2069}c\u{202a}d"),
            r"a\u{2066}b\u{2069}c\u{202a}d"
        );
        // Right-to-left text itself is text.
        assert_eq!(line("שלום"), "שלום");
    }

    #[test]
    fn a_line_escapes_line_breaks_and_tabs_too() {
        assert_eq!(line("a\nb\tc\x1b"), r"a\nb\tc\u{1b}");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for s in ["", "Ada Lovelace", "Kick-off 👍 at 10 — é ü ☃"] {
            assert!(matches!(line(s), Cow::Borrowed(t) if t == s));
            assert!(matches!(body(s), Cow::Borrowed(t) if t == s));
        }
    }
}
