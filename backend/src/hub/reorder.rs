//! A room's reorder buffer: messages arrive in any order (concurrent local
//! appends finish out of order, other nodes' frames race them, refills from
//! the store duplicate both) and leave strictly in seq order, each exactly
//! once, each followed by its sender's ack if it has one.
//!
//! Pure: no locks, no store, no clock. The hub holds one per room under the
//! room's lock, feeds it with `insert`, takes what is ready with `pop_ready`,
//! and asks `gap` whether something is missing long enough to refill from
//! the store. Property tests drive it with random interleavings.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

/// A message waiting for its turn: the encoded frame, and the ack to queue
/// right after it (only the node that appended it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<F, A> {
    pub frame: F,
    pub ack: Option<A>,
}

#[derive(Debug, Clone)]
pub struct Reorder<F, A> {
    /// The next seq to deliver; everything below it has been delivered.
    next_seq: u64,
    pending: BTreeMap<u64, Pending<F, A>>,
}

impl<F, A> Reorder<F, A> {
    /// A buffer whose first undelivered seq is `next_seq`.
    pub fn new(next_seq: u64) -> Self {
        Reorder {
            next_seq,
            pending: BTreeMap::new(),
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes one copy of message `seq`. Returns an ack to queue at once if
    /// the message already went out (its first copy won a race; the ack
    /// must still reach the sender). A copy without an ack never replaces
    /// one with an ack.
    #[must_use]
    pub fn insert(&mut self, seq: u64, pending: Pending<F, A>) -> Option<A> {
        if seq < self.next_seq {
            return pending.ack;
        }
        match self.pending.entry(seq) {
            Entry::Vacant(slot) => {
                slot.insert(pending);
            }
            Entry::Occupied(mut slot) => {
                if pending.ack.is_some() {
                    slot.insert(pending);
                }
            }
        }
        None
    }

    /// The next message in order, if it is here.
    pub fn pop_ready(&mut self) -> Option<(u64, Pending<F, A>)> {
        let seq = self.next_seq;
        let next = self.pending.remove(&seq)?;
        self.next_seq += 1;
        Some((seq, next))
    }

    /// `(first missing, first held back)` while something waits for an
    /// earlier seq.
    pub fn gap(&self) -> Option<(u64, u64)> {
        let (&first, _) = self.pending.iter().next()?;
        Some((self.next_seq, first))
    }

    /// After a refill fetched every stored message below `up_to` (which is
    /// committed, so everything before it is final): a seq the store does
    /// not have was deleted by retention and will never arrive, so stop
    /// waiting for it. Returns the seqs given up on.
    pub fn skip_missing_below(&mut self, up_to: u64) -> Vec<u64> {
        let mut skipped = Vec::new();
        while self.next_seq < up_to && !self.pending.contains_key(&self.next_seq) {
            skipped.push(self.next_seq);
            self.next_seq += 1;
        }
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the hub would queue to connections, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Out {
        Message(u64),
        Ack(u64),
    }

    fn drain(buffer: &mut Reorder<u64, u64>, out: &mut Vec<Out>) {
        while let Some((seq, p)) = buffer.pop_ready() {
            assert_eq!(seq, p.frame, "the frame popped is the one for its seq");
            out.push(Out::Message(seq));
            if let Some(ack) = p.ack {
                out.push(Out::Ack(ack));
            }
        }
    }

    /// One way a copy of a message reaches the buffer.
    #[derive(Debug, Clone)]
    enum Arrival {
        /// This node appended it: it carries the sender's ack.
        Local(u64),
        /// Another node's frame, or a catch-up after a broker reconnect.
        Remote(u64),
        /// A refill of every stored message in `[next_seq, first held)`.
        Refill,
    }

    fn arrivals(n: u64) -> impl Strategy<Value = Vec<Arrival>> {
        // Each seq appears once as local or remote, in a shuffled order, with
        // extra remote duplicates and refills sprinkled in.
        let base = (1..=n)
            .map(|seq| prop_oneof![Just(Arrival::Local(seq)), Just(Arrival::Remote(seq))])
            .collect::<Vec<_>>();
        let extras = prop::collection::vec(
            prop_oneof![(1..=n).prop_map(Arrival::Remote), Just(Arrival::Refill)],
            0..(n as usize),
        );
        (base, extras).prop_flat_map(|(mut base, extras)| {
            base.extend(extras);
            Just(base).prop_shuffle()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn delivers_in_order_once_with_each_ack_after_its_message(
            order in (1u64..40).prop_flat_map(arrivals),
        ) {
            let mut buffer: Reorder<u64, u64> = Reorder::new(1);
            let mut out = Vec::new();
            let mut local = std::collections::BTreeSet::new();
            let mut max_seq = 0;
            for arrival in &order {
                match *arrival {
                    Arrival::Local(seq) => {
                        local.insert(seq);
                        max_seq = max_seq.max(seq);
                        if let Some(ack) = buffer.insert(seq, Pending { frame: seq, ack: Some(seq) }) {
                            out.push(Out::Ack(ack));
                        }
                    }
                    Arrival::Remote(seq) => {
                        max_seq = max_seq.max(seq);
                        let _ = buffer.insert(seq, Pending { frame: seq, ack: None });
                    }
                    Arrival::Refill => {
                        // The store has every seq that any copy has shown up
                        // for so far (appends commit before they arrive).
                        if let Some((from, to)) = buffer.gap() {
                            for seq in from..to {
                                if seq <= max_seq {
                                    let _ = buffer.insert(seq, Pending { frame: seq, ack: None });
                                }
                            }
                        }
                    }
                }
                drain(&mut buffer, &mut out);
            }
            // A final refill: everything up to the newest seq is in the store.
            if let Some((from, to)) = buffer.gap() {
                for seq in from..to {
                    let _ = buffer.insert(seq, Pending { frame: seq, ack: None });
                }
                drain(&mut buffer, &mut out);
            }

            let delivered: Vec<u64> = out.iter().filter_map(|o| match o {
                Out::Message(seq) => Some(*seq),
                Out::Ack(_) => None,
            }).collect();
            let expected: Vec<u64> = (1..=max_seq).collect();
            prop_assert_eq!(&delivered, &expected, "strictly in order, each once, none missing");
            prop_assert!(buffer.is_empty());
            for seq in &local {
                let acks = out.iter().filter(|o| **o == Out::Ack(*seq)).count();
                prop_assert_eq!(acks, 1, "exactly one ack for {}", seq);
                let at = out.iter().position(|o| *o == Out::Ack(*seq)).unwrap();
                let message = out.iter().position(|o| *o == Out::Message(*seq)).unwrap();
                prop_assert!(message < at, "the ack of {} comes after its message", seq);
            }
        }
    }

    #[test]
    fn a_late_local_copy_still_acks() {
        let mut buffer: Reorder<&str, &str> = Reorder::new(1);
        let _ = buffer.insert(
            1,
            Pending {
                frame: "m1",
                ack: None,
            },
        );
        assert_eq!(buffer.pop_ready().map(|(s, _)| s), Some(1));
        assert_eq!(
            buffer.insert(
                1,
                Pending {
                    frame: "m1",
                    ack: Some("ack1")
                }
            ),
            Some("ack1")
        );
    }

    #[test]
    fn an_ack_carrying_copy_replaces_a_plain_one() {
        let mut buffer: Reorder<&str, &str> = Reorder::new(1);
        let _ = buffer.insert(
            1,
            Pending {
                frame: "m1",
                ack: None,
            },
        );
        let _ = buffer.insert(
            1,
            Pending {
                frame: "m1",
                ack: Some("ack1"),
            },
        );
        let _ = buffer.insert(
            1,
            Pending {
                frame: "m1",
                ack: None,
            },
        );
        assert_eq!(buffer.pop_ready().unwrap().1.ack, Some("ack1"));
    }

    #[test]
    fn seqs_deleted_by_retention_are_skipped() {
        let mut buffer: Reorder<&str, &str> = Reorder::new(3);
        let _ = buffer.insert(
            6,
            Pending {
                frame: "m6",
                ack: None,
            },
        );
        assert_eq!(buffer.gap(), Some((3, 6)));
        let _ = buffer.insert(
            4,
            Pending {
                frame: "m4",
                ack: None,
            },
        );
        assert_eq!(buffer.skip_missing_below(6), vec![3]);
        assert_eq!(buffer.pop_ready().unwrap().0, 4);
        assert_eq!(buffer.skip_missing_below(6), vec![5]);
        assert_eq!(buffer.pop_ready().unwrap().0, 6);
        assert_eq!(buffer.gap(), None);
    }
}
