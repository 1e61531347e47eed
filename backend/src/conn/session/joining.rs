//! A session's rooms: joining (the checks before the hub's own, the join,
//! and the replay of history, streamed as the socket drains and paid for
//! from the history budgets), leaving, and read positions.

use std::time::Duration;

use common::{ErrorCode, ServerMsg, validate};
use tokio::time::Instant;

use super::Session;
use crate::hub::{JoinError, JoinTicket, REMOVED};
use crate::prometheus;
use crate::store::Departure;
use crate::transport::frame::Frame;

/// How long a joiner may take to make room in its queue during a replay.
const REPLAY_PATIENCE: Duration = Duration::from_secs(10);
/// Entries fetched for a replay at once: at most this many (each at most a
/// few KiB) are held per joining connection besides its queue.
const REPLAY_PAGE: u32 = 16;
/// How much of a replay may wait in a connection's queue: the next frame
/// is queued only once the socket has taken the rest below this.
const REPLAY_QUEUE_BYTES: usize = 32 * 1024;
/// Longest a join waits for its replay budget before it is refused.
const REPLAY_BUDGET_WAIT: Duration = Duration::from_secs(5);

/// Why a join's history was not all sent.
#[derive(Debug)]
enum Unsent {
    /// The connection is closing (kicked, or too slow to take it).
    Kicked,
    /// Over the history budgets for longer than a join may wait.
    OverBudget,
    Store(crate::store::StoreError),
}

impl Session {
    pub(super) async fn join(&mut self, room: String, since: Option<u64>) {
        if let Err(why) = validate::room_name(&room) {
            return self.reject(ErrorCode::InvalidRoom, why, Some(room));
        }
        if !self.rooms.contains(&room) && self.rooms.len() >= self.app.config.max_rooms {
            return self.tell(
                ErrorCode::TooManyRooms,
                "leave a room before joining another",
                Some(room),
            );
        }
        if !self.membership_bucket.try_take(std::time::Instant::now()) {
            prometheus::rate_limited("join");
            return self.tell(ErrorCode::RateLimited, "joining too fast", Some(room));
        }
        // Private rooms are for their members. (A room that does not exist
        // yet is created, public, by joining it, within the user's quota.)
        // A public room loaded here needs no check, and no store query: a
        // reconnect storm, or a store that is paused, does not stop joins.
        // The hub decides in the end, on what the store says as it loads
        // or creates the room (`hub/admission.rs`); what is checked here
        // only spares it the work, and decides whether to spend the quota.
        // A room deleted meanwhile is looked at once more, as a new one.
        let mut ticket = None;
        for _ in 0..2 {
            match self.enter(&room, since).await {
                Ok(Some(entered)) => {
                    ticket = Some(entered);
                    break;
                }
                Ok(None) => return,
                Err(JoinError::Gone) => continue,
                Err(JoinError::Refused) => {
                    return self.tell(
                        ErrorCode::Forbidden,
                        "this room is private; ask a member to invite you",
                        Some(room),
                    );
                }
                Err(JoinError::Departed(why)) => {
                    // As if this device had been there when it happened.
                    let reason = (why == Departure::Removed).then(|| REMOVED.to_owned());
                    self.peer
                        .outbox
                        .push(Frame::encode(&ServerMsg::Left { room, reason }));
                    return;
                }
                Err(JoinError::Store(err)) => {
                    tracing::error!(%err, room, "join failed");
                    return self.tell(
                        ErrorCode::Internal,
                        "could not load the room; try again",
                        Some(room),
                    );
                }
            }
        }
        let Some(ticket) = ticket else {
            return self.tell(
                ErrorCode::Internal,
                "could not load the room; try again",
                Some(room),
            );
        };
        let mut ticket = ticket;
        self.rooms.insert(room.clone());
        match self.replay(&mut ticket).await {
            Ok(()) => {}
            Err(Unsent::Kicked) => return,
            Err(why) => {
                self.app.hub.leave(&room, &self.peer);
                self.rooms.remove(&room);
                return match why {
                    Unsent::OverBudget => {
                        prometheus::rate_limited("replay");
                        self.tell(
                            ErrorCode::RateLimited,
                            "joining with history too fast; try again in a few seconds",
                            Some(room),
                        )
                    }
                    Unsent::Store(err) => {
                        tracing::error!(%err, room, "replay failed");
                        self.tell(
                            ErrorCode::Internal,
                            "could not load the room; try again",
                            Some(room),
                        )
                    }
                    Unsent::Kicked => {}
                };
            }
        }
        self.app.hub.finish_join(ticket, &self.peer);
        metrics::counter!(prometheus::JOINS).increment(1);
    }

    /// The checks before the hub's own, and the join itself. `Ok(None)`:
    /// refused here, and the client was told why.
    async fn enter(
        &mut self,
        room: &str,
        since: Option<u64>,
    ) -> Result<Option<JoinTicket>, JoinError> {
        let hub = &self.app.hub;
        let loaded_public = hub.loaded_visibility(room) == Some(common::Visibility::Public);
        let (seen, create) = if self.rooms.contains(room) || loaded_public {
            (None, false)
        } else {
            if !hub.is_loaded(room) && hub.loaded_rooms() >= self.app.config.max_loaded_rooms {
                self.tell(
                    ErrorCode::RoomLimit,
                    "this server holds as many rooms as it can right now; try again later",
                    Some(room.to_owned()),
                );
                return Ok(None);
            }
            let seen = hub.store().room_access(room, &self.peer.user.id).await?;
            match seen {
                Some(access) if !access.may_enter() => return Err(JoinError::Refused),
                Some(_) => {}
                None if validate::reserved_room(room) => {
                    self.tell(
                        ErrorCode::Forbidden,
                        "no such conversation; start one from a member's name",
                        Some(room.to_owned()),
                    );
                    return Ok(None);
                }
                None => {
                    if let Err((by_address, _)) =
                        self.app.throttle.create_room(&self.peer.user.id, self.ip)
                    {
                        prometheus::rate_limited(if by_address {
                            "rooms_created_per_ip"
                        } else {
                            "rooms_created"
                        });
                        self.tell(
                            ErrorCode::RateLimited,
                            "creating rooms too fast; join an existing one or wait",
                            Some(room.to_owned()),
                        );
                        return Ok(None);
                    }
                }
            }
            (seen, seen.is_none())
        };
        hub.start_join(room, &self.peer, since, seen, create)
            .await
            .map(Some)
    }

    /// Sends a join's history, a page at a time, each page fetched only
    /// once the previous one is (nearly) written: a client that does not
    /// read holds one page and `REPLAY_QUEUE_BYTES` of queue, however long
    /// the history. Every page is paid for from the connection's, the
    /// user's and the address's history budgets first, waiting for them up
    /// to `REPLAY_BUDGET_WAIT` a page.
    async fn replay(&mut self, ticket: &mut JoinTicket) -> Result<(), Unsent> {
        let mut after = ticket.replay_after;
        let mut first_page = true;
        while after < ticket.up_to {
            let page = self
                .app
                .hub
                .replay_page(ticket, after, REPLAY_PAGE)
                .await
                .map_err(Unsent::Store)?;
            let Some((first, last, frames)) = page else {
                break;
            };
            if first_page && ticket.resuming {
                ticket.recovered = first == after + 1;
            }
            first_page = false;
            after = last;
            let bytes: usize = frames.iter().map(|frame| frame.wire().len()).sum();
            self.pay_for_replay(bytes).await?;
            for frame in frames {
                if !self
                    .peer
                    .outbox
                    .push_patiently(frame, REPLAY_QUEUE_BYTES, REPLAY_PATIENCE)
                    .await
                {
                    return Err(Unsent::Kicked);
                }
            }
        }
        if first_page && ticket.resuming {
            // Nothing was left of what was missed (retention).
            ticket.recovered = false;
        }
        Ok(())
    }

    /// Takes `bytes` of history from every budget that meters it.
    async fn pay_for_replay(&mut self, bytes: usize) -> Result<(), Unsent> {
        let deadline = Instant::now() + REPLAY_BUDGET_WAIT;
        match self.replay_bucket.reserve(
            bytes as f64,
            REPLAY_BUDGET_WAIT,
            std::time::Instant::now(),
        ) {
            Some(wait) if wait.is_zero() => {}
            Some(wait) => {
                tracing::debug!(
                    conn = self.peer.id,
                    bytes,
                    ?wait,
                    "replay waits for its budget"
                );
                tokio::time::sleep(wait).await;
            }
            None => return Err(Unsent::OverBudget),
        }
        if self
            .app
            .throttle
            .wait_for_history_bytes(self.ip, &self.peer.user.id, bytes, deadline)
            .await
        {
            Ok(())
        } else {
            Err(Unsent::OverBudget)
        }
    }

    pub(super) fn leave(&mut self, room: String) {
        if !self.rooms.remove(&room) {
            return self.reject(ErrorCode::NotJoined, "not in that room", Some(room));
        }
        if !self.membership_bucket.try_take(std::time::Instant::now()) {
            // Still leave: refusing to let someone out helps nobody.
            tracing::debug!(conn = self.peer.id, "leave over the membership rate");
        }
        self.app.hub.leave(&room, &self.peer);
        self.peer
            .outbox
            .push(Frame::encode(&ServerMsg::Left { room, reason: None }));
    }

    pub(super) async fn read(&mut self, room: String, seq: u64) {
        if !self.rooms.contains(&room) {
            return self.reject(ErrorCode::NotJoined, "join the room first", Some(room));
        }
        // Each one is a write: limited like joins (a client sends about one
        // a second per room it is looking at).
        if !self.membership_bucket.try_take(std::time::Instant::now()) {
            prometheus::rate_limited("read");
            return self.tell(ErrorCode::RateLimited, "marking read too fast", Some(room));
        }
        if let Err(err) = self.app.hub.mark_read(&room, &self.peer, seq) {
            // Not worth bothering the reader: the next one will do.
            tracing::debug!(%err, room, "storing a read position failed");
        }
    }
}
