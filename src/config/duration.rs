//! Human durations in config files: `500ms`, `2s`, `1m30s`, `1h`.

use std::time::Duration;

/// Parses `500ms`, `10s`, `1m30s`, `2h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let too_long = || DurationError::TooLong(text.to_string());
    if let Ok(secs) = text.parse::<u64>() {
        let d = Duration::from_secs(secs);
        return if d <= MAX { Ok(d) } else { Err(too_long()) };
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::NotADuration(text.to_string()));
        }
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::NotADuration(text.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            unit => {
                return Err(DurationError::Unit {
                    text: text.to_string(),
                    unit: unit.to_string(),
                });
            }
        };
        rest = &rest[unit_len..];
        // Checked: an absurd value is an error, never a panic.
        total = Duration::try_from_secs_f64(value * scale)
            .ok()
            .and_then(|d| total.checked_add(d))
            .filter(|t| *t <= MAX)
            .ok_or_else(too_long)?;
    }
    Ok(total)
}

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Nothing given.
    #[error("empty duration")]
    Empty,
    /// Not a number with units.
    #[error("`{0}` is not a duration (expected e.g. 500ms, 2s, 1m)")]
    NotADuration(String),
    /// An unknown unit.
    #[error("`{text}`: unknown unit `{unit}` (use ms, s, m, h or d)")]
    Unit {
        /// As written.
        text: String,
        /// The unit.
        unit: String,
    },
    /// Above [`MAX`].
    #[error("`{0}` is too long (at most 365d)")]
    TooLong(String),
}

/// The longest duration a config may give (timers add it to instants).
pub const MAX: Duration = Duration::from_secs(365 * 86400);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        // Absurd values are errors, not panics.
        for absurd in [
            "99999999999999999999999s",
            "99999999999999999999",
            "366d",
            "1e400s",
        ] {
            assert!(parse_duration(absurd).is_err(), "{absurd}");
        }
        assert_eq!(parse_duration("365d"), Ok(MAX));
    }
}
