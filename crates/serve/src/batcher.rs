//! Dynamic batching: the sentences of concurrent requests decoded together.
//!
//! Request handlers [`Batcher::submit`] a job (its encoded sentences and search options) and await
//! its reply. One decoding thread takes the jobs in arrival order and decodes every queued job
//! with the oldest's options that fits the budget as one batch (the decoder splits a batch further
//! by source length), then sends each job its own hypotheses, in its own order.
//!
//! When to start a batch: at once when the queue holds `max_batch_tokens` source tokens, or as
//! many jobs as are expected back: the jobs that were waiting when the last batch finished plus
//! the callers that batch just answered (clients that wait for each answer send their next
//! request right away; a lone client's requests thus never wait). Otherwise when the oldest job
//! has waited `max_wait`, counted from when the decoder became free if that is later. Counting
//! from arrival instead would split closed-loop clients into two alternating half batches: the
//! jobs that arrived during a decode would always start without the ones just answered.
//!
//! Bounds: at most `max_queue_sentences` sentences wait; past that a job is refused at once
//! ([`Refused::Overloaded`], the server's 503), so memory stays bounded under any load. A job whose
//! caller has gone (the HTTP request was cancelled, so its reply receiver is dropped) is skipped
//! when its turn comes. A panic while decoding fails that batch's jobs, not the thread.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use seqkd_runtime::format::Hypothesis;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Search options of one request; only jobs with equal options share a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub beam: usize,
    pub nbest: usize,
    /// Whether greedy search computes log-probabilities (beam search always does).
    pub scores: bool,
}

/// Decodes a batch of encoded sources with `options`: the n-best lists, in input order.
pub type DecodeFn = dyn Fn(&[Vec<u32>], Options) -> Vec<Vec<Hypothesis>> + Send + Sync;

#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Source tokens (ids, `</s>` included) per batch; a larger single job is decoded alone.
    pub max_batch_tokens: usize,
    /// How long the oldest queued job may wait for others to join its batch.
    pub max_wait: Duration,
    /// Sentences that may wait; beyond, jobs are refused.
    pub max_queue_sentences: usize,
    /// false: every job is decoded on its own (the baseline the load benchmark compares with).
    pub batching: bool,
}

/// What a job's caller gets back.
#[derive(Debug)]
pub struct Reply {
    pub hypotheses: Vec<Vec<Hypothesis>>,
    /// Time in the queue, then decoding its batch.
    pub queue: Duration,
    pub decode: Duration,
    /// Sentences in the batch the job was decoded in.
    pub batch_sentences: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the server is overloaded ({queued} sentences queued, at most {limit}); retry shortly")]
    Overloaded { queued: usize, limit: usize },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("decoding failed: {0}")]
    Failed(String),
}

struct Job {
    sentences: Vec<Vec<u32>>,
    tokens: usize,
    options: Options,
    arrived: Instant,
    reply: oneshot::Sender<Result<Reply, Refused>>,
}

struct Queue {
    jobs: VecDeque<Job>,
    sentences: usize,
    tokens: usize,
    closed: bool,
    /// When the decoder last became free, and how many jobs it expects back by then.
    free_since: Instant,
    expected_jobs: usize,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            jobs: VecDeque::new(),
            sentences: 0,
            tokens: 0,
            closed: false,
            free_since: Instant::now(),
            // Nothing is known before the first batch: it waits `max_wait` for company.
            expected_jobs: usize::MAX,
        }
    }
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
}

/// The queue and its decoding thread. Dropping it (or [`Batcher::shutdown`]) decodes what is
/// queued, then stops the thread.
pub struct Batcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Batcher {
    pub fn start(limits: BatchLimits, metrics: Arc<Metrics>, decode: Arc<DecodeFn>) -> Self {
        let shared = Arc::new(Shared { queue: Mutex::default(), wake: Condvar::new(), limits, metrics });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("seqkd-decode".into())
            .spawn(move || decode_loop(&worker, &*decode))
            .expect("spawning the decoding thread");
        Self { shared, thread: Some(thread) }
    }

    /// Queues `sentences` (encoded sources); the receiver gets their hypotheses. Refused at once
    /// when the queue is full or closed.
    pub fn submit(
        &self,
        sentences: Vec<Vec<u32>>,
        options: Options,
    ) -> Result<oneshot::Receiver<Result<Reply, Refused>>, Refused> {
        let (tx, rx) = oneshot::channel();
        let tokens = sentences.iter().map(Vec::len).sum();
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.closed {
            return Err(Refused::ShuttingDown);
        }
        let limit = self.shared.limits.max_queue_sentences;
        if q.sentences > 0 && q.sentences + sentences.len() > limit {
            return Err(Refused::Overloaded { queued: q.sentences, limit });
        }
        q.sentences += sentences.len();
        q.tokens += tokens;
        self.shared.metrics.queue_sentences.set(q.sentences as i64);
        q.jobs.push_back(Job { sentences, tokens, options, arrived: Instant::now(), reply: tx });
        drop(q);
        self.shared.wake.notify_one();
        Ok(rx)
    }

    /// Sentences waiting now.
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).sentences
    }

    /// Refuses new jobs, decodes the queued ones, and waits for the thread.
    pub fn shutdown(&mut self) {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn decode_loop(shared: &Shared, decode: &DecodeFn) {
    while let Some(batch) = next_batch(shared) {
        run_batch(shared, decode, batch);
    }
}

/// The decoder is free and about to answer `answered` jobs: counted before any answer goes out,
/// since a caller may send its next job before the answers to the others are sent.
fn decoder_free(shared: &Shared, answered: usize) {
    let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
    q.free_since = Instant::now();
    q.expected_jobs = q.jobs.len() + answered;
}

/// Waits for the next batch: `None` once the queue is closed and empty.
fn next_batch(shared: &Shared) -> Option<Vec<Job>> {
    let limits = shared.limits;
    let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        // Callers that went away lose their place without costing a decode.
        let before = q.jobs.len();
        let mut dropped = (0, 0);
        q.jobs.retain(|j| {
            let live = !j.reply.is_closed();
            if !live {
                dropped.0 += j.sentences.len();
                dropped.1 += j.tokens;
            }
            live
        });
        if q.jobs.len() != before {
            q.sentences -= dropped.0;
            q.tokens -= dropped.1;
            shared.metrics.cancelled_sentences.inc_by(dropped.0 as u64);
            shared.metrics.queue_sentences.set(q.sentences as i64);
        }
        let Some(oldest) = q.jobs.front() else {
            if q.closed {
                return None;
            }
            q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let waited = oldest.arrived.max(q.free_since).elapsed();
        let full = q.tokens >= limits.max_batch_tokens || q.jobs.len() >= q.expected_jobs;
        if limits.batching && !full && !q.closed && waited < limits.max_wait {
            let (guard, _) =
                shared.wake.wait_timeout(q, limits.max_wait - waited).unwrap_or_else(|e| e.into_inner());
            q = guard;
            continue;
        }
        let options = oldest.options;
        let mut batch = vec![q.jobs.pop_front().expect("front exists")];
        let mut tokens = batch[0].tokens;
        if limits.batching {
            // Later jobs with the same options, in order, while the budget lasts.
            let mut i = 0;
            while i < q.jobs.len() {
                let j = &q.jobs[i];
                if j.options == options && tokens + j.tokens <= limits.max_batch_tokens {
                    tokens += j.tokens;
                    batch.push(q.jobs.remove(i).expect("index in range"));
                } else {
                    i += 1;
                }
            }
        }
        q.sentences -= batch.iter().map(|j| j.sentences.len()).sum::<usize>();
        q.tokens -= tokens;
        shared.metrics.queue_sentences.set(q.sentences as i64);
        return Some(batch);
    }
}

fn run_batch(shared: &Shared, decode: &DecodeFn, batch: Vec<Job>) {
    let options = batch[0].options;
    let mut sentences = Vec::with_capacity(batch.iter().map(|j| j.sentences.len()).sum());
    for job in &batch {
        sentences.extend(job.sentences.iter().cloned());
    }
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| decode(&sentences, options)));
    let took = start.elapsed();
    decoder_free(shared, batch.len());
    shared.metrics.batch_sentences.observe(sentences.len() as f64);
    shared.metrics.decode_seconds.observe(took.as_secs_f64());
    let mut hypotheses = match result {
        Ok(h) if h.len() == sentences.len() => h.into_iter(),
        Ok(h) => {
            let why = format!("the decoder returned {} results for {} sentences", h.len(), sentences.len());
            return fail(batch, &why);
        }
        Err(panic) => {
            let why = panic_message(&panic);
            tracing::error!(sentences = sentences.len(), "decoding panicked: {why}");
            return fail(batch, &format!("the decoder panicked ({why}); the server goes on"));
        }
    };
    let batch_sentences = sentences.len();
    for job in batch {
        let hyps: Vec<_> = hypotheses.by_ref().take(job.sentences.len()).collect();
        let queue = start.saturating_duration_since(job.arrived);
        // A caller that left meanwhile simply does not receive it.
        let _ = job.reply.send(Ok(Reply { hypotheses: hyps, queue, decode: took, batch_sentences }));
    }
}

fn fail(batch: Vec<Job>, why: &str) {
    for job in batch {
        let _ = job.reply.send(Err(Refused::Failed(why.to_string())));
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hyp(tokens: &[u32]) -> Hypothesis {
        Hypothesis { tokens: tokens.to_vec(), token_logprobs: vec![], score: 0.0, normalized_score: 0.0 }
    }

    /// A decoder that echoes each source (times the beam) and records its batch sizes.
    fn echo(sizes: Arc<Mutex<Vec<usize>>>, delay: Duration) -> Arc<DecodeFn> {
        Arc::new(move |batch: &[Vec<u32>], o: Options| {
            sizes.lock().unwrap().push(batch.len());
            std::thread::sleep(delay);
            if batch.iter().any(|s| s.first() == Some(&666)) {
                panic!("poisoned sentence");
            }
            batch
                .iter()
                .map(|s| vec![hyp(&s.iter().map(|t| t * o.beam as u32).collect::<Vec<_>>())])
                .collect()
        })
    }

    fn limits(batching: bool) -> BatchLimits {
        BatchLimits {
            max_batch_tokens: 1000,
            max_wait: Duration::from_millis(50),
            max_queue_sentences: 10,
            batching,
        }
    }

    fn wait(rx: oneshot::Receiver<Result<Reply, Refused>>) -> Result<Reply, Refused> {
        rx.blocking_recv().expect("a reply")
    }

    const ONE: Options = Options { beam: 1, nbest: 1, scores: true };

    #[test]
    fn concurrent_jobs_share_a_batch_and_get_their_own_results_in_order() {
        let sizes = Arc::new(Mutex::new(vec![]));
        let b = Batcher::start(limits(true), Arc::new(Metrics::new()), echo(sizes.clone(), Duration::ZERO));
        let a = b.submit(vec![vec![1, 2], vec![3]], ONE).unwrap();
        let c = b.submit(vec![vec![4]], ONE).unwrap();
        let d = b.submit(vec![vec![5]], Options { beam: 2, nbest: 1, scores: true }).unwrap();
        let tokens = |r: Reply| r.hypotheses.iter().map(|h| h[0].tokens.clone()).collect::<Vec<_>>();
        assert_eq!(tokens(wait(a).unwrap()), vec![vec![1, 2], vec![3]]);
        assert_eq!(tokens(wait(c).unwrap()), vec![vec![4]]);
        // Other options: a batch of its own, decoded with them.
        assert_eq!(tokens(wait(d).unwrap()), vec![vec![10]]);
        assert_eq!(*sizes.lock().unwrap(), vec![3, 1]);
    }

    #[test]
    fn clients_answered_by_a_batch_start_the_next_one_without_waiting() {
        let sizes = Arc::new(Mutex::new(vec![]));
        let max_wait = Duration::from_millis(300);
        let b = Arc::new(Batcher::start(
            BatchLimits { max_wait, ..limits(true) },
            Arc::new(Metrics::new()),
            echo(sizes.clone(), Duration::from_millis(10)),
        ));
        let start = Instant::now();
        // Two closed-loop clients: each sends its next job as soon as the last is answered.
        let clients: Vec<_> = (0..2)
            .map(|c| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    for i in 0..3 {
                        let tokens =
                            &wait(b.submit(vec![vec![c * 10 + i]], ONE).unwrap()).unwrap().hypotheses;
                        assert_eq!(tokens[0][0].tokens, vec![c * 10 + i]);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        // Only the first batch waits for company; the others start once both clients are back.
        assert_eq!(*sizes.lock().unwrap(), vec![2, 2, 2]);
        assert!(start.elapsed() < 2 * max_wait, "took {:?}", start.elapsed());
    }

    #[test]
    fn without_batching_each_job_is_decoded_alone() {
        let sizes = Arc::new(Mutex::new(vec![]));
        let b = Batcher::start(limits(false), Arc::new(Metrics::new()), echo(sizes.clone(), Duration::ZERO));
        let rx: Vec<_> = (0..3).map(|i| b.submit(vec![vec![i], vec![i]], ONE).unwrap()).collect();
        for r in rx {
            wait(r).unwrap();
        }
        assert_eq!(*sizes.lock().unwrap(), vec![2, 2, 2]);
    }

    #[test]
    fn a_full_queue_refuses_and_a_cancelled_job_is_not_decoded() {
        let sizes = Arc::new(Mutex::new(vec![]));
        let metrics = Arc::new(Metrics::new());
        let b =
            Batcher::start(limits(true), metrics.clone(), echo(sizes.clone(), Duration::from_millis(200)));
        let first = b.submit(vec![vec![1]; 6], ONE).unwrap();
        // The first batch is decoding (200 ms); these wait.
        std::thread::sleep(Duration::from_millis(100));
        let gone = b.submit(vec![vec![2]; 4], ONE).unwrap();
        let err = b.submit(vec![vec![3]; 7], ONE).unwrap_err();
        assert_eq!(err, Refused::Overloaded { queued: 4, limit: 10 });
        drop(gone);
        let last = b.submit(vec![vec![4]], ONE).unwrap();
        assert_eq!(wait(first).unwrap().hypotheses.len(), 6);
        assert_eq!(wait(last).unwrap().hypotheses.len(), 1);
        assert_eq!(*sizes.lock().unwrap(), vec![6, 1]);
        assert_eq!(metrics.cancelled_sentences.get(), 4);
    }

    #[test]
    fn a_panic_fails_its_batch_only() {
        let sizes = Arc::new(Mutex::new(vec![]));
        let b = Batcher::start(limits(false), Arc::new(Metrics::new()), echo(sizes, Duration::ZERO));
        let bad = b.submit(vec![vec![666]], ONE).unwrap();
        let good = b.submit(vec![vec![7]], ONE).unwrap();
        let err = wait(bad).unwrap_err();
        assert!(matches!(&err, Refused::Failed(why) if why.contains("poisoned sentence")), "{err}");
        assert_eq!(wait(good).unwrap().hypotheses[0][0].tokens, vec![7]);
    }

    #[test]
    fn shutdown_decodes_what_is_queued_then_refuses() {
        let sizes = Arc::new(Mutex::new(vec![]));
        let mut b = Batcher::start(limits(true), Arc::new(Metrics::new()), echo(sizes, Duration::ZERO));
        let rx = b.submit(vec![vec![1]], ONE).unwrap();
        b.shutdown();
        assert_eq!(wait(rx).unwrap().hypotheses.len(), 1);
        assert_eq!(b.submit(vec![vec![1]], ONE).unwrap_err(), Refused::ShuttingDown);
    }
}
