//! The lease manager's work queue, as pure logic: what goes in, what a worker takes next, and
//! what is dropped.
//!
//! As it was, the queue is first in, first out and unbounded, and it keeps work whose requester
//! has already given up: a worker does it anyway, late. With fix `admission_control`, the queue
//! is bounded (the oldest goes when it is full), work past its deadline is dropped unprocessed,
//! and a worker takes the newest work first, which still has its whole budget.

use std::collections::VecDeque;
use std::time::Instant;

/// One piece of work and the moment its requester stops waiting for it.
#[derive(Debug)]
pub struct Pending<T> {
    /// When the requester gives up.
    pub deadline: Instant,
    /// The work.
    pub item: T,
}

/// How the queue admits and orders work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First in, first out, unbounded, nothing dropped (as in October 2025).
    Fifo,
    /// Fix `admission_control`: at most `capacity` items, expired work dropped, newest first.
    Bounded {
        /// Most items queued.
        capacity: usize,
    },
}

/// The queue.
#[derive(Debug)]
pub struct WorkQueue<T> {
    items: VecDeque<Pending<T>>,
    admission: Admission,
}

impl<T> WorkQueue<T> {
    /// An empty queue.
    pub fn new(admission: Admission) -> Self {
        Self {
            items: VecDeque::new(),
            admission,
        }
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `pending`; what had to go to make room (admission control, when full: the oldest).
    pub fn push(&mut self, pending: Pending<T>) -> Vec<T> {
        self.items.push_back(pending);
        let mut dropped = Vec::new();
        if let Admission::Bounded { capacity } = self.admission {
            while self.items.len() > capacity.max(1) {
                dropped.extend(self.items.pop_front().map(|p| p.item));
            }
        }
        dropped
    }

    /// The work a worker takes at `now`, and what was dropped on the way (admission control:
    /// every item past its deadline).
    pub fn pop(&mut self, now: Instant) -> (Option<Pending<T>>, Vec<T>) {
        match self.admission {
            Admission::Fifo => (self.items.pop_front(), Vec::new()),
            Admission::Bounded { .. } => {
                let (live, expired): (VecDeque<_>, VecDeque<_>) =
                    (self.items.drain(..)).partition(|p| p.deadline > now);
                self.items = live;
                (
                    self.items.pop_back(),
                    expired.into_iter().map(|p| p.item).collect(),
                )
            }
        }
    }

    /// Empties the queue (a restart); what it held.
    pub fn clear(&mut self) -> Vec<T> {
        self.items.drain(..).map(|p| p.item).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// Items 1, 2, 3, due 10, 500 and 900 ms after `t0`.
    fn filled(admission: Admission, t0: Instant) -> WorkQueue<i32> {
        let mut queue = WorkQueue::new(admission);
        for (i, deadline) in [(1, 10), (2, 500), (3, 900)] {
            let pending = Pending {
                deadline: at(t0, deadline),
                item: i,
            };
            assert!(queue.push(pending).is_empty(), "nothing dropped yet");
        }
        queue
    }

    #[test]
    fn as_it_was_the_oldest_goes_first_even_when_its_requester_gave_up_long_ago() {
        let t0 = Instant::now();
        let mut queue = filled(Admission::Fifo, t0);
        let (first, dropped) = queue.pop(at(t0, 100));
        assert_eq!(first.map(|p| p.item), Some(1), "expired, and done anyway");
        assert!(dropped.is_empty());
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn admission_control_drops_expired_work_takes_the_newest_and_bounds_the_queue() {
        let t0 = Instant::now();
        let mut queue = filled(Admission::Bounded { capacity: 3 }, t0);
        assert_eq!(
            queue.push(Pending {
                deadline: at(t0, 950),
                item: 4
            }),
            vec![1]
        );
        let (next, dropped) = queue.pop(at(t0, 600));
        assert_eq!(next.map(|p| p.item), Some(4));
        assert_eq!(dropped, vec![2], "past its deadline: dropped, not done");
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.clear(), vec![3]);
        assert!(queue.is_empty());
    }
}
