//! Member-level validation of `[[route]]`: geo areas, overlapping
//! networks or areas, and `route = "NAME"` references (bound to routes of
//! the same type, cycles rejected, routes ordered children first).

use std::collections::BTreeMap;

use super::Validator;
use super::file::MemberSpec;
use super::routes::{Area, Member, Policy, RouteConfig, parse_name};

/// Continent codes used by MaxMind and DB-IP.
const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

impl Validator<'_> {
    /// A geo member's area (or `default`); errors for misplaced keys.
    pub(super) fn area(
        &mut self,
        m: &MemberSpec,
        policy: Policy,
        fail: &mut dyn FnMut(&mut Self, String),
    ) -> Option<Area> {
        let given = [
            m.continent.is_some(),
            m.country.is_some(),
            m.subdivision.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        let default = m.default == Some(true);
        if m.default == Some(false) {
            fail(self, "default = false means nothing: leave it out".into());
        }
        if policy != Policy::Geo {
            if given > 0 {
                fail(
                    self,
                    "continent, country and subdivision only apply to geo routes".into(),
                );
            }
            if default && policy != Policy::Cidr {
                fail(self, "default only applies to geo and cidr routes".into());
            }
            return None;
        }
        if given + usize::from(default) != 1 {
            fail(
                self,
                "needs exactly one of continent, country, subdivision and default = true".into(),
            );
            return None;
        }
        if default {
            return Some(Area::Default);
        }
        let upper = |s: &String| s.trim().to_ascii_uppercase();
        if let Some(c) = &m.continent {
            let c = upper(c);
            if !CONTINENTS.contains(&c.as_str()) {
                fail(
                    self,
                    format!("continent `{c}` is not one of {}", CONTINENTS.join(" ")),
                );
            }
            return Some(Area::Continent(c));
        }
        if let Some(c) = &m.country {
            let c = upper(c);
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                fail(
                    self,
                    format!("country `{c}` is not an ISO 3166-1 alpha-2 code (e.g. DE)"),
                );
            }
            return Some(Area::Country(c));
        }
        let s = upper(m.subdivision.as_ref()?);
        match s.split_once('-') {
            Some((c, sub))
                if c.len() == 2
                    && c.bytes().all(|b| b.is_ascii_alphabetic())
                    && (1..=3).contains(&sub.len())
                    && sub.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Some(Area::Subdivision(c.into(), sub.into()))
            }
            _ => {
                fail(
                    self,
                    format!("subdivision `{s}` is not an ISO 3166-2 code (e.g. DE-BY)"),
                );
                None
            }
        }
    }

    /// Two geo members with one area, two cidr members with one network, or
    /// two defaults would make the answer depend on member order.
    pub(super) fn member_overlaps(
        &mut self,
        members: &[Member],
        fail: &mut dyn FnMut(&mut Self, String),
    ) {
        let mut areas: BTreeMap<String, usize> = BTreeMap::new();
        let mut nets: BTreeMap<String, usize> = BTreeMap::new();
        for (i, m) in members.iter().enumerate() {
            if let Some(a) = &m.area
                && let Some(first) = areas.insert(a.to_string(), i + 1)
            {
                fail(
                    self,
                    format!("members {first} and {} both serve {a}", i + 1),
                );
            }
            for n in &m.networks {
                if let Some(first) = nets.insert(n.to_string(), i + 1) {
                    fail(self, format!("members {first} and {} both list {n}", i + 1));
                }
            }
        }
        let defaults = members.iter().filter(|m| m.default).count();
        if defaults > 1 {
            fail(self, "more than one member has default = true".into());
        }
    }

    /// Binds `route = "NAME"` members to routes of the same type and
    /// rejects cycles. Returns the routes and an order in which every
    /// route comes after the routes it names.
    pub(super) fn resolve_route_refs(
        &mut self,
        routes: &mut Vec<RouteConfig>,
        refs: Vec<Vec<(usize, String, usize)>>,
    ) -> (Vec<RouteConfig>, Vec<usize>) {
        let mut ok = true;
        for (r, member_refs) in refs.into_iter().enumerate() {
            for (m, target, line) in member_refs {
                let rtype = routes[r].rtype;
                let here = format!("route {} {rtype}: member {}", routes[r].name, m + 1);
                let Ok(name) = parse_name(&target) else {
                    self.error_at(line, format!("{here}: route `{target}` is not a name"));
                    ok = false;
                    continue;
                };
                match routes
                    .iter()
                    .position(|o| o.name == name && o.rtype == rtype)
                {
                    Some(t) => {
                        routes[r].members[m].route = Some(t);
                        routes[r].members[m].route_name = Some(name);
                    }
                    None => {
                        let others: Vec<String> = routes
                            .iter()
                            .filter(|o| o.name == name)
                            .map(|o| o.rtype.to_string())
                            .collect();
                        let why = if others.is_empty() {
                            "no route has that name".to_string()
                        } else {
                            format!(
                                "type mismatch: {name} is routed only as {}, not {rtype}",
                                others.join(", ")
                            )
                        };
                        self.error_at(line, format!("{here}: route `{name}`: {why}"));
                        ok = false;
                    }
                }
            }
        }
        if !ok {
            // Invalid anyway; the routes stay for the checks that follow.
            return (std::mem::take(routes), Vec::new());
        }
        // Depth-first order; a route met again while on the stack is a cycle.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark = vec![Mark::New; routes.len()];
        let mut order = Vec::new();
        for start in 0..routes.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // Explicit stack: (route, next member to look at).
            let mut stack = vec![(start, 0usize)];
            mark[start] = Mark::Active;
            while let Some(&mut (r, ref mut next)) = stack.last_mut() {
                let child = routes[r].members.get(*next).map(|m| m.route);
                *next += 1;
                match child {
                    None => {
                        mark[r] = Mark::Done;
                        order.push(r);
                        stack.pop();
                    }
                    Some(None) => {}
                    Some(Some(c)) => match mark[c] {
                        Mark::Done => {}
                        Mark::New => {
                            mark[c] = Mark::Active;
                            stack.push((c, 0));
                        }
                        Mark::Active => {
                            let from = stack.iter().position(|&(s, _)| s == c).unwrap_or(0);
                            let cycle: Vec<String> = stack[from..]
                                .iter()
                                .map(|&(s, _)| routes[s].name.to_string())
                                .chain(std::iter::once(routes[c].name.to_string()))
                                .collect();
                            let line = routes[c].line;
                            self.error_at(
                                line,
                                format!(
                                    "route {} {}: routes name each other in a cycle: {}",
                                    routes[c].name,
                                    routes[c].rtype,
                                    cycle.join(" -> ")
                                ),
                            );
                            return (Vec::new(), Vec::new());
                        }
                    },
                }
            }
        }
        (std::mem::take(routes), order)
    }
}
