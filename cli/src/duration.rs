//! Durations as people type them: `90s`, `30m`, `24h`, `7d`.

use std::time::Duration;

/// Parses `<number><unit>` with unit s, m, h or d.
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    let err =
        || format!("{s:?} is not a duration: use a number and a unit, like 90s, 30m, 24h or 7d");
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(err()),
    };
    if secs == 0 {
        return Err(format!("{s:?} is zero: a duration must be positive"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_units_and_refuses_nonsense() {
        assert_eq!(super::parse("24h").unwrap().as_secs(), 86_400);
        assert_eq!(super::parse("7d").unwrap().as_secs(), 604_800);
        for bad in ["", "h", "12", "3w", "-1h", "0s"] {
            assert!(super::parse(bad).is_err(), "{bad}");
        }
    }
}
