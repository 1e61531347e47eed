//! What the UI shows, as plain data: rooms, their messages, members, who is
//! typing, unread counts. Server messages are folded in with `apply`; the
//! view only reads. Pure, so it is unit-tested natively.

use std::collections::BTreeMap;

use common::{ChatMessage, EntryKind, ServerMsg, User};

/// Most messages kept per room in memory.
pub const MAX_LINES: usize = 500;
/// A typing indicator disappears this long after its last refresh.
pub const TYPING_TTL_MS: f64 = 5_000.0;
/// The client sends at most one `typing` per this interval.
pub const TYPING_EVERY_MS: f64 = 2_000.0;

/// Decides when to tell the server "I am typing": at most once per
/// `TYPING_EVERY_MS`, and again right away after a message was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TypingThrottle {
    last_sent_ms: Option<f64>,
}

impl TypingThrottle {
    /// Called on every keystroke; true if a `typing` should go out now.
    pub fn keystroke(&mut self, now_ms: f64) -> bool {
        if self
            .last_sent_ms
            .is_some_and(|last| now_ms - last < TYPING_EVERY_MS)
        {
            return false;
        }
        self.last_sent_ms = Some(now_ms);
        true
    }

    /// The message was sent, so the indicator is cleared on the other side.
    pub fn sent(&mut self) {
        self.last_sent_ms = None;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum LineStatus {
    /// Stored by the server.
    #[default]
    Sent,
    /// Typed here, not acknowledged yet ("sending…").
    Pending,
    /// Refused by the server, with its reason.
    Failed(String),
}

/// One message line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// The sender's `client_id`: stable from "sending…" to stored.
    pub key: String,
    pub seq: Option<u64>,
    pub user: User,
    pub content: String,
    /// Milliseconds since the epoch (server time once stored).
    pub ts: i64,
    pub status: LineStatus,
    /// The seq of the message this one answers.
    pub reply_to: Option<u64>,
    pub edited: bool,
    /// Deleted: `content` is empty, the line says so.
    pub deleted: bool,
    /// An edit or delete of ours is on its way: (its client_id, the text
    /// to put back if it is refused).
    pub changing: Option<(String, String)>,
    /// Each emoji with who reacted with it, in the order they first did.
    pub reactions: Vec<common::Reaction>,
    /// Bumped by every change, so the view redraws the line.
    pub revision: u32,
}

impl Line {
    /// Whether `user_id` reacted with `emoji`.
    pub fn reacted(&self, emoji: &str, user_id: &str) -> bool {
        self.reactions
            .iter()
            .any(|r| r.emoji == emoji && r.users.iter().any(|u| u.id == user_id))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomState {
    pub lines: Vec<Line>,
    pub members: BTreeMap<String, User>,
    /// user id -> (user, when the indicator expires)
    pub typing: BTreeMap<String, (User, f64)>,
    pub unread: u32,
    /// Of the unread messages, those that mention this user.
    pub mentions: u32,
    /// How far this user has read the room, as the server knows it.
    pub read_seq: u64,
    pub last_seq: u64,
    /// Older history exists than is shown (load it by scrolling up).
    pub older_available: bool,
    /// `joined` arrived on the current connection: from now on a jump in
    /// seq is a gap to fill, not the start of a replay.
    pub live: bool,
    /// Messages that arrived after a gap, waiting for it to be filled.
    pub held: BTreeMap<u64, ChatMessage>,
    pub topic: String,
    /// This user sets the topic and deletes anyone's messages here.
    pub moderator: bool,
    /// The lowest seq seen of any entry, message or change (0: none yet):
    /// older history is paged from here.
    pub floor: u64,
}

/// A gap in a room's live stream: fetch the messages with
/// `after < seq < before` and pass them to `Chat::fill`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub room: String,
    pub after: u64,
    pub before: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chat {
    pub me: Option<User>,
    pub rooms: BTreeMap<String, RoomState>,
    /// The room on screen.
    pub current: Option<String>,
    /// Something the server did to us that the person should read, such as
    /// a removal from a room.
    pub notice: Option<String>,
    /// Bumped when the server says the rooms this user may see changed (an
    /// invitation, a new direct conversation): time to list them again.
    pub rooms_changed: u32,
}

impl Chat {
    pub fn new(me: User) -> Self {
        Chat {
            me: Some(me),
            ..Chat::default()
        }
    }

    /// Folds a server message in. `now_ms` is the local clock. Returns a gap
    /// to fetch if a live message skipped ahead; later messages are held
    /// back until `fill` is called, so nothing shows out of order.
    pub fn apply(&mut self, msg: &ServerMsg, now_ms: f64) -> Option<Gap> {
        match msg {
            ServerMsg::Joined {
                room,
                members,
                last_seq,
                recovered,
                read_seq,
                unread,
                mentions,
                topic,
                moderator,
            } => {
                let is_current = self.current.as_deref() == Some(room.as_str());
                let state = self.rooms.entry(room.clone()).or_default();
                state.read_seq = state.read_seq.max(*read_seq);
                // The server counted from the stored read position; that
                // covers whatever was replayed before this.
                state.unread = if is_current { 0 } else { *unread };
                state.mentions = if is_current { 0 } else { *mentions };
                state.members = members.iter().map(|u| (u.id.clone(), u.clone())).collect();
                state.last_seq = state.last_seq.max(*last_seq);
                state.live = true;
                state.topic = topic.clone();
                state.moderator = *moderator;
                if !recovered || state.floor > 1 {
                    state.older_available = true;
                }
            }
            ServerMsg::Read { room, seq } => self.read_elsewhere(room, *seq),
            ServerMsg::RoomsChanged => self.rooms_changed += 1,
            ServerMsg::Left { room, reason } => {
                self.forget(room);
                if reason.is_some() {
                    self.notice = Some(format!("You were removed from #{room}."));
                }
            }
            ServerMsg::Error {
                reference: Some(room),
                code: common::ErrorCode::Forbidden,
                message,
            } => {
                self.forget(room);
                self.notice = Some(format!("#{room}: {message}"));
            }
            // A join refused for now (a new room over the creation quota, a
            // full server): the room was never entered.
            ServerMsg::Error {
                reference: Some(room),
                code: common::ErrorCode::RateLimited | common::ErrorCode::RoomLimit,
                message,
            } if self.rooms.get(room).is_some_and(|r| !r.live) => {
                self.forget(room);
                self.notice = Some(format!("#{room}: {message}"));
            }
            ServerMsg::Message(m) | ServerMsg::Event(m) => {
                let state = self.rooms.get_mut(&m.room)?;
                if state.live && m.seq > state.last_seq + 1 {
                    let first_held = state.held.keys().next().copied();
                    state.held.insert(m.seq, m.clone());
                    // Ask once per gap; `fill` releases everything held.
                    return first_held.is_none().then(|| Gap {
                        room: m.room.clone(),
                        after: state.last_seq,
                        before: m.seq,
                    });
                }
                self.show(m, true);
            }
            ServerMsg::UserJoined { room, user } => {
                if let Some(state) = self.rooms.get_mut(room) {
                    state.members.insert(user.id.clone(), user.clone());
                }
            }
            ServerMsg::UserLeft { room, user } => {
                if let Some(state) = self.rooms.get_mut(room) {
                    state.members.remove(&user.id);
                    state.typing.remove(&user.id);
                }
            }
            ServerMsg::Typing { room, user } => {
                if let Some(state) = self.rooms.get_mut(room) {
                    state
                        .typing
                        .insert(user.id.clone(), (user.clone(), now_ms + TYPING_TTL_MS));
                }
            }
            // `internal` is retried by the connection, which says when it
            // gives up (`give_up`); until then the line stays "sending…".
            ServerMsg::Error {
                reference: Some(reference),
                message,
                code,
            } if *code != common::ErrorCode::Internal => {
                self.refused(reference, message);
            }
            _ => {}
        }
        None
    }

    /// Drops a room we are no longer in; another one goes on screen.
    fn forget(&mut self, room: &str) {
        self.rooms.remove(room);
        if self.current.as_deref() == Some(room) {
            self.current = self.rooms.keys().next().cloned();
        }
    }

    /// Takes the messages fetched for a gap, then releases the held ones,
    /// in seq order. Seqs the server no longer has are skipped.
    pub fn fill(&mut self, room: &str, fetched: &[ChatMessage]) {
        for m in fetched {
            self.show(m, true);
        }
        let held = self
            .rooms
            .get_mut(room)
            .map(|state| std::mem::take(&mut state.held))
            .unwrap_or_default();
        for m in held.values() {
            self.show(m, true);
        }
    }

    /// Adds a page of older history at the top. Its messages come as they
    /// are now, so its (older) changes are not applied again: an old edit
    /// must not put back a text that a newer one replaced.
    pub fn prepend(&mut self, room: &str, older: &[ChatMessage]) {
        for m in older {
            self.show(m, false);
        }
        if let Some(state) = self.rooms.get_mut(room) {
            state.older_available = state.floor > 1;
        }
    }

    /// The oldest seq seen in `room`, to page backwards from.
    pub fn oldest_seq(&self, room: &str) -> Option<u64> {
        let floor = self.rooms.get(room)?.floor;
        (floor > 0).then_some(floor)
    }

    /// Whether message `seq` of `room` is loaded.
    pub fn has_line(&self, room: &str, seq: u64) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.lines.iter().any(|l| l.seq == Some(seq)))
    }

    /// The message a reply quotes, if it is loaded.
    pub fn quoted(&self, room: &str, seq: u64) -> Option<&Line> {
        self.rooms
            .get(room)?
            .lines
            .iter()
            .find(|l| l.seq == Some(seq))
    }

    /// Shows our edit at once, marked as on its way; `client_id` is the
    /// edit's, to put the old text back if it is refused.
    pub fn edit_local(&mut self, room: &str, seq: u64, content: &str, client_id: &str) {
        if let Some(line) = self.line_mut(room, seq) {
            let before = std::mem::replace(&mut line.content, content.to_owned());
            line.changing = Some((client_id.to_owned(), before));
            line.edited = true;
            line.revision += 1;
        }
    }

    /// Marks a message as being deleted by us.
    pub fn delete_local(&mut self, room: &str, seq: u64, client_id: &str) {
        if let Some(line) = self.line_mut(room, seq) {
            line.changing = Some((client_id.to_owned(), line.content.clone()));
            line.revision += 1;
        }
    }

    fn line_mut(&mut self, room: &str, seq: u64) -> Option<&mut Line> {
        self.rooms
            .get_mut(room)?
            .lines
            .iter_mut()
            .find(|l| l.seq == Some(seq))
    }

    /// The server refused what we sent as `client_id`: a message fails in
    /// place, a change is undone.
    fn refused(&mut self, client_id: &str, why: &str) {
        if !self.change_refused(client_id, why) {
            self.mark(client_id, LineStatus::Failed(why.to_owned()));
        }
    }

    /// An edit or delete of ours was refused: its text comes back, and the
    /// person is told why. False if `client_id` was no change of ours.
    fn change_refused(&mut self, client_id: &str, why: &str) -> bool {
        for state in self.rooms.values_mut() {
            for line in &mut state.lines {
                if let Some((key, before)) = &line.changing
                    && key == client_id
                {
                    line.content = before.clone();
                    line.changing = None;
                    line.revision += 1;
                    self.notice = Some(format!("Your change was not saved: {why}"));
                    return true;
                }
            }
        }
        false
    }

    /// The connection dropped: rooms are no longer live until re-joined
    /// (the resume replays whatever was held back).
    pub fn set_offline(&mut self) {
        for state in self.rooms.values_mut() {
            state.live = false;
            state.held.clear();
        }
    }

    /// Inserts a stored message in seq order, replacing its "sending…" line
    /// and ignoring duplicates; applies a change to its message (unless
    /// `apply` is false: see `prepend`).
    fn show(&mut self, m: &ChatMessage, apply: bool) {
        let is_current = self.current.as_deref() == Some(m.room.as_str());
        let mine = self.me.as_ref().is_some_and(|me| me.id == m.user.id);
        let mentions_me = !mine && self.mentions_me(&m.content);
        let Some(state) = self.rooms.get_mut(&m.room) else {
            return;
        };
        state.floor = if state.floor == 0 {
            m.seq
        } else {
            state.floor.min(m.seq)
        };
        if !m.kind.is_message() {
            if apply {
                apply_change(state, m);
            }
            state.last_seq = state.last_seq.max(m.seq);
            return;
        }
        if state.lines.iter().any(|l| l.seq == Some(m.seq)) {
            return; // a duplicate delivery
        }
        if mine {
            state
                .lines
                .retain(|l| !(l.seq.is_none() && l.key == m.client_id));
        }
        let line = Line {
            key: m.client_id.clone(),
            seq: Some(m.seq),
            user: m.user.clone(),
            content: m.content.clone(),
            ts: m.ts,
            status: LineStatus::Sent,
            reply_to: m.reply_to,
            edited: m.edited.is_some(),
            deleted: m.deleted,
            changing: None,
            reactions: m.reactions.clone(),
            revision: 0,
        };
        // Stored lines in seq order, pending ones after them.
        let at = state
            .lines
            .iter()
            .position(|l| l.seq.is_none_or(|s| s > m.seq))
            .unwrap_or(state.lines.len());
        state.lines.insert(at, line);
        if state.lines.len() > MAX_LINES {
            let extra = state.lines.len() - MAX_LINES;
            state.lines.drain(..extra);
            state.older_available = true;
        }
        let newest = m.seq > state.last_seq;
        state.last_seq = state.last_seq.max(m.seq);
        if newest {
            state.typing.remove(&m.user.id);
            if !is_current && !mine && !m.deleted && m.seq > state.read_seq {
                state.unread += 1;
                if mentions_me {
                    state.mentions += 1;
                }
            }
        }
    }

    /// Shows a message the user just typed, as "sending…".
    pub fn queue_local(
        &mut self,
        room: &str,
        content: &str,
        reply_to: Option<u64>,
        client_id: &str,
        now_ms: f64,
    ) {
        let (Some(me), Some(state)) = (self.me.clone(), self.rooms.get_mut(room)) else {
            return;
        };
        state.lines.push(Line {
            key: client_id.to_owned(),
            seq: None,
            user: me,
            content: content.to_owned(),
            ts: now_ms as i64,
            status: LineStatus::Pending,
            reply_to,
            ..Line::default()
        });
    }

    /// The connection gave up on this message: the server could not store it.
    pub fn give_up(&mut self, client_id: &str) {
        self.mark(
            client_id,
            LineStatus::Failed("the server could not store it".to_owned()),
        );
    }

    /// The person pressed Retry on a failed line: it is "sending…" again.
    /// Returns its room, content and the message it answers, to send again
    /// with the same client_id.
    pub fn retry(&mut self, client_id: &str) -> Option<(String, String, Option<u64>)> {
        for (room, state) in &mut self.rooms {
            if let Some(line) = state.lines.iter_mut().find(|l| {
                l.seq.is_none() && l.key == client_id && matches!(l.status, LineStatus::Failed(_))
            }) {
                line.status = LineStatus::Pending;
                return Some((room.clone(), line.content.clone(), line.reply_to));
            }
        }
        None
    }

    /// Sets the status of the unsent line with this client_id.
    fn mark(&mut self, client_id: &str, status: LineStatus) {
        for state in self.rooms.values_mut() {
            for line in &mut state.lines {
                if line.seq.is_none() && line.key == client_id {
                    line.status = status.clone();
                }
            }
        }
    }

    /// Whether `text` mentions this user's `@username`.
    pub fn mentions_me(&self, text: &str) -> bool {
        self.me
            .as_ref()
            .and_then(|me| me.username.as_deref())
            .is_some_and(|name| common::mentions::mentions(text, name))
    }

    /// Read in another tab or device: catch up with it.
    fn read_elsewhere(&mut self, room: &str, seq: u64) {
        let me = self.me.as_ref().map(|u| u.id.clone());
        let Some(state) = self.rooms.get(room) else {
            return;
        };
        let read = state.read_seq.max(seq);
        let unread: Vec<&Line> = state
            .lines
            .iter()
            .filter(|l| {
                l.seq.is_some_and(|s| s > read) && !l.deleted && Some(&l.user.id) != me.as_ref()
            })
            .collect();
        let (count, mentions) = (
            unread.len() as u32,
            unread
                .iter()
                .filter(|l| self.mentions_me(&l.content))
                .count() as u32,
        );
        if let Some(state) = self.rooms.get_mut(room) {
            state.read_seq = read;
            state.unread = count;
            state.mentions = mentions;
        }
    }

    /// Unread messages in every room, for the tab's title.
    pub fn total_unread(&self) -> u32 {
        self.rooms.values().map(|r| r.unread).sum()
    }

    /// The room on screen has messages beyond the read position: moves it
    /// to the newest and returns it, for the server (`read`).
    pub fn to_report(&mut self) -> Option<(String, u64)> {
        let room = self.current.clone()?;
        let state = self.rooms.get_mut(&room)?;
        if state.last_seq <= state.read_seq {
            return None;
        }
        state.read_seq = state.last_seq;
        Some((room, state.last_seq))
    }

    /// Starts showing a room, creating its entry if the join is on its way.
    pub fn open_room(&mut self, room: &str) {
        let state = self.rooms.entry(room.to_owned()).or_default();
        state.unread = 0;
        state.mentions = 0;
        self.current = Some(room.to_owned());
    }

    /// Drops typing indicators that were not refreshed in time. Returns
    /// whether anything changed.
    pub fn expire_typing(&mut self, now_ms: f64) -> bool {
        let mut changed = false;
        for state in self.rooms.values_mut() {
            let before = state.typing.len();
            state.typing.retain(|_, (_, until)| *until > now_ms);
            changed |= state.typing.len() != before;
        }
        changed
    }

    /// "Alice is typing…", "Alice and Bob are typing…", or None.
    pub fn typing_text(&self, room: &str) -> Option<String> {
        let names: Vec<&str> = self
            .rooms
            .get(room)?
            .typing
            .values()
            .map(|(user, _)| user.name.as_str())
            .collect();
        match names.as_slice() {
            [] => None,
            [one] => Some(format!("{one} is typing…")),
            [a, b] => Some(format!("{a} and {b} are typing…")),
            [a, rest @ ..] => Some(format!("{a} and {} others are typing…", rest.len())),
        }
    }
}

/// An edit, delete or topic change, heard in seq order, applied to what
/// it changes. Applying one twice changes nothing more.
fn apply_change(state: &mut RoomState, change: &ChatMessage) {
    match change.kind {
        EntryKind::Topic => state.topic = change.content.clone(),
        EntryKind::Edit | EntryKind::Delete | EntryKind::React | EntryKind::Unreact => {
            let Some(line) = state
                .lines
                .iter_mut()
                .find(|l| l.seq.is_some() && l.seq == change.target)
            else {
                return; // not loaded: it will come as it is now
            };
            line.revision += 1;
            match change.kind {
                EntryKind::Delete => {
                    line.changing = None;
                    line.deleted = true;
                    line.content.clear();
                    line.reactions.clear();
                }
                EntryKind::Edit if !line.deleted => {
                    // Ours, on its way: this is it (or another tab's, which
                    // wins too).
                    line.changing = None;
                    line.content = change.content.clone();
                    line.edited = true;
                }
                EntryKind::React if !line.deleted => react(line, change, true),
                EntryKind::Unreact => react(line, change, false),
                _ => {}
            }
        }
        EntryKind::Message | EntryKind::Unknown => {}
    }
}

/// Adds (or takes back) `change.user`'s reaction `change.content`; a
/// repeat changes nothing.
fn react(line: &mut Line, change: &ChatMessage, on: bool) {
    let emoji = &change.content;
    let at = line.reactions.iter().position(|r| &r.emoji == emoji);
    match (at, on) {
        (Some(at), true) => {
            let users = &mut line.reactions[at].users;
            if !users.iter().any(|u| u.id == change.user.id) {
                users.push(change.user.clone());
            }
        }
        (None, true) => line.reactions.push(common::Reaction {
            emoji: emoji.clone(),
            users: vec![change.user.clone()],
        }),
        (Some(at), false) => {
            line.reactions[at].users.retain(|u| u.id != change.user.id);
            if line.reactions[at].users.is_empty() {
                line.reactions.remove(at);
            }
        }
        (None, false) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::ChatMessage;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: id.to_uppercase(),
            username: None,
        }
    }

    fn msg(seq: u64, from: &str, client_id: &str) -> ServerMsg {
        ServerMsg::Message(ChatMessage {
            room: "r".into(),
            seq,
            id: format!("id{seq}"),
            user: user(from),
            content: format!("m{seq}"),
            ts: 1,
            client_id: client_id.into(),
            ..ChatMessage::default()
        })
    }

    fn chat_in_room() -> Chat {
        let mut chat = Chat::new(user("me"));
        chat.apply(
            &ServerMsg::Joined {
                room: "r".into(),
                members: vec![user("me"), user("bob")],
                last_seq: 0,
                recovered: true,
                read_seq: 0,
                unread: 0,
                mentions: 0,
                topic: String::new(),
                moderator: false,
            },
            0.0,
        );
        chat
    }

    fn seqs(chat: &Chat) -> Vec<Option<u64>> {
        chat.rooms["r"].lines.iter().map(|l| l.seq).collect()
    }

    #[test]
    fn removal_and_refusal_drop_the_room_and_say_why() {
        let mut chat = Chat::new(user("me"));
        for room in ["lobby", "team"] {
            chat.open_room(room);
        }
        chat.apply(
            &ServerMsg::Left {
                room: "team".into(),
                reason: Some("removed".into()),
            },
            0.0,
        );
        assert!(!chat.rooms.contains_key("team"));
        assert_eq!(
            chat.current.as_deref(),
            Some("lobby"),
            "another room on screen"
        );
        assert_eq!(chat.notice.as_deref(), Some("You were removed from #team."));
        chat.notice = None;
        chat.open_room("secret");
        chat.apply(
            &ServerMsg::Error {
                code: common::ErrorCode::Forbidden,
                message: "this room is private".into(),
                reference: Some("secret".into()),
            },
            0.0,
        );
        assert!(!chat.rooms.contains_key("secret"));
        assert_eq!(
            chat.notice.as_deref(),
            Some("#secret: this room is private")
        );
        // Leaving by choice says nothing.
        chat.notice = None;
        chat.apply(
            &ServerMsg::Left {
                room: "lobby".into(),
                reason: None,
            },
            0.0,
        );
        assert_eq!(chat.notice, None);
    }

    #[test]
    fn messages_are_kept_in_seq_order_without_duplicates() {
        let mut chat = chat_in_room();
        for seq in [1, 2, 4, 3] {
            chat.apply(&msg(seq, "bob", &format!("b{seq}")), 0.0);
        }
        // 4 jumped ahead and waits; the late 3 fills the gap by itself.
        chat.fill("r", &[]);
        for seq in [2, 4] {
            chat.apply(&msg(seq, "bob", &format!("b{seq}")), 0.0);
        }
        assert_eq!(seqs(&chat), [Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(chat.rooms["r"].last_seq, 4);
    }

    #[test]
    fn a_pending_line_becomes_the_stored_message() {
        let mut chat = chat_in_room();
        chat.queue_local("r", "hello", None, "c1", 5.0);
        assert_eq!(chat.rooms["r"].lines[0].status, LineStatus::Pending);
        chat.apply(&msg(1, "bob", "b1"), 0.0);
        // Stored lines go before the pending one.
        assert_eq!(seqs(&chat), [Some(1), None]);
        chat.apply(&msg(2, "me", "c1"), 0.0);
        assert_eq!(seqs(&chat), [Some(1), Some(2)]);
        assert_eq!(chat.rooms["r"].lines[1].status, LineStatus::Sent);
    }

    #[test]
    fn internal_keeps_sending_until_the_connection_gives_up_then_retry_resends() {
        let mut chat = chat_in_room();
        chat.queue_local("r", "hello", None, "c1", 0.0);
        chat.apply(
            &ServerMsg::Error {
                code: common::ErrorCode::Internal,
                message: "the message could not be stored".into(),
                reference: Some("c1".into()),
            },
            0.0,
        );
        assert_eq!(chat.rooms["r"].lines[0].status, LineStatus::Pending);
        chat.give_up("c1");
        assert!(matches!(
            chat.rooms["r"].lines[0].status,
            LineStatus::Failed(_)
        ));
        assert_eq!(chat.retry("c1"), Some(("r".into(), "hello".into(), None)));
        assert_eq!(chat.rooms["r"].lines[0].status, LineStatus::Pending);
        // Only a failed line can be retried.
        assert_eq!(chat.retry("c1"), None);
    }

    #[test]
    fn a_refused_message_is_marked_failed() {
        let mut chat = chat_in_room();
        chat.queue_local("r", "spam", None, "c9", 0.0);
        chat.apply(
            &ServerMsg::Error {
                code: common::ErrorCode::RateLimited,
                message: "sending too fast".into(),
                reference: Some("c9".into()),
            },
            0.0,
        );
        assert_eq!(
            chat.rooms["r"].lines[0].status,
            LineStatus::Failed("sending too fast".into())
        );
    }

    #[test]
    fn unread_comes_from_the_server_and_follows_other_tabs() {
        let mut chat = chat_in_room();
        chat.apply(
            &ServerMsg::Joined {
                room: "other".into(),
                members: vec![],
                last_seq: 9,
                recovered: true,
                read_seq: 5,
                unread: 4,
                mentions: 0,
                topic: String::new(),
                moderator: false,
            },
            0.0,
        );
        assert_eq!(chat.rooms["other"].unread, 4, "counted by the server");
        // A replayed message at or below the read position is not unread.
        let mut old = msg(5, "bob", "b5");
        let mut new = msg(10, "bob", "b10");
        for m in [&mut old, &mut new] {
            if let ServerMsg::Message(m) = m {
                m.room = "other".into();
            }
        }
        chat.apply(&old, 0.0);
        chat.apply(&new, 0.0);
        assert_eq!(chat.rooms["other"].unread, 5);
        // Read to 10 in another tab.
        chat.apply(
            &ServerMsg::Read {
                room: "other".into(),
                seq: 10,
            },
            0.0,
        );
        assert_eq!(chat.rooms["other"].unread, 0);
        // On screen: reported once, up to the newest.
        chat.open_room("r");
        chat.apply(&msg(1, "bob", "b1"), 0.0);
        assert_eq!(chat.to_report(), Some(("r".into(), 1)));
        assert_eq!(chat.to_report(), None, "nothing new since");
    }

    #[test]
    fn unread_counts_rooms_not_on_screen() {
        let mut chat = chat_in_room();
        chat.apply(&msg(1, "bob", "b1"), 0.0);
        assert_eq!(chat.rooms["r"].unread, 1);
        chat.open_room("r");
        assert_eq!(chat.rooms["r"].unread, 0);
        chat.apply(&msg(2, "bob", "b2"), 0.0);
        assert_eq!(chat.rooms["r"].unread, 0, "on screen");
    }

    #[test]
    fn typing_shows_expires_and_clears_on_message() {
        let mut chat = chat_in_room();
        let typing = ServerMsg::Typing {
            room: "r".into(),
            user: user("bob"),
        };
        chat.apply(&typing, 1_000.0);
        assert_eq!(chat.typing_text("r").as_deref(), Some("BOB is typing…"));
        assert!(!chat.expire_typing(5_999.0));
        assert!(chat.expire_typing(6_000.0));
        assert_eq!(chat.typing_text("r"), None);
        // A refresh extends it; the person's message clears it.
        chat.apply(&typing, 10_000.0);
        chat.apply(&msg(1, "bob", "b1"), 10_001.0);
        assert_eq!(chat.typing_text("r"), None);
    }

    fn chat_live_at(seq: u64) -> Chat {
        let mut chat = Chat::new(user("me"));
        chat.apply(
            &ServerMsg::Joined {
                room: "r".into(),
                members: vec![],
                last_seq: seq,
                recovered: true,
                read_seq: 0,
                unread: 0,
                mentions: 0,
                topic: String::new(),
                moderator: false,
            },
            0.0,
        );
        chat
    }

    fn chat_message(seq: u64) -> ChatMessage {
        match msg(seq, "bob", &format!("b{seq}")) {
            ServerMsg::Message(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_live_gap_is_fetched_before_later_messages_show() {
        let mut chat = chat_live_at(5);
        assert_eq!(chat.apply(&msg(6, "bob", "b6"), 0.0), None);
        let gap = chat.apply(&msg(9, "bob", "b9"), 0.0);
        assert_eq!(
            gap,
            Some(Gap {
                room: "r".into(),
                after: 6,
                before: 9
            })
        );
        // More arrive while fetching: held, and no second request.
        assert_eq!(chat.apply(&msg(10, "bob", "b10"), 0.0), None);
        assert_eq!(seqs(&chat), [Some(6)], "nothing after the gap shows yet");
        chat.fill("r", &[chat_message(7), chat_message(8)]);
        assert_eq!(seqs(&chat), [Some(6), Some(7), Some(8), Some(9), Some(10)]);
        assert_eq!(chat.rooms["r"].last_seq, 10);
        assert_eq!(chat.apply(&msg(11, "bob", "b11"), 0.0), None);
    }

    #[test]
    fn a_replay_before_joined_is_not_a_gap() {
        let mut chat = chat_in_room();
        chat.set_offline();
        // A fresh join's replay may start anywhere.
        assert_eq!(chat.apply(&msg(40, "bob", "b40"), 0.0), None);
        assert_eq!(chat.apply(&msg(41, "bob", "b41"), 0.0), None);
        assert_eq!(seqs(&chat), [Some(40), Some(41)]);
    }

    #[test]
    fn older_pages_go_on_top() {
        let mut chat = chat_live_at(50);
        for seq in 51..=53 {
            chat.apply(&msg(seq, "bob", &format!("b{seq}")), 0.0);
        }
        assert_eq!(chat.oldest_seq("r"), Some(51));
        chat.prepend("r", &[chat_message(49), chat_message(50)]);
        assert_eq!(seqs(&chat)[..3], [Some(49), Some(50), Some(51)]);
        assert!(chat.rooms["r"].older_available);
        chat.prepend("r", &[chat_message(1)]);
        assert!(!chat.rooms["r"].older_available, "seq 1 is the start");
    }

    #[test]
    fn typing_is_sent_at_most_every_two_seconds() {
        let mut throttle = TypingThrottle::default();
        let sent: Vec<f64> = [0.0, 500.0, 1_999.0, 2_000.0, 2_100.0, 4_500.0]
            .into_iter()
            .filter(|&t| throttle.keystroke(t))
            .collect();
        assert_eq!(sent, [0.0, 2_000.0, 4_500.0]);
        // After sending a message, the next keystroke counts at once.
        throttle.sent();
        assert!(throttle.keystroke(4_600.0));
    }

    #[test]
    fn presence_follows_joins_and_leaves() {
        let mut chat = chat_in_room();
        chat.apply(
            &ServerMsg::UserJoined {
                room: "r".into(),
                user: user("carol"),
            },
            0.0,
        );
        assert_eq!(chat.rooms["r"].members.len(), 3);
        chat.apply(
            &ServerMsg::UserLeft {
                room: "r".into(),
                user: user("bob"),
            },
            0.0,
        );
        let names: Vec<_> = chat.rooms["r"]
            .members
            .values()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(names, ["CAROL", "ME"]);
    }

    fn change(
        seq: u64,
        from: &str,
        kind: EntryKind,
        target: Option<u64>,
        text: &str,
    ) -> ChatMessage {
        ChatMessage {
            kind,
            target,
            content: text.into(),
            ..chat_message_from(seq, from)
        }
    }

    fn chat_message_from(seq: u64, from: &str) -> ChatMessage {
        match msg(seq, from, &format!("{from}{seq}")) {
            ServerMsg::Message(m) => m,
            _ => unreachable!(),
        }
    }

    fn line(chat: &Chat, seq: u64) -> Line {
        chat.quoted("r", seq).cloned().expect("the line is loaded")
    }

    #[test]
    fn live_changes_apply_to_their_message_and_are_not_lines() {
        let mut chat = chat_in_room();
        chat.open_room("elsewhere");
        chat.apply(&msg(1, "bob", "b1"), 0.0);
        chat.apply(
            &ServerMsg::Event(change(2, "bob", EntryKind::Edit, Some(1), "fixed")),
            0.0,
        );
        chat.apply(
            &ServerMsg::Event(change(3, "bob", EntryKind::Topic, None, "Plans")),
            0.0,
        );
        let state = &chat.rooms["r"];
        assert_eq!(state.lines.len(), 1, "changes are not lines");
        assert_eq!((state.last_seq, state.topic.as_str()), (3, "Plans"));
        assert_eq!(state.unread, 1, "an edit or a topic is not news");
        let edited = line(&chat, 1);
        assert!(edited.edited);
        assert_eq!(edited.content, "fixed");
        chat.apply(
            &ServerMsg::Event(change(4, "bob", EntryKind::Delete, Some(1), "")),
            0.0,
        );
        let gone = line(&chat, 1);
        assert!(gone.deleted && gone.content.is_empty());
        // An edit that raced with the delete cannot bring the text back.
        chat.apply(
            &ServerMsg::Event(change(5, "bob", EntryKind::Edit, Some(1), "back")),
            0.0,
        );
        assert!(line(&chat, 1).content.is_empty());
    }

    /// A page of older history holds messages as they are now: its old
    /// edits must not put back a text that a newer edit replaced.
    #[test]
    fn older_pages_do_not_replay_their_changes() {
        let mut chat = chat_live_at(10);
        chat.apply(
            &ServerMsg::Event(change(11, "bob", EntryKind::Edit, Some(3), "third")),
            0.0,
        );
        let mut three = chat_message_from(3, "bob");
        three.content = "third".into();
        three.edited = Some(5);
        let older = [
            three,
            change(4, "bob", EntryKind::Edit, Some(3), "first"),
            change(5, "bob", EntryKind::Topic, None, "old topic"),
        ];
        chat.prepend("r", &older);
        assert_eq!(line(&chat, 3).content, "third");
        assert_eq!(chat.rooms["r"].topic, "", "an old topic is not the topic");
        assert_eq!(chat.oldest_seq("r"), Some(3));
        assert!(chat.rooms["r"].older_available);
        // A room whose first entry was a change still pages down to 1.
        chat.prepend(
            "r",
            &[
                change(1, "bob", EntryKind::Topic, None, "first topic"),
                chat_message_from(2, "bob"),
            ],
        );
        assert_eq!(chat.oldest_seq("r"), Some(1));
        assert!(!chat.rooms["r"].older_available);
    }

    #[test]
    fn our_edit_shows_at_once_and_a_refusal_puts_the_text_back() {
        let mut chat = chat_in_room();
        chat.apply(&msg(1, "me", "m1"), 0.0);
        chat.edit_local("r", 1, "better", "e1");
        let pending = line(&chat, 1);
        assert_eq!(pending.content, "better");
        assert!(pending.changing.is_some());
        chat.apply(
            &ServerMsg::Error {
                code: common::ErrorCode::NoSuchMessage,
                message: "no".into(),
                reference: Some("e1".into()),
            },
            0.0,
        );
        let back = line(&chat, 1);
        assert_eq!(back.content, "m1");
        assert!(back.changing.is_none());
        assert!(
            chat.notice
                .as_deref()
                .is_some_and(|n| n.contains("not saved"))
        );
        // Accepted: the event confirms it.
        chat.edit_local("r", 1, "best", "e2");
        chat.apply(
            &ServerMsg::Event(change(2, "me", EntryKind::Edit, Some(1), "best")),
            0.0,
        );
        let saved = line(&chat, 1);
        assert_eq!(
            (saved.content.as_str(), saved.changing.is_none()),
            ("best", true)
        );
    }

    #[test]
    fn reactions_are_a_set_per_person_and_emoji() {
        let mut chat = chat_in_room();
        chat.apply(&msg(1, "bob", "b1"), 0.0);
        let mut seq = 1;
        let mut react = |chat: &mut Chat, who: &str, kind: EntryKind, emoji: &str| {
            seq += 1;
            chat.apply(
                &ServerMsg::Event(change(seq, who, kind, Some(1), emoji)),
                0.0,
            );
        };
        react(&mut chat, "bob", EntryKind::React, "👍");
        react(&mut chat, "bob", EntryKind::React, "👍");
        react(&mut chat, "me", EntryKind::React, "👍");
        react(&mut chat, "me", EntryKind::React, "🎉");
        react(&mut chat, "me", EntryKind::Unreact, "🎉");
        react(&mut chat, "me", EntryKind::Unreact, "🎉");
        let line = line(&chat, 1);
        assert_eq!(line.reactions.len(), 1, "🎉 went with its last reactor");
        let who: Vec<&str> = line.reactions[0]
            .users
            .iter()
            .map(|u| u.id.as_str())
            .collect();
        assert_eq!(who, ["bob", "me"]);
        assert!(line.reacted("👍", "me") && !line.reacted("🎉", "me"));
        assert_eq!(chat.rooms["r"].last_seq, 7);
    }

    #[test]
    fn a_mention_of_me_counts_as_a_mention_elsewhere() {
        let mut chat = Chat::new(User {
            id: "me".into(),
            name: "Me".into(),
            username: Some("me_too".into()),
        });
        chat.apply(
            &ServerMsg::Joined {
                room: "r".into(),
                members: vec![],
                last_seq: 0,
                recovered: true,
                read_seq: 0,
                unread: 3,
                mentions: 1,
                topic: String::new(),
                moderator: false,
            },
            0.0,
        );
        assert_eq!((chat.rooms["r"].unread, chat.rooms["r"].mentions), (3, 1));
        let mut mention = chat_message(1);
        mention.content = "@Me_too can you look?".into();
        chat.apply(&ServerMsg::Message(mention), 0.0);
        chat.apply(&msg(2, "bob", "b2"), 0.0);
        assert_eq!((chat.rooms["r"].unread, chat.rooms["r"].mentions), (5, 2));
        assert_eq!(chat.total_unread(), 5);
        chat.open_room("r");
        assert_eq!((chat.rooms["r"].unread, chat.rooms["r"].mentions), (0, 0));
    }
}
