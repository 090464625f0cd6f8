//! The ordered producer → workers → consumer engine shared by backup and restore.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Sender, bounded, unbounded};

use crate::error::{Error, Result};

/// Handed to the producer: sends work, numbered in order.
pub struct Emitter<'a, W, E> {
    seq: u64,
    tx: Sender<(u64, Job<W, E>)>,
    /// Tokens for the work in flight (one per item, or its weight), returned
    /// when the consumer has taken its output: bounds the memory held by
    /// queued and finished work.
    tokens: Sender<()>,
    /// The most tokens one item takes, so that any item can get them.
    max_weight: usize,
    stop: &'a AtomicBool,
}

pub enum Job<W, E> {
    /// Work for a worker, and the tokens it holds.
    Work(W, usize),
    /// Passed through to the consumer untouched, in order.
    Event(E),
}

pub enum Done<O, E> {
    Output(O),
    Event(E),
}

impl<W, E> Emitter<'_, W, E> {
    fn send(&mut self, job: Job<W, E>) -> Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(Error::other("stopped"));
        }
        self.tx
            .send((self.seq, job))
            .map_err(|_| Error::other("stopped"))?;
        self.seq += 1;
        Ok(())
    }
    pub fn work(&mut self, w: W) -> Result<()> {
        self.work_weighted(w, 1)
    }
    /// Send work that holds `weight` tokens (at least 1, at most half the
    /// queue): work of very different sizes (a 4 KiB file, an 8 MiB chunk)
    /// can then be bounded by memory rather than by count, so that many
    /// small items keep the workers busy while a large one is in progress.
    pub fn work_weighted(&mut self, w: W, weight: usize) -> Result<()> {
        let weight = weight.clamp(1, self.max_weight);
        for _ in 0..weight {
            self.tokens.send(()).map_err(|_| Error::other("stopped"))?;
        }
        self.send(Job::Work(w, weight))
    }
    pub fn event(&mut self, e: E) -> Result<()> {
        self.send(Job::Event(e))
    }
}

/// The most tokens [`weight_of`] gives an item: what a large item held when
/// every item held one, so a queue of `n * MAX_WEIGHT` tokens keeps `n`
/// large items in flight as before, and up to `n * MAX_WEIGHT` small ones.
pub const MAX_WEIGHT: usize = 4;

/// The weight of an item of `bytes` bytes for [`Emitter::work_weighted`]:
/// one token per 512 KiB, at least 1, at most [`MAX_WEIGHT`]. Results are
/// consumed in order, so with a count alone a worker sits idle behind each
/// large item while small ones wait for room.
pub fn weight_of(bytes: usize) -> usize {
    bytes.div_ceil(512 << 10).clamp(1, MAX_WEIGHT)
}

/// Run `produce` on its own thread, `work` on `workers` threads (each with a
/// state made by `init`), and feed results to `consume` in the order the
/// producer emitted them. At most `queue` tokens of work are in flight
/// (queued, being worked on, or finished but not consumed): one per item
/// sent with `work`, its weight with `work_weighted`. The first error anywhere stops everything and is
/// returned; a producer "stopped" error caused by that stop is not reported.
pub fn run<W, E, O, S>(
    workers: usize,
    queue: usize,
    produce: impl FnOnce(&mut Emitter<'_, W, E>) -> Result<()> + Send,
    init: impl Fn() -> Result<S> + Sync,
    work: impl Fn(&mut S, W) -> Result<O> + Sync,
    mut consume: impl FnMut(Done<O, E>) -> Result<()>,
) -> Result<()>
where
    W: Send,
    E: Send,
    O: Send,
{
    let stop_flag = AtomicBool::new(false);
    let stop = &stop_flag;
    let (job_tx, job_rx) = unbounded::<(u64, Job<W, E>)>();
    let (tok_tx, tok_rx) = bounded::<()>(queue.max(1));
    let mut tok_rx = Some(tok_rx);
    let (done_tx, done_rx) = unbounded::<(u64, Result<(Done<O, E>, usize)>)>();
    std::thread::scope(|s| {
        let producer = {
            let done_tx = done_tx.clone();
            s.spawn(move || {
                let mut em = Emitter {
                    seq: 0,
                    tx: job_tx,
                    tokens: tok_tx,
                    max_weight: (queue / 2).max(1),
                    stop,
                };
                let r = produce(&mut em);
                let end = em.seq;
                drop(em);
                if let Err(e) = r
                    && !stop.load(Ordering::Relaxed)
                {
                    let _ = done_tx.send((u64::MAX, Err(e)));
                }
                end
            })
        };
        for _ in 0..workers.max(1) {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            let (init, work) = (&init, &work);
            s.spawn(move || {
                let mut state = match init() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = done_tx.send((u64::MAX, Err(e)));
                        return;
                    }
                };
                for (seq, job) in job_rx.iter() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let out = match job {
                        Job::Work(w, weight) => {
                            work(&mut state, w).map(|o| (Done::Output(o), weight))
                        }
                        Job::Event(e) => Ok((Done::Event(e), 0)),
                    };
                    let failed = out.is_err();
                    if done_tx.send((seq, out)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(job_rx);
        drop(done_tx);
        let mut next = 0u64;
        let mut pending: BTreeMap<u64, (Done<O, E>, usize)> = BTreeMap::new();
        let mut first_err: Option<Error> = None;
        for (seq, out) in done_rx.iter() {
            match out {
                Err(e) => {
                    first_err = Some(e);
                    break;
                }
                Ok(d) => {
                    pending.insert(seq, d);
                }
            }
            while let Some((d, weight)) = pending.remove(&next) {
                next += 1;
                if let Err(e) = consume(d) {
                    first_err = Some(e);
                    break;
                }
                // the item's memory is gone only now: return its tokens
                if let Some(t) = &tok_rx {
                    for _ in 0..weight {
                        let _ = t.recv();
                    }
                }
            }
            if first_err.is_some() {
                break;
            }
        }
        if first_err.is_some() {
            stop.store(true, Ordering::Relaxed);
            // a producer waiting for a token gets an error instead
            drop(tok_rx.take());
            // drain so that blocked senders finish
            for _ in done_rx.iter() {}
        }
        let end = producer.join().expect("producer thread panicked");
        if first_err.is_none() && next != end {
            first_err = Some(Error::other(format!(
                "pipeline lost work: consumed {next} of {end}"
            )));
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn outputs_and_events_arrive_in_order() {
        let mut got = Vec::new();
        run(
            3,
            4,
            |em| {
                for i in 0..500u64 {
                    if i % 7 == 0 {
                        em.event(i)?;
                    } else {
                        em.work(i)?;
                    }
                }
                Ok(())
            },
            || Ok(()),
            |_, i: u64| {
                // uneven work so that workers finish out of order
                std::thread::sleep(std::time::Duration::from_micros((i * 37) % 300));
                Ok(i * 10)
            },
            |d: Done<u64, u64>| {
                got.push(match d {
                    Done::Output(o) => o / 10,
                    Done::Event(e) => e,
                });
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn first_error_stops_everything() {
        let worked = AtomicUsize::new(0);
        let r = run(
            2,
            2,
            |em| {
                for i in 0..100_000u64 {
                    em.work(i)?;
                }
                Ok(())
            },
            || Ok(()),
            |_, i: u64| {
                worked.fetch_add(1, Ordering::Relaxed);
                if i == 10 {
                    Err(Error::corrupt("boom"))
                } else {
                    Ok(i)
                }
            },
            |_: Done<u64, ()>| Ok(()),
        );
        assert_eq!(r.unwrap_err().message(), "boom");
        assert!(
            worked.load(Ordering::Relaxed) < 1000,
            "work went on after the error"
        );
    }

    #[test]
    fn consumer_error_stops_a_blocked_producer() {
        let r = run(
            2,
            2,
            |em| {
                for i in 0..1_000_000u64 {
                    em.work(i)?;
                }
                Ok(())
            },
            || Ok(()),
            |_, i: u64| Ok(i),
            |d: Done<u64, ()>| match d {
                Done::Output(5) => Err(Error::other("disk full")),
                _ => Ok(()),
            },
        );
        assert_eq!(r.unwrap_err().message(), "disk full");
    }

    /// The most items in flight at once, as the producer counts them (one
    /// more than the queue holds: it counts an item before it waits for
    /// tokens) while a slow consumer takes `n` items of `weight`.
    fn most_in_flight(queue: usize, n: u64, weight: Option<usize>) -> usize {
        let in_flight = AtomicUsize::new(0);
        let max_seen = AtomicUsize::new(0);
        run(
            2,
            queue,
            |em| {
                for i in 0..n {
                    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(n, Ordering::SeqCst);
                    match weight {
                        None => em.work(i)?,
                        Some(w) => em.work_weighted(i, w)?,
                    }
                }
                Ok(())
            },
            || Ok(()),
            |_, i: u64| Ok(i),
            |_: Done<u64, ()>| {
                std::thread::sleep(std::time::Duration::from_micros(250));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
        max_seen.load(Ordering::SeqCst)
    }

    #[test]
    fn work_in_flight_is_bounded() {
        // the producer counts an item before it takes a token: at most queue + 1
        let seen = most_in_flight(3, 200, None);
        assert!(seen <= 4, "{seen}");
    }

    #[test]
    fn weighted_work_holds_its_weight_in_tokens() {
        // queue 8: items of weight 4 (at most queue / 2) leave room for 2,
        // items of weight 1 for 8; the producer counts one more before it
        // waits for tokens
        for (weight, most) in [(4usize, 3usize), (1, 9), (100, 3)] {
            let seen = most_in_flight(8, 100, Some(weight));
            assert!(seen <= most, "weight {weight}: {seen} in flight");
            assert!(seen >= most - 1, "weight {weight}: only {seen} in flight");
        }
    }
}
