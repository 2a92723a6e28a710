//! What the other instances tell this one's job service (through the bus): a job changed in
//! its row, went away with its post, or was stopped there; and the resynchronisation from the
//! database after the bus's connection was lost. Also the line's reload from the database.
use app::types::{JobStatus, JobView};
use tokio::sync::watch;

use super::{
    queue::{StopReason, Waiting},
    view::job_view,
    Jobs,
};
use crate::{
    db::{DbResult, JobRow, Recovered},
    metrics,
};

impl Jobs {
    /// Whether `row`'s current run is this instance's (claimed here, under the lease it holds).
    pub(super) fn runs_here(&self, row: &JobRow) -> bool {
        row.owner.as_deref() == Some(&*self.owner)
    }

    /// Job `job_id` changed in its row on another instance (its change numbered `seq` there):
    /// reads the row and follows it, in the line, in the hub, and in the runs here.
    pub async fn heard_job(&self, job_id: i64, seq: u64) -> DbResult<()> {
        let Some(row) = self.db.job(job_id).await? else {
            self.heard_gone(job_id);
            return Ok(());
        };
        if let Some(run) = self.queue().running(job_id) {
            if row.runs < run.run
                || (row.runs == run.run && self.runs_here(&row) && row.status.is_running())
            {
                // Read before this instance claimed it, or this instance's own change.
                return Ok(());
            }
            // Its lease went to another instance: this run is over.
            run.stop(StopReason::LeaseLost);
        }
        if row.status == JobStatus::Queued && row.stop_requested {
            // Handed back before its runner heard its author's Stop.
            return self.cancel_stopped_in_line(job_id).await;
        }
        self.follow_row(&row, Some(seq));
        Ok(())
    }

    /// Follows `row`, read just now, in the line and the hub (`seq`: the number its instance
    /// gave the change, if known).
    pub(super) fn follow_row(&self, row: &JobRow, seq: Option<u64>) {
        let mut view = job_view(row, None);
        if let Some(seq) = seq {
            view.seq = seq;
        }
        let mut queue = self.queue();
        if queue
            .running(row.id)
            .is_some_and(|run| run.run >= row.runs && !run.is_stopped())
        {
            // Claimed here since the row was read: the run tells the others itself.
            return;
        }
        match row.status {
            JobStatus::Queued => {
                queue.enter(Waiting::of(row));
                self.hub.track_remote(view);
            }
            status if status.is_running() => {
                queue.leave(row.id);
                self.hub.track_remote(self.with_text_heard(view));
            }
            _ => {
                queue.leave(row.id);
                queue.ended(row.id);
                // Once: a job the hub does not carry has ended here already.
                if self.hub.current(row.id).is_some() {
                    self.hub.finish_remote(view);
                }
            }
        }
        self.publish_positions(&queue);
        drop(queue);
        // A job to run, or a slot freed on a model server.
        self.pool.wake();
    }

    /// `view`, read from a row, with the text the hub has of the same run when that goes
    /// further: the row is written at most every `progress.db_write_interval_ms`, while the
    /// notes carry every word, and watchers must never see text taken back.
    fn with_text_heard(&self, mut view: JobView) -> JobView {
        if let Some(heard) = self.hub.current(view.id) {
            if heard.run == view.run
                && heard.text.len() >= view.text.len()
                && heard.text.starts_with(&view.text)
                && heard.thinking.starts_with(&view.thinking)
            {
                view.text = heard.text;
                view.blocks = heard.blocks;
                view.thinking = heard.thinking;
            }
        }
        view
    }

    /// Ends a job that waits in the line although its author stopped it.
    pub(super) async fn cancel_stopped_in_line(&self, job_id: i64) -> DbResult<()> {
        match self
            .db
            .cancel_queued_job(job_id, crate::db::STOPPED_BY_AUTHOR)
            .await?
        {
            Some(row) => {
                self.leave_queue(job_id);
                self.hub.finish(job_view(&row, None));
            }
            None => {
                if let Some(row) = self.db.job(job_id).await? {
                    self.follow_row(&row, None);
                }
            }
        }
        Ok(())
    }

    /// A receiver of an unfinished job's live state that the hub does not carry yet (made
    /// on another instance a moment ago, its note still on the way): the hub carries it from
    /// its row from now on. Otherwise (a finished job, or no other instances) the job's row as
    /// read last.
    pub async fn follow(&self, row: JobRow) -> DbResult<Result<watch::Receiver<JobView>, JobRow>> {
        if row.status.is_terminal() || self.hub.outbox().is_none() {
            return Ok(Err(row));
        }
        self.hub.track_remote(job_view(&row, None));
        // It may have ended between the read and the tracking, its note heard in between.
        match self.db.job(row.id).await? {
            Some(now) if now.status.is_terminal() => {
                self.hub.finish_remote(job_view(&now, None));
                Ok(Err(now))
            }
            _ => Ok(self.hub.watch(row.id).ok_or(row)),
        }
    }

    /// Job `job_id` went away with its post on another instance.
    pub fn heard_gone(&self, job_id: i64) {
        let mut queue = self.queue();
        if let Some(run) = queue.running(job_id) {
            run.stop(StopReason::Cancelled);
        }
        queue.leave(job_id);
        self.publish_positions(&queue);
        drop(queue);
        self.hub.forget(job_id);
    }

    /// Its author stopped job `job_id` on another instance: if it runs here, it stops; if it
    /// went back to the line meanwhile, it ends there.
    pub async fn heard_stop(&self, job_id: i64) -> DbResult<()> {
        if let Some(run) = self.queue().running(job_id) {
            run.stop(StopReason::Cancelled);
            return Ok(());
        }
        match self.db.job(job_id).await? {
            Some(row) if row.status == JobStatus::Queued && row.stop_requested => {
                self.cancel_stopped_in_line(job_id).await
            }
            _ => Ok(()),
        }
    }

    /// Whether a run of job `job_id` is this instance's.
    pub fn runs_locally(&self, job_id: i64) -> bool {
        self.queue().running(job_id).is_some()
    }

    /// Reads the live state from the database after notes may have been missed: the line,
    /// every unfinished job, and what became of the jobs the hub still carries.
    pub async fn resync(&self) -> DbResult<()> {
        self.reload_queue().await?;
        let unfinished = self.db.unfinished_jobs().await?;
        let running_here = |id| self.queue().running(id).is_some();
        for row in &unfinished {
            if !running_here(row.id) {
                self.hub
                    .track_remote(self.with_text_heard(job_view(row, None)));
            }
        }
        for id in self.hub.tracked() {
            if unfinished.iter().all(|row| row.id != id) && !running_here(id) {
                match self.db.job(id).await? {
                    Some(row) => self.hub.finish_remote(job_view(&row, None)),
                    None => self.hub.forget(id),
                }
            }
        }
        Ok(())
    }

    /// Makes the line in memory the database's: jobs claimed or ended elsewhere leave it, jobs
    /// queued elsewhere enter it (and the hub), and every waiting job learns its place.
    pub async fn reload_queue(&self) -> DbResult<()> {
        let since = self.queue().entries();
        let rows = self.db.queued_jobs().await?;
        let line: Vec<Waiting> = rows.iter().map(Waiting::of).collect();
        let mut queue = self.queue();
        let new = queue.reload(&line, since);
        for row in rows.iter().filter(|row| new.contains(&row.id)) {
            if self.hub.current(row.id).is_none() {
                self.hub.track_remote(job_view(row, None));
            }
        }
        self.publish_positions(&queue);
        drop(queue);
        if !new.is_empty() {
            self.pool.wake();
        }
        Ok(())
    }

    /// Tells everyone what a recovery did: the jobs back in the queue enter it here (and the
    /// others hear of them), the ended ones end in the hub.
    pub(super) async fn announce(&self, recovered: &Recovered, what: &str) -> DbResult<()> {
        let Recovered {
            requeued,
            failed,
            cancelled,
        } = recovered;
        if requeued.is_empty() && failed.is_empty() && cancelled.is_empty() {
            return Ok(());
        }
        tracing::warn!(?requeued, ?failed, ?cancelled, "{what}");
        // A job already in the line here has been entered and announced once.
        for &id in requeued.iter().filter(|&&id| !self.queue().is_waiting(id)) {
            if let Some(row) = self.db.job(id).await? {
                if row.status == JobStatus::Queued {
                    self.submit(&row);
                }
            }
        }
        for &id in failed.iter().chain(cancelled) {
            if let Some(row) = self.db.job(id).await? {
                let ended = row.status;
                self.leave_queue(id);
                self.hub.finish(job_view(&row, None));
                metrics::job_ended(ended, None);
            }
        }
        Ok(())
    }
}
