//! Keeps one model server's state fresh: lists its models (and those loaded) at start and
//! every [`REFRESH_EVERY`], and while it is down probes it with backoff until it answers.
use std::{sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use super::Member;
use crate::backend::BackendError;

/// How often a reachable server's models are listed again (a model pulled meanwhile shows).
const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// The first probe of a server that just went away, and the longest pause between two: a
/// restarting server is back within seconds, and a probe costs one small GET.
const PROBE_FIRST_DELAY: Duration = Duration::from_millis(250);
const PROBE_MAX_DELAY: Duration = Duration::from_secs(5);

pub(super) async fn watch(member: Arc<Member>, shutdown: CancellationToken) {
    loop {
        if member.is_up() {
            tokio::select! {
                _ = refresh(&member) => {}
                _ = shutdown.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
                _ = member.poke.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        } else if !probe_until_back(&member, &shutdown).await {
            return;
        }
    }
}

/// Lists its models (and those loaded); a server that does not answer is marked down, and
/// comes back up when it answers. The error, in public words, when it did not answer.
pub(super) async fn refresh(member: &Member) -> Option<String> {
    let models = match member.backend.models().await {
        Ok(models) => models,
        Err(e) => {
            failed_check(member, &e);
            return Some(e.to_string());
        }
    };
    let loaded = member.backend.loaded_models().await.ok().flatten();
    member.set_error(None);
    member.set_models(models, loaded);
    member.mark_up(member.version());
    None
}

/// Probes a server that is down with backoff until it answers (true), or the server shuts
/// down (false).
async fn probe_until_back(member: &Member, shutdown: &CancellationToken) -> bool {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(PROBE_FIRST_DELAY)
        .with_max_delay(PROBE_MAX_DELAY)
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        let delay = delays.next().unwrap_or(PROBE_MAX_DELAY);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return false,
        }
        let checked = tokio::select! {
            checked = member.backend.check() => checked,
            _ = shutdown.cancelled() => return false,
        };
        match checked {
            Ok(version) => {
                // Its models first: no job goes to it before they are known again.
                if refresh(member).await.is_none() {
                    member.mark_up(version);
                    return true;
                }
            }
            Err(e) if e.is_gone() => {
                tracing::debug!(backend = %member.name, error = %e, "model server still unreachable");
            }
            // It answers, if not well: jobs meet whatever it is, as their own fault.
            Err(e) => {
                tracing::warn!(backend = %member.name, error = %e, "model server answers again, with an error");
                member.mark_up(None);
                member.set_error(Some(e.to_string()));
                return true;
            }
        }
    }
}

fn failed_check(member: &Member, error: &BackendError) {
    if error.is_gone() {
        member.mark_down(&error.to_string());
    } else {
        tracing::warn!(backend = %member.name, error = %error, "cannot list the model server's models");
        member.answered_badly(error.to_string());
    }
}
