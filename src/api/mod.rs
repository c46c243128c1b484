//! The admin HTTP API: metrics, JSON status, the status page, and the
//! state-changing endpoints (overrides, reload) behind a bearer token.
//! Reads come from the current snapshot (one atomic load); changes go to
//! the controller as commands, so the API never writes state itself.

mod metrics;
mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use hickory_proto::rr::{Name, RecordType};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::control::{Command, OverrideError};
use crate::health::State;
use crate::health::overrides::Override;
use crate::metrics::ServerStats;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    /// The published state.
    pub store: Arc<Store>,
    /// DNS counters.
    pub stats: Arc<ServerStats>,
    /// To the controller.
    pub commands: mpsc::UnboundedSender<Command>,
}

/// The router.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/health", get(health))
        .route("/v1/routes", get(routes))
        .route("/v1/explain", get(explain))
        .route(
            "/v1/overrides/{check}",
            put(put_override).delete(delete_override),
        )
        .route("/v1/reload", post(reload))
        .route("/v1/diff", post(diff))
        .with_state(api)
}

/// Open admin API connections at most; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Time for a request's headers to arrive (a slow client is closed).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request body accepted (an override is a few hundred bytes).
const BODY_LIMIT: usize = 64 * 1024;

/// Serves the API on `listener` until `shutdown` completes: at most
/// [`MAX_CONNECTIONS`] connections, headers within [`HEADER_TIMEOUT`],
/// bodies up to [`BODY_LIMIT`], so a client cannot tie up the process
/// the probes and the controller live in.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let sampler = tokio::spawn(sample_qps(api.store.clone()));
    let app = router(api).layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT));
    serve_app(
        listener,
        app,
        MAX_CONNECTIONS,
        MAX_CONNECTIONS,
        None,
        "admin API",
        shutdown,
    )
    .await;
    sampler.abort();
}

/// Every [`crate::metrics::QPS_INTERVAL`], a queries-per-second point for
/// each zone (the status page's chart); the first tick sets the baseline.
async fn sample_qps(store: Arc<Store>) {
    let mut tick = tokio::time::interval(crate::metrics::QPS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (now, at) = (std::time::Instant::now(), SystemTime::now());
        for z in &store.load().status.zones {
            if let Some(stats) = &z.stats {
                stats.sample(now, at);
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`
/// completes: at most `max` connections, `per_source` of them from one
/// address, headers within [`HEADER_TIMEOUT`]. Each request carries the
/// client's address as `ConnectInfo<SocketAddr>`. `what` names the
/// server in logs.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    max: usize,
    per_source: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
    what: &'static str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let sources: Arc<std::sync::Mutex<rustc_hash::FxHashMap<std::net::IpAddr, usize>>> =
        Arc::default();
    tokio::pin!(shutdown);
    let mut last_log: Option<std::time::Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors: back off, and say so once in a while.
                    if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!("{what} accept: {e}");
                        last_log = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: closed at once
        };
        let Some(source) = SourceSlot::take(&sources, peer.ip(), per_source) else {
            continue; // this address holds its share: closed at once
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = (slot, source);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                tower::ServiceExt::oneshot(app.clone(), req)
            });
            let http = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .to_owned();
            let result = match tls {
                None => {
                    http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await
                }
                Some(tls) => {
                    // The handshake gets the headers' time, too.
                    let stream =
                        match tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!("{what}: TLS handshake with {peer}: {e}");
                                return;
                            }
                            Err(_) => return,
                        };
                    http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!("{what} connection: {e}");
            }
        });
    }
}

/// One connection counted against its source address while it lives.
struct SourceSlot {
    sources: Arc<std::sync::Mutex<rustc_hash::FxHashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl SourceSlot {
    fn take(
        sources: &Arc<std::sync::Mutex<rustc_hash::FxHashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
        max: usize,
    ) -> Option<SourceSlot> {
        let mut map = sources.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            sources: sources.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut map = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Binds the API listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for the admin API: {e}"),
        )
    })
}

async fn page(AxState(api): AxState<Api>) -> Html<String> {
    let snap = api.store.load();
    Html(page::render(
        &snap.status,
        &snap.xfr.notify.targets(),
        &secondaries(&snap),
    ))
}

async fn metrics(AxState(api): AxState<Api>) -> impl IntoResponse {
    let snap = api.store.load();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&snap, &api.stats),
    )
}

/// Every secondary zone: primaries, serial, last and next refresh, expiry.
fn secondaries(snap: &crate::store::Snapshot) -> Vec<crate::xfr::secondary::Status> {
    let mut out: Vec<_> = snap
        .xfr
        .secondaries
        .values()
        .filter_map(|h| h.status.lock().ok().map(|s| s.clone()))
        .collect();
    out.sort_by(|a, b| a.zone.cmp(&b.zone));
    out
}

/// Per zone: the journal and every NOTIFY target's last acknowledged serial.
fn transfers(snap: &crate::store::Snapshot) -> serde_json::Value {
    let targets = snap.xfr.notify.targets();
    let mut zones: Vec<_> = snap.xfr.zones.values().collect();
    zones.sort_by(|a, b| a.zone.origin.cmp(&b.zone.origin));
    zones
        .into_iter()
        .map(|z| {
            let origin = z.zone.origin.to_string();
            json!({
                "zone": origin,
                "serial": z.serial,
                "journal_entries": z.journal.len(),
                "journal_bytes": z.journal.bytes(),
                "allow_transfer": z.allow.len(),
                "notify": targets.iter().filter(|t| t.zone == origin).collect::<Vec<_>>(),
            })
        })
        .collect()
}

async fn status(AxState(api): AxState<Api>) -> Json<serde_json::Value> {
    let snap = api.store.load();
    let s = &snap.status;
    Json(json!({
        "generation": s.generation,
        "started": s.started,
        "config": s.config,
        "zones": s.zones,
        "last_reload": s.last_reload,
        "reloads_ok": s.reloads_ok,
        "reloads_failed": s.reloads_failed,
        "guard_frozen": s.guard_frozen,
        "checks": s.checks.len(),
        "routes": s.routes.len(),
        "transfers": transfers(&snap),
        "secondaries": secondaries(&snap),
        "fleet": s.fleet,
    }))
}

async fn health(AxState(api): AxState<Api>) -> Json<serde_json::Value> {
    Json(json!({ "checks": api.store.load().status.checks }))
}

async fn routes(AxState(api): AxState<Api>) -> Json<serde_json::Value> {
    Json(json!({ "routes": api.store.load().status.routes }))
}

#[derive(Deserialize)]
struct ExplainQuery {
    name: String,
    #[serde(rename = "type", default = "default_type")]
    rtype: String,
    client: Option<std::net::IpAddr>,
    ecs: Option<String>,
}

fn default_type() -> String {
    "A".into()
}

/// Resolves like a query would (same code as the DNS path) and adds the
/// route's decision steps.
async fn explain(AxState(api): AxState<Api>, Query(q): Query<ExplainQuery>) -> Response {
    let Ok(mut name) = Name::from_utf8(&q.name) else {
        return error(StatusCode::BAD_REQUEST, format!("bad name `{}`", q.name));
    };
    name.set_fqdn(true);
    let Ok(rtype) = q.rtype.to_ascii_uppercase().parse::<RecordType>() else {
        return error(StatusCode::BAD_REQUEST, format!("bad type `{}`", q.rtype));
    };
    let source = q.client.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let client = match q
        .ecs
        .as_deref()
        .map(str::parse::<crate::route::prefix::Net>)
    {
        None => crate::route::Client::addr(source),
        Some(Ok(n)) if n.len > 0 => crate::route::Client {
            addr: n.addr,
            prefix: n.len,
        },
        Some(Ok(_)) => crate::route::Client::addr(source),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("ecs: {e}")),
    };
    let snap = api.store.load();
    let mut steps: Vec<String> = Vec::new();
    let a = crate::dns::answer::resolve(&snap, &name, rtype, &client, &mut steps, false);
    // As `veer explain` prints them: owner (a synthesised one for a
    // wildcard), TTL, class, type, data.
    let mut ttl: Option<u32> = None;
    let answer: Vec<String> = a
        .answer
        .iter()
        .flat_map(|p| {
            let set = p.records();
            set.records_without_rrsigs()
                .map(|r| {
                    let owner = match p {
                        crate::dns::answer::Part::Synth(_, owner) => *owner,
                        _ => &r.name,
                    };
                    (
                        r.ttl,
                        format!("{owner} {} IN {} {}", r.ttl, r.record_type(), r.data),
                    )
                })
                .collect::<Vec<_>>()
        })
        .map(|(t, line)| {
            ttl = Some(ttl.map_or(t, |m| m.min(t)));
            line
        })
        .collect();
    let authority: Vec<String> = a
        .authority
        .iter()
        .flat_map(|set| set.records_without_rrsigs())
        .map(|r| {
            format!(
                "{} {} IN {} {}",
                r.name,
                a.authority_ttl.unwrap_or(r.ttl),
                r.record_type(),
                r.data
            )
        })
        .collect();
    // Every check's state, as the offline form lists them.
    let checks: Vec<serde_json::Value> = snap
        .status
        .checks
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "state": c.state,
                "real_state": c.real_state,
                "forced": c.forced,
                "reason": c.reason,
            })
        })
        .collect();
    let lower = name.to_lowercase();
    let route =
        snap.status.routes.iter().find(|r| {
            r.name.eq_ignore_ascii_case(&lower.to_string()) && r.rtype == rtype.to_string()
        });
    Json(json!({
        "name": name.to_string(),
        "type": rtype.to_string(),
        "client": q.client,
        "rcode": crate::metrics::rcode_name(a.rcode),
        "authoritative": a.authoritative,
        "zone": a.zone.map(|z| z.origin.to_string()),
        "policy": crate::metrics::POLICIES[a.policy],
        "answer": answer,
        "ttl": ttl,
        "authority": authority,
        "checks": checks,
        "ecs_scope": a.scope,
        "pick": steps,
        "route": route,
        // In a fleet: the votes behind the checks the route uses.
        "votes": snap.status.fleet.as_ref().map(|f| {
            f.checks
                .iter()
                .filter(|c| route.is_some_and(|r| r.checks.contains(&c.check)))
                .collect::<Vec<_>>()
        }),
    }))
    .into_response()
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(json!({ "error": msg.into() }))).into_response()
}

/// Checks the bearer token; `Err` is the response to send.
fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), Box<Response>> {
    // The token comes with the config snapshot, so a reload rotates it.
    let snap = api.store.load();
    let Some(token) = &snap.api_token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "state-changing endpoints are off: set [api] token or token_file in the config",
        )));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": "missing or wrong bearer token" })),
            )
                .into_response(),
        )),
    }
}

/// Compares in a time that does not depend on where `a` and `b` differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    state: String,
    #[serde(default)]
    reason: String,
    until: Option<String>,
    /// Propagate through the fleet (every instance applies it).
    #[serde(default)]
    fleet: bool,
}

#[derive(Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    fleet: bool,
}

async fn put_override(
    AxState(api): AxState<Api>,
    headers: HeaderMap,
    Path(check): Path<String>,
    body: Result<Json<OverrideBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let Json(body) = match body {
        Ok(b) => b,
        // Too large stays 413; every other malformed body is a 400.
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(e.status(), e.body_text());
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let state = match body.state.to_ascii_lowercase().as_str() {
        "up" => State::Up,
        "down" => State::Down,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("state `{other}` must be up or down"),
            );
        }
    };
    let until = match body.until.as_deref().map(humantime::parse_rfc3339_weak) {
        None => None,
        Some(Ok(t)) => Some(whole_seconds(t)),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("until: {e}; use RFC 3339")),
    };
    let o = Override {
        check: check.clone(),
        state,
        until,
        reason: body.reason,
    };
    command_override(&api, check, Some(o), body.fleet).await
}

async fn delete_override(
    AxState(api): AxState<Api>,
    headers: HeaderMap,
    Path(check): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    command_override(&api, check, None, q.fleet).await
}

async fn command_override(
    api: &Api,
    check: String,
    set: Option<Override>,
    fleet: bool,
) -> Response {
    let (tx, rx) = oneshot::channel();
    if api
        .commands
        .send(Command::SetOverride {
            check: check.clone(),
            set,
            fleet,
            reply: tx,
        })
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(())) => {
            let snap = api.store.load();
            let c = snap.status.checks.iter().find(|c| c.name == check);
            Json(json!({ "check": c })).into_response()
        }
        Ok(Err(e @ OverrideError::UnknownCheck(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e @ OverrideError::NoFleet)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

async fn reload(AxState(api): AxState<Api>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let (tx, rx) = oneshot::channel();
    if api
        .commands
        .send(Command::Reload { reply: Some(tx) })
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(generation)) => Json(json!({ "ok": true, "generation": generation })).into_response(),
        Ok(Err(d)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "ok": false, "errors": d.0.iter().map(|e| e.to_string()).collect::<Vec<_>>() })),
        )
            .into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DiffBody {
    /// The config file to compare (None: the running config's file).
    config: Option<std::path::PathBuf>,
}

/// What reloading the config at the body's `config` path (or the running
/// config's file as it is now) would change, without applying it.
async fn diff(AxState(api): AxState<Api>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(r) = authorize(&api, &headers) {
        return *r;
    }
    let body: DiffBody = if body.iter().all(u8::is_ascii_whitespace) {
        DiffBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    let (tx, rx) = oneshot::channel();
    if api
        .commands
        .send(Command::Diff {
            path: body.config,
            reply: tx,
        })
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(d)) => Json(json!({
            "ok": true,
            "summary": d.summary(),
            "empty": d.is_empty(),
            "diff": d,
        }))
        .into_response(),
        Ok(Err(d)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "ok": false, "errors": d.0.iter().map(|e| e.to_string()).collect::<Vec<_>>() })),
        )
            .into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}
