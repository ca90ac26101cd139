use crate::jobs::{JobHandler, JobOutcome};
use crate::Engine;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use tintype_core::{CoreError, Job, UserId};

pub(crate) const WEBHOOK_JOB: &str = "webhook";

/// The signature header value for a webhook body: `sha256=<hex HMAC>`.
pub fn sign_webhook(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) struct WebhookHandler;

#[async_trait]
impl JobHandler for WebhookHandler {
    async fn run(&self, engine: &Arc<Engine>, job: &Job) -> JobOutcome {
        let (Some(url), Some(body), Some(user)) = (
            job.payload.get("url").and_then(|v| v.as_str()),
            job.payload.get("body").and_then(|v| v.as_str()),
            job.payload.get("user_id").and_then(|v| v.as_i64()),
        ) else {
            return JobOutcome::Fail("malformed webhook job".into());
        };
        let secret = match engine.user_by_id(user).await {
            Ok(Some(u)) => u.webhook_secret,
            Ok(None) => return JobOutcome::Fail("the account is gone".into()),
            Err(e) => return JobOutcome::Retry(e.to_string()),
        };
        let signature = sign_webhook(&secret, body.as_bytes());
        let headers = [
            ("X-Tintype-Signature", signature),
            ("X-Tintype-Delivery", job.id.to_string()),
        ];
        match engine
            .fetcher()
            .post_json(url, bytes::Bytes::from(body.to_string()), &headers)
            .await
        {
            Ok(s) if (200..300).contains(&s) => JobOutcome::Done,
            Ok(s) => JobOutcome::Retry(format!("the receiver answered HTTP {s}")),
            Err(e) if e.is_retryable() => JobOutcome::Retry(e.to_string()),
            Err(e) => JobOutcome::Fail(e.to_string()),
        }
    }
}

impl Engine {
    /// Queues a signed webhook POST on behalf of a user; it is retried with
    /// backoff and survives restarts.
    pub async fn send_webhook(
        &self,
        user: UserId,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<i64, CoreError> {
        self.fetcher
            .check_url(url)
            .map_err(|e| CoreError::Invalid(e.to_string()))?;
        self.enqueue(
            WEBHOOK_JOB,
            serde_json::json!({ "url": url, "body": body.to_string(), "user_id": user }),
            None,
            None,
        )
        .await
    }
}
