//! Webhooks: one JSON POST per transition to every `[[webhook]] url`,
//! retried with exponential backoff. Deliveries run in their own tasks,
//! so a slow receiver never blocks probes, the controller or queries.

use std::time::Duration;

use tokio::sync::mpsc;

use super::status::TransitionRecord;

/// Attempts per delivery.
const ATTEMPTS: u32 = 6;

/// Delivers every transition from `rx` to `urls` until `rx` closes.
pub async fn run(urls: Vec<String>, mut rx: mpsc::UnboundedReceiver<TransitionRecord>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhooks disabled: cannot build the HTTP client: {e}");
            return;
        }
    };
    while let Some(t) = rx.recv().await {
        for url in &urls {
            tokio::spawn(deliver(client.clone(), url.clone(), t.clone()));
        }
    }
}

async fn deliver(client: reqwest::Client, url: String, t: TransitionRecord) {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        let result = client
            .post(&url)
            .json(&t)
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
