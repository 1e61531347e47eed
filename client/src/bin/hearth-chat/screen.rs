//! What the terminal shows of each event: one line, or nothing. Pure, so
//! what a person reads is tested without a server.

use common::{ChatMessage, EntryKind, ServerMsg};
use hearth_client::{Event, Phase};

/// The line for `event`, if it is worth one. `me` is this person's id.
pub fn line(event: &Event, me: &str) -> Option<String> {
    match event {
        Event::Server(msg) => server_line(msg, me),
        Event::Phase(phase) => phase_line(*phase),
        Event::SignedOut(reason) => Some(format!("! signed out: {reason}")),
        Event::Lagged(missed) => Some(format!(
            "! {missed} events were missed while the screen fell behind"
        )),
    }
}

fn server_line(msg: &ServerMsg, me: &str) -> Option<String> {
    Some(match msg {
        ServerMsg::Message(m) => message(m),
        ServerMsg::Event(m) => change(m)?,
        ServerMsg::UserJoined { room, user } if user.id != me => {
            format!("→ {} joined #{room}", user.name)
        }
        ServerMsg::UserLeft { room, user } if user.id != me => {
            format!("← {} left #{room}", user.name)
        }
        ServerMsg::Left { room, reason } => match reason {
            Some(reason) => format!("! you are no longer in #{room} ({reason})"),
            None => format!("you left #{room}"),
        },
        ServerMsg::Error { message, .. } => format!("! {message}"),
        ServerMsg::RoomsChanged => "* your rooms changed: /rooms lists them".into(),
        _ => return None,
    })
}

/// `#room alice: text`, with what else it carries.
pub fn message(m: &ChatMessage) -> String {
    let mut line = format!("#{} {}: {}", m.room, m.user.name, m.content);
    if let Some(reply_to) = m.reply_to {
        line.push_str(&format!("  (reply to #{reply_to})"));
    }
    for file in &m.files {
        line.push_str(&format!("  [file: {}, {} bytes]", file.name, file.size));
    }
    if m.deleted {
        line = format!("#{} {}: (deleted)", m.room, m.user.name);
    }
    line
}

fn change(m: &ChatMessage) -> Option<String> {
    let who = &m.user.name;
    let room = &m.room;
    let target = m.target.map(|t| format!("#{t}")).unwrap_or_default();
    Some(match m.kind {
        EntryKind::Edit => format!("#{room} {who} edited {target}: {}", m.content),
        EntryKind::Delete => format!("#{room} {who} deleted {target}"),
        EntryKind::Topic => format!("#{room} {who} set the topic: {}", m.content),
        EntryKind::React => format!("#{room} {who} reacted {} to {target}", m.content),
        EntryKind::Unreact | EntryKind::Message | EntryKind::Unknown => return None,
    })
}

fn phase_line(phase: Phase) -> Option<String> {
    Some(match phase {
        Phase::Open => "✓ connected".into(),
        Phase::Waiting { delay_ms, .. } => format!(
            "… not connected; trying again in {:.0} s",
            (f64::from(delay_ms) / 1000.0).ceil()
        ),
        Phase::SignedOut | Phase::Stopped | Phase::Idle | Phase::Connecting { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::User;

    fn said(content: &str) -> ChatMessage {
        ChatMessage {
            room: "general".into(),
            seq: 7,
            id: "m7".into(),
            user: User {
                id: "u1".into(),
                name: "Alice".into(),
                username: Some("alice".into()),
            },
            content: content.into(),
            ts: 0,
            client_id: "c".into(),
            kind: EntryKind::Message,
            target: None,
            reply_to: None,
            edited: None,
            deleted: false,
            reactions: Vec::new(),
            files: Vec::new(),
            formatted: None,
        }
    }

    #[test]
    fn messages_and_changes_read_as_lines() {
        let event = Event::Server(ServerMsg::Message(said("hi **there**")));
        assert_eq!(line(&event, "me").unwrap(), "#general Alice: hi **there**");
        let mut edit = said("hello");
        edit.kind = EntryKind::Edit;
        edit.target = Some(3);
        let event = Event::Server(ServerMsg::Event(edit));
        assert_eq!(
            line(&event, "me").unwrap(),
            "#general Alice edited #3: hello"
        );
        let mut gone = said("");
        gone.deleted = true;
        assert_eq!(message(&gone), "#general Alice: (deleted)");
    }

    #[test]
    fn your_own_presence_and_the_heartbeat_make_no_line() {
        let alice = said("").user;
        let joined = Event::Server(ServerMsg::UserJoined {
            room: "general".into(),
            user: alice.clone(),
        });
        assert_eq!(line(&joined, "u1"), None);
        assert_eq!(line(&joined, "me").unwrap(), "→ Alice joined #general");
        assert_eq!(line(&Event::Server(ServerMsg::Ping), "me"), None);
    }

    #[test]
    fn the_connection_says_when_it_will_try_again() {
        let waiting = Event::Phase(Phase::Waiting {
            attempt: 2,
            delay_ms: 1_400,
        });
        assert_eq!(
            line(&waiting, "me").unwrap(),
            "… not connected; trying again in 2 s"
        );
        assert_eq!(
            line(&Event::Phase(Phase::Open), "me").unwrap(),
            "✓ connected"
        );
    }
}
