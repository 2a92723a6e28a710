//! Keeps a background task running for the life of the server: a task that panics is logged and
//! started again after a pause, so that a bug in it shows in the log instead of silently
//! stopping what it does (the wall's pump: every wall would freeze).
use std::{future::Future, time::Duration};

/// The pause before a task that panicked starts again (a task that panics at once does not spin).
pub const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Runs the task `start` makes until it returns; each time it panics, a fresh one after `pause`
/// (`start` is told whether it starts again after a panic).
pub async fn keep_running<F, Fut>(name: &'static str, pause: Duration, mut start: F)
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut again = false;
    loop {
        match tokio::spawn(start(again)).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let why = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a panic");
                tracing::error!(
                    task = name,
                    panic = why,
                    "a background task panicked; starting it again"
                );
                tokio::time::sleep(pause).await;
                again = true;
            }
            // Cancelled: the runtime is going away.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::keep_running;

    #[tokio::test]
    async fn a_task_that_panics_is_started_again_and_one_that_returns_is_done() {
        let starts = Arc::new(AtomicUsize::new(0));
        keep_running("test", std::time::Duration::from_millis(1), |again| {
            let starts = Arc::clone(&starts);
            async move {
                let start = starts.fetch_add(1, Ordering::SeqCst);
                assert_eq!(again, start > 0, "told whether it starts again");
                if start < 2 {
                    panic!("a bug");
                }
            }
        })
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }
}
