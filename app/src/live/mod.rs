//! The wall's live state in the browser: the posts on the page and each job's latest state,
//! kept current by the wall's event stream ([`stream`]).
pub mod apply;
pub mod clock;
pub mod stream;

use leptos::prelude::*;

use crate::types::{
    DoneEvent, ErrorEvent, JobStatus, JobView, Post, ProgressDelta, ProgressEvent, WallEvent,
    WallSnapshot,
};

/// After this long without a new token, a generating card says so and dims its numbers.
pub const STALL_MS: f64 = 5_000.0;

/// How much of each new speed reading the shown speed takes: a smoothed figure, not one that
/// flickers with every event.
const SPEED_SMOOTHING: f64 = 0.25;

/// A job as the page holds it: the server's view, and what this browser measured of it: when
/// (on its own clock) the elapsed time was last taken from the server, so it can tick between
/// events; when the token count last rose, so that a stall shows; and the smoothed speed.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveJob {
    pub view: JobView,
    pub elapsed_base: u64,
    pub based_at: f64,
    /// This browser's time when the token count last rose (or the job was first seen).
    pub tokens_at: f64,
    /// Tokens per second as the card shows it (smoothed).
    pub speed: f64,
    /// While a thinking model thinks, its reasoning time ticks like the elapsed time: the
    /// server's count and this browser's time when it was taken. `None` without reasoning.
    pub thought_clock: Option<(u64, f64)>,
    /// While queued: its place grew since this browser saw it (the fair queue let another
    /// client's turn go first), until it shrinks again.
    pub pushed_back: bool,
}

impl LiveJob {
    pub fn new(view: JobView) -> Self {
        let now = clock::now();
        Self {
            elapsed_base: view.progress.elapsed_time,
            based_at: now,
            tokens_at: now,
            speed: view.progress.tokens_per_second,
            thought_clock: view.reasoning.as_ref().map(|r| (r.duration_ms, now)),
            pushed_back: false,
            view,
        }
    }

    /// A fresh state of the same job from the server (a snapshot or a fetch): what this browser
    /// measured carries over unless the run or the count changed.
    pub fn replaced(&self, view: JobView) -> Self {
        let mut next = Self::new(view);
        let same = |j: &JobView| (j.run, j.attempt, j.progress.current_tokens, reasoned(j));
        if same(&self.view) == same(&next.view) {
            next.tokens_at = self.tokens_at;
            next.speed = self.speed;
        }
        next
    }

    /// What [`LiveJob::measured`] compares: the answer's token count, the reasoning's, the
    /// status and the place in the queue.
    fn before(&self) -> (u32, u32, JobStatus, Option<u32>) {
        let view = &self.view;
        let place = view.queue_position;
        (
            view.progress.current_tokens,
            reasoned(view),
            view.status,
            place,
        )
    }

    /// Takes note of a progress event just applied to `view`, whose counts and status before
    /// it were `before`: a new count (of the answer or of the reasoning: a thinking model is
    /// not stalled), or a new phase, restarts the stall clock.
    fn measured(&mut self, before: (u32, u32, JobStatus, Option<u32>)) {
        let (tokens_before, reasoned_before, status_before, place_before) = before;
        self.pushed_back = match (place_before, self.view.queue_position) {
            (Some(before), Some(now)) if now != before => now > before,
            (_, Some(_)) => self.pushed_back,
            (_, None) => false,
        };
        let now = clock::now();
        let progress = &self.view.progress;
        if progress.current_tokens != tokens_before
            || reasoned(&self.view) != reasoned_before
            || self.view.status != status_before
        {
            self.tokens_at = now;
        }
        let reading = progress.tokens_per_second;
        self.speed = if self.speed <= 0.0 || progress.current_tokens < tokens_before {
            reading
        } else {
            self.speed + SPEED_SMOOTHING * (reading - self.speed)
        };
    }

    /// How long the count has stood still at `now`, when that is worth saying: only while
    /// generating, and not on the server (which renders before any clock runs).
    pub fn stalled_for(&self, now: f64) -> Option<f64> {
        let still = now - self.tokens_at;
        (now > 0.0 && self.view.status == JobStatus::Generating && still >= STALL_MS)
            .then_some(still)
    }

    /// Whether this run is not the job's first try: its text and bar started over.
    pub fn started_again(&self) -> bool {
        self.view.run > 1 || self.view.attempt > 1
    }

    /// The elapsed time to show at `now`: ticking while the job runs.
    pub fn elapsed_at(&self, now: f64) -> u64 {
        if !self.view.status.is_running() {
            return self.view.progress.elapsed_time;
        }
        // Whole milliseconds of this browser's clock, never negative: truncation is the intent.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ticked = (now - self.based_at).max(0.0) as u64;
        self.elapsed_base + ticked
    }

    /// Whether the model is thinking now: it has begun reasoning, and neither the answer nor
    /// the end has come.
    pub fn thinking(&self) -> bool {
        self.view.status.is_running() && self.view.reasoning.as_ref().is_some_and(|r| !r.finished)
    }

    /// How long the model has thought, at `now`: ticking while it thinks, the server's count
    /// once it is done; `None` for a job that has not reasoned.
    pub fn thought_for(&self, now: f64) -> Option<u64> {
        let reasoning = self.view.reasoning.as_ref()?;
        match self.thought_clock {
            Some((base, at)) if self.thinking() => {
                // Whole milliseconds of this browser's clock, never negative.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ticked = (now - at).max(0.0) as u64;
                Some(base + ticked)
            }
            _ => Some(reasoning.duration_ms),
        }
    }

    /// Takes the server's elapsed time again when ours drifted more than a second from it, and
    /// the same for the reasoning time.
    fn resync(&mut self) {
        let now = clock::now();
        let server = self.view.progress.elapsed_time;
        if self.view.status.is_terminal() || self.elapsed_at(now).abs_diff(server) > 1000 {
            self.elapsed_base = server;
            self.based_at = now;
        }
        let thought = self.view.reasoning.as_ref().map(|r| r.duration_ms);
        self.thought_clock = match (thought, self.thought_clock) {
            (None, _) => None,
            (Some(server), Some(clock))
                if self.thinking()
                    && self
                        .thought_for(now)
                        .is_some_and(|t| t.abs_diff(server) <= 1000) =>
            {
                Some(clock)
            }
            (Some(server), _) => Some((server, now)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::LiveJob;
    use crate::types::{JobStatus, JobView, Progress, Reasoning};

    fn job(status: JobStatus, elapsed: u64) -> LiveJob {
        let view = JobView {
            status,
            progress: Progress {
                elapsed_time: elapsed,
                ..Progress::default()
            },
            attempt: 1,
            run: 1,
            seq: 1,
            ..JobView::fresh(1, 1, "m")
        };
        LiveJob {
            elapsed_base: elapsed,
            based_at: 1_000.0,
            tokens_at: 1_000.0,
            speed: 0.0,
            thought_clock: None,
            pushed_back: false,
            view,
        }
    }

    #[test]
    fn the_reasoning_time_ticks_while_it_thinks_and_stands_at_the_servers_count_after() {
        let mut j = job(JobStatus::Generating, 5_000);
        assert_eq!(j.thought_for(9_000.0), None, "no reasoning, no time");
        j.view.reasoning = Some(Reasoning {
            tokens: 12,
            duration_ms: 3_000,
            finished: false,
        });
        j.thought_clock = Some((3_000, 1_000.0));
        assert!(j.thinking());
        assert_eq!(j.thought_for(1_000.0), Some(3_000));
        assert_eq!(j.thought_for(3_500.0), Some(5_500));
        assert_eq!(j.thought_for(500.0), Some(3_000), "never before its base");
        j.view.reasoning = Some(Reasoning {
            tokens: 30,
            duration_ms: 6_200,
            finished: true,
        });
        assert!(!j.thinking());
        assert_eq!(
            j.thought_for(60_000.0),
            Some(6_200),
            "done thinking: the server's count"
        );
        // A job that ended while it thought stops counting too.
        j.view.reasoning = Some(Reasoning {
            finished: false,
            ..Reasoning::default()
        });
        j.view.status = JobStatus::Cancelled;
        assert!(!j.thinking());
        assert_eq!(j.thought_for(60_000.0), Some(0));
    }

    #[test]
    fn the_reasoning_clock_keeps_its_pace_unless_the_server_differs_by_more_than_a_second() {
        let mut j = job(JobStatus::Generating, 5_000);
        // First seen: the server's count is taken as it is.
        j.view.reasoning = Some(Reasoning {
            tokens: 1,
            duration_ms: 200,
            finished: false,
        });
        j.resync();
        let (base, _) = j.thought_clock.unwrap();
        assert_eq!(base, 200);
        // Close to ours (the native clock stands at 0): no jump.
        j.view.reasoning.as_mut().unwrap().duration_ms = 900;
        j.resync();
        assert_eq!(j.thought_clock.unwrap().0, 200);
        j.view.reasoning.as_mut().unwrap().duration_ms = 4_000;
        j.resync();
        assert_eq!(j.thought_clock.unwrap().0, 4_000);
        j.view.reasoning = None;
        j.resync();
        assert_eq!(j.thought_clock, None);
    }

    #[test]
    fn elapsed_time_ticks_while_running_and_stands_still_otherwise() {
        let running = job(JobStatus::Generating, 5_000);
        assert_eq!(running.elapsed_at(1_000.0), 5_000);
        assert_eq!(running.elapsed_at(1_350.0), 5_350);
        assert_eq!(running.elapsed_at(500.0), 5_000, "never before its base");
        assert_eq!(job(JobStatus::Queued, 0).elapsed_at(9_000.0), 0);
        assert_eq!(job(JobStatus::Completed, 7_000).elapsed_at(9_000.0), 7_000);
    }

    #[test]
    fn the_clock_keeps_its_own_pace_unless_the_server_differs_by_more_than_a_second() {
        let mut j = job(JobStatus::Generating, 5_000);
        // Server says 5.4 s while we show 5.0 s (clock at 0, native): close enough, no jump.
        j.view.progress.elapsed_time = 5_400;
        j.resync();
        assert_eq!(j.elapsed_base, 5_000);
        // Server says 8 s: more than a second apart, take the server's.
        j.view.progress.elapsed_time = 8_000;
        j.resync();
        assert_eq!(j.elapsed_base, 8_000);
    }

    #[test]
    fn a_stall_shows_only_while_generating_and_only_after_a_while() {
        let j = job(JobStatus::Generating, 5_000);
        assert_eq!(
            j.stalled_for(5_999.0),
            None,
            "under five seconds is no stall"
        );
        assert_eq!(j.stalled_for(9_000.0), Some(8_000.0));
        assert_eq!(j.stalled_for(0.0), None, "never on the server");
        assert_eq!(job(JobStatus::Loading, 0).stalled_for(60_000.0), None);
    }

    #[test]
    fn a_place_in_line_that_grows_is_said_until_it_shrinks() {
        let mut j = job(JobStatus::Queued, 0);
        let move_to = |j: &mut LiveJob, place: Option<u32>| {
            let before = j.before();
            j.view.queue_position = place;
            j.measured(before);
            j.pushed_back
        };
        j.view.queue_position = Some(2);
        assert!(move_to(&mut j, Some(3)), "another's turn went ahead");
        assert!(move_to(&mut j, Some(3)), "still behind it");
        assert!(!move_to(&mut j, Some(2)), "moving up again");
        assert!(move_to(&mut j, Some(4)));
        assert!(!move_to(&mut j, None), "out of the line");
    }

    #[test]
    fn reasoning_tokens_count_as_progress_not_as_a_stall() {
        let mut j = job(JobStatus::Generating, 5_000);
        j.tokens_at = -10_000.0;
        let before = j.before();
        j.view.reasoning = Some(Reasoning {
            tokens: 3,
            ..Reasoning::default()
        });
        j.measured(before);
        assert_eq!(
            j.tokens_at, 0.0,
            "a new reasoning token restarts the stall clock"
        );
        let before = j.before();
        j.tokens_at = -10_000.0;
        j.measured(before);
        assert_eq!(j.tokens_at, -10_000.0, "nothing new, no restart");
    }

    #[test]
    fn the_speed_is_smoothed_and_a_fresh_state_keeps_what_was_measured() {
        let mut j = job(JobStatus::Generating, 5_000);
        j.view.progress.tokens_per_second = 10.0;
        j.measured((0, 0, JobStatus::Generating, None));
        assert_eq!(j.speed, 10.0, "the first reading is taken as it is");
        j.view.progress.current_tokens = 5;
        j.view.progress.tokens_per_second = 14.0;
        j.measured((4, 0, JobStatus::Generating, None));
        assert!((j.speed - 11.0).abs() < 1e-9, "{}", j.speed);
        let again = j.replaced(j.view.clone());
        assert_eq!((again.speed, again.tokens_at), (j.speed, j.tokens_at));
        let mut retried = j.view.clone();
        retried.run += 1;
        assert_eq!(j.replaced(retried).speed, 14.0, "a new run measures anew");
        assert!(!j.started_again());
        let mut second = j.clone();
        second.view.run = 2;
        assert!(second.started_again());
    }
}

/// Reasoning tokens written so far (0 for a model that does not think).
fn reasoned(view: &JobView) -> u32 {
    view.reasoning.as_ref().map_or(0, |r| r.tokens)
}

/// One post on the page. The post itself does not change; its text and job do. Its signals are
/// counted references, not arena slots: a post that drops off the page frees its text and job
/// as soon as its card is gone, not when the page closes.
#[derive(Clone, Debug)]
pub struct Entry {
    pub post: Post,
    /// The post as safe HTML, rendered by the server (a text post's text with its links).
    pub html: ArcRwSignal<String>,
    pub job: ArcRwSignal<Option<LiveJob>>,
}

impl Entry {
    fn new(post: Post) -> Self {
        Self {
            html: ArcRwSignal::new(post.html.clone().unwrap_or_default()),
            job: ArcRwSignal::new(post.job.clone().map(LiveJob::new)),
            post,
        }
    }
}

#[derive(Clone, Copy)]
pub struct WallStore {
    pub entries: RwSignal<Vec<Entry>>,
    pub next_before: RwSignal<Option<i64>>,
    pub viewer_tag: RwSignal<Option<String>>,
    /// Whether the live stream is connected (shown as a small status).
    pub connected: RwSignal<bool>,
    /// Whether the stream was live and dropped: running cards say they are reconnecting.
    pub reconnecting: RwSignal<bool>,
    /// What the polite live region announces.
    pub announcement: RwSignal<String>,
    /// How many posts the page keeps: the server's `live_posts_max`, or more once the reader
    /// has loaded older ones. Past it, a post arriving live drops the oldest off the end, so
    /// that a flood cannot grow the page without end.
    pub keep: RwSignal<usize>,
}

impl WallStore {
    pub fn new(snapshot: &WallSnapshot) -> Self {
        Self {
            entries: RwSignal::new(
                snapshot
                    .page
                    .posts
                    .iter()
                    .cloned()
                    .map(Entry::new)
                    .collect(),
            ),
            next_before: RwSignal::new(snapshot.page.next_before),
            viewer_tag: RwSignal::new(snapshot.viewer_tag.clone()),
            connected: RwSignal::new(false),
            reconnecting: RwSignal::new(false),
            announcement: RwSignal::new(String::new()),
            keep: RwSignal::new(
                usize::try_from(snapshot.live_posts_max.max(1)).unwrap_or(usize::MAX),
            ),
        }
    }

    fn entry(&self, post_id: i64) -> Option<Entry> {
        self.entries
            .with_untracked(|es| es.iter().find(|e| e.post.id == post_id).cloned())
    }

    /// Adds a post where it belongs (newest first), or, if it is there, takes its job's state
    /// when that is newer than what the page has (the stream may have been faster than the
    /// answer that brought it). A page past its bound ([`WallStore::keep`]) drops its oldest.
    pub fn upsert(&self, post: Post) {
        self.add(post, self.keep.get_untracked());
    }

    /// [`WallStore::upsert`] with the bound `keep`. The oldest posts past it drop off in the
    /// same change of the page (never one card too many, even for a moment), and "load more"
    /// then brings them back from below the oldest post kept (the API's `before` is exclusive).
    fn add(&self, post: Post, keep: usize) {
        if let Some(entry) = self.entry(post.id) {
            if let Some(view) = post.job {
                entry.job.update(|job| match job {
                    Some(j) if view.seq > j.view.seq => *j = j.replaced(view),
                    Some(_) => {}
                    None => *job = Some(LiveJob::new(view)),
                });
            }
            if let Some(html) = post.html {
                entry.html.set(html);
            }
            return;
        }
        let mut oldest_kept = None;
        self.entries.update(|es| {
            let at = es
                .iter()
                .position(|e| e.post.id < post.id)
                .unwrap_or(es.len());
            es.insert(at, Entry::new(post));
            if es.len() > keep {
                es.truncate(keep);
                oldest_kept = es.last().map(|e| e.post.id);
            }
        });
        if let Some(id) = oldest_kept {
            self.next_before.set(Some(id));
        }
    }

    /// Older posts from "load more". The reader asked for them: the page's bound grows to hold
    /// them, and a post arriving live then drops only the oldest.
    pub fn append_older(&self, posts: Vec<Post>, next_before: Option<i64>) {
        for post in posts {
            self.add(post, usize::MAX);
        }
        let shown = self.entries.with_untracked(Vec::len);
        self.keep.update(|keep| *keep = (*keep).max(shown));
        self.next_before.set(next_before);
    }

    pub fn remove(&self, post_id: i64) {
        self.entries
            .update(|es| es.retain(|e| e.post.id != post_id));
    }

    /// My own post, straight from the API answer (the stream may have brought it already).
    pub fn add_mine(&self, post: Post) {
        if self.viewer_tag.with_untracked(Option::is_none) {
            self.viewer_tag.set(Some(post.author_tag.clone()));
        }
        self.upsert(post);
    }

    /// Folds one event of the wall's stream into the page. Returns the posts whose state must be
    /// fetched again (see [`WallStore::snapshot`] and [`WallStore::progress`]).
    pub fn receive(&self, event: WallEvent) -> Vec<i64> {
        match event {
            WallEvent::Snapshot(s) => return self.snapshot(s.posts, s.jobs),
            WallEvent::Post(post) => self.upsert(post),
            WallEvent::PostDeleted(d) => self.remove(d.post_id),
            WallEvent::Job(view) => self.replace_job(view),
            WallEvent::Progress(ev) => return self.progress(&ev).into_iter().collect(),
            WallEvent::Delta(ev) => return self.delta(&ev).into_iter().collect(),
            WallEvent::Done(ev) => self.done(&ev),
            WallEvent::Error(ev) => self.error(&ev),
        }
        Vec::new()
    }

    /// Applies a (re)connection's snapshot. Returns the posts whose jobs this page shows as
    /// unfinished but the snapshot does not mention: they ended while we were away; fetch them.
    pub fn snapshot(&self, posts: Vec<Post>, jobs: Vec<JobView>) -> Vec<i64> {
        let mut mentioned: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        mentioned.extend(posts.iter().filter_map(|p| p.job.as_ref().map(|j| j.id)));
        // Posts deleted while we were away: within the snapshot's page but not in it.
        if let Some(oldest) = posts.iter().map(|p| p.id).min() {
            let present: Vec<i64> = posts.iter().map(|p| p.id).collect();
            self.entries
                .update(|es| es.retain(|e| e.post.id < oldest || present.contains(&e.post.id)));
        }
        for post in posts {
            self.upsert(post);
        }
        for view in jobs {
            self.replace_job(view);
        }
        self.entries.with_untracked(|es| {
            es.iter()
                .filter_map(|e| {
                    let job = e.job.with_untracked(|j| {
                        j.as_ref()
                            .filter(|j| !j.view.status.is_terminal())
                            .map(|j| j.view.id)
                    })?;
                    (!mentioned.contains(&job)).then_some(e.post.id)
                })
                .collect()
        })
    }

    pub fn replace_job(&self, view: JobView) {
        if let Some(entry) = self.entry(view.post_id) {
            entry.job.update(|job| {
                *job = Some(match job {
                    Some(j) => j.replaced(view),
                    None => LiveJob::new(view),
                });
            });
        }
    }

    /// Returns the post id when the event showed a gap and a fresh state must be fetched.
    pub fn progress(&self, ev: &ProgressEvent) -> Option<i64> {
        self.fold(ev.post_id, |job| apply::progress(job, ev))
    }

    /// [`WallStore::progress`] of a short progress event.
    pub fn delta(&self, ev: &ProgressDelta) -> Option<i64> {
        self.fold(ev.post_id, |job| apply::delta(job, ev))
    }

    /// Folds a progress event into a post's job with `apply`; the post id on a gap.
    fn fold(
        &self,
        post_id: i64,
        apply: impl FnOnce(&mut JobView) -> apply::Applied,
    ) -> Option<i64> {
        let entry = self.entry(post_id)?;
        let mut gap = false;
        entry.job.update(|job| {
            if let Some(job) = job {
                let before = job.before();
                match apply(&mut job.view) {
                    apply::Applied::Updated => {
                        job.resync();
                        job.measured(before);
                    }
                    apply::Applied::Gap => gap = true,
                    apply::Applied::Stale => {}
                }
            }
        });
        gap.then_some(post_id)
    }

    pub fn done(&self, ev: &DoneEvent) {
        let Some(entry) = self.entry(ev.post_id) else {
            return;
        };
        entry.job.update(|job| {
            if let Some(job) = job {
                apply::done(&mut job.view, ev);
                job.resync();
            }
        });
        entry.html.set(ev.html.clone());
        self.announcement
            .set(format!("{}'s AI post is finished.", entry.post.author_name));
    }

    pub fn error(&self, ev: &ErrorEvent) {
        let Some(entry) = self.entry(ev.post_id) else {
            return;
        };
        entry.job.update(|job| {
            if let Some(job) = job {
                apply::error(&mut job.view, ev);
                job.resync();
            }
        });
        self.announcement.set(format!(
            "{}'s AI post stopped: {}",
            entry.post.author_name,
            crate::components::reason::sentence(ev.status, ev.failure)
        ));
    }
}

#[cfg(test)]
mod receive_tests {
    use super::*;
    use crate::types::{JobStatus, PostDeletedEvent, PostKind, Progress};

    fn store() -> WallStore {
        WallStore {
            entries: RwSignal::new(Vec::new()),
            next_before: RwSignal::new(None),
            viewer_tag: RwSignal::new(None),
            connected: RwSignal::new(false),
            reconnecting: RwSignal::new(false),
            announcement: RwSignal::new(String::new()),
            keep: RwSignal::new(100),
        }
    }

    fn ai_post(id: i64) -> Post {
        Post {
            id,
            author_name: "Ada".into(),
            kind: PostKind::Ai,
            text: String::new(),
            html: None,
            prompt: Some("Hello?".into()),
            created_at: 0,
            job: Some(JobView {
                status: JobStatus::Generating,
                seq: 1,
                ..JobView::fresh(id * 10, id, "m")
            }),
            author_tag: "tag".into(),
        }
    }

    /// The event as the browser gets it: its name and its data.
    fn over_the_wire(event: WallEvent) -> WallEvent {
        WallEvent::decode(event.name().as_str(), &event.data().unwrap()).unwrap()
    }

    fn ids(store: WallStore) -> Vec<i64> {
        store
            .entries
            .with_untracked(|es| es.iter().map(|e| e.post.id).collect())
    }

    #[test]
    fn stream_events_fold_into_the_page_and_a_gap_asks_for_the_post() {
        // Signals live in an owner's arena (sandboxed per request when built with `ssr`).
        let owner = Owner::new();
        owner.set();
        let store = store();
        assert!(store
            .receive(over_the_wire(WallEvent::Post(ai_post(1))))
            .is_empty());
        assert!(store
            .receive(over_the_wire(WallEvent::Post(ai_post(2))))
            .is_empty());
        assert_eq!(ids(store), [2, 1], "newest first");

        let progress = |seq, text_offset| ProgressEvent {
            job_id: 10,
            post_id: 1,
            status: JobStatus::Generating,
            queue_position: None,
            expected_start_at: None,
            progress: Progress::default(),
            text_offset,
            text_delta: "Hi".into(),
            html: None,
            attempt: 1,
            retry_at: None,
            error: None,
            failure: None,
            unreachable_since: None,
            model_loaded: None,
            run: 1,
            seq,
            thinking_offset: 0,
            thinking_delta: String::new(),
            reasoning: None,
            prompt_progress: None,
            backend: None,
            waiting_for: None,
        };
        assert!(store
            .receive(over_the_wire(WallEvent::Progress(progress(2, 0))))
            .is_empty());
        assert_eq!(
            store.receive(over_the_wire(WallEvent::Progress(progress(3, 9)))),
            [1],
            "text is missing: fetch the post"
        );

        let deleted = WallEvent::PostDeleted(PostDeletedEvent { post_id: 2 });
        assert!(store.receive(over_the_wire(deleted)).is_empty());
        assert_eq!(ids(store), [1]);
    }

    fn text_post(id: i64) -> Post {
        Post {
            kind: PostKind::Text,
            prompt: None,
            job: None,
            ..ai_post(id)
        }
    }

    #[test]
    fn a_flood_keeps_the_page_at_its_bound_and_load_more_brings_the_rest_back() {
        let owner = Owner::new();
        owner.set();
        let store = store();
        store.keep.set(3);
        for id in 1..=5 {
            store.receive(WallEvent::Post(text_post(id)));
        }
        assert_eq!(ids(store), [5, 4, 3], "the oldest dropped off the end");
        assert_eq!(
            store.next_before.get_untracked(),
            Some(3),
            "load more starts below the oldest kept"
        );
        // "Load more" brings the dropped ones back, and the page now holds them all.
        store.append_older(vec![text_post(2), text_post(1)], None);
        assert_eq!(ids(store), [5, 4, 3, 2, 1]);
        assert_eq!(store.next_before.get_untracked(), None);
        // Another live post drops only the oldest again.
        store.receive(WallEvent::Post(text_post(6)));
        assert_eq!(ids(store), [6, 5, 4, 3, 2]);
        assert_eq!(store.next_before.get_untracked(), Some(2));
        // A post the page has already is no new arrival: nothing drops.
        store.receive(WallEvent::Post(text_post(6)));
        assert_eq!(ids(store), [6, 5, 4, 3, 2]);
    }
}
