//! The fleet's decisions, driven through the real controller with
//! followers' events and probe reports (no network).
use std::time::{Duration, SystemTime};

use crate::control::Controller;
use crate::control::build::Base;
use crate::fleet::Event;
use crate::fleet::wire::{Feed, FleetOverride, Vote};
use crate::health::scheduler::Report;
use crate::health::{Outcome, State, Transition};
use crate::testutil::ZONE;

fn controller(fleet: &str, checks: &str) -> (tempfile::TempDir, Controller) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.zone"), ZONE).unwrap();
    let path = dir.path().join("veer.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n[[zone]]\norigin = \"t.\"\nfile = \"t.zone\"\n\
             [fleet]\nname = \"ns1\"\nlisten = \"127.0.0.1:0\"\ntoken = \"fleet-token-0123456789\"\npeer_timeout = \"1s\"\n{fleet}\n\
             [[peer]]\nname = \"ns2\"\nurl = \"http://127.0.0.1:1\"\n[[peer]]\nname = \"ns3\"\nurl = \"http://127.0.0.1:2\"\n{checks}"
        ),
    )
    .unwrap();
    let base = Base::load_path(&path, None).unwrap_or_else(|d| panic!("{d}"));
    (dir, Controller::new(base))
}

const WEB: &str = "[check.web]\ntcp = \"127.0.0.1:9\"\n";

fn idx(c: &Controller, name: &str) -> usize {
    c.base
        .config
        .checks
        .iter()
        .position(|k| k.name == name)
        .unwrap()
}

/// This instance's own probe of `name` goes to `to`.
fn own(c: &mut Controller, name: &str, to: State) {
    let i = idx(c, name);
    let p = c.probes.iter().find(|p| p.checks.contains(&i)).unwrap();
    let starts = p.activity.as_ref().map_or(0, |a| a.borrow().starts);
    let r = Report {
        probe: p.id,
        transition: Some(Transition {
            from: c.health[i].own,
            to,
            reason: "own probe".into(),
            at: SystemTime::now(),
        }),
        pending: false,
        streak: 0,
        established: true,
        outcome: Outcome {
            ok: to == State::Up,
            latency: Duration::from_millis(1),
            local: false,
            reason: "own probe".into(),
        },
        starts,
    };
    let t = c.apply(r);
    c.rebuild(SystemTime::now(), t);
}

/// Peer `peer` answers, heard at `at`, with these votes and overrides.
fn heard(
    c: &mut Controller,
    peer: &str,
    at: SystemTime,
    votes: &[(&str, State)],
    overrides: Vec<FleetOverride>,
) {
    let changed = hear(c, peer, at, votes, overrides);
    c.rebuild(SystemTime::now(), changed);
}

/// The event of `heard`, without the rebuild.
fn hear(
    c: &mut Controller,
    peer: &str,
    at: SystemTime,
    votes: &[(&str, State)],
    overrides: Vec<FleetOverride>,
) -> bool {
    let feed = Feed {
        instance: peer.into(),
        seq: 1,
        time_ms: 0,
        votes: votes
            .iter()
            .map(|(check, state)| {
                let i = idx(c, check);
                Vote {
                    check: check.to_string(),
                    hash: c.base.vote_hash(i).to_string(),
                    state: *state,
                    since_ms: 0,
                    streak: 0,
                }
            })
            .collect(),
        overrides,
    };
    c.fleet_event(Event::Heard {
        peer: peer.into(),
        at,
        feed,
        ignored: 0,
    })
}

fn observed(c: &Controller, name: &str) -> State {
    c.health[idx(c, name)].observed
}

fn degraded(c: &Controller, name: &str) -> bool {
    let s = c.fleet_status(SystemTime::now()).unwrap();
    s.checks.iter().find(|k| k.check == name).unwrap().degraded
}

fn probing(c: &Controller, name: &str) -> bool {
    let i = idx(c, name);
    c.probes
        .iter()
        .find(|p| p.checks.contains(&i))
        .unwrap()
        .probing()
}

#[test]
fn one_dissenting_vantage_point_changes_nothing_two_fail_over() {
    let (_d, mut c) = controller("", WEB);
    own(&mut c, "web", State::Up);
    // Alone: degraded, its own probes decide.
    assert!(degraded(&c, "web"));
    assert_eq!(observed(&c, "web"), State::Up);
    let now = SystemTime::now();
    heard(&mut c, "ns2", now, &[("web", State::Down)], vec![]);
    heard(&mut c, "ns3", now, &[("web", State::Up)], vec![]);
    assert!(!degraded(&c, "web"));
    assert_eq!(observed(&c, "web"), State::Up, "one vantage point of three");
    heard(&mut c, "ns3", now, &[("web", State::Down)], vec![]);
    assert_eq!(observed(&c, "web"), State::Down, "two of three");
    assert!(c.health[idx(&c, "web")].reason.contains("ns2 down"));
    // This instance's own Up does not outvote them.
    own(&mut c, "web", State::Down);
    own(&mut c, "web", State::Up);
    assert_eq!(observed(&c, "web"), State::Down);
}

#[test]
fn stale_peers_make_it_degraded_and_returning_ones_end_it() {
    let (_d, mut c) = controller("", WEB);
    own(&mut c, "web", State::Up);
    let long_ago = SystemTime::now() - Duration::from_secs(5);
    heard(&mut c, "ns2", long_ago, &[("web", State::Down)], vec![]);
    heard(&mut c, "ns3", long_ago, &[("web", State::Down)], vec![]);
    assert!(degraded(&c, "web"), "votes older than peer_timeout");
    assert_eq!(observed(&c, "web"), State::Up);
    let now = SystemTime::now();
    heard(&mut c, "ns2", now, &[("web", State::Down)], vec![]);
    assert!(!degraded(&c, "web"));
    assert_eq!(
        observed(&c, "web"),
        State::Up,
        "1 up 1 down: split, the verdict holds"
    );
    heard(&mut c, "ns3", now, &[("web", State::Down)], vec![]);
    assert_eq!(observed(&c, "web"), State::Down);
}

#[test]
fn a_peer_with_another_definition_does_not_vote() {
    let (_d, mut c) = controller("", WEB);
    own(&mut c, "web", State::Up);
    let now = SystemTime::now();
    heard(&mut c, "ns3", now, &[("web", State::Up)], vec![]);
    let mut feed = Feed {
        instance: "ns2".into(),
        seq: 1,
        votes: vec![Vote {
            check: "web".into(),
            hash: "not-our-definition".into(),
            state: State::Down,
            since_ms: 0,
            streak: 0,
        }],
        ..Feed::default()
    };
    c.fleet_event(Event::Heard {
        peer: "ns2".into(),
        at: now,
        feed: feed.clone(),
        ignored: 0,
    });
    feed.instance = "ns3".into();
    c.fleet_event(Event::Heard {
        peer: "ns3".into(),
        at: now,
        feed,
        ignored: 0,
    });
    c.rebuild(now, true);
    assert_eq!(observed(&c, "web"), State::Up);
    assert!(degraded(&c, "web"), "only this instance's vote counts");
    let s = c.fleet_status(now).unwrap();
    assert_eq!(s.peers[0].mismatched, vec!["web".to_string()]);
    let v = &s.checks[0].votes;
    assert!(
        v.iter()
            .any(|v| v.instance == "ns2" && !v.counted && v.note == "probes a different target")
    );
}

#[test]
fn probes_follow_the_assignment_and_take_over_from_the_verdict() {
    let checks: String = (0..12)
        .map(|i| format!("[check.c{i}]\ntcp = \"127.0.0.1:{}\"\n", 100 + i))
        .collect();
    let (_d, mut c) = controller("probers = 1\nquorum = 1", &checks);
    let names: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
    // Alone, this instance probes everything.
    assert!(names.iter().all(|n| probing(&c, n)));
    let now = SystemTime::now();
    let all_up: Vec<(&str, State)> = names.iter().map(|n| (n.as_str(), State::Up)).collect();
    heard(&mut c, "ns2", now, &all_up, vec![]);
    heard(&mut c, "ns3", now, &all_up, vec![]);
    let mine: Vec<&String> = names
        .iter()
        .filter(|n| crate::health::quorum::assigned(n, &["ns1", "ns2", "ns3"], 1) == ["ns1"])
        .collect();
    assert!(!mine.is_empty() && mine.len() < names.len());
    for n in &mine {
        own(&mut c, n, State::Up);
    }
    for n in &names {
        assert_eq!(probing(&c, n), mine.contains(&n), "{n}");
        assert_eq!(observed(&c, n), State::Up, "{n}");
    }
    // ns2 and ns3 go silent: every check is this instance's again, taken
    // on from the verdict (no flap to Unknown or Down).
    let later = now + Duration::from_secs(2);
    c.rebuild(later, false);
    for n in &names {
        assert!(probing(&c, n), "{n}");
        assert_eq!(c.health[idx(&c, n)].own, State::Up, "{n}");
        assert_eq!(observed(&c, n), State::Up, "{n}");
    }
}

#[test]
fn the_most_recent_fleet_override_applies_everywhere() {
    let (_d, mut c) = controller("", WEB);
    own(&mut c, "web", State::Up);
    let now = SystemTime::now();
    let set = |state: Option<State>, set_ms: u64| FleetOverride {
        check: "web".into(),
        state,
        until_ms: None,
        reason: "maintenance".into(),
        set_ms,
    };
    heard(
        &mut c,
        "ns2",
        now,
        &[("web", State::Up)],
        vec![set(Some(State::Down), 10)],
    );
    let i = idx(&c, "web");
    assert_eq!(
        (c.health[i].effective, c.health[i].forced),
        (State::Down, true)
    );
    // ns3 cleared it later: the clear wins.
    heard(
        &mut c,
        "ns3",
        now,
        &[("web", State::Up)],
        vec![set(None, 20)],
    );
    assert_eq!(
        (c.health[i].effective, c.health[i].forced),
        (State::Up, false)
    );
    // Set here through the API: later than both, and published.
    c.set_fleet_override(
        "web",
        Some(crate::health::overrides::Override {
            check: "web".into(),
            state: State::Down,
            until: None,
            reason: "ours".into(),
        }),
    )
    .unwrap();
    assert_eq!(c.health[i].effective, State::Down);
    let f = c.fleet.as_ref().unwrap();
    assert!(f.own_overrides[0].set_ms > 20);
    let published = f.feed.borrow().clone();
    let text = String::from_utf8_lossy(&published.body);
    assert!(text.contains("\"ours\""), "{text}");
    // It survives a restart.
    let dir = c.base.config.server.state_dir.clone().unwrap();
    assert!(dir.join(super::FLEET_OVERRIDES).exists());
}

// ---------------------------------------------------------------------
// From an adversarial review: each failed before its fix.

/// A vote from a peer whose `since_ms` lies past year 9999 panics the
/// controller when it builds the status (every publish).
#[test]
fn a_far_future_since_ms_cannot_panic_the_status() {
    let (_d, mut c) = controller("", WEB);
    let i = idx(&c, "web");
    let feed = Feed {
        instance: "ns2".into(),
        seq: 1,
        time_ms: 0,
        votes: vec![Vote {
            check: "web".into(),
            hash: c.base.vote_hash(i).to_string(),
            state: State::Up,
            since_ms: 300_000_000_000_000,
            streak: 0,
        }],
        overrides: vec![],
    };
    let ch = c.fleet_event(Event::Heard {
        peer: "ns2".into(),
        at: SystemTime::now(),
        feed,
        ignored: 0,
    });
    c.rebuild(SystemTime::now(), ch);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.status()));
    assert!(r.is_ok(), "status() panicked on a peer's since_ms");
}

/// Same with a fleet override's until_ms.
#[test]
fn a_far_future_until_ms_cannot_panic_the_status() {
    let (_d, mut c) = controller("", WEB);
    heard(
        &mut c,
        "ns2",
        SystemTime::now(),
        &[],
        vec![FleetOverride {
            check: "web".into(),
            state: Some(State::Down),
            until_ms: Some(300_000_000_000_000),
            reason: String::new(),
            set_ms: 1,
        }],
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.status()));
    assert!(r.is_ok(), "status() panicked on a peer's until_ms");
}

/// set_ms = u64::MAX from a peer: set_fleet_override overflows (debug:
/// panic; release: wraps to 0, the operator's override loses for ever).
#[test]
fn set_ms_max_from_a_peer_still_loses_to_an_operator() {
    let (_d, mut c) = controller("", WEB);
    heard(
        &mut c,
        "ns2",
        SystemTime::now(),
        &[],
        vec![FleetOverride {
            check: "web".into(),
            state: Some(State::Down),
            until_ms: None,
            reason: "evil".into(),
            set_ms: u64::MAX,
        }],
    );
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.set_fleet_override("web", None).unwrap();
    }));
    assert!(
        r.is_ok(),
        "set_fleet_override panicked (latest + 1 overflow)"
    );
    let i = idx(&c, "web");
    assert!(
        !c.health[i].forced,
        "the operator's clear lost to set_ms = u64::MAX"
    );
}

/// An expired newer override is pruned by an unrelated set, and an older
/// override of another instance comes back to life.
#[test]
fn an_expired_override_does_not_bring_an_older_one_back() {
    let (_d, mut c) = controller("", &format!("{WEB}[check.api]\ntcp = \"127.0.0.1:10\"\n"));
    own(&mut c, "web", State::Up);
    heard(
        &mut c,
        "ns2",
        SystemTime::now(),
        &[],
        vec![FleetOverride {
            check: "web".into(),
            state: Some(State::Down),
            until_ms: None,
            reason: "old maintenance".into(),
            set_ms: 10,
        }],
    );
    let i = idx(&c, "web");
    assert_eq!(c.health[i].effective, State::Down);
    // Operator: web up for 100 ms (newer, wins), then it expires.
    c.set_fleet_override(
        "web",
        Some(crate::health::overrides::Override {
            check: "web".into(),
            state: State::Up,
            until: Some(SystemTime::now() + Duration::from_millis(100)),
            reason: "short".into(),
        }),
    )
    .unwrap();
    assert_eq!(c.health[i].effective, State::Up);
    std::thread::sleep(Duration::from_millis(200));
    c.rebuild(SystemTime::now(), false);
    assert!(
        !c.health[i].forced,
        "expired: the most recent no longer applies"
    );
    // An unrelated fleet override on another check...
    c.set_fleet_override("api", None).unwrap();
    assert!(
        !c.health[i].forced,
        "the old, superseded override came back: {:?}",
        c.health[i].effective
    );
}

/// Peer overrides for checks this instance does not have are kept (and
/// logged one line each): memory and log flooding from a peer's feed.
#[test]
fn overrides_for_unknown_checks_are_dropped() {
    let (_d, mut c) = controller("", WEB);
    let junk: Vec<FleetOverride> = (0..1000)
        .map(|n| FleetOverride {
            check: format!("nope-{n}"),
            state: Some(State::Down),
            until_ms: None,
            reason: "x".repeat(1000),
            set_ms: 1,
        })
        .collect();
    heard(&mut c, "ns2", SystemTime::now(), &[], junk);
    assert!(
        c.fleet.as_ref().unwrap().merged.len() <= 1,
        "{} merged",
        c.fleet.as_ref().unwrap().merged.len()
    );
}

/// A reload removing a peer keeps that peer's fleet overrides in force.
#[test]
fn a_removed_peers_overrides_end() {
    let (d, mut c) = controller("", WEB);
    own(&mut c, "web", State::Up);
    heard(
        &mut c,
        "ns2",
        SystemTime::now(),
        &[("web", State::Up)],
        vec![FleetOverride {
            check: "web".into(),
            state: Some(State::Down),
            until_ms: None,
            reason: "ns2's".into(),
            set_ms: 10,
        }],
    );
    let i = idx(&c, "web");
    assert!(c.health[i].forced);
    // Drop [[peer]] ns2 from the config and reload.
    let path = d.path().join("veer.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "[[peer]]\nname = \"ns2\"\nurl = \"http://127.0.0.1:1\"\n",
        "",
    );
    std::fs::write(&path, text).unwrap();
    let new = Base::load_path(&path, Some(&c.base)).unwrap_or_else(|d| panic!("{d}"));
    let old = std::mem::replace(&mut c.base, std::sync::Arc::new(new));
    c.reconcile_fleet(None);
    c.reconcile(Some(old), SystemTime::now());
    assert_eq!(c.fleet.as_ref().unwrap().peers.len(), 1);
    assert!(
        !c.health[i].forced,
        "ns2 is gone but its override still forces web"
    );
}

/// Names of checks (c0, c1, ...) with the given assignment among
/// ns1..ns3 (k of 3) and, with ns3 gone, among ns1, ns2.
fn find_check(k: usize, full: &[&str], without_ns3: &[&str], skip: &[String]) -> String {
    (0..10_000)
        .map(|n| format!("x{n}"))
        .find(|n| {
            !skip.contains(n)
                && crate::health::quorum::assigned(n, &["ns1", "ns2", "ns3"], k) == full
                && crate::health::quorum::assigned(n, &["ns1", "ns2"], k) == without_ns3
        })
        .unwrap()
}

/// A prober goes; this instance, not assigned, sees it go before the
/// next prober has voted (instances notice a loss up to a heartbeat
/// apart). It holds the verdict for one peer_timeout instead of probing
/// (else every instance probes each check once at every takeover), and
/// is degraded only if the newcomer stays silent past that.
#[test]
fn a_takeover_does_not_make_the_others_probe() {
    let name = find_check(1, &["ns3"], &["ns2"], &[]);
    let (_d, mut c) = controller(
        "probers = 1\nquorum = 1",
        &format!("[check.{name}]\ntcp = \"127.0.0.1:9\"\n"),
    );
    let t0 = SystemTime::now();
    let event = |c: &mut Controller, peer: &str, at: SystemTime, votes: &[(&str, State)]| {
        let changed = hear(c, peer, at, votes, vec![]);
        c.rebuild(at, changed);
    };
    event(&mut c, "ns2", t0, &[]);
    event(&mut c, "ns3", t0, &[(&name, State::Up)]);
    assert_eq!(observed(&c, &name), State::Up);
    assert!(!probing(&c, &name));
    // ns3 silent past peer_timeout (1 s); ns2 heard, not yet voting.
    let t1 = t0 + Duration::from_millis(1200);
    event(&mut c, "ns2", t1, &[]);
    assert!(!probing(&c, &name), "probed at ns3's loss");
    assert_eq!(observed(&c, &name), State::Up);
    let s = c.fleet_status(t1).unwrap();
    assert!(!s.checks.iter().find(|k| k.check == name).unwrap().degraded);
    // ns2 votes: it decides.
    let t2 = t1 + Duration::from_millis(300);
    event(&mut c, "ns2", t2, &[(&name, State::Down)]);
    assert_eq!(observed(&c, &name), State::Down);
    assert!(!probing(&c, &name));
    // ns2 drops its vote (say, another definition there) and stays
    // silent on it past the grace: degraded, this instance probes.
    let t3 = t2 + Duration::from_millis(300);
    event(&mut c, "ns2", t3, &[]);
    assert!(probing(&c, &name), "no vote at all is degraded at once");
}

/// A reload that only edits a check's timing changes its hash: every
/// peer's vote stops counting, the check is degraded, and it is decided
/// from `own` -- which for a check this instance had not been probing is
/// a stale verdict from long ago. A check the fleet has Down flips Up.
#[test]
fn a_timing_edit_keeps_the_fleets_verdict() {
    let name = find_check(2, &["ns2", "ns3"], &["ns2", "ns1"], &[]);
    let mk = |interval: &str| {
        format!("[check.{name}]\ntcp = \"127.0.0.1:9\"\ninterval = \"{interval}\"\n")
    };
    let (d, mut c) = controller("probers = 2", &mk("5s"));
    // Alone at first: probes it itself and sees it Up.
    own(&mut c, &name, State::Up);
    assert_eq!(observed(&c, &name), State::Up);
    // The fleet (its assigned probers ns2, ns3) says Down; ns1 pauses.
    let now = SystemTime::now();
    heard(&mut c, "ns2", now, &[(&name, State::Down)], vec![]);
    heard(&mut c, "ns3", now, &[(&name, State::Down)], vec![]);
    assert_eq!(observed(&c, &name), State::Down);
    assert!(!probing(&c, &name));
    // The operator edits the interval (same target) and reloads ns1 first.
    let path = d.path().join("veer.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("interval = \"5s\"", "interval = \"6s\"");
    std::fs::write(&path, text).unwrap();
    let new = Base::load_path(&path, Some(&c.base)).unwrap_or_else(|d| panic!("{d}"));
    let old = std::mem::replace(&mut c.base, std::sync::Arc::new(new));
    c.reconcile_fleet(None);
    c.reconcile(Some(old), SystemTime::now());
    c.rebuild(SystemTime::now(), true);
    assert_eq!(
        observed(&c, &name),
        State::Down,
        "a check the fleet has Down came Up from a stale own verdict ({})",
        c.health[idx(&c, &name)].reason
    );
}

/// A probe shared by two checks (same definition, different names) is
/// taken on with the first check's verdict as the seed of both.
#[test]
fn a_shared_probe_takeover_keeps_each_checks_verdict() {
    // a: probed by ns2 whether or not ns3 is live; b: ns3's, then ns1's.
    let a = find_check(1, &["ns2"], &["ns2"], &[]);
    let b = find_check(1, &["ns3"], &["ns1"], std::slice::from_ref(&a));
    let checks =
        format!("[check.{a}]\ntcp = \"127.0.0.1:9\"\n[check.{b}]\ntcp = \"127.0.0.1:9\"\n");
    let (_d, mut c) = controller("probers = 1\nquorum = 1", &checks);
    assert_eq!(c.probes.len(), 1, "one shared probe");
    let now = SystemTime::now();
    heard(&mut c, "ns2", now, &[(&a, State::Up)], vec![]);
    heard(&mut c, "ns3", now, &[(&b, State::Down)], vec![]);
    assert_eq!(observed(&c, &a), State::Up);
    assert_eq!(observed(&c, &b), State::Down);
    assert!(!probing(&c, &b));
    // ns3 goes silent; ns2 stays: ns1 takes b on.
    let later = now + Duration::from_millis(1500);
    heard(&mut c, "ns2", later, &[(&a, State::Up)], vec![]);
    c.rebuild(later, false);
    assert!(probing(&c, &b));
    assert_eq!(
        observed(&c, &b),
        State::Down,
        "b was Down; the takeover seeded it with a's Up"
    );
}

/// Cost of one fleet_refresh (every tick and every rebuild) with many checks.
#[test]
#[ignore]
fn fleet_refresh_cost() {
    for n in [500usize, 1000, 2000, 4000] {
        let checks: String = (0..n)
            .map(|i| {
                format!(
                    "[check.c{i}]\ntcp = \"127.0.0.{}:{}\"\n",
                    1 + i / 60000,
                    1 + i % 60000
                )
            })
            .collect();
        let (_d, mut c) = controller("", &checks);
        let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let votes: Vec<(&str, State)> = names.iter().map(|n| (n.as_str(), State::Up)).collect();
        let now = SystemTime::now();
        heard(&mut c, "ns2", now, &votes, vec![]);
        heard(&mut c, "ns3", now, &votes, vec![]);
        let t = std::time::Instant::now();
        for _ in 0..5 {
            c.fleet_refresh(SystemTime::now());
        }
        eprintln!("{n} checks: fleet_refresh {:?}", t.elapsed() / 5);
        let t = std::time::Instant::now();
        let _ = c.status();
        eprintln!("{n} checks: status() {:?}", t.elapsed());
        let t = std::time::Instant::now();
        heard(&mut c, "ns2", SystemTime::now(), &votes, vec![]);
        eprintln!(
            "{n} checks: one peer answer (event + rebuild) {:?}",
            t.elapsed()
        );
    }
}

/// The prober guard treats the fleet's verdicts like this prober's own:
/// when a quorum of other vantage points fails most checks over, this
/// instance freezes the old Up states and keeps answering dead addresses.
#[test]
fn the_guard_does_not_freeze_a_fleet_verdict() {
    let checks: String = (0..4)
        .map(|i| format!("[check.g{i}]\ntcp = \"127.0.0.1:{}\"\n", 200 + i))
        .collect();
    let (_d, mut c) = controller("", &checks);
    let names: Vec<String> = (0..4).map(|i| format!("g{i}")).collect();
    for n in &names {
        own(&mut c, n, State::Up);
    }
    let now = SystemTime::now();
    let all = |s| names.iter().map(|n| (n.as_str(), s)).collect::<Vec<_>>();
    heard(&mut c, "ns2", now, &all(State::Up), vec![]);
    heard(&mut c, "ns3", now, &all(State::Up), vec![]);
    heard(&mut c, "ns2", now, &all(State::Down), vec![]);
    heard(&mut c, "ns3", now, &all(State::Down), vec![]);
    for n in &names {
        assert_eq!(observed(&c, n), State::Down);
    }
    assert!(
        c.guard.frozen().is_none(),
        "guard froze a quorum verdict of 2 other vantage points"
    );
    let effective: Vec<State> = names
        .iter()
        .map(|n| c.health[idx(&c, n)].effective)
        .collect();
    assert_eq!(effective, vec![State::Down; 4]);
}

/// Right after a (re)start, before any probe ran, the feed already votes
/// the restored/initial state as if a probe had seen it. With probers = 1
/// a peer takes that vote as the verdict at once.
#[test]
fn no_vote_is_published_before_a_probe_ran() {
    let (_d, c) = controller("", "[check.web]\ntcp = \"127.0.0.1:9\"\ninitial = \"up\"\n");
    let f = c.fleet.as_ref().unwrap();
    let body = f.feed.borrow().body.clone();
    let (feed, _) = crate::fleet::wire::parse(&body, SystemTime::now()).unwrap();
    let v = feed.votes.iter().find(|v| v.check == "web").unwrap();
    assert_eq!(
        v.state,
        State::Unknown,
        "voted {} without having probed",
        v.state
    );
}

/// The peer's view of such a vote: a check this instance saw Down flips Up
/// when a returning prober (probers = 1) votes its unprobed initial state.
#[test]
fn a_returning_probers_unknown_vote_changes_nothing() {
    let x = (0..10_000)
        .map(|n| format!("x{n}"))
        .find(|n| {
            crate::health::quorum::assigned(n, &["ns1", "ns2", "ns3"], 1) == ["ns2"]
                && crate::health::quorum::assigned(n, &["ns1", "ns3"], 1) == ["ns1"]
        })
        .unwrap();
    let (_d, mut c) = controller(
        "probers = 1\nquorum = 1",
        &format!("[check.{x}]\ntcp = \"127.0.0.1:9\"\n"),
    );
    let now = SystemTime::now();
    heard(&mut c, "ns3", now, &[], vec![]);
    own(&mut c, &x, State::Down);
    assert_eq!(observed(&c, &x), State::Down);
    // ns2 restarts (initial = "up" or an old checkpoint) and is heard:
    // until its probe has run it votes Unknown (its feed says so, see
    // `review_start_publishes_unprobed_votes`), which decides nothing.
    heard(&mut c, "ns2", now, &[(&x, State::Unknown)], vec![]);
    assert_eq!(
        observed(&c, &x),
        State::Down,
        "flipped Up on a vote no probe made"
    );
}

/// Any reload copies the first check's health onto every check sharing
/// its probe. In a fleet those checks have different probers and can have
/// different verdicts: a split-held Down becomes Up for good.
#[test]
fn a_reload_keeps_each_shared_probe_checks_verdict() {
    let set = |n: &str| {
        let mut v = crate::health::quorum::assigned(n, &["ns1", "ns2", "ns3"], 2);
        v.sort();
        v
    };
    let names: Vec<String> = (0..10_000).map(|n| format!("x{n}")).collect();
    let a = names
        .iter()
        .find(|n| set(n) == ["ns1", "ns2"])
        .unwrap()
        .clone();
    let b = names
        .iter()
        .find(|n| set(n) == ["ns2", "ns3"] && **n > a)
        .unwrap()
        .clone();
    // b sorts after a: a is the probe's first check (checks are ordered by name).
    let checks =
        format!("[check.{a}]\ntcp = \"127.0.0.1:9\"\n[check.{b}]\ntcp = \"127.0.0.1:9\"\n");
    let (d, mut c) = controller("probers = 2", &checks);
    assert_eq!(c.probes.len(), 1);
    own(&mut c, &a, State::Up);
    let now = SystemTime::now();
    heard(
        &mut c,
        "ns2",
        now,
        &[(&a, State::Up), (&b, State::Down)],
        vec![],
    );
    heard(&mut c, "ns3", now, &[(&b, State::Down)], vec![]);
    assert_eq!(
        (observed(&c, &a), observed(&c, &b)),
        (State::Up, State::Down)
    );
    // ns3 now sees b Up: split, Down holds.
    heard(&mut c, "ns3", now, &[(&b, State::Up)], vec![]);
    assert_eq!(observed(&c, &b), State::Down);
    // The probe task runs (as after start_tasks).
    c.unspawned.clear();
    // An unrelated reload (same file).
    let path = d.path().join("veer.toml");
    let new = Base::load_path(&path, Some(&c.base)).unwrap_or_else(|d| panic!("{d}"));
    let old = std::mem::replace(&mut c.base, std::sync::Arc::new(new));
    c.reconcile_fleet(None);
    c.reconcile(Some(old), SystemTime::now());
    assert_eq!(
        (observed(&c, &a), observed(&c, &b)),
        (State::Up, State::Down),
        "the reload copied one check's verdict onto the other ({})",
        c.health[idx(&c, &b)].reason
    );
}
