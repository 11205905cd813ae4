//! Runs checks once each, concurrently, and returns their results in check order.

use std::sync::Arc;

use tokio::sync::Semaphore;
use vantage_checks::exec::{RunEnv, run_check};
use vantage_checks::model::Check;
use vantage_checks::result::CheckResult;

/// How many checks `once` runs at the same time.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Runs every check once, at most `concurrency` at a time; results come back in input order.
/// `on_demand` checks run too: `once` is itself an on-demand run.
pub async fn run_all(checks: Vec<Check>, env: RunEnv, concurrency: usize) -> Vec<CheckResult> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let env = Arc::new(env);
    let mut tasks = Vec::with_capacity(checks.len());
    for (seq, check) in checks.into_iter().enumerate() {
        let permits = Arc::clone(&permits);
        let env = Arc::clone(&env);
        tasks.push(tokio::spawn(async move {
            // The semaphore is never closed, so acquire only fails if it were; run anyway then.
            let _permit = permits.acquire_owned().await.ok();
            run_check(&check, &env, seq as u64).await
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(r) => results.push(r),
            // A panicking executor is a bug; surface it rather than hide a check.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    results
}
