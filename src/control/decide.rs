//! From effective health to served slots: every route whose checks (or
//! child routes) changed is decided again, children before parents; a zone
//! whose answers changed gets a higher SOA serial.

use std::sync::Arc;
use std::time::SystemTime;

use super::build::{expired_slots, route_slot, soa_slots};
use super::{Controller, next_serial};
use crate::route::{View, decide};
use crate::store::Dyn;

impl Controller {
    /// The SOA slots of zone `z`: its SOA with the served serial, or
    /// SERVFAIL for a secondary zone that expired.
    pub(super) fn soa_pair(&self, z: usize) -> [Dyn; 2] {
        let zone = &self.base.zones[z];
        if self.expired.contains(&zone.origin) {
            expired_slots()
        } else {
            let slots = soa_slots(zone, self.serials[z]);
            // A new serial is a new SOA: signed as it is made.
            match self.base.signers.get(z).and_then(|s| s.as_deref()) {
                Some(signer) => {
                    let now = SystemTime::now();
                    slots.map(|d| super::build::sign_dyn(&d, signer, now))
                }
                None => slots,
            }
        }
    }

    /// Fresh slots for the current base (every route re-decided).
    pub(super) fn reset_slots(&mut self) {
        let base = &self.base;
        self.slots = (0..base.slot_count)
            .map(|_| Arc::new(Dyn::NoData(u32::MAX)))
            .collect();
        let mut policy = vec![0u8; base.slot_count];
        for (i, r) in base.config.routes.iter().enumerate() {
            let label = crate::metrics::POLICIES
                .iter()
                .position(|p| *p == r.policy.name())
                .unwrap_or(0);
            policy[base.route_slots[i]] = label as u8;
        }
        self.slot_policy = policy.into();
        self.decisions = vec![None; base.config.routes.len()];
        for (i, z) in base.zones.iter().enumerate() {
            let [soa, neg] = self.soa_pair(i);
            self.slots[z.soa_slot] = Arc::new(soa);
            self.slots[z.soa_slot + 1] = Arc::new(neg);
        }
        self.generation += 1;
    }

    /// Recomputes effective states and route decisions; raises the serial
    /// of zones whose answers changed. `checkpoint` asks for the states to
    /// be saved. Publishing happens in `run` when the generation moved.
    pub(super) fn rebuild(&mut self, now: SystemTime, checkpoint: bool) {
        // In a fleet the votes decide each check's observed state first.
        let fleet_changed = self.fleet_refresh(now);
        self.recompute_effective(now);
        let config = &self.base.config;
        // Only routes with a member whose check changed are decided again
        // (and their parents, below).
        let mut todo = vec![false; config.routes.len()];
        for (c, h) in self.health.iter().enumerate() {
            if self.seen.get(c) != Some(&(h.effective, h.pending)) {
                for &r in &self.base.routes_of_check[c] {
                    todo[r] = true;
                }
            }
        }
        self.seen = self
            .health
            .iter()
            .map(|h| (h.effective, h.pending))
            .collect();
        let mut zone_changed = vec![false; self.base.zones.len()];
        // Children before parents: a parent sees its children's fresh
        // health bits and slots, and is rebuilt when a child's slot changed.
        let mut route_healthy: Vec<bool> = self
            .decisions
            .iter()
            .map(|d| d.as_ref().is_none_or(|d| d.healthy))
            .collect();
        let mut route_uncertain: Vec<bool> = self
            .decisions
            .iter()
            .map(|d| d.as_ref().is_some_and(|d| d.uncertain))
            .collect();
        let mut replaced = vec![false; config.routes.len()];
        for &i in &config.route_order {
            let route = &config.routes[i];
            let child_replaced = route
                .members
                .iter()
                .any(|m| m.route.is_some_and(|c| replaced[c]));
            if !todo[i] && !child_replaced && self.decisions[i].is_some() {
                continue;
            }
            let view = View {
                checks: &self.health,
                routes: &route_healthy,
                uncertain: &route_uncertain,
            };
            let d = decide(route, &view);
            let old = self.decisions[i].as_ref();
            let same = old.is_some_and(|o| o.same_answer(&d));
            if same && !child_replaced {
                // Same answer; keep the fresh path for explain and the API.
                self.decisions[i] = Some(d);
                continue;
            }
            // The zone's content changed (not only a TTL): raise its serial.
            if old.is_some_and(|o| !o.same_content(&d)) || child_replaced {
                tracing::debug!(
                    "route {} {}: {}",
                    route.name,
                    route.rtype,
                    d.path.join("; ")
                );
                zone_changed[route.zone] = true;
            }
            // The records answered changed (not only the TTL): shown on
            // the status page.
            let answer = super::view::answer_text(config, route, Some(&d));
            if old.is_some_and(|o| super::view::answer_text(config, route, Some(o)) != answer) {
                let key = (route.name.to_string(), route.rtype.to_string());
                if self.answer_changes.len() >= config.routes.len()
                    && !self.answer_changes.contains_key(&key)
                {
                    // Routes a reload removed are forgotten (one pass).
                    let live: rustc_hash::FxHashSet<(String, String)> = config
                        .routes
                        .iter()
                        .map(|r| (r.name.to_string(), r.rtype.to_string()))
                        .collect();
                    self.answer_changes.retain(|k, _| live.contains(k));
                }
                super::push_recent(
                    self.answer_changes.entry(key).or_default(),
                    crate::status::AnswerChange { at: now, answer },
                    crate::status::ANSWER_CHANGES,
                    |c| c.at,
                    now,
                );
            }
            self.slots[self.base.route_slots[i]] = Arc::new(route_slot(
                &self.base,
                self.geo.as_ref(),
                i,
                &d,
                &self.slots,
            ));
            route_healthy[i] = d.healthy;
            route_uncertain[i] = d.uncertain;
            replaced[i] = true;
            self.decisions[i] = Some(d);
        }
        let any = replaced.iter().any(|&r| r);
        let serial_moved = zone_changed.iter().any(|&c| c);
        for (z, changed) in zone_changed.into_iter().enumerate() {
            if changed {
                self.serials[z] = next_serial(self.serials[z]);
                let zone = &self.base.zones[z];
                let [soa, neg] = self.soa_pair(z);
                self.slots[zone.soa_slot] = Arc::new(soa);
                self.slots[zone.soa_slot + 1] = Arc::new(neg);
            }
        }
        if any || checkpoint || fleet_changed {
            self.generation += 1;
        }
        if checkpoint || serial_moved {
            self.save_checkpoint();
        }
    }
}
