//! Operator overrides: the admin-state file.
//!
//! ```text
//! # CHECK = up|down [until RFC3339-TIME] [# reason]
//! web-eu = down until 2026-11-27T18:00:00Z # maintenance, ticket 4711
//! web-us = up
//! ```
//!
//! A file with any error is rejected whole: the current overrides stay
//! (gdnsd's rule). An override past its `until` no longer applies. Pure.

use std::time::SystemTime;

use super::State;
use crate::diag::Diagnostic;

/// One forced state.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The check's name.
    pub check: String,
    /// The forced state.
    pub state: State,
    /// When it stops applying.
    pub until: Option<SystemTime>,
    /// Why (from the `#` comment).
    pub reason: String,
}

impl Override {
    /// Whether it applies at `now`.
    pub fn active(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// Parses an admin-state file. `known` says whether a check name exists.
///
/// A line naming a check that is not configured (any more) is skipped and
/// reported in `skipped`, so one stale line does not cost every other
/// override; any other error rejects the whole file.
pub fn parse(
    path: &std::path::Path,
    text: &str,
    known: impl Fn(&str) -> bool,
    skipped: &mut Vec<Diagnostic>,
) -> Result<Vec<Override>, Vec<Diagnostic>> {
    let mut out: Vec<Override> = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let (body, reason) = match raw.split_once('#') {
            Some((b, r)) => (b.trim(), r.trim()),
            None => (raw.trim(), ""),
        };
        if body.is_empty() {
            continue;
        }
        let mut err = |m: String| errors.push(Diagnostic::new(path, line, m));
        let Some((check, rest)) = body.split_once('=') else {
            err(format!(
                "expected `CHECK = up|down [until TIME]`, found `{body}`"
            ));
            continue;
        };
        let check = check.trim();
        if !known(check) {
            skipped.push(Diagnostic::new(
                path,
                line,
                format!("`{check}` is not a configured check; line skipped"),
            ));
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let state = match words.first().map(|w| w.to_ascii_lowercase()) {
            Some(w) if w == "up" => State::Up,
            Some(w) if w == "down" => State::Down,
            _ => {
                err(format!("state for `{check}` must be up or down"));
                continue;
            }
        };
        let until = match &words[1..] {
            [] => None,
            ["until", t] => match humantime::parse_rfc3339_weak(t) {
                Ok(t) => Some(t),
                Err(e) => {
                    err(format!(
                        "bad time `{t}` ({e}); use RFC 3339, e.g. 2026-11-27T18:00:00Z"
                    ));
                    continue;
                }
            },
            other => {
                err(format!(
                    "unexpected `{}` after the state (only `until TIME` may follow)",
                    other.join(" ")
                ));
                continue;
            }
        };
        if out.iter().any(|o| o.check == check) {
            err(format!("`{check}` is overridden twice"));
            continue;
        }
        out.push(Override {
            check: check.to_string(),
            state,
            until,
            reason: reason.to_string(),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn known(n: &str) -> bool {
        ["a", "b"].contains(&n)
    }

    #[test]
    fn parses_states_expiry_and_reason() {
        let o = parse(
            Path::new("admin"),
            "# comment\na = down until 2030-01-01T00:00:00Z # maintenance\n\nb = UP\n",
            known,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].state, State::Down);
        assert_eq!(o[0].reason, "maintenance");
        let until = o[0].until.unwrap();
        assert!(o[0].active(until - Duration::from_secs(1)));
        assert!(!o[0].active(until));
        assert!(o[1].active(SystemTime::now()) && o[1].state == State::Up);
    }

    #[test]
    fn any_error_rejects_the_file_with_lines() {
        let mut skipped = Vec::new();
        let e = parse(
            Path::new("admin"),
            "a = down\nc = up\nb = sideways\na = up until never\n",
            known,
            &mut skipped,
        )
        .unwrap_err();
        let lines: Vec<usize> = e.iter().map(|d| d.line).collect();
        assert_eq!(lines, [3, 4]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].message.contains("`c` is not a configured check"));
    }

    #[test]
    fn a_line_for_a_removed_check_is_skipped_not_fatal() {
        let mut skipped = Vec::new();
        let o = parse(
            Path::new("admin"),
            "gone = down # old\na = down # maintenance\n",
            known,
            &mut skipped,
        )
        .unwrap();
        assert_eq!((o.len(), o[0].check.as_str()), (1, "a"));
        assert_eq!(skipped[0].line, 1);
    }
}
