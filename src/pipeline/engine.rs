//! The ordered producer → workers → consumer engine shared by backup and restore.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Sender, bounded, unbounded};

use crate::error::{Error, Result};

/// Handed to the producer: sends work, numbered in order.
pub struct Emitter<'a, W, E> {
    seq: u64,
    tx: Sender<(u64, Job<W, E>)>,
    /// One token per work item in flight, returned when the consumer has
    /// taken its output: bounds the memory held by queued and finished work.
    tokens: Sender<()>,
    stop: &'a AtomicBool,
}

pub enum Job<W, E> {
    /// Work for a worker.
    Work(W),
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
        self.tokens.send(()).map_err(|_| Error::other("stopped"))?;
        self.send(Job::Work(w))
    }
    pub fn event(&mut self, e: E) -> Result<()> {
        self.send(Job::Event(e))
    }
}

/// Run `produce` on its own thread, `work` on `workers` threads (each with a
/// state made by `init`), and feed results to `consume` in the order the
/// producer emitted them. At most `queue` work items are in flight (queued,
/// being worked on, or finished but not consumed). The first error anywhere stops everything and is
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
    let (done_tx, done_rx) = unbounded::<(u64, Result<Done<O, E>>)>();
    std::thread::scope(|s| {
        let producer = {
            let done_tx = done_tx.clone();
            s.spawn(move || {
                let mut em = Emitter {
                    seq: 0,
                    tx: job_tx,
                    tokens: tok_tx,
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
                        Job::Work(w) => work(&mut state, w).map(Done::Output),
                        Job::Event(e) => Ok(Done::Event(e)),
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
        let mut pending: BTreeMap<u64, Done<O, E>> = BTreeMap::new();
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
            while let Some(d) = pending.remove(&next) {
                next += 1;
                let is_output = matches!(d, Done::Output(_));
                if let Err(e) = consume(d) {
                    first_err = Some(e);
                    break;
                }
                // the item's memory is gone only now: return its token
                if is_output && let Some(t) = &tok_rx {
                    let _ = t.recv();
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

    #[test]
    fn work_in_flight_is_bounded() {
        let in_flight = AtomicUsize::new(0);
        let max_seen = AtomicUsize::new(0);
        run(
            2,
            3,
            |em| {
                for i in 0..200u64 {
                    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(n, Ordering::SeqCst);
                    em.work(i)?;
                }
                Ok(())
            },
            || Ok(()),
            |_, i: u64| Ok(i),
            |_: Done<u64, ()>| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
        // the producer counts an item before it takes a token: at most queue + 1
        assert!(
            max_seen.load(Ordering::SeqCst) <= 4,
            "{}",
            max_seen.load(Ordering::SeqCst)
        );
    }
}
