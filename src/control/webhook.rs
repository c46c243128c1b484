//! Webhooks: one JSON POST per transition to every `[[webhook]] url`,
//! retried with exponential backoff. Each URL has one ordered queue and
//! one delivery task, so a receiver sees transitions in the order they
//! happened, and a slow receiver never blocks probes, the controller,
//! queries or the other receivers.
//!
//! The set of URLs follows the config: [`Webhooks::reconcile`] starts a
//! queue for a new URL and stops the task of a removed one at once (what
//! it still held is dropped: the receiver is no longer configured).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::status::TransitionRecord;

/// Attempts per delivery.
const ATTEMPTS: u32 = 6;

/// Transitions queued per URL; beyond this (a receiver down for long),
/// new transitions for that URL are dropped with a warning.
const QUEUE: usize = 1024;

/// The delivery queues, one per URL.
#[derive(Debug, Default)]
pub struct Webhooks {
    queues: BTreeMap<String, (mpsc::Sender<TransitionRecord>, tokio::task::AbortHandle)>,
    client: Option<reqwest::Client>,
}

impl Webhooks {
    /// Makes the queues those of `urls`. Needs a tokio runtime.
    pub fn reconcile(&mut self, urls: &[String]) {
        self.queues.retain(|url, (_, task)| {
            let keep = urls.contains(url);
            if !keep {
                task.abort();
            }
            keep
        });
        if urls.is_empty() {
            return;
        }
        let client = match &self.client {
            Some(c) => c.clone(),
            None => match reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
            {
                Ok(c) => self.client.insert(c).clone(),
                Err(e) => {
                    tracing::error!("webhooks disabled: cannot build the HTTP client: {e}");
                    return;
                }
            },
        };
        for url in urls {
            if !self.queues.contains_key(url) {
                let (tx, rx) = mpsc::channel(QUEUE);
                let task = tokio::spawn(run(client.clone(), url.clone(), rx));
                self.queues.insert(url.clone(), (tx, task.abort_handle()));
            }
        }
    }

    /// Queues `t` for every URL.
    pub fn send(&self, t: &TransitionRecord) {
        for (url, (q, _)) in &self.queues {
            if q.try_send(t.clone()).is_err() {
                tracing::warn!(
                    "webhook {url}: {QUEUE} transitions queued; dropped the {} transition",
                    t.check
                );
            }
        }
    }
}

/// Delivers `url`'s queue in order until it closes.
async fn run(client: reqwest::Client, url: String, mut rx: mpsc::Receiver<TransitionRecord>) {
    while let Some(t) = rx.recv().await {
        deliver(&client, &url, &t).await;
    }
}

async fn deliver(client: &reqwest::Client, url: &str, t: &TransitionRecord) {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        let result = client
            .post(url)
            .json(t)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match result {
            Ok(_) => return,
            Err(e) if attempt == ATTEMPTS => {
                tracing::warn!(
                    "webhook {url}: giving up on the {} transition after {ATTEMPTS} attempts: {e}",
                    t.check
                );
                return;
            }
            Err(e) => {
                tracing::debug!(
                    "webhook {url}: attempt {attempt} failed: {e}; retrying in {delay:?}"
                );
                tokio::time::sleep(delay.mul_f64(0.75 + fastrand::f64() * 0.5)).await;
                delay *= 2;
            }
        }
    }
}
