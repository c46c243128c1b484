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
                    hash: c.base.fingerprints[i].0.clone(),
                    state: *state,
                    since_ms: 0,
                    streak: 0,
                }
            })
            .collect(),
        overrides,
    };
    let changed = c.fleet_event(Event::Heard {
        peer: peer.into(),
        at,
        feed,
        ignored: 0,
    });
    c.rebuild(SystemTime::now(), changed);
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
            .any(|v| v.instance == "ns2" && !v.counted && v.note == "different definition")
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
