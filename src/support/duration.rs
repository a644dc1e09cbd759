//! Durations as people write them: `5s`, `250ms`, `1.5s`.
//!
//! Agent flags (`--interval 2s`) and scenario files (`wait 300ms`) both take
//! durations; this is the one parser for them, so both accept the same
//! spellings. No IO, no crates: a string in, a `Duration` or a reason out.

use std::time::Duration;

/// Longest duration accepted anywhere (one day): a typo like `5000000s`
/// should be an error, not a process that sleeps for two months.
pub const MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses `<number><unit>` where unit is `ms` or `s`, and the number may have
/// a fraction (`0.5s`). A bare number is refused: `--interval 5` could mean
/// seconds or milliseconds, so we make the writer say which.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return Err(format!(
            "'{text}' is not a duration: write a number and a unit, like 500ms or 2s"
        ));
    };
    let valid = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|&b| b == b'.').count() <= 1;
    let value: f64 = match number.parse() {
        Ok(v) if valid => v,
        _ => {
            return Err(format!(
                "'{text}' is not a duration: write a number and a unit, like 500ms or 2s"
            ));
        }
    };
    let millis = value * scale_ms;
    if !millis.is_finite() || millis > MAX.as_millis() as f64 {
        return Err(format!("'{text}' is longer than a day"));
    }
    Ok(Duration::from_micros((millis * 1000.0).round() as u64))
}

/// Shows a duration the way [`parse`] reads it: `300ms`, `2s`, `1.5s`.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 || !ms.is_multiple_of(100) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_fractions() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse(" 3s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for bad in [
            "", "5", "s", "ms", "-1s", "1.2.3s", "1e3s", "fast", "2 s", "2h",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("duration") || e.contains("day"), "{bad}: {e}");
        }
        assert!(parse("100000s").unwrap_err().contains("day"));
    }

    #[test]
    fn show_round_trips() {
        for text in ["300ms", "2s", "1.5s", "1250ms", "0ms"] {
            assert_eq!(show(parse(text).unwrap()), text);
        }
    }
}
