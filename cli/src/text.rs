//! How the CLI words what it prints for people: times, counts, lists and
//! names. One style everywhere, and the web app's (`node/web/app.js`,
//! `when`) is the same: local time to the minute with its zone offset,
//! `2026-12-03 09:14 +01:00`.

use std::collections::{BTreeMap, HashMap};

use meshwork_node::crdt::roster::Member;
use meshwork_node::crdt::MemberId;
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
pub(crate) struct Names(HashMap<MemberId, String>);

impl Names {
    /// From a list of members (`/v1/members`).
    pub(crate) fn from_members(members: &[Member]) -> Self {
        Self(members.iter().map(|m| (m.id, m.name.clone())).collect())
    }

    /// The name of member `id`, safe to print; the start of the id for
    /// someone not (or no longer) a member.
    pub(crate) fn of(&self, id: &MemberId) -> String {
        match self.0.get(id) {
            Some(name) => safe::line(name).into_owned(),
            None => short_id(&id.to_string()),
        }
    }

    /// [`Names::of`] for an id as the API writes it in a string field, or
    /// as someone typed it.
    pub(crate) fn of_str(&self, id: &str) -> String {
        match id.parse() {
            Ok(id) => self.of(&id),
            Err(_) => short_id(id),
        }
    }

    /// Whether `id` is the id of a member this list knows.
    pub(crate) fn knows(&self, id: &str) -> bool {
        id.parse().is_ok_and(|id| self.0.contains_key(&id))
    }

    /// Every member id and name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&MemberId, &String)> {
        self.0.iter()
    }
}

/// Reactions as names, not ids: "👍 Bob, Carol · 🎉 Ada"; more than three
/// people for one emoji are counted: "👍 Bob, Carol and 5 others".
pub(crate) fn reactions(r: &BTreeMap<String, Vec<MemberId>>, names: &Names) -> String {
    let each: Vec<String> = r
        .iter()
        .filter_map(|(emoji, who)| {
            let who: Vec<String> = who.iter().map(|id| names.of(id)).collect();
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
pub(crate) mod tests {
    use super::*;
    use meshwork_node::crdt::roster::Role;

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

    /// Member `n`'s id: 32 bytes of `n`.
    pub(crate) fn id(n: u8) -> MemberId {
        MemberId::from_bytes(&[n; 32]).unwrap()
    }

    /// The names of members 1, 2, …: `names`, in that order.
    pub(crate) fn named(names: &[&str]) -> Names {
        let members: Vec<Member> = (1..)
            .zip(names)
            .map(|(n, name)| Member {
                id: id(n),
                name: (*name).to_owned(),
                role: Role::Member,
                joined_at: 0,
                removed: false,
                invite: None,
            })
            .collect();
        Names::from_members(&members)
    }

    #[test]
    fn names_stand_for_ids_and_are_made_safe() {
        let names = named(&["Ada", "Bob\x1b[2J"]);
        assert_eq!(names.of(&id(1)), "Ada");
        assert_eq!(names.of_str(&id(2).to_string()), r"Bob\u{1b}[2J");
        assert!(names.knows(&id(1).to_string()) && !names.knows("Ada"));
        // Someone no longer a member: the start of the id, whole or not.
        assert_eq!(names.of(&id(0x91)), "91919191…");
        assert_eq!(names.of_str("915b8b0bf5260c68fd0d"), "915b8b0b…");
        assert_eq!(names.of_str("?"), "?");
    }

    #[test]
    fn reactions_name_who_reacted() {
        let names = named(&["Ada", "Bob", "Cy", "Di"]);
        let (a, b, c, d) = (id(1), id(2), id(3), id(4));
        let r = |each: &[(&str, Vec<MemberId>)]| -> BTreeMap<String, Vec<MemberId>> {
            each.iter()
                .map(|(e, who)| ((*e).to_owned(), who.clone()))
                .collect()
        };
        assert_eq!(
            reactions(&r(&[("👍", vec![a, b]), ("🎉", vec![c])]), &names),
            "🎉 Cy · 👍 Ada, Bob"
        );
        assert_eq!(
            reactions(&r(&[("👍", vec![a, b, c, d])]), &names),
            "👍 Ada, Bob and 2 others"
        );
        assert_eq!(reactions(&r(&[("👍", vec![])]), &names), "");
    }

    #[test]
    fn a_snippet_is_one_short_safe_line() {
        assert_eq!(snippet("Hello team", 20), "Hello team");
        assert_eq!(snippet("Hello team, all of you", 10), "Hello team…");
        assert_eq!(snippet("one\ntwo", 20), "one…");
        assert_eq!(snippet("a\x1bb", 20), r"a\u{1b}b");
    }
}
