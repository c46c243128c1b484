//! Following one peer: a long-poll loop that hands every answer to the
//! controller, and says when the peer cannot be heard.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::wire::{self, Feed};
use crate::config::PeerConfig;

/// What a follower tells the controller.
#[derive(Debug)]
pub enum Event {
    /// The peer answered.
    Heard {
        /// The peer's configured name.
        peer: String,
        /// When (this instance's clock).
        at: SystemTime,
        /// What it said.
        feed: Feed,
        /// Votes or overrides in it that did not parse (ignored).
        ignored: usize,
    },
    /// A request failed: no answer in time, refused, or not a fleet answer.
    Lost {
        /// The peer's configured name.
        peer: String,
        /// Why, for the log and the status page.
        why: String,
    },
}

/// The HTTP client for the peers: trusts `ca` besides the system roots.
pub fn client(ca: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(2)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| e.to_string())
}

/// Follows `peer` until the task is aborted or the controller is gone:
/// asks for anything newer than the last answer, waiting at most
/// `timeout` for each answer (the peer answers within its heartbeat).
pub async fn follow(
    peer: PeerConfig,
    token: String,
    client: reqwest::Client,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut after: Option<u64> = None;
    let mut failures: u32 = 0;
    loop {
        let mut url = peer.url.clone();
        url.set_path("/v1/fleet/votes");
        // Our wait is a third of our timeout: the peer holds no longer
        // than half of that, whatever its own peer_timeout.
        let wait_ms = (timeout / 3).as_millis();
        url.set_query(Some(&match after {
            Some(a) => format!("after={a}&wait_ms={wait_ms}"),
            None => format!("wait_ms={wait_ms}"),
        }));
        let asked = std::time::Instant::now();
        let result = tokio::time::timeout(timeout, fetch(&client, url, &token)).await;
        let event = match result {
            Ok(Ok(bytes)) => match wire::parse(&bytes, SystemTime::now()) {
                Ok((feed, _)) if feed.instance != peer.name => Event::Lost {
                    peer: peer.name.clone(),
                    why: format!("answers as `{}`, not `{}`", feed.instance, peer.name),
                },
                Ok((feed, ignored)) => {
                    if after == Some(feed.seq) && asked.elapsed() < Duration::from_millis(20) {
                        // Nothing new, answered at once: a peer that does
                        // not hold the poll must not make us spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    after = Some(feed.seq);
                    Event::Heard {
                        peer: peer.name.clone(),
                        at: SystemTime::now(),
                        feed,
                        ignored,
                    }
                }
                Err(e) => Event::Lost {
                    peer: peer.name.clone(),
                    why: e,
                },
            },
            Ok(Err(why)) => Event::Lost {
                peer: peer.name.clone(),
                why,
            },
            Err(_) => Event::Lost {
                peer: peer.name.clone(),
                why: format!("no answer within {}", humantime::format_duration(timeout)),
            },
        };
        let event = match event {
            // A peer's text goes into our log: bounded.
            Event::Lost { peer, mut why } => {
                if why.len() > 300 {
                    let mut end = 300;
                    while !why.is_char_boundary(end) {
                        end -= 1;
                    }
                    why.truncate(end);
                    why.push('…');
                }
                Event::Lost { peer, why }
            }
            e => e,
        };
        let heard = matches!(event, Event::Heard { .. });
        if tx.send(event).is_err() {
            return;
        }
        if heard {
            failures = 0;
        } else {
            // Back off, but by less than the time a peer counts as gone,
            // so a peer that returns is heard again promptly.
            after = None;
            failures = failures.saturating_add(1);
            let backoff = Duration::from_millis(50) * 2u32.pow(failures.min(6));
            tokio::time::sleep(backoff.min(timeout / 4)).await;
        }
    }
}

/// One request; the body read up to [`wire::MAX_FEED_BYTES`].
async fn fetch(
    client: &reqwest::Client,
    url: reqwest::Url,
    token: &str,
) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    match resp.status() {
        reqwest::StatusCode::OK => {}
        reqwest::StatusCode::UNAUTHORIZED => {
            return Err("refused our token (401): the fleet tokens differ".into());
        }
        s => return Err(format!("answered {s}")),
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > wire::MAX_FEED_BYTES {
            return Err(format!("answer over {} bytes", wire::MAX_FEED_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes, `a: b: c` (reqwest's own text is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
