//! A session's posts: checked, paced, and pipelined into the store (up to
//! `SENDS_IN_FLIGHT` at once, answered in the order they were read).

use std::collections::VecDeque;
use std::future::pending;

use common::{ErrorCode, Post, validate};

use super::Session;
use crate::prometheus;
use crate::store::NewEntry;

/// How many of one connection's sends may wait for the store at once.
pub(super) const SENDS_IN_FLIGHT: usize = 64;

/// A send that the store answered: its room, its client id, and the result.
pub(super) type SendOutcome = (String, String, Result<(), crate::store::StoreError>);

impl Session {
    /// Adds an entry to the room's log: a message, or a change. All of them
    /// are paced by the same send limit, stored in order, and acked.
    pub(super) async fn send(&mut self, room: String, client_id: String, mut entry: Post) {
        if let Err(why) = validate::client_id(&client_id) {
            return self.reject(ErrorCode::InvalidClientId, why, Some(client_id));
        }
        if !self.rooms.contains(&room) {
            return self.reject(ErrorCode::NotJoined, "join the room first", Some(client_id));
        }
        let checked = match &entry {
            // A reply answers a message the sender could have seen (asked
            // of the room only for replies: a plain send takes no lock).
            Post::Message {
                reply_to: Some(seq),
                ..
            } if *seq == 0 || *seq > self.app.hub.delivered_seq(&room).unwrap_or(0) => {
                Err("reply_to is not a message of this room")
            }
            Post::Message { files, .. } if files.len() > common::MAX_FILES_PER_MESSAGE => {
                Err("a message carries at most 10 files")
            }
            // A message of files alone needs no text, but what it has is
            // checked like any other.
            Post::Message { content, files, .. } if !files.is_empty() && content.is_empty() => {
                Ok(())
            }
            Post::Message { content, .. } | Post::Edit { content, .. } => {
                validate::content(content)
            }
            Post::Topic { topic } => validate::topic(topic),
            Post::React { .. } => Ok(()),
            Post::Delete { .. } => Ok(()),
        };
        if let Err(why) = checked {
            return self.reject(ErrorCode::InvalidContent, why, Some(client_id));
        }
        // Any one emoji, stored in its full form (see `emoji.rs`).
        if let Post::React { emoji, .. } = &mut entry {
            match crate::emoji::reaction(emoji) {
                Some(canonical) => {
                    if emoji != canonical {
                        *emoji = canonical.to_owned();
                    }
                }
                None => {
                    return self.reject(
                        ErrorCode::InvalidContent,
                        "react with one emoji",
                        Some(client_id),
                    );
                }
            }
        }
        if !self.send_bucket.try_take(std::time::Instant::now()) {
            prometheus::rate_limited("send");
            return self.tell(
                ErrorCode::RateLimited,
                "sending too fast; the message was not sent",
                Some(client_id),
            );
        }
        // Whether this user may change other people's things: asked of the
        // store each time, so a role taken away counts at once. Only for
        // deletes and topics, which are rare.
        let moderator = match &entry {
            Post::Delete { .. } | Post::Topic { .. } => {
                match self
                    .app
                    .hub
                    .store()
                    .room_access(&room, &self.peer.user.id)
                    .await
                {
                    Ok(access) => access.is_some_and(|a| a.moderates()),
                    Err(err) => {
                        tracing::error!(%err, room, "checking a role failed");
                        return self.tell(
                            ErrorCode::Internal,
                            "the change could not be stored; try again",
                            Some(client_id),
                        );
                    }
                }
            }
            _ => false,
        };
        // A message's files are claimed for it now, before it is queued:
        // the sender's own, uploaded to this room, and not sent in another
        // message (a retry of this one claims them again). Only messages
        // with files ask the store.
        let mut files = Vec::new();
        if let Post::Message { files: ids, .. } = &entry
            && !ids.is_empty()
        {
            let claim = self.app.hub.store().claim_files(
                &room,
                &self.peer.user.id,
                &client_id,
                ids,
                crate::store::now_millis(),
            );
            match claim.await {
                Ok(Some(claimed)) => files = claimed.iter().map(|f| f.info()).collect(),
                Ok(None) => {
                    return self.reject(
                        ErrorCode::NoSuchFile,
                        "a file is not one you uploaded to this room, or was sent already",
                        Some(client_id),
                    );
                }
                Err(err) => {
                    tracing::error!(%err, room, "claiming files failed");
                    return self.tell(
                        ErrorCode::Internal,
                        "the message could not be stored; try again",
                        Some(client_id),
                    );
                }
            }
        }
        if matches!(entry, Post::Topic { .. }) && !moderator {
            return self.reject(
                ErrorCode::Forbidden,
                "only the room's owners and moderators set its topic",
                Some(client_id),
            );
        }
        // Built once the committer's queue has room (see
        // `GroupCommit::submit_with`).
        let user = &self.peer.user;
        let entry = || NewEntry {
            files,
            ..NewEntry::of(
                entry,
                room.clone(),
                user.clone(),
                client_id.clone(),
                moderator,
            )
        };
        // Queued for the store now, in the order read; delivered (with our
        // ack) once stored. The delivery runs as its own task so that it
        // happens even if this connection ends first: others must get the
        // message.
        match self.app.hub.submit(&room, &self.peer, entry).await {
            Ok(submitted) => self.sends.push_back(tokio::spawn(async move {
                (room, client_id, submitted.finish().await)
            })),
            Err(err) => {
                if let crate::store::StoreError::UnknownRoom(_) = err {
                    // Removed from the room while this was on its way.
                    self.rooms.remove(&room);
                }
                self.sent((room, client_id, Err(err)))
            }
        }
    }

    /// Tells the client about a send the store refused.
    pub(super) fn sent(&mut self, (room, client_id, result): SendOutcome) {
        let Err(err) = result else {
            return;
        };
        if let crate::store::StoreError::UnknownRoom(_) = err {
            // Not `self.rooms.remove`: this answer can come after the client
            // joined the room again (a deleted room made anew), and a room
            // found deleted here evicts its connections anyway (see
            // `Hub::forget_deleted`), which `take_evicted` applies.
            return self.tell(ErrorCode::NotJoined, "not in that room", Some(client_id));
        }
        if let crate::store::StoreError::NoSuchMessage = err {
            return self.tell(
                ErrorCode::NoSuchMessage,
                "that message does not exist, was deleted, or is not yours to change",
                Some(client_id),
            );
        }
        tracing::error!(%err, room, "storing a message failed");
        self.tell(
            ErrorCode::Internal,
            "the message could not be stored; send it again",
            Some(client_id),
        );
    }
}

/// The oldest pipelined send's outcome, once it has one.
pub(super) async fn next_send(
    sends: &mut VecDeque<tokio::task::JoinHandle<SendOutcome>>,
) -> Result<SendOutcome, tokio::task::JoinError> {
    let done = match sends.front_mut() {
        Some(oldest) => oldest.await,
        None => pending().await,
    };
    sends.pop_front();
    if sends.is_empty() && sends.capacity() > 8 {
        // A burst's slots go back; an idle connection holds none.
        sends.shrink_to_fit();
    }
    done
}
