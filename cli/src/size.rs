//! Sizes as people type them: `500M`, `20G`, `1.5T`, `4096` (bytes).

/// Parses a number with an optional unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB,
/// T/TB/TiB (all binary: 1K = 1024 bytes).
pub(crate) fn parse(s: &str) -> Result<u64, String> {
    let err = || format!("{s:?} is not a size: use a number and a unit, like 500M, 20G or 2T");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| err())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(err()),
    };
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!(
            "{s:?} is not a usable size: it must be at least one byte"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_units_and_refuses_nonsense() {
        assert_eq!(super::parse("4096").unwrap(), 4096);
        assert_eq!(super::parse("500M").unwrap(), 500 << 20);
        assert_eq!(super::parse("20GiB").unwrap(), 20 << 30);
        assert_eq!(super::parse("1.5k").unwrap(), 1536);
        for bad in ["", "G", "12X", "-1G", "0", "1..2G"] {
            assert!(super::parse(bad).is_err(), "{bad}");
        }
    }
}
