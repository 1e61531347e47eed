//! What the UI shows, as plain data: rooms, their messages, members, who is
//! typing, unread counts. Server messages are folded in with `apply`; the
//! view only reads. Pure, so it is unit-tested natively.
//!
//! Over 500 lines: it folds every kind of server message into the UI's
//! state, one `apply` and the state it updates; its tests are
//! `tests/chat.rs`.

use std::collections::BTreeMap;

use common::{ChatMessage, EntryKind, Notify, ServerMsg, User};

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
    /// An edit or delete of ours is on its way.
    pub changing: Option<Changing>,
    /// Each emoji with who reacted with it, in the order they first did.
    pub reactions: Vec<common::Reaction>,
    /// Bumped by every change, so the view redraws the line.
    pub revision: u32,
    /// Not a message: the topic was set to `content` (empty: cleared), by
    /// `user`. Shown as a line of the log, never counted as unread.
    pub topic: bool,
    /// A message's files (uploaded already, while it is pending).
    pub files: Vec<common::FileInfo>,
    /// `content`'s formatting as the server sent it (`None`: shown as it
    /// is; so is ours until it is stored, and an edit of ours until it is
    /// heard back).
    pub formatted: Option<Box<[common::markup::Block]>>,
}

/// An edit or delete of ours on its way: its client_id, and the text and
/// formatting to put back if it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changing {
    pub client_id: String,
    pub content: String,
    pub formatted: Option<Box<[common::markup::Block]>>,
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
    /// What of the room notifies this user, as the server last said it or
    /// they last chose it (`None`: not known yet, `Notify::default_for`).
    pub notify: Option<Notify>,
    /// The "New" divider goes after this seq: how far this user had read
    /// when they came to the room with unread messages (see `first_new`).
    /// Set when the room is opened, kept while it stays on screen.
    pub new_after: Option<u64>,
    /// A `joined` arrived for it since the page loaded: `read_seq` is the
    /// server's, not a guess.
    pub joined_once: bool,
}

/// What a room's entry in the sidebar shows of its unread messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Badge {
    pub unread: u32,
    /// Of those, the ones that notify (all of them where every message
    /// does).
    pub mentions: u32,
    /// A dot, not a count.
    pub muted: bool,
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
    /// The last message asked to be brought into view and highlighted (a
    /// link to it, a search result, a quote), once it is loaded: room, seq,
    /// and the number of the request (see `bring_into_view`).
    pub shown: Option<(String, u64, u32)>,
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
                let mentions = notifying(notify_of(room, state), *unread, *mentions);
                state.mentions = if is_current { 0 } else { mentions };
                state.members = members.iter().map(|u| (u.id.clone(), u.clone())).collect();
                state.last_seq = state.last_seq.max(*last_seq);
                state.live = true;
                // Opened before the server said how far it was read (a
                // reload): the divider goes where the reading stopped.
                if is_current && !state.joined_once && *unread > 0 {
                    state.new_after = Some(*read_seq);
                }
                state.joined_once = true;
                state.topic = topic.clone();
                state.moderator = *moderator;
                if !recovered || state.floor > 1 {
                    state.older_available = true;
                }
            }
            ServerMsg::Read { room, seq } => self.read_elsewhere(room, *seq),
            ServerMsg::RoomsChanged => self.rooms_changed += 1,
            // Renamed (here or on another device): the name shown as ours.
            ServerMsg::AccountChanged { user } => self.me = Some(user.clone()),
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
            let formatted = line.formatted.take();
            line.changing = Some(Changing {
                client_id: client_id.to_owned(),
                content: before,
                formatted,
            });
            line.edited = true;
            line.revision += 1;
        }
    }

    /// Marks a message as being deleted by us.
    pub fn delete_local(&mut self, room: &str, seq: u64, client_id: &str) {
        if let Some(line) = self.line_mut(room, seq) {
            line.changing = Some(Changing {
                client_id: client_id.to_owned(),
                content: line.content.clone(),
                formatted: line.formatted.clone(),
            });
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
                if let Some(change) = line.changing.take_if(|c| c.client_id == client_id) {
                    line.content = change.content;
                    line.formatted = change.formatted;
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
        let for_me = self.is_for_me(m);
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
            if m.kind == EntryKind::Topic && !state.lines.iter().any(|l| l.seq == Some(m.seq)) {
                insert_in_order(state, stored_line(m));
            }
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
        let line = stored_line(m);
        insert_in_order(state, line);
        let newest = m.seq > state.last_seq;
        state.last_seq = state.last_seq.max(m.seq);
        if newest {
            state.typing.remove(&m.user.id);
            if !is_current && !mine && !m.deleted && m.seq > state.read_seq {
                state.unread += 1;
                if for_me {
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
        self.queue_local_with_files(room, content, reply_to, Vec::new(), client_id, now_ms);
    }

    /// `queue_local` of a message with files.
    pub fn queue_local_with_files(
        &mut self,
        room: &str,
        content: &str,
        reply_to: Option<u64>,
        files: Vec<common::FileInfo>,
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
            files,
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
    pub fn retry(&mut self, client_id: &str) -> Option<(String, common::Post)> {
        for (room, state) in &mut self.rooms {
            if let Some(line) = state.lines.iter_mut().find(|l| {
                l.seq.is_none() && l.key == client_id && matches!(l.status, LineStatus::Failed(_))
            }) {
                line.status = LineStatus::Pending;
                // The same files: the server knows them as this
                // message's, so a retry never sends them twice.
                let post = common::Post::Message {
                    content: line.content.clone(),
                    reply_to: line.reply_to,
                    files: line.files.iter().map(|f| f.id.clone()).collect(),
                };
                return Some((room.clone(), post));
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
                l.seq.is_some_and(|s| s > read)
                    && !l.deleted
                    && !l.topic
                    && Some(&l.user.id) != me.as_ref()
            })
            .collect();
        let count = unread.len() as u32;
        let mentioning = unread
            .iter()
            .filter(|l| self.mentions_me(&l.content))
            .count() as u32;
        let mentions = notifying(notify_of(room, state), count, mentioning);
        if let Some(state) = self.rooms.get_mut(room) {
            state.read_seq = read;
            state.unread = count;
            state.mentions = mentions;
        }
    }

    /// Unread messages in every room but the muted ones, for the tab's
    /// title.
    pub fn total_unread(&self) -> u32 {
        self.rooms
            .iter()
            .filter(|(room, state)| notify_of(room, state) != Notify::Mute)
            .map(|(_, state)| state.unread)
            .sum()
    }

    /// What `room`'s entry in the sidebar shows.
    pub fn badge(&self, room: &str) -> Badge {
        self.rooms
            .get(room)
            .map_or_else(Badge::default, |state| Badge {
                unread: state.unread,
                mentions: state.mentions,
                muted: notify_of(room, state) == Notify::Mute,
            })
    }

    /// What of `room` notifies this user.
    pub fn notify(&self, room: &str) -> Notify {
        self.rooms
            .get(room)
            .and_then(|state| state.notify)
            .unwrap_or_else(|| Notify::default_for(room))
    }

    /// This user chose what of `room` notifies them: the counts follow at
    /// once (from the messages at hand, where only mentions notify).
    pub fn set_notify(&mut self, room: &str, notify: Notify) {
        let mentioning = self.rooms.get(room).map_or(0, |state| {
            state
                .lines
                .iter()
                .filter(|l| {
                    l.seq.is_some_and(|s| s > state.read_seq)
                        && !l.deleted
                        && !l.topic
                        && self.me.as_ref().is_none_or(|me| me.id != l.user.id)
                        && self.mentions_me(&l.content)
                })
                .count() as u32
        });
        if let Some(state) = self.rooms.get_mut(room) {
            state.notify = Some(notify);
            state.mentions = notifying(notify, state.unread, mentioning.min(state.unread));
        }
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

    /// Follows a room without showing it (one of this user's rooms, or a
    /// direct conversation, that the server lists): its messages count as
    /// unread from now on. `false` if it was followed already.
    pub fn follow(&mut self, room: &str) -> bool {
        if self.rooms.contains_key(room) {
            return false;
        }
        self.rooms.insert(room.to_owned(), RoomState::default());
        true
    }

    /// The seq of this user's newest message in `room` that is still
    /// there to edit.
    pub fn last_own_message(&self, room: &str) -> Option<u64> {
        let me = &self.me.as_ref()?.id;
        self.rooms
            .get(room)?
            .lines
            .iter()
            .rev()
            .find(|l| l.user.id == *me && !l.deleted && !l.topic && l.seq.is_some())
            .and_then(|l| l.seq)
    }

    /// What the room list says of a followed room: what notifies this
    /// user, always; and what is unread in it, until its `joined` says it
    /// (or it is on screen).
    pub fn listed(&mut self, room: &str, unread: u32, mentions: u32, notify: Option<Notify>) {
        let is_current = self.current.as_deref() == Some(room);
        let Some(state) = self.rooms.get_mut(room) else {
            return;
        };
        if notify.is_some() && notify != state.notify {
            state.notify = notify;
            if state.live {
                // Chosen on another device: count as it says from now on.
                let notify = notify_of(room, state);
                state.mentions = notifying(notify, state.unread, state.mentions.min(state.unread));
            }
        }
        if state.live || is_current {
            return;
        }
        state.unread = unread;
        state.mentions = notifying(notify_of(room, state), unread, mentions);
    }

    /// Whether a message should notify this user: they did not write it,
    /// and the room notifies them of every message, or of mentions and it
    /// names them.
    pub fn is_for_me(&self, m: &ChatMessage) -> bool {
        let mine = self.me.as_ref().is_some_and(|me| me.id == m.user.id);
        !mine
            && match self.notify(&m.room) {
                Notify::All => true,
                Notify::Mentions => self.mentions_me(&m.content),
                Notify::Mute => false,
            }
    }

    /// Starts showing a room, creating its entry if the join is on its way.
    pub fn open_room(&mut self, room: &str) {
        let state = self.rooms.entry(room.to_owned()).or_default();
        // Back with unread messages: "New" goes where the reading stopped.
        // Not known before its first `joined`, which then sets it.
        if self.current.as_deref() != Some(room) {
            state.new_after = (state.joined_once && state.unread > 0).then_some(state.read_seq);
        }
        state.unread = 0;
        state.mentions = 0;
        self.current = Some(room.to_owned());
    }

    /// The seq of the line the "New" divider goes before in `room`: the
    /// first message someone else sent after the read position the person
    /// came to the room with (`new_after`), if it is loaded.
    pub fn first_new(&self, room: &str) -> Option<u64> {
        let state = self.rooms.get(room)?;
        let read = state.new_after?;
        // Older unread history not paged in yet: the first of what is
        // here is not the first unread.
        if state.older_available && state.floor > read + 1 {
            return None;
        }
        // A message, still there, from someone else.
        let me = self.me.as_ref().map_or("", |me| me.id.as_str());
        state
            .lines
            .iter()
            .filter(|l| !l.topic && !l.deleted && l.user.id != me)
            .filter_map(|l| l.seq)
            .find(|seq| *seq > read)
    }

    /// Asks the list to bring message `seq` of `room` into view: a new
    /// request, even for the message shown last.
    pub fn bring_into_view(&mut self, room: String, seq: u64) {
        let number = self.shown.as_ref().map_or(0, |(.., n)| n.wrapping_add(1));
        self.shown = Some((room, seq, number));
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
                    line.formatted = None;
                    line.reactions.clear();
                }
                EntryKind::Edit if !line.deleted => {
                    // Ours, on its way: this is it (or another tab's, which
                    // wins too).
                    line.changing = None;
                    line.content = change.content.clone();
                    line.formatted = change.formatted.clone();
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

/// The line of a stored entry: a message, or a topic change.
fn stored_line(m: &ChatMessage) -> Line {
    Line {
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
        topic: m.kind == EntryKind::Topic,
        files: m.files.clone(),
        formatted: m.formatted.clone(),
    }
}

/// Puts a stored line in seq order, pending ones after them, keeping at
/// most `MAX_LINES` (the oldest go; they can be paged in again).
fn insert_in_order(state: &mut RoomState, line: Line) {
    let seq = line.seq;
    let at = state
        .lines
        .iter()
        .position(|l| l.seq.is_none() || l.seq > seq)
        .unwrap_or(state.lines.len());
    state.lines.insert(at, line);
    if state.lines.len() > MAX_LINES {
        let extra = state.lines.len() - MAX_LINES;
        state.lines.drain(..extra);
        state.older_available = true;
    }
}

/// What of a room notifies its member, as it knows it or by default.
fn notify_of(room: &str, state: &RoomState) -> Notify {
    state.notify.unwrap_or_else(|| Notify::default_for(room))
}

/// Of `unread` messages, `mentioning` of them naming this user: how many
/// notify them.
fn notifying(notify: Notify, unread: u32, mentioning: u32) -> u32 {
    match notify {
        Notify::All => unread,
        Notify::Mentions => mentioning,
        Notify::Mute => 0,
    }
}

/// Whether `room` is a direct conversation (its name is the server's
/// `dm-…`; see `common::direct_room`).
pub fn is_direct(room: &str) -> bool {
    common::validate::reserved_room(room)
}
