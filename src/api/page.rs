//! `GET /`: the status page. Plain server-rendered HTML, no external
//! assets, refreshed in place every 5 s (a small inline script fetches the
//! page and swaps `<main>`; without scripts a meta refresh): checks
//! (state, real state when forced, since, latency, reason, a timeline of
//! the last hour and a probe-latency sparkline), routes with their current
//! answers and when they changed, recent transitions, zones with queries
//! per second over the last hour, and the last reload. The pictures are
//! inline SVG drawn from bounded rings kept in memory.

use std::fmt::Write;
use std::time::{Instant, SystemTime};

use crate::health::State;
use crate::metrics::QpsPoint;
use crate::status::{AnswerChange, HISTORY_WINDOW, StateChange, Status, rfc3339};

/// Swaps `<main>` for the one of a fresh copy of the page every 5 s, so
/// the scroll position stays; counts the swaps in `body[data-refreshed]`.
const REFRESH_SCRIPT: &str = r#"<script>(function(){var n=0;setInterval(function(){fetch(location.href,{cache:"no-store"}).then(function(r){return r.ok?r.text():null}).then(function(t){if(!t)return;var d=new DOMParser().parseFromString(t,"text/html"),m=d.getElementById("page");if(!m)return;document.title=d.title;document.getElementById("page").replaceWith(m);document.body.setAttribute("data-refreshed",++n)}).catch(function(){})},5000)})();</script>"#;

/// Renders the page.
pub fn render(
    s: &Status,
    notify: &[crate::xfr::notify::TargetStatus],
    secondaries: &[crate::xfr::secondary::Status],
) -> String {
    let now = SystemTime::now();
    let mut h = String::with_capacity(8192);
    let down = s.checks.iter().filter(|c| c.state == State::Down).count();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><noscript><meta http-equiv="refresh" content="5"></noscript>
<title>veer: {down} of {n} checks down</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}}h1{{font-size:1.4em}}h2{{font-size:1.1em;margin-top:1.6em}}
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}}
th{{background:#f4f4f4}}.state{{font-weight:600;padding:.1em .5em;border-radius:.3em}}
.up{{background:#d7f5dd;color:#0a5c1f}}.down{{background:#fbd9d7;color:#8a1208}}.unknown{{background:#eee;color:#555}}
.dissent{{background:#fff8e6}}.warn{{background:#fff3cd;padding:.5em;border-radius:.3em}}.muted{{color:#777}}code{{font-size:.95em}}
svg{{display:block}}svg.timeline rect[data-state=up]{{fill:#3aa757}}svg.timeline rect[data-state=down]{{fill:#d93025}}svg.timeline rect[data-state=unknown]{{fill:#c8c8c8}}
svg.sparkline polyline,svg.qps polyline{{fill:none;stroke:#1a73e8;stroke-width:1.5;vector-effect:non-scaling-stroke}}svg.qps{{background:#f8f9fb}}
.answer-changes{{margin:0;padding-left:1em;font-size:.9em}}.pic{{display:flex;gap:.8em;align-items:center}}.axis{{font-size:.8em;font-weight:normal}}</style></head><body><main id="page">
<h1>veer <span class="muted">generation {gen}, up since {started}</span></h1>
<p id="summary"><b>{up}</b> of {n} checks healthy, <b>{down}</b> down; {routes} routes; {zones} zones.</p>"#,
        n = s.checks.len(),
        gen = s.generation,
        started = esc(&s.started),
        up = s.checks.len() - down,
        routes = s.routes.len(),
        zones = s.zones.len(),
    );
    if s.guard_frozen {
        h.push_str(r#"<p class="warn" id="guard">Prober guard: too many checks went down at once; the last states are kept until probes recover or an operator overrides.</p>"#);
    }
    if let Some(r) = s.last_reload.as_ref().filter(|r| !r.ok) {
        let _ = write!(
            h,
            r#"<div class="warn" id="reload-error">Last reload at {} was rejected; still serving the previous config:<ul>"#,
            esc(&r.at)
        );
        for e in &r.errors {
            let _ = write!(h, "<li><code>{}</code></li>", esc(e));
        }
        h.push_str("</ul></div>");
    }
    if let Some(r) = s.last_reload.as_ref().filter(|r| r.ok) {
        let _ = write!(
            h,
            r#"<p class="muted" id="last-reload">Last reload at {}: {}</p>"#,
            esc(&r.at),
            esc(&r
                .diff
                .as_ref()
                .map_or_else(|| "applied".into(), |d| d.summary()))
        );
    }
    h.push_str(r#"<h2>Checks</h2><table id="checks"><tr><th>check</th><th>kind</th><th>state</th><th>since</th><th>last latency</th><th>reason</th><th>last hour <span class="axis muted">(real state: −60 min … now; probe latency: last probes)</span></th></tr>"#);
    for c in &s.checks {
        let forced = if c.forced {
            format!(
                r#" <span class="muted">forced{}; real state <span class="state {r}">{r}</span></span>"#,
                c.override_until
                    .as_ref()
                    .map(|u| format!(" until {}", esc(u)))
                    .unwrap_or_default(),
                r = c.real_state
            )
        } else {
            String::new()
        };
        let _ = write!(
            h,
            r#"<tr data-check="{name}"><td>{name}</td><td>{kind}</td><td><span class="state {st}">{st}</span>{forced}{pending}</td><td>{since}</td><td>{lat}</td><td>{reason}</td><td><div class="pic">{timeline}{spark}</div></td></tr>"#,
            timeline = timeline(&c.name, &c.history, c.real_state, now),
            spark = sparkline(
                &c.name,
                &c.stats
                    .as_ref()
                    .map(|p| p.recent_latencies())
                    .unwrap_or_default()
            ),
            name = esc(&c.name),
            kind = c.kind,
            st = c.state,
            pending = if c.pending {
                r#" <span class="muted">(changing?)</span>"#
            } else {
                ""
            },
            since = esc(&c.since),
            lat = c
                .last_latency_ms
                .map(|l| format!("{l:.1} ms"))
                .unwrap_or_else(|| "–".into()),
            reason = esc(c
                .override_reason
                .as_deref()
                .filter(|_| c.forced)
                .unwrap_or(&c.reason)),
        );
    }
    h.push_str("</table>");
    if let Some(f) = &s.fleet {
        fleet(&mut h, f);
    }
    h.push_str(r#"<h2>Routes</h2><table id="routes"><tr><th>name</th><th>type</th><th>policy</th><th>answer</th><th>healthy</th><th>TTL</th><th>answer changed (last hour)</th></tr>"#);
    for r in &s.routes {
        let answer = if r.outcome == "members" || r.outcome == "fallback" {
            r.answer
                .iter()
                .map(|a| esc(a))
                .collect::<Vec<_>>()
                .join("<br>")
        } else {
            r.outcome.to_uppercase()
        };
        let _ = write!(
            h,
            r#"<tr data-route="{name} {t}"><td>{name}</td><td>{t}</td><td>{p}</td><td class="answer">{answer}{fb}</td><td>{ok}</td><td>{ttl}</td><td>{changes}</td></tr>"#,
            changes = answer_changes(&format!("{} {}", r.name, r.rtype), &r.answer_changes, now),
            name = esc(&r.name),
            t = r.rtype,
            p = r.policy,
            fb = if r.outcome == "fallback" {
                r#" <span class="muted">(fallback)</span>"#
            } else {
                ""
            },
            ok = if r.healthy { "yes" } else { "<b>no</b>" },
            ttl = r.ttl,
        );
    }
    h.push_str("</table>");
    h.push_str(r#"<h2>Recent transitions</h2><table id="transitions"><tr><th>time</th><th>check</th><th>change</th><th>reason</th></tr>"#);
    for t in s.transitions.iter().take(30) {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td>{}</td><td><span class="state {f}">{f}</span> → <span class="state {to}">{to}</span></td><td>{}</td></tr>"#,
            esc(&t.at),
            esc(&t.check),
            esc(&t.reason),
            f = t.from,
            to = t.to
        );
    }
    if s.transitions.is_empty() {
        h.push_str(r#"<tr><td colspan="4" class="muted">none since start</td></tr>"#);
    }
    h.push_str("</table>");
    h.push_str(
        r#"<h2>Zones</h2><table id="zones"><tr><th>zone</th><th>serial</th><th>records</th><th>DNSSEC</th><th>queries/s, last hour</th></tr>"#,
    );
    for z in &s.zones {
        let dnssec = match &z.dnssec {
            None => "unsigned".to_string(),
            Some(d) => {
                let keys: Vec<String> = d
                    .keys
                    .iter()
                    .map(|k| {
                        format!(
                            "key {} (alg {}, {}{}{})",
                            k.tag,
                            k.algorithm,
                            if k.ksk { "KSK/CSK" } else { "ZSK" },
                            if k.active { ", active" } else { "" },
                            if k.published { ", published" } else { "" }
                        )
                    })
                    .collect();
                let ds: Vec<String> = d
                    .keys
                    .iter()
                    .filter_map(|k| k.ds.as_deref())
                    .map(|ds| format!("<code>{}</code>", esc(ds)))
                    .collect();
                format!(
                    "signed: {}; signatures expire {}, made again {}<br>DS to publish: {}",
                    esc(&keys.join(", ")),
                    esc(d.earliest_expiry.as_deref().unwrap_or("-")),
                    esc(d.next_signing.as_deref().unwrap_or("-")),
                    ds.join("<br>")
                )
            }
        };
        let (points, current) = z
            .stats
            .as_ref()
            .map(|st| st.qps(Instant::now()))
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{dnssec}</td><td>{}</td></tr>",
            esc(&z.origin),
            z.serial,
            z.records,
            qps_chart(&z.origin, &points, current, now),
        );
    }
    h.push_str("</table>");
    if !secondaries.is_empty() {
        h.push_str(
            r#"<h2>Zones from primaries</h2><table id="secondary-zones"><tr><th>zone</th><th>primary</th><th>serial</th><th>last refresh</th><th>next refresh</th><th>expires</th><th>last error</th></tr>"#,
        );
        let opt = |v: &Option<String>| esc(v.as_deref().unwrap_or("–"));
        for z in secondaries {
            let _ = write!(
                h,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&z.zone),
                if z.expired {
                    r#" <span class="down">SERVFAIL</span>"#
                } else {
                    ""
                },
                esc(&z.primary.clone().unwrap_or_else(|| z.primaries.join(", "))),
                z.serial.map_or("–".to_string(), |s| s.to_string()),
                opt(&z.last_refresh),
                opt(&z.next_refresh),
                opt(&z.expires),
                opt(&z.last_error),
            );
        }
        h.push_str("</table>");
    }
    if !notify.is_empty() {
        h.push_str(
            r#"<h2>Secondaries</h2><table id="secondaries"><tr><th>zone</th><th>notify target</th><th>serial sent</th><th>serial acknowledged</th><th>last error</th></tr>"#,
        );
        for t in notify {
            let serial = |v: Option<u32>| v.map_or("–".to_string(), |v| v.to_string());
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
                esc(&t.zone),
                esc(&t.target),
                serial(t.serial_sent),
                serial(t.serial_acked),
                t.acked_at.as_deref().map_or(String::new(), |a| format!(
                    r#" <span class="muted">{}</span>"#,
                    esc(a)
                )),
                esc(t.last_error.as_deref().unwrap_or("")),
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        r#"<p class="muted">config {} · reloads: {} ok, {} rejected · <a href="/metrics">metrics</a> · <a href="/v1/health">/v1/health</a> · <a href="/v1/routes">/v1/routes</a></p></main>{REFRESH_SCRIPT}</body></html>"#,
        esc(&s.config),
        s.reloads_ok,
        s.reloads_failed
    );
    h
}

/// Width of the last-hour pictures (SVG units, one per 10 s).
const HOUR_W: f64 = 360.0;

/// Least width (SVG units) of a timeline's last stretch: the state now.
const MIN_NOW_W: f64 = 3.0;

/// Seconds from the window's start (`now` minus an hour) to `t`, as x.
fn hour_x(t: SystemTime, now: SystemTime) -> f64 {
    let back = now.duration_since(t).unwrap_or_default().as_secs_f64();
    let w = HISTORY_WINDOW.as_secs_f64();
    ((w - back.min(w)) / w * HOUR_W).clamp(0.0, HOUR_W)
}

/// `HH:MM:SS` (UTC) of `t`.
fn clock(t: SystemTime) -> String {
    rfc3339(t).get(11..19).unwrap_or("").to_string()
}

/// A check's real state over the last hour: one `<rect data-state>` per
/// stretch, green up, red down, grey unknown.
fn timeline(name: &str, history: &[StateChange], current: State, now: SystemTime) -> String {
    let start = now
        .checked_sub(HISTORY_WINDOW)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let inside: Vec<&StateChange> = history
        .iter()
        .filter(|c| c.at >= start && c.at <= now)
        .collect();
    let first = match inside.first() {
        Some(c) => c.from,
        None => history
            .iter()
            .rfind(|c| c.at < start)
            .map_or(current, |c| c.to),
    };
    // (from, state) stretches; equal neighbours merged.
    let mut stretches: Vec<(SystemTime, State)> = vec![(start, first)];
    for c in inside {
        if stretches.last().is_some_and(|l| l.1 != c.to) {
            stretches.push((c.at, c.to));
        }
    }
    let mut h = format!(
        r#"<svg class="timeline" data-check="{}" viewBox="0 0 {HOUR_W} 14" width="240" height="14" preserveAspectRatio="none" role="img"><title>real state (what the probes say) over the last hour</title>"#,
        esc(name)
    );
    for (i, (from, state)) in stretches.iter().enumerate() {
        let last = i + 1 == stretches.len();
        let to = stretches.get(i + 1).map_or(now, |n| n.0);
        let (mut x0, x1) = (hour_x(*from, now), hour_x(to, now));
        if last {
            // The state now stays visible, however recent.
            x0 = x0.min(HOUR_W - MIN_NOW_W);
        }
        let _ = write!(
            h,
            r#"<rect data-state="{state}" x="{x0:.1}" y="0" width="{:.1}" height="14"><title>{state} from {}{}</title></rect>"#,
            (x1 - x0).max(0.5),
            if i == 0 {
                "before".to_string()
            } else {
                clock(*from)
            },
            if i + 1 == stretches.len() {
                " until now".to_string()
            } else {
                format!(" to {}", clock(to))
            },
        );
    }
    h.push_str("</svg>");
    h
}

/// The last probe latencies (microseconds, oldest first) as a line.
fn sparkline(name: &str, us: &[u32]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let max = us.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut h = format!(
        r#"<svg class="sparkline" data-check="{}" data-points="{}" viewBox="0 0 {W} {H}" width="120" height="24" role="img">"#,
        esc(name),
        us.len()
    );
    if let (Some(min), Some(last)) = (us.iter().min(), us.last()) {
        let _ = write!(
            h,
            "<title>probe latency, last {} probes: {:.1} to {:.1} ms, last {:.1} ms</title>",
            us.len(),
            *min as f64 / 1000.0,
            max / 1000.0,
            *last as f64 / 1000.0
        );
        let step = if us.len() > 1 {
            W / (us.len() - 1) as f64
        } else {
            0.0
        };
        let y = |v: u32| H - 1.0 - (v as f64 / max) * (H - 2.0);
        let mut pts: Vec<String> = us
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", i as f64 * step, y(v)))
            .collect();
        if us.len() == 1 {
            pts.push(format!("{W:.1},{:.1}", y(us[0])));
        }
        let _ = write!(h, r#"<polyline points="{}"/>"#, pts.join(" "));
    } else {
        h.push_str("<title>no probe yet</title>");
    }
    h.push_str("</svg>");
    h
}

/// When a route's answer changed in the last hour, newest first.
fn answer_changes(route: &str, changes: &[AnswerChange], now: SystemTime) -> String {
    let start = now
        .checked_sub(HISTORY_WINDOW)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let recent: Vec<&AnswerChange> = changes.iter().rev().filter(|c| c.at >= start).collect();
    if recent.is_empty() {
        return format!(
            r#"<ul class="answer-changes" data-route="{}"></ul><span class="muted">none</span>"#,
            esc(route)
        );
    }
    let mut h = format!(r#"<ul class="answer-changes" data-route="{}">"#, esc(route));
    const SHOWN: usize = 5;
    for c in recent.iter().take(SHOWN) {
        let _ = write!(
            h,
            r#"<li><time datetime="{}">{}</time> → {}</li>"#,
            rfc3339(c.at),
            clock(c.at),
            esc(&c.answer)
        );
    }
    if recent.len() > SHOWN {
        let _ = write!(
            h,
            r#"<li class="muted">{} earlier</li>"#,
            recent.len() - SHOWN
        );
    }
    h.push_str("</ul>");
    h
}

/// A zone's queries per second over the last hour; `current` is the rate
/// since the last point, drawn at `now`.
fn qps_chart(origin: &str, points: &[QpsPoint], current: Option<f64>, now: SystemTime) -> String {
    const H: f64 = 30.0;
    let start = now
        .checked_sub(HISTORY_WINDOW)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.at >= start && p.at <= now)
        .map(|p| (hour_x(p.at, now), p.qps))
        .collect();
    if let Some(c) = current {
        pts.push((HOUR_W, c));
    }
    let peak = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let scale = peak.max(1.0);
    let mut h = format!(
        r#"<svg class="qps" data-zone="{}" data-peak="{peak:.2}" data-now="{:.2}" viewBox="0 0 {HOUR_W} {H}" width="240" height="30" preserveAspectRatio="none" role="img"><title>queries/s over the last hour: now {:.1}, peak {peak:.1}</title>"#,
        esc(origin),
        current.unwrap_or(0.0),
        current.unwrap_or(0.0),
    );
    if let Some(&(x0, _)) = pts.first() {
        if pts.len() == 1 {
            pts.insert(0, (x0 - 1.0, pts[0].1));
        }
        let line: Vec<String> = pts
            .iter()
            .map(|(x, v)| format!("{x:.1},{:.1}", H - 1.0 - v / scale * (H - 2.0)))
            .collect();
        let _ = write!(h, r#"<polyline points="{}"/>"#, line.join(" "));
    }
    let _ = write!(
        h,
        r#"</svg><span class="muted">now {:.1}/s, peak {peak:.1}/s</span>"#,
        current.unwrap_or(0.0)
    );
    format!(r#"<div class="pic">{h}</div>"#)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The fleet: peers, and per check the votes behind its verdict. A row
/// whose votes disagree has class `dissent`.
fn fleet(h: &mut String, f: &crate::status::FleetStatus) {
    let live = f.peers.iter().filter(|p| p.live).count();
    let _ = write!(
        h,
        r#"<h2>Fleet</h2><div id="fleet"><p>This instance: <b>{}</b>; {} of {} peers heard; a verdict needs {} agreeing votes of {} probers; a peer silent for {} ms is gone.</p><table id="fleet-peers"><tr><th>peer</th><th>url</th><th>state</th><th>last heard</th><th>note</th></tr>"#,
        esc(&f.name),
        live,
        f.peers.len(),
        f.quorum,
        f.probers,
        f.peer_timeout_ms
    );
    for p in &f.peers {
        let mut note = p.error.clone().unwrap_or_default();
        if !p.mismatched.is_empty() {
            note.push_str(&format!(
                " defines differently: {}",
                p.mismatched.join(", ")
            ));
        }
        let _ = write!(
            h,
            r#"<tr data-peer="{n}"><td>{n}</td><td>{u}</td><td><span class="state {c}">{s}</span></td><td>{t}</td><td>{note}</td></tr>"#,
            n = esc(&p.name),
            u = esc(&p.url),
            c = if p.live { "up" } else { "down" },
            s = if p.live { "live" } else { "gone" },
            t = esc(p.last_heard.as_deref().unwrap_or("never")),
            note = esc(note.trim()),
        );
    }
    h.push_str(
        r#"</table><table id="fleet-votes"><tr><th>check</th><th>verdict</th><th>votes</th></tr>"#,
    );
    for c in &f.checks {
        let dissent = c.votes.iter().any(|v| v.state != c.verdict);
        let votes: Vec<String> = c
            .votes
            .iter()
            .map(|v| {
                format!(
                    r#"<span class="vote{muted}" title="since {since}{note}">{i}: <span class="state {st}">{st}</span></span>"#,
                    muted = if v.counted { "" } else { " muted" },
                    since = esc(&v.since),
                    note = if v.note.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", esc(&v.note))
                    },
                    i = esc(&v.instance),
                    st = v.state,
                )
            })
            .collect();
        let _ = write!(
            h,
            r#"<tr data-check="{n}"{cls}><td>{n}</td><td><span class="state {v}">{v}</span>{deg}</td><td>{votes}</td></tr>"#,
            n = esc(&c.check),
            cls = if dissent { r#" class="dissent""# } else { "" },
            v = c.verdict,
            deg = if c.degraded {
                r#" <span class="warn">degraded: too few votes, decided from this instance's own probes</span>"#
            } else {
                ""
            },
            votes = if votes.is_empty() {
                r#"<span class="muted">none</span>"#.to_string()
            } else {
                votes.join(", ")
            },
        );
    }
    h.push_str("</table></div>");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ago(now: SystemTime, mins: u64) -> SystemTime {
        now - Duration::from_secs(mins * 60)
    }

    /// (state, x, width) of each rect.
    fn rects(svg: &str) -> Vec<(String, f64, f64)> {
        svg.split("<rect ")
            .skip(1)
            .map(|r| {
                let attr = |a: &str| {
                    let i = r.find(&format!("{a}=\"")).unwrap() + a.len() + 2;
                    r[i..i + r[i..].find('"').unwrap()].to_string()
                };
                (
                    attr("data-state"),
                    attr("x").parse().unwrap(),
                    attr("width").parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn timeline_has_a_stretch_per_state_across_the_hour() {
        let now = SystemTime::now();
        let history = [
            StateChange {
                at: ago(now, 50),
                from: State::Unknown,
                to: State::Up,
            },
            StateChange {
                at: ago(now, 30),
                from: State::Up,
                to: State::Up,
            },
            StateChange {
                at: ago(now, 10),
                from: State::Up,
                to: State::Down,
            },
        ];
        let svg = timeline("a<b", &history, State::Down, now);
        assert!(
            svg.starts_with(r#"<svg class="timeline" data-check="a&lt;b""#),
            "{svg}"
        );
        let r = rects(&svg);
        let states: Vec<&str> = r.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(states, ["unknown", "up", "down"], "{svg}");
        assert_eq!((r[0].1, r[0].2), (0.0, 60.0));
        assert_eq!((r[1].1, r[1].2), (60.0, 240.0));
        assert_eq!((r[2].1, r[2].2), (300.0, 60.0));
    }

    #[test]
    fn timeline_without_recent_transitions_is_one_state() {
        let now = SystemTime::now();
        let svg = timeline("a", &[], State::Up, now);
        assert_eq!(rects(&svg), [("up".to_string(), 0.0, 360.0)]);
        // Only a transition from before the hour: its state throughout.
        let old = [StateChange {
            at: ago(now, 90),
            from: State::Up,
            to: State::Down,
        }];
        let svg = timeline("a", &old, State::Up, now);
        assert_eq!(rects(&svg), [("down".to_string(), 0.0, 360.0)]);
    }

    #[test]
    fn sparkline_draws_every_latency_scaled_to_the_highest() {
        let svg = sparkline("a", &[1000, 2000, 4000]);
        assert!(svg.contains(r#"class="sparkline" data-check="a" data-points="3""#));
        let pts = svg.split("<polyline points=\"").nth(1).unwrap();
        let pts = &pts[..pts.find('"').unwrap()];
        assert_eq!(pts, "0.0,17.5 60.0,12.0 120.0,1.0");
        assert!(svg.contains("1.0 to 4.0 ms, last 4.0 ms"), "{svg}");
        // One latency: a flat line; none: no line.
        assert!(sparkline("a", &[5]).contains(r#"points="0.0,1.0 120.0,1.0""#));
        assert!(!sparkline("a", &[]).contains("polyline"));
    }

    #[test]
    fn answer_changes_of_the_last_hour_newest_first() {
        let now = SystemTime::now();
        let c = |mins, a: &str| AnswerChange {
            at: ago(now, mins),
            answer: a.into(),
        };
        let html = answer_changes(
            "www. A",
            &[c(70, "old"), c(20, "10.0.0.1"), c(5, "<x>")],
            now,
        );
        assert!(html.starts_with(r#"<ul class="answer-changes" data-route="www. A">"#));
        assert_eq!(html.matches("<li>").count(), 2, "{html}");
        assert!(!html.contains("old"));
        let (x, one) = (
            html.find("&lt;x&gt;").unwrap(),
            html.find("10.0.0.1").unwrap(),
        );
        assert!(x < one, "newest first: {html}");
        assert!(answer_changes("www. A", &[], now).contains("none"));
        let many: Vec<_> = (0..8).map(|i| c(i, "a")).collect();
        assert!(answer_changes("r", &many, now).contains("3 earlier"));
    }

    #[test]
    fn qps_chart_places_points_by_time_and_ends_now() {
        let now = SystemTime::now();
        let points = [
            QpsPoint {
                at: ago(now, 90),
                qps: 99.0,
            },
            QpsPoint {
                at: ago(now, 30),
                qps: 2.0,
            },
        ];
        let svg = qps_chart("example.", &points, Some(4.0), now);
        assert!(
            svg.contains(r#"class="qps" data-zone="example." data-peak="4.00" data-now="4.00""#),
            "{svg}"
        );
        assert!(svg.contains(r#"points="180.0,15.0 360.0,1.0""#), "{svg}");
        let empty = qps_chart("example.", &[], None, now);
        assert!(empty.contains("class=\"qps\"") && !empty.contains("polyline"));
    }

    #[test]
    fn page_refreshes_in_place_without_external_assets() {
        let html = render(&Status::default(), &[], &[]);
        assert!(html.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#));
        assert!(html.contains(r#"<main id="page">"#) && html.contains("</main><script>"));
        assert!(!html.contains("src=") && !html.contains("<link"));
    }
}
