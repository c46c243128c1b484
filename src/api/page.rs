//! `GET /`: the status page. Plain server-rendered HTML, no external
//! assets, refreshed every 5 s: checks (state, real state when forced,
//! since, latency, reason), routes with their current answers, recent
//! transitions, zones and the last reload.

use std::fmt::Write;

use crate::health::State;
use crate::status::Status;

/// Renders the page.
pub fn render(
    s: &Status,
    notify: &[crate::xfr::notify::TargetStatus],
    secondaries: &[crate::xfr::secondary::Status],
) -> String {
    let mut h = String::with_capacity(8192);
    let down = s.checks.iter().filter(|c| c.state == State::Down).count();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>veer: {down} of {n} checks down</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}}h1{{font-size:1.4em}}h2{{font-size:1.1em;margin-top:1.6em}}
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}}
th{{background:#f4f4f4}}.state{{font-weight:600;padding:.1em .5em;border-radius:.3em}}
.up{{background:#d7f5dd;color:#0a5c1f}}.down{{background:#fbd9d7;color:#8a1208}}.unknown{{background:#eee;color:#555}}
.dissent{{background:#fff8e6}}.warn{{background:#fff3cd;padding:.5em;border-radius:.3em}}.muted{{color:#777}}code{{font-size:.95em}}</style></head><body>
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
    h.push_str(r#"<h2>Checks</h2><table id="checks"><tr><th>check</th><th>kind</th><th>state</th><th>since</th><th>last latency</th><th>reason</th></tr>"#);
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
            r#"<tr data-check="{name}"><td>{name}</td><td>{kind}</td><td><span class="state {st}">{st}</span>{forced}{pending}</td><td>{since}</td><td>{lat}</td><td>{reason}</td></tr>"#,
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
    h.push_str(r#"<h2>Routes</h2><table id="routes"><tr><th>name</th><th>type</th><th>policy</th><th>answer</th><th>healthy</th><th>TTL</th></tr>"#);
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
            r#"<tr data-route="{name} {t}"><td>{name}</td><td>{t}</td><td>{p}</td><td class="answer">{answer}{fb}</td><td>{ok}</td><td>{ttl}</td></tr>"#,
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
        r#"<h2>Zones</h2><table id="zones"><tr><th>zone</th><th>serial</th><th>records</th><th>DNSSEC</th></tr>"#,
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
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{dnssec}</td></tr>",
            esc(&z.origin),
            z.serial,
            z.records
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
        r#"<p class="muted">config {} · reloads: {} ok, {} rejected · <a href="/metrics">metrics</a> · <a href="/v1/health">/v1/health</a> · <a href="/v1/routes">/v1/routes</a></p></body></html>"#,
        esc(&s.config),
        s.reloads_ok,
        s.reloads_failed
    );
    h
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
