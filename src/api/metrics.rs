//! `GET /metrics`: Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::health::State;
use crate::metrics::{POLICIES, QTYPES, RCODES, ServerStats, qtype_label, rcode_label};
use crate::store::Snapshot;

/// Renders every metric.
pub fn render(snap: &Snapshot, stats: &ServerStats) -> String {
    let s = &snap.status;
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    head(
        o,
        "veer_queries_total",
        "counter",
        "DNS queries answered, by zone, query type, response code and policy (static = zone file data).",
    );
    for z in &s.zones {
        let Some(zs) = &z.stats else { continue };
        for (p, policy) in POLICIES.iter().enumerate() {
            for q in 0..=QTYPES.len() {
                for r in 0..=RCODES.len() {
                    let n = zs.queries[p][q][r].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            o,
                            "veer_queries_total{{zone=\"{}\",qtype=\"{}\",rcode=\"{}\",policy=\"{policy}\"}} {n}",
                            z.origin,
                            qtype_label(q),
                            rcode_label(r)
                        );
                    }
                }
            }
        }
    }
    for r in 0..=RCODES.len() {
        let n = stats.no_zone[r].load(Ordering::Relaxed);
        if n > 0 {
            let _ = writeln!(
                o,
                "veer_queries_total{{zone=\"\",qtype=\"\",rcode=\"{}\",policy=\"\"}} {n}",
                rcode_label(r)
            );
        }
    }
    head(
        o,
        "veer_response_time_seconds",
        "histogram",
        "Time from request to response sent.",
    );
    stats
        .response_time
        .render(o, "veer_response_time_seconds", "");

    head(
        o,
        "veer_probe_results_total",
        "counter",
        "Probe cycles by check and result.",
    );
    for c in &s.checks {
        if let Some(p) = &c.stats {
            let _ = writeln!(
                o,
                "veer_probe_results_total{{check=\"{}\",result=\"ok\"}} {}",
                esc(&c.name),
                p.ok.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                o,
                "veer_probe_results_total{{check=\"{}\",result=\"failed\"}} {}",
                esc(&c.name),
                p.failed.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                o,
                "veer_probe_results_total{{check=\"{}\",result=\"local_fault\"}} {}",
                esc(&c.name),
                p.local_faults.load(Ordering::Relaxed)
            );
        }
    }
    head(
        o,
        "veer_rrl_responses_total",
        "counter",
        "UDP responses response rate limiting held back: dropped, or sent truncated (slipped).",
    );
    let _ = writeln!(
        o,
        "veer_rrl_responses_total{{action=\"dropped\"}} {}",
        stats.rrl.dropped.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "veer_rrl_responses_total{{action=\"slipped\"}} {}",
        stats.rrl.slipped.load(Ordering::Relaxed)
    );
    head(
        o,
        "veer_dnstap_messages_total",
        "counter",
        "dnstap query log messages ([dnstap]): written to the socket or file, or dropped (queue full, reader slow or absent, write failed).",
    );
    let _ = writeln!(
        o,
        "veer_dnstap_messages_total{{result=\"written\"}} {}",
        stats.dnstap.written.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "veer_dnstap_messages_total{{result=\"dropped\"}} {}",
        stats.dnstap.dropped.load(Ordering::Relaxed)
    );
    head(
        o,
        "veer_probe_latency_seconds",
        "histogram",
        "Probe cycle latency by check.",
    );
    for c in &s.checks {
        if let Some(p) = &c.stats {
            p.latency.render(
                o,
                "veer_probe_latency_seconds",
                &format!("check=\"{}\"", esc(&c.name)),
            );
        }
    }
    head(
        o,
        "veer_check_up",
        "gauge",
        "1 if the state routes use is up or unknown, 0 if down.",
    );
    for c in &s.checks {
        let _ = writeln!(
            o,
            "veer_check_up{{check=\"{}\",forced=\"{}\"}} {}",
            esc(&c.name),
            c.forced,
            u8::from(c.state != State::Down)
        );
    }
    head(
        o,
        "veer_transitions_total",
        "counter",
        "Health state transitions since start.",
    );
    let _ = writeln!(o, "veer_transitions_total {}", s.transitions_total);
    head(
        o,
        "veer_dnssec_signatures_total",
        "counter",
        "DNSSEC signatures made since start (zones at load, routes and SOAs as their answers change).",
    );
    let _ = writeln!(
        o,
        "veer_dnssec_signatures_total {}",
        crate::dnssec::sign::SIGNATURES.load(std::sync::atomic::Ordering::Relaxed)
    );
    head(o, "veer_reloads_total", "counter", "Reloads by result.");
    let _ = writeln!(o, "veer_reloads_total{{result=\"ok\"}} {}", s.reloads_ok);
    let _ = writeln!(
        o,
        "veer_reloads_total{{result=\"failed\"}} {}",
        s.reloads_failed
    );
    head(
        o,
        "veer_last_reload_ok",
        "gauge",
        "1 if the last reload was applied, 0 if it was rejected.",
    );
    let _ = writeln!(
        o,
        "veer_last_reload_ok {}",
        u8::from(s.last_reload.as_ref().is_none_or(|r| r.ok))
    );
    head(
        o,
        "veer_snapshot_generation",
        "gauge",
        "Generation of the served snapshot.",
    );
    let _ = writeln!(o, "veer_snapshot_generation {}", s.generation);
    head(o, "veer_zone_serial", "gauge", "Served SOA serial by zone.");
    for z in &s.zones {
        let _ = writeln!(o, "veer_zone_serial{{zone=\"{}\"}} {}", z.origin, z.serial);
    }
    transfer_metrics(o, snap);
    head(
        o,
        "veer_prober_guard_frozen",
        "gauge",
        "1 while the prober guard holds the last states.",
    );
    let _ = writeln!(o, "veer_prober_guard_frozen {}", u8::from(s.guard_frozen));
    out
}

fn transfer_metrics(o: &mut String, snap: &Snapshot) {
    use std::sync::atomic::Ordering::Relaxed;
    let x = &crate::xfr::out::STATS;
    head(
        o,
        "veer_transfers_out_total",
        "counter",
        "Zone transfers answered, by kind (ixfr_soa: the SOA alone), and refused or failed requests.",
    );
    for (kind, v) in [
        ("axfr", &x.axfr),
        ("ixfr", &x.ixfr),
        ("ixfr_soa", &x.up_to_date),
        ("refused", &x.refused),
        ("failed", &x.failed),
    ] {
        let _ = writeln!(
            o,
            "veer_transfers_out_total{{result=\"{kind}\"}} {}",
            v.load(Relaxed)
        );
    }
    let n = &snap.xfr.notify;
    head(
        o,
        "veer_notify_total",
        "counter",
        "NOTIFY messages sent, NOTIFYs acknowledged, and NOTIFYs given up after every retry.",
    );
    for (kind, v) in [
        ("sent", &n.sent),
        ("acknowledged", &n.acked),
        ("failed", &n.failed),
    ] {
        let _ = writeln!(
            o,
            "veer_notify_total{{result=\"{kind}\"}} {}",
            v.load(Relaxed)
        );
    }
    let mut zones: Vec<_> = snap.xfr.zones.values().collect();
    zones.sort_by(|a, b| a.zone.origin.cmp(&b.zone.origin));
    head(
        o,
        "veer_journal_entries",
        "gauge",
        "Differences kept for IXFR, by zone.",
    );
    for z in &zones {
        let _ = writeln!(
            o,
            "veer_journal_entries{{zone=\"{}\"}} {}",
            z.zone.origin,
            z.journal.len()
        );
    }
    head(
        o,
        "veer_journal_bytes",
        "gauge",
        "Bytes of the differences kept for IXFR, by zone.",
    );
    for z in &zones {
        let _ = writeln!(
            o,
            "veer_journal_bytes{{zone=\"{}\"}} {}",
            z.zone.origin,
            z.journal.bytes()
        );
    }
}

fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
