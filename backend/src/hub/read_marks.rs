//! Read positions on their way to the store, written together.
//!
//! A client marks what is on screen as read: about one `read` per person
//! per few seconds while messages arrive. Written one by one, that is a
//! transaction (a commit, a trip to SQLite's worker thread and back) per
//! read, several per message in a busy deployment of small rooms: five
//! times the transactions of the messages themselves in the many-rooms
//! benchmark (docs/benchmarks.md). So a read is taken in memory at once
//! (the user's other connections are told at once, as before) and the
//! newest position per user and room is written every `FLUSH_EVERY`, all in
//! one transaction (`tasks::read_marks`).
//!
//! What reads a user's position from the store writes that user's pending
//! ones first (`Hub::flush_reads_of`): a join, the room list. A crash loses
//! at most the last `FLUSH_EVERY` of read positions, never a message: the
//! next `read` puts it right.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often pending read positions are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Pending positions past which a write is not waited for: one flush
/// writes at most this many in a transaction.
pub const FLUSH_AT: usize = 4_096;

/// The newest pending position per (user, room).
#[derive(Default)]
pub struct ReadMarks {
    pending: Mutex<Pending>,
    full: tokio::sync::Notify,
}

/// Pending positions by user, so that a join takes its user's out without
/// looking at anyone else's (`take_user`).
#[derive(Default)]
struct Pending {
    /// Per user: each room at most once, with its newest seq.
    by_user: HashMap<Arc<str>, Vec<(Arc<str>, u64)>>,
    /// Positions in `by_user`, all users together.
    count: usize,
}

impl Pending {
    /// `user` has read `room` up to `seq`, unless a newer one is pending.
    fn raise(&mut self, user: Arc<str>, room: Arc<str>, seq: u64) {
        let rooms = self.by_user.entry(user).or_default();
        match rooms.iter_mut().find(|(r, _)| *r == room) {
            Some((_, at)) => *at = (*at).max(seq),
            None => {
                rooms.push((room, seq));
                self.count += 1;
            }
        }
    }
}

/// One position to write: user, room, seq.
pub type Mark = (Arc<str>, Arc<str>, u64);

fn marks_of(user: Arc<str>, rooms: Vec<(Arc<str>, u64)>) -> impl Iterator<Item = Mark> {
    rooms
        .into_iter()
        .map(move |(room, seq)| (user.clone(), room, seq))
}

impl ReadMarks {
    /// Notes that `user` read `room` up to `seq` (a lower seq than one
    /// pending is ignored, as the store ignores one lower than its own).
    pub fn note(&self, user: &Arc<str>, room: &Arc<str>, seq: u64) {
        let mut pending = self.pending.lock().expect("read marks lock");
        pending.raise(user.clone(), room.clone(), seq);
        if pending.count >= FLUSH_AT {
            self.full.notify_one();
        }
    }

    /// Every pending position, taken out.
    pub fn take_all(&self) -> Vec<Mark> {
        let taken = std::mem::take(&mut *self.pending.lock().expect("read marks lock"));
        taken
            .by_user
            .into_iter()
            .flat_map(|(user, rooms)| marks_of(user, rooms))
            .collect()
    }

    /// `user`'s pending positions, taken out.
    pub fn take_user(&self, user: &str) -> Vec<Mark> {
        let mut pending = self.pending.lock().expect("read marks lock");
        let Some((user, rooms)) = pending.by_user.remove_entry(user) else {
            return Vec::new();
        };
        pending.count -= rooms.len();
        marks_of(user, rooms).collect()
    }

    /// Puts back what could not be written (kept unless a newer position
    /// came meanwhile).
    pub fn put_back(&self, marks: Vec<Mark>) {
        let mut pending = self.pending.lock().expect("read marks lock");
        for (user, room, seq) in marks {
            pending.raise(user, room, seq);
        }
    }

    /// Waits until `FLUSH_EVERY` has passed or `FLUSH_AT` are pending.
    pub async fn due(&self) {
        tokio::select! {
            () = tokio::time::sleep(FLUSH_EVERY) => {}
            () = self.full.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arc(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn keeps_the_newest_position_per_user_and_room() {
        let marks = ReadMarks::default();
        marks.note(&arc("ann"), &arc("ops"), 5);
        marks.note(&arc("ann"), &arc("ops"), 3);
        marks.note(&arc("ann"), &arc("dev"), 2);
        marks.note(&arc("bob"), &arc("ops"), 7);
        let mut ann = marks.take_user("ann");
        ann.sort();
        assert_eq!(
            ann,
            [(arc("ann"), arc("dev"), 2), (arc("ann"), arc("ops"), 5)]
        );
        assert!(marks.take_user("ann").is_empty());
        marks.put_back(vec![(arc("bob"), arc("ops"), 6)]);
        assert_eq!(
            marks.take_all(),
            [(arc("bob"), arc("ops"), 7)],
            "newer kept"
        );
        assert!(marks.take_all().is_empty());
    }
}
