//! How the CLI words what it prints for people: times, counts, lists and
//! names. One style everywhere, and the web app's (`node/web/app.js`,
//! `when`) is the same: local time to the minute with its zone offset,
//! `2026-12-03 09:14 +01:00`.

use std::collections::HashMap;

use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

use crate::safe;

/// A time (milliseconds since the epoch) in this machine's time zone, with
/// its offset: `2026-12-03 09:14 +01:00`. The offset is the one in force at
/// that time (summer or winter); UTC when the zone cannot be found.
pub(crate) fn time(ms: i64) -> String {
    let offset = UtcOffset::local_offset_at(instant(ms)).unwrap_or(UtcOffset::UTC);
    time_in(ms, offset)
}

/// [`time`] in a given zone offset.
pub(crate) fn time_in(ms: i64, offset: UtcOffset) -> String {
    let t = instant(ms);
    let t = t.checked_to_offset(offset).unwrap_or(t);
    let offset = t.offset();
    let sign = if offset.is_negative() { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {sign}{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        offset.whole_hours().unsigned_abs(),
        offset.minutes_past_hour().unsigned_abs(),
    )
}

/// Milliseconds since the epoch as an instant (the epoch itself when out
/// of range).
fn instant(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `n` things, the word agreeing with the number: "1 member", "2 members",
/// "0 members". `many` is the plural ("replies", "copies").
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// [`count`] of a JSON number (0 when it is none).
pub(crate) fn count_of(v: &Value, one: &str, many: &str) -> String {
    count(v.as_u64().unwrap_or(0), one, many)
}

/// Items as a person writes them: "Engineering, Sales", or `none` when
/// there are none. Each item should already be safe to print.
pub(crate) fn list<S: AsRef<str>>(items: &[S], none: &str) -> String {
    if items.is_empty() {
        return none.to_owned();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first characters of a long id (a member, peer or blob id), when no
/// name is known for it.
pub(crate) fn short_id(id: &str) -> String {
    let id = safe::line(id);
    match id.char_indices().nth(8) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.into_owned(),
    }
}

/// The first line of a body, at most `max` characters, for a line that
/// quotes it.
pub(crate) fn snippet(body: &str, max: usize) -> String {
    let first = body.lines().next().unwrap_or_default();
    let cut: String = first.chars().take(max).collect();
    let more = cut.len() < first.len() || first.len() < body.trim_end().len();
    let cut = safe::line(&cut).into_owned();
    if more {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Members' display names by member id, to show a name wherever the API
/// answers with an id.
#[derive(Default, Clone)]
pub(crate) struct Names(HashMap<String, String>);

impl Names {
    /// From a list of members (`/v1/members`: objects with `id` and `name`).
    pub(crate) fn from_members(members: &Value) -> Self {
        Self(
            members
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    Some((m["id"].as_str()?.to_owned(), m["name"].as_str()?.to_owned()))
                })
                .collect(),
        )
    }

    /// The name of member `id` (a JSON string), safe to print; the start of
    /// the id for someone not (or no longer) a member.
    pub(crate) fn of(&self, id: &Value) -> String {
        self.of_str(id.as_str().unwrap_or("?"))
    }

    /// [`Names::of`] for an id as a string.
    pub(crate) fn of_str(&self, id: &str) -> String {
        match self.0.get(id) {
            Some(name) => safe::line(name).into_owned(),
            None => short_id(id),
        }
    }

    /// Whether `id` is a member this list knows.
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.0.contains_key(id)
    }

    /// Every member id and name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

/// Reactions as names, not ids: "👍 Bob, Carol · 🎉 Ada"; more than three
/// people for one emoji are counted: "👍 Bob, Carol and 5 others".
pub(crate) fn reactions(r: &Value, names: &Names) -> String {
    let Some(r) = r.as_object() else {
        return String::new();
    };
    let each: Vec<String> = r
        .iter()
        .filter_map(|(emoji, who)| {
            let who: Vec<String> = who.as_array()?.iter().map(|id| names.of(id)).collect();
            if who.is_empty() {
                return None;
            }
            let shown = if who.len() > 3 {
                format!(
                    "{} and {}",
                    who[..2].join(", "),
                    count(who.len() as u64 - 2, "other", "others")
                )
            } else {
                who.join(", ")
            };
            Some(format!("{} {shown}", safe::line(emoji)))
        })
        .collect();
    each.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn offset(h: i8, m: i8) -> UtcOffset {
        UtcOffset::from_hms(h, m, 0).unwrap()
    }

    // 2026-12-03 08:14:59.999 UTC.
    const T: i64 = 1_796_285_699_999;

    #[test]
    fn a_time_is_local_to_the_minute_with_its_offset() {
        assert_eq!(time_in(T, offset(1, 0)), "2026-12-03 09:14 +01:00");
        assert_eq!(time_in(T, UtcOffset::UTC), "2026-12-03 08:14 +00:00");
        assert_eq!(time_in(T, offset(-9, -30)), "2026-12-02 22:44 -09:30");
        // Cut to the minute, not rounded: 13:59:59.999 is 13:59, as in the web app.
        assert_eq!(time_in(T, offset(5, 45)), "2026-12-03 13:59 +05:45");
        assert_eq!(time_in(0, UtcOffset::UTC), "1970-01-01 00:00 +00:00");
        // Out of range: the epoch, not a panic.
        assert_eq!(time_in(i64::MAX, UtcOffset::UTC), "1970-01-01 00:00 +00:00");
    }

    #[test]
    fn the_local_time_names_its_offset() {
        let t = time(T);
        let zone = t.rsplit(' ').next().unwrap();
        assert!(
            zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')),
            "{t}"
        );
    }

    #[test]
    fn counts_agree_with_their_number() {
        assert_eq!(count(0, "member", "members"), "0 members");
        assert_eq!(count(1, "member", "members"), "1 member");
        assert_eq!(count(2, "member", "members"), "2 members");
        assert_eq!(count(1, "reply", "replies"), "1 reply");
        assert_eq!(count_of(&json!(3), "peer", "peers"), "3 peers");
        assert_eq!(count_of(&Value::Null, "peer", "peers"), "0 peers");
    }

    #[test]
    fn lists_are_words_not_debug_output() {
        assert_eq!(list(&["Engineering"], "none"), "Engineering");
        assert_eq!(
            list(&["Engineering", "Sales"], "none"),
            "Engineering, Sales"
        );
        assert_eq!(list::<&str>(&[], "none"), "none");
        let shown = list(&["Engineering".to_owned()], "none");
        assert!(!shown.contains(['[', '"']), "{shown}");
    }

    #[test]
    fn names_stand_for_ids_and_are_made_safe() {
        let names = Names::from_members(&json!([
            {"id": "aa11", "name": "Ada"},
            {"id": "bb22", "name": "Bob\x1b[2J"},
        ]));
        assert_eq!(names.of(&json!("aa11")), "Ada");
        assert_eq!(names.of_str("bb22"), r"Bob\u{1b}[2J");
        // Someone no longer a member: the start of the id.
        assert_eq!(names.of_str("915b8b0bf5260c68fd0d"), "915b8b0b…");
        assert_eq!(names.of(&Value::Null), "?");
    }

    #[test]
    fn reactions_name_who_reacted() {
        let names = Names::from_members(&json!([
            {"id": "a", "name": "Ada"}, {"id": "b", "name": "Bob"},
            {"id": "c", "name": "Cy"}, {"id": "d", "name": "Di"},
        ]));
        assert_eq!(
            reactions(&json!({"👍": ["a", "b"], "🎉": ["c"]}), &names),
            "🎉 Cy · 👍 Ada, Bob"
        );
        assert_eq!(
            reactions(&json!({"👍": ["a", "b", "c", "d"]}), &names),
            "👍 Ada, Bob and 2 others"
        );
        assert_eq!(reactions(&json!({}), &names), "");
    }

    #[test]
    fn a_snippet_is_one_short_safe_line() {
        assert_eq!(snippet("Hello team", 20), "Hello team");
        assert_eq!(snippet("Hello team, all of you", 10), "Hello team…");
        assert_eq!(snippet("one\ntwo", 20), "one…");
        assert_eq!(snippet("a\x1bb", 20), r"a\u{1b}b");
    }
}
