//! From probe reports and operator input to effective health: applies
//! reports (with the prober guard), computes each check's effective state
//! (override, guard freeze, calculated checks), and keeps the operators'
//! overrides (the admin-state file and the API).

use std::time::{Duration, SystemTime};

use super::{ADMIN_STATE, Controller, OverrideError, RECENT_TRANSITIONS};
use crate::config::CheckKind;
use crate::health::State;
use crate::health::overrides::{self, Override};
use crate::health::scheduler::Report;
use crate::status::{TransitionRecord, rfc3339};

impl Controller {
    /// Applies one probe report; true if a check's observed state changed.
    pub(super) fn apply(&mut self, r: Report) -> bool {
        let Some(probe) = self.probes.iter_mut().find(|p| p.id == r.probe) else {
            return false; // a probe stopped by a reload
        };
        if probe
            .activity
            .as_ref()
            .is_some_and(|a| a.borrow().starts != r.starts)
        {
            return false; // observed before the fleet paused or restarted it
        }
        probe.streak = r.streak;
        let checks = probe.checks.clone();
        let mut changed = false;
        for c in checks {
            let h = &mut self.health[c];
            h.pending = r.pending;
            h.latency = Some(r.outcome.latency);
            // Whether the state left behind was seen by a probe.
            let from_established = h.established;
            h.established = r.established;
            h.own_probed = true;
            let Some(t) = &r.transition else { continue };
            h.own = t.to;
            h.own_reason = t.reason.clone();
            if self.fleet.is_some() {
                // This instance's vote changed; the fleet decides.
                changed = true;
                continue;
            }
            self.observe(c, t.from, t.to, &t.reason, t.at, from_established, true);
            changed = true;
        }
        changed
    }

    /// Check `c`'s observed state goes from `from` to `to`: logged,
    /// recorded, and shown to the prober guard. `from_established`: the
    /// state left behind was seen by a probe. `guarded`: this instance's
    /// own probes decided it, so the prober guard counts it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn observe(
        &mut self,
        c: usize,
        from: State,
        to: State,
        reason: &str,
        at: SystemTime,
        from_established: bool,
        guarded: bool,
    ) {
        let name = self.base.config.checks[c].name.clone();
        match self.forced(&name, at) {
            Some(o) => tracing::info!(
                "check {name}: {from} -> {to} ({reason}); forced {} by override, so routes keep using {}",
                o.state,
                o.state
            ),
            None => tracing::info!("check {name}: {from} -> {to} ({reason})"),
        }
        let h = &mut self.health[c];
        h.observed = to;
        h.since = at;
        h.reason = reason.to_string();
        self.record_transition(&name, from, to, reason, at);
        if !guarded {
            return;
        }
        let observed: Vec<Option<State>> = self
            .base
            .config
            .checks
            .iter()
            .zip(&self.health)
            .map(|(k, h)| (!matches!(k.kind, CheckKind::Calculated { .. })).then_some(h.observed))
            .collect();
        // The guard keeps established states only: an assumed or
        // provisional one is no evidence, neither to count nor to hold.
        let current: Vec<State> = self
            .health
            .iter()
            .map(|h| {
                if h.established {
                    h.effective
                } else {
                    State::Unknown
                }
            })
            .collect();
        let from = if from_established {
            from
        } else {
            State::Unknown
        };
        match self.guard.observe(c, from, to, at, &observed, &current) {
            Some(true) => tracing::error!(
                "prober guard: more than {:.0}% of {} checks went down within {}; the likelier fault is this prober's own network, so the last states are kept until probes recover or an operator overrides",
                self.base.config.health.guard_share * 100.0,
                observed.iter().flatten().count(),
                humantime::format_duration(self.base.config.health.guard_window)
            ),
            Some(false) => tracing::warn!(
                "prober guard lifted: probes recovered; routes follow probe results again"
            ),
            None => {}
        }
    }

    /// The override in force for check `name` at `now`: this instance's
    /// own (admin-state file, API), else the fleet's most recent.
    pub(super) fn forced(&self, name: &str, now: SystemTime) -> Option<&Override> {
        self.overrides
            .iter()
            .chain(self.fleet.iter().flat_map(|f| f.merged.iter()))
            .find(|o| o.check == name && o.active(now))
    }

    pub(super) fn record_transition(
        &mut self,
        check: &str,
        from: State,
        to: State,
        reason: &str,
        at: SystemTime,
    ) {
        let rec = TransitionRecord {
            check: check.to_string(),
            from,
            to,
            reason: reason.to_string(),
            at: rfc3339(at),
        };
        self.webhooks.send(&rec);
        self.transitions.push_front(rec);
        self.transitions_total += 1;
        self.transitions.truncate(RECENT_TRANSITIONS);
        let checks = &self.base.config.checks;
        if self.check_history.len() >= checks.len() && !self.check_history.contains_key(check) {
            // Checks a reload removed are forgotten.
            self.check_history
                .retain(|n, _| checks.iter().any(|c| &c.name == n));
        }
        super::push_recent(
            self.check_history.entry(check.to_string()).or_default(),
            crate::status::StateChange { at, from, to },
            crate::status::CHECK_HISTORY,
            |c| c.at,
            at,
        );
    }

    /// effective = override, else (guard freeze or observed); calculated
    /// checks from their children's effective states.
    pub(super) fn recompute_effective(&mut self, now: SystemTime) {
        let checks = &self.base.config.checks;
        let frozen = self.guard.frozen().map(|f| f.to_vec());
        let (own, merged) = (&self.overrides, self.fleet.as_ref().map(|f| &f.merged));
        let forced = |name: &str| {
            own.iter()
                .chain(merged.into_iter().flatten())
                .find(|o| o.check == name && o.active(now))
        };
        for (i, c) in checks.iter().enumerate() {
            if matches!(c.kind, CheckKind::Calculated { .. }) {
                continue;
            }
            // A frozen Unknown holds nothing: the check follows its probe.
            let real = match frozen.as_ref().map(|f| f[i]) {
                Some(State::Unknown) | None => self.health[i].observed,
                Some(held) => held,
            };
            let h = &mut self.health[i];
            match forced(&c.name) {
                Some(o) => (h.effective, h.forced) = (o.state, true),
                None => (h.effective, h.forced) = (real, false),
            }
        }
        // Calculated checks may depend on each other (cycles are rejected at
        // load): iterate until nothing moves.
        let mut records = Vec::new();
        for _ in 0..=checks.len() {
            let mut moved = false;
            for (i, c) in checks.iter().enumerate() {
                let CheckKind::Calculated {
                    children,
                    min_healthy,
                } = &c.kind
                else {
                    continue;
                };
                let healthy = children
                    .iter()
                    .filter(|&&ch| self.health[ch].effective.eligible())
                    .count();
                let observed = if healthy >= *min_healthy as usize {
                    State::Up
                } else {
                    State::Down
                };
                let (effective, is_forced) = match forced(&c.name) {
                    Some(o) => (o.state, true),
                    None => (observed, false),
                };
                let h = &mut self.health[i];
                if h.observed != observed {
                    let reason = format!(
                        "{healthy} of {} children healthy, need {min_healthy}",
                        children.len()
                    );
                    tracing::info!(
                        "check {}: {} -> {} ({reason})",
                        c.name,
                        h.observed,
                        observed
                    );
                    records.push((c.name.clone(), h.observed, observed, reason.clone()));
                    h.reason = reason;
                    h.observed = observed;
                    h.since = now;
                }
                if (h.effective, h.forced) != (effective, is_forced) {
                    (h.effective, h.forced) = (effective, is_forced);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        for (name, from, to, reason) in records {
            self.record_transition(&name, from, to, &reason, now);
        }
    }

    /// Reads the admin-state file; true if the overrides changed. A file
    /// with any error is rejected whole and the current overrides stay.
    ///
    /// `operator`: a change counts as an operator's action (which lifts a
    /// guard freeze); false for the read at start, which only restores.
    pub(super) fn read_admin_state(&mut self, now: SystemTime, operator: bool) -> bool {
        let Some(dir) = &self.base.config.server.state_dir else {
            return false;
        };
        let path = dir.join(ADMIN_STATE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::error!("{}: {e}; the current overrides stay", path.display());
                return false;
            }
        };
        let checks = &self.base.config.checks;
        let mut skipped = Vec::new();
        let parsed = overrides::parse(
            &path,
            &text,
            |n| checks.iter().any(|c| c.name == n),
            &mut skipped,
        );
        for w in skipped {
            tracing::warn!("{w}");
        }
        let new = match parsed {
            Ok(o) => o,
            Err(errors) => {
                for e in errors {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    "{}: rejected whole; the current overrides stay",
                    path.display()
                );
                return false;
            }
        };
        self.replace_overrides(new, now, "the admin-state file", operator)
    }

    pub(super) fn replace_overrides(
        &mut self,
        new: Vec<Override>,
        now: SystemTime,
        source: &str,
        operator: bool,
    ) -> bool {
        if new == self.overrides {
            return false;
        }
        let checks = &self.base.config.checks;
        for o in &new {
            if self.overrides.contains(o) {
                continue;
            }
            let real = checks
                .iter()
                .position(|c| c.name == o.check)
                .map(|i| self.health[i].observed);
            let until = o
                .until
                .map(|u| format!(" until {}", humantime::format_rfc3339_seconds(u)))
                .unwrap_or_default();
            let active = if o.active(now) {
                ""
            } else {
                " (already expired)"
            };
            tracing::info!(
                "check {}: forced {}{until} by {source}{active} ({}); real state {}",
                o.check,
                o.state,
                if o.reason.is_empty() {
                    "no reason given"
                } else {
                    &o.reason
                },
                real.map_or("unknown".to_string(), |s| s.to_string())
            );
        }
        for o in &self.overrides {
            if !new.iter().any(|n| n.check == o.check) {
                tracing::info!("check {}: override removed", o.check);
            }
        }
        self.overrides = new;
        if operator && self.guard.frozen().is_some() {
            tracing::warn!("prober guard lifted by the operator's override");
            self.guard.lift();
        }
        true
    }

    /// The API's override: applied at once and written to the admin-state
    /// file (when there is a state_dir), which stays the one source of truth.
    pub(super) fn set_override(
        &mut self,
        check: &str,
        set: Option<Override>,
    ) -> Result<(), OverrideError> {
        if !self.base.config.checks.iter().any(|c| c.name == check) {
            return Err(OverrideError::UnknownCheck(check.to_string()));
        }
        let mut new: Vec<Override> = self
            .overrides
            .iter()
            .filter(|o| o.check != check)
            .cloned()
            .collect();
        if let Some(o) = set {
            new.push(o);
        }
        if let Some(dir) = &self.base.config.server.state_dir {
            let mut text = String::from(
                "# CHECK = up|down [until RFC3339] [# reason]; also written by the API\n",
            );
            for o in &new {
                text.push_str(&format!("{} = {}", o.check, o.state));
                if let Some(u) = o.until {
                    text.push_str(&format!(" until {}", humantime::format_rfc3339_seconds(u)));
                }
                if !o.reason.is_empty() {
                    text.push_str(&format!(" # {}", o.reason.replace('\n', " ")));
                }
                text.push('\n');
            }
            // Lines for checks not configured now (a reload dropped them for
            // a while) stay as they were: the file is the source of truth.
            let path = dir.join(ADMIN_STATE);
            if let Ok(old) = std::fs::read_to_string(&path) {
                let mut skipped = Vec::new();
                let checks = &self.base.config.checks;
                let _ = overrides::parse(
                    &path,
                    &old,
                    |n| checks.iter().any(|c| c.name == n),
                    &mut skipped,
                );
                for d in skipped {
                    if let Some(line) = old.lines().nth(d.line - 1) {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
            // Durably: an override the API acknowledged survives a crash.
            crate::durable::replace(dir, ADMIN_STATE, text.as_bytes()).map_err(|source| {
                OverrideError::Write {
                    path: dir.join(ADMIN_STATE),
                    source,
                }
            })?;
        }
        let now = SystemTime::now();
        if self.replace_overrides(new, now, "the API", true) {
            self.rebuild(now, true);
        }
        Ok(())
    }

    /// When the next override expires (zero if one already has: the
    /// expiry branch then drops it and rebuilds).
    pub(super) fn next_expiry(&self, now: SystemTime) -> Option<Duration> {
        self.overrides
            .iter()
            .filter_map(|o| o.until)
            // A fleet override stays in its instance's feed after it
            // expires: only its expiry to come wakes the controller.
            .chain(
                self.fleet
                    .iter()
                    .flat_map(|f| f.merged.iter())
                    .filter_map(|o| o.until)
                    .filter(|u| *u > now),
            )
            .map(|u| u.duration_since(now).unwrap_or(Duration::ZERO))
            .min()
    }
}
