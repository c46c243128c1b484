//! Regression tests for reconcile, the prober guard and the admin-state
//! file, from an adversarial review: each drives the real controller with
//! probe reports across a reload or a restart.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::control::Controller;
use crate::control::build::Base;
use crate::health::checkpoint::{self, Checkpoint, Saved};
use crate::health::scheduler::Report;
use crate::health::{Outcome, State, Transition};
use crate::testutil::{ZONE, ask};

struct T {
    dir: tempfile::TempDir,
    path: PathBuf,
}
impl T {
    fn new(body: &str) -> T {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.zone"), ZONE).unwrap();
        let path = dir.path().join("veer.toml");
        let t = T { dir, path };
        t.write(body);
        t
    }
    fn write(&self, body: &str) {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n[[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\n{body}"
        );
        std::fs::write(&self.path, text).unwrap();
    }
    fn base(&self) -> Base {
        Base::load_path(&self.path, None).unwrap_or_else(|d| panic!("{d}"))
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

fn reload(c: &mut Controller, t: &T) {
    let new = Base::load_path(&t.path, Some(&c.base)).unwrap_or_else(|d| panic!("{d}"));
    let old = std::mem::replace(&mut c.base, Arc::new(new));
    c.reconcile(Some(old), SystemTime::now());
}

fn idx(c: &Controller, name: &str) -> usize {
    c.base
        .config
        .checks
        .iter()
        .position(|k| k.name == name)
        .unwrap()
}

/// A report from the probe of check `name`.
fn report(c: &mut Controller, name: &str, from: State, to: State, ok: bool) {
    let i = idx(c, name);
    let id = c.probes.iter().find(|p| p.checks.contains(&i)).unwrap().id;
    let r = Report {
        probe: id,
        transition: (from != to).then(|| Transition {
            from,
            to,
            reason: "scratch".into(),
            at: SystemTime::now(),
        }),
        pending: false,
        streak: 0,
        established: true,
        outcome: Outcome {
            ok,
            latency: Duration::from_millis(1),
            local: false,
            reason: "scratch".into(),
        },
        starts: 0,
    };
    let t = c.apply(r);
    c.rebuild(SystemTime::now(), t);
}

fn tcp(name: &str, port: u16, extra: &str) -> String {
    format!("[check.{name}]\ntcp = \"127.0.0.1:{port}\"\n{extra}\n")
}

/// `[health] guard_min_checks = 4` and a failover route `app.t.` whose
/// tier 1 (192.0.2.1) is decided by `check`.
fn guarded(check: &str) -> String {
    format!(
        "[health]\nguard_min_checks = 4\n[[route]]\nname = \"app.t.\"\ntype = \"A\"\npolicy = \"failover\"\n\
         members = [\n  {{ tier = 1, value = \"192.0.2.1\", check = \"{check}\" }},\n  {{ tier = 2, value = \"192.0.2.2\" }},\n]\n"
    )
}

const ROUTE: &str = r#"
[[route]]
name = "app.t."
type = "A"
policy = "failover"
ttl = 30
min_ttl = 5
members = [
  { tier = 1, value = "192.0.2.1", check = "web" },
  { tier = 2, value = "192.0.2.2" },
]
"#;

/// F1: at a restart, a check whose checkpoint says Down loses that state to
/// another check with the same definition but `initial = "up"` that sorts
/// first: the dead primary is answered.
#[test]
fn f1_shared_probe_initial_up_overwrites_checkpointed_down() {
    let body = format!(
        "{}{}{}",
        tcp("a-web", 1, "initial = \"up\""),
        tcp("web", 1, ""),
        ROUTE
    );
    let t = T::new(&body);
    let base = t.base();
    let k = &base.config.checks[idx_in(&base, "web")];
    let mut cp = Checkpoint::default();
    cp.checks.insert(
        "web".into(),
        Saved {
            state: State::Down,
            definition: checkpoint::fingerprint(&k.definition()),
            target: checkpoint::fingerprint(&k.target()),
            assumed: false,
            since: 1,
            reason: "3 consecutive failures".into(),
        },
    );
    checkpoint::save(&t.state(), &cp).unwrap();
    let c = Controller::new(base);
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(
        c.health[idx(&c, "web")].observed,
        State::Down,
        "checkpointed Down lost"
    );
    assert_eq!(got.values(), vec!["192.0.2.2"], "dead primary answered");
}

fn idx_in(b: &Base, name: &str) -> usize {
    b.config.checks.iter().position(|k| k.name == name).unwrap()
}

/// F2: a reload that edits the targets of most checks (provisional Up) and
/// the new targets fail: the guard counts those as an established burst and
/// freezes the never-verified Up, so dead new targets are answered until an
/// operator acts.
#[test]
fn f2_guard_freezes_provisional_up_after_target_edit() {
    let checks = |port0: u16| {
        (0..4)
            .map(|i| tcp(&format!("c{i}"), port0 + i, ""))
            .collect::<String>()
    };
    let route = guarded("c0");
    let t = T::new(&format!("{}{route}", checks(1000)));
    let mut c = Controller::new(t.base());
    for i in 0..4 {
        report(&mut c, &format!("c{i}"), State::Unknown, State::Up, true);
    }
    // Every backend moves to a new address (not yet live).
    t.write(&format!("{}{route}", checks(2000)));
    reload(&mut c, &t);
    assert!(c.health[0].pending && c.health[0].observed == State::Up);
    for i in 0..4 {
        report(&mut c, &format!("c{i}"), State::Up, State::Down, false);
    }
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(
        got.values(),
        vec!["192.0.2.2"],
        "dead new target answered (frozen: {:?})",
        c.guard.frozen()
    );
}

/// F2b: the same at a cold start with `initial = "up"`.
#[test]
fn f2b_guard_freezes_initial_up() {
    let checks: String = (0..4)
        .map(|i| tcp(&format!("c{i}"), 1000 + i, "initial = \"up\""))
        .collect();
    let route = guarded("c0");
    let t = T::new(&format!("{checks}{route}"));
    let mut c = Controller::new(t.base());
    for i in 0..4 {
        report(&mut c, &format!("c{i}"), State::Up, State::Down, false);
    }
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(
        got.values(),
        vec!["192.0.2.2"],
        "assumed Up frozen: {:?}",
        c.guard.frozen()
    );
}

/// F3: a calculated check whose children shift index (a check added that
/// sorts first) or whose min_healthy is edited is taken as a "target edit":
/// marked pending, and nothing ever clears it: its routes answer with
/// min_ttl for good.
#[test]
fn f3_calculated_check_stuck_pending_after_reload() {
    let calc = "[check.web]\nchildren = [\"x\", \"y\"]\nmin_healthy = 1\n";
    let body = |extra: &str| format!("{extra}{}{}{calc}{ROUTE}", tcp("x", 1, ""), tcp("y", 2, ""));
    let t = T::new(&body(""));
    let mut c = Controller::new(t.base());
    report(&mut c, "x", State::Unknown, State::Up, true);
    report(&mut c, "y", State::Unknown, State::Up, true);
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(got.values, vec![("192.0.2.1".into(), 30)]);
    // Add an unrelated check that sorts before x and y.
    t.write(&body(&tcp("a", 3, "")));
    reload(&mut c, &t);
    report(&mut c, "x", State::Up, State::Up, true);
    report(&mut c, "y", State::Up, State::Up, true);
    let w = idx(&c, "web");
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(
        got.values,
        vec![("192.0.2.1".into(), 30)],
        "pending={} reason={}",
        c.health[w].pending,
        c.health[w].reason
    );
}

/// F5: a reload that changes answers without touching the zone or the
/// route's own config (a calculated check's min_healthy) does not raise
/// the zone's serial, though the answer changed.
#[test]
fn f5_reload_changing_answers_keeps_serial() {
    let calc = |n: u32| format!("[check.web]\nchildren = [\"x\", \"y\"]\nmin_healthy = {n}\n");
    let body = |n| format!("{}{}{}{ROUTE}", tcp("x", 1, ""), tcp("y", 2, ""), calc(n));
    let t = T::new(&body(1));
    let mut c = Controller::new(t.base());
    report(&mut c, "x", State::Unknown, State::Up, true);
    report(&mut c, "y", State::Unknown, State::Down, false);
    let before = (
        ask(&c.snapshot(), "app.t.", "198.51.100.1").values,
        c.serials[0],
    );
    t.write(&body(2));
    reload(&mut c, &t);
    let after = (
        ask(&c.snapshot(), "app.t.", "198.51.100.1").values,
        c.serials[0],
    );
    assert_ne!(before.0, after.0, "answer changed");
    assert_ne!(
        before.1, after.1,
        "serial kept though the answer changed: {before:?} -> {after:?}"
    );
}

/// F6: an admin-state line for a check that a reload removed is skipped; an
/// API override of another check then rewrites the file from memory and
/// erases it, so the maintenance override is gone when the check returns.
#[test]
fn f6_api_write_erases_skipped_admin_state_lines() {
    let body = |with_web: bool| {
        let web = if with_web {
            tcp("web", 1, "")
        } else {
            String::new()
        };
        let route = if with_web { ROUTE } else { "" };
        format!("{}{web}{route}", tcp("other", 2, ""))
    };
    let t = T::new(&body(true));
    std::fs::create_dir_all(t.state()).unwrap();
    std::fs::write(
        t.state().join("admin-state"),
        "web = down # maintenance, ticket 1\n",
    )
    .unwrap();
    let mut c = Controller::new(t.base());
    assert!(c.overrides.iter().any(|o| o.check == "web"));
    t.write(&body(false));
    reload(&mut c, &t);
    c.set_override(
        "other",
        Some(crate::health::overrides::Override {
            check: "other".into(),
            state: State::Up,
            until: None,
            reason: "x".into(),
        }),
    )
    .unwrap();
    t.write(&body(true));
    reload(&mut c, &t);
    let text = std::fs::read_to_string(t.state().join("admin-state")).unwrap();
    assert!(
        c.overrides.iter().any(|o| o.check == "web"),
        "maintenance override lost; file now:\n{text}"
    );
}

/// F7: a freeze restored from the checkpoint at a restart is lifted at once
/// whenever the admin-state file holds any override (even an old,
/// unrelated one): reading the file at start counts as an operator action.
#[test]
fn f7_restart_with_any_override_drops_restored_freeze() {
    let checks: String = (0..4)
        .map(|i| tcp(&format!("c{i}"), 1000 + i, ""))
        .collect();
    let route = guarded("c0");
    let t = T::new(&format!("{checks}{route}"));
    let base = t.base();
    let mut cp = Checkpoint::default();
    for k in &base.config.checks {
        cp.checks.insert(
            k.name.clone(),
            Saved {
                state: State::Down,
                definition: checkpoint::fingerprint(&k.definition()),
                target: checkpoint::fingerprint(&k.target()),
                assumed: false,
                since: 1,
                reason: "burst".into(),
            },
        );
    }
    cp.guard.frozen = Some(
        base.config
            .checks
            .iter()
            .map(|k| (k.name.clone(), State::Up))
            .collect(),
    );
    checkpoint::save(&t.state(), &cp).unwrap();
    // Without an admin-state file the freeze holds:
    let c = Controller::new(t.base());
    assert!(c.guard.frozen().is_some());
    // With a long-standing maintenance override on an unrelated check:
    checkpoint::save(&t.state(), &cp).unwrap();
    std::fs::write(
        t.state().join("admin-state"),
        "c3 = down # decommissioned\n",
    )
    .unwrap();
    let c = Controller::new(t.base());
    assert!(
        c.guard.frozen().is_some(),
        "restored freeze lifted by reading the admin-state file at start"
    );
}

/// F8: the guard engages on "recent" Up->Down transitions even when most of
/// them have recovered: 2 of 6 checks are down (below the share), yet the
/// freeze holds both dead ones Up, and nothing lifts it while the states
/// stay put (lifting is only evaluated on a transition).
#[test]
fn f8_guard_engages_on_recovered_flaps_and_holds_two_dead_of_six() {
    let checks: String = (0..6)
        .map(|i| tcp(&format!("c{i}"), 1000 + i, ""))
        .collect();
    let route = guarded("c3");
    let t = T::new(&format!("{checks}{route}"));
    let mut c = Controller::new(t.base());
    for i in 0..6 {
        report(&mut c, &format!("c{i}"), State::Unknown, State::Up, true);
    }
    // c0 and c1 blip down and back (a deploy); c2 and c3 die for good.
    for i in 0..2 {
        report(&mut c, &format!("c{i}"), State::Up, State::Down, false);
        report(&mut c, &format!("c{i}"), State::Down, State::Up, true);
    }
    report(&mut c, "c2", State::Up, State::Down, false);
    report(&mut c, "c3", State::Up, State::Down, false);
    let down = c
        .health
        .iter()
        .filter(|h| h.observed == State::Down)
        .count();
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(
        got.values(),
        vec!["192.0.2.2"],
        "{down} of 6 down, frozen = {:?}",
        c.guard.frozen()
    );
}

/// F9: a transition the old probe sent just before a reload that restarts
/// it (timing edit) is still queued when the reload comes: the run loop
/// drains the queue first, so the transition is applied and the new probe
/// starts from it (it used to be dropped as "a probe stopped by a reload").
#[test]
fn f9_queued_transition_of_a_restarted_probe_is_applied_first() {
    let t = T::new(&format!("{}{ROUTE}", tcp("web", 1, "fall = 1")));
    let mut c = Controller::new(t.base());
    report(&mut c, "web", State::Unknown, State::Up, true);
    let old_id = c.probes[0].id;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(Report {
        probe: old_id,
        transition: Some(Transition {
            from: State::Up,
            to: State::Down,
            reason: "1 consecutive failures".into(),
            at: SystemTime::now(),
        }),
        pending: false,
        streak: 0,
        established: true,
        outcome: Outcome {
            ok: false,
            latency: Duration::from_millis(1),
            local: false,
            reason: "refused".into(),
        },
        starts: 0,
    })
    .unwrap();
    // The reload path: drain, then reconcile.
    t.write(&format!(
        "{}{ROUTE}",
        tcp("web", 1, "fall = 1\ninterval = \"20s\"")
    ));
    c.drain(&mut rx, None);
    reload(&mut c, &t);
    let (_, plan) = &c.unspawned[0];
    assert_eq!(c.health[0].observed, State::Down);
    assert_eq!(plan.initial, State::Down);
    let got = ask(&c.snapshot(), "app.t.", "198.51.100.1");
    assert_eq!(got.values(), vec!["192.0.2.2"]);
}

#[test]
fn listen_warns_only_when_the_addresses_change() {
    let text = |listen: &str| {
        format!("[server]\nlisten = {listen}\n[[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\n")
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.zone"), ZONE).unwrap();
    let path = dir.path().join("veer.toml");
    let load = |listen: &str| {
        std::fs::write(&path, text(listen)).unwrap();
        Base::load_path(&path, None).unwrap_or_else(|d| panic!("{d}"))
    };
    let two = load(r#"["127.0.0.1:5353", "[::1]:5353"]"#);
    let same = load(r#"["127.0.0.1:5353", "[::1]:5353"]"#);
    let swapped = load(r#"["[::1]:5353", "127.0.0.1:5353"]"#);
    let other = load(r#"["127.0.0.1:5354"]"#);
    assert!(super::restart_only(&two, &same).is_empty());
    assert!(super::restart_only(&two, &swapped).is_empty());
    let w = super::restart_only(&two, &other);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("[server] listen changed"), "{w:?}");
}
