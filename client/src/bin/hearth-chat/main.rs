//! `hearth-chat`: Hearth in a terminal.
//!
//! ```text
//! hearth-chat --server https://chat.example.com --user alice
//! ```
//!
//! Signs in (asking for the password, or reading `HEARTH_PASSWORD`), keeps
//! the session for next time (`saved.rs`), joins your rooms (or those named
//! with `--room`), shows what is said and sends each line you type to the
//! current room. Lines typed while the server is away wait in the outbox
//! and are sent, once each, when it is back. At the end of input (Ctrl-D,
//! or the end of a piped file) it waits for what is still unsent, then
//! leaves.

mod saved;
mod screen;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use hearth_client::{Client, Error, Post, Server, Session};
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinSet;

use saved::{Saved, Sessions};

#[derive(Parser, Debug)]
#[command(version, about = "Hearth in a terminal: read and write in your rooms.")]
struct Args {
    /// The server: https://host (http:// for one on this machine).
    #[arg(long, env = "HEARTH_SERVER")]
    server: String,
    /// Your username. Without it, the session kept for this server.
    #[arg(long, env = "HEARTH_USER")]
    user: Option<String>,
    /// A room to join (again for more). Without it, your rooms, or
    /// #general if you have none.
    #[arg(long = "room")]
    rooms: Vec<String>,
    /// Create the account (--user) instead of signing in to it.
    #[arg(long)]
    sign_up: bool,
    /// How long to wait at the end of input for messages not yet sent.
    #[arg(long, default_value_t = 60)]
    drain_secs: u64,
}

const HELP: &str = "\
type a line to send it to the current room; or
  /join ROOM   join a room and make it the current one
  /to ROOM     make a joined room the current one
  /leave       leave the current room
  /rooms       list the rooms you may see
  /quit        leave (after sending what is still unsent)";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = Server::new(&args.server)?;
    let session = sign_in(&server, &args).await?;
    println!(
        "signed in to {} as {} (@{})",
        server.url(),
        session.user.name,
        session.user.username.as_deref().unwrap_or("guest")
    );
    let client = Client::connect(&session);
    let mut events = client.events();
    let me = session.user.id.clone();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Some(line) = screen::line(&event, &me) {
                println!("{line}");
            }
        }
    });

    let rooms = first_rooms(&session, &args.rooms).await;
    let mut current = None;
    for room in &rooms {
        if join(&client, room).await {
            current.get_or_insert_with(|| room.clone());
        }
    }
    match &current {
        Some(room) => println!("writing to #{room} (/help for commands)"),
        None => println!("no room joined: /join ROOM"),
    }

    let mut sending = JoinSet::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.context("reading input")? {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let Some(command) = line.strip_prefix('/') else {
            let Some(room) = &current else {
                println!("! no current room: /join ROOM");
                continue;
            };
            match client.submit(room, Post::text(line)).await {
                // Reported when it is stored, or when it fails; the
                // terminal goes on meanwhile.
                Ok(receipt) => {
                    sending.spawn(async move {
                        if let Err(err) = receipt.stored().await {
                            println!("! not sent: {err}");
                        }
                    });
                }
                Err(err) => println!("! not sent: {err}"),
            }
            continue;
        };
        let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
        let rest = rest.trim().trim_start_matches('#');
        match verb {
            "join" | "j" if !rest.is_empty() => {
                if join(&client, rest).await {
                    current = Some(rest.to_owned());
                    println!("writing to #{rest}");
                }
            }
            "to" if !rest.is_empty() => {
                current = Some(rest.to_owned());
                println!("writing to #{rest}");
            }
            "leave" => {
                if let Some(room) = current.take() {
                    client.leave(&room).await?;
                }
            }
            "rooms" => match session.rooms().await {
                Ok(rooms) => {
                    for room in rooms {
                        let mark = if room.role.is_some() { "*" } else { " " };
                        let unread = if room.unread > 0 {
                            format!(" ({} unread)", room.unread)
                        } else {
                            String::new()
                        };
                        println!("{mark} #{}{unread}", room.name);
                    }
                }
                Err(err) => println!("! {err}"),
            },
            "quit" | "q" => break,
            _ => println!("{HELP}"),
        }
    }

    // What was typed is sent before leaving, however long the server is
    // away (up to --drain-secs).
    let unsent = sending.len();
    let drained =
        tokio::time::timeout(Duration::from_secs(args.drain_secs), sending.join_all()).await;
    if drained.is_err() {
        println!(
            "! leaving with messages unsent (the server did not take them in {} s)",
            args.drain_secs
        );
    } else if unsent > 0 {
        tracing::debug!(unsent, "everything typed was sent");
    }
    client.close().await;
    let _ = printer.await;
    if drained.is_err() {
        std::process::exit(3);
    }
    Ok(())
}

/// Joins `room` (the server sends its newest messages first, which the
/// printer shows); false (said why) if it cannot be joined.
async fn join(client: &Client, room: &str) -> bool {
    match client.join(room).await {
        Ok(joined) => {
            if !joined.topic.is_empty() {
                println!("#{room}: {}", joined.topic);
            }
            true
        }
        Err(err) => {
            println!("! could not join #{room}: {err}");
            false
        }
    }
}

/// The rooms asked for; else the person's own; else #general.
async fn first_rooms(session: &Session, asked: &[String]) -> Vec<String> {
    if !asked.is_empty() {
        return asked.to_vec();
    }
    let mine: Vec<String> = session
        .rooms()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|room| room.role.is_some())
        .map(|room| room.name)
        .collect();
    if mine.is_empty() {
        vec!["general".into()]
    } else {
        mine
    }
}

/// The kept session if it still works (and is the asked-for user's); else
/// a new one, which is kept.
async fn sign_in(server: &Server, args: &Args) -> Result<Session> {
    let sessions = Sessions::open()?;
    if let Some(saved) = sessions.get(server.url())
        && args
            .user
            .as_ref()
            .is_none_or(|user| *user == saved.username)
        && !args.sign_up
    {
        match server.resume(&saved.token).await {
            Ok(session) => return Ok(session),
            Err(Error::SignedOut(reason)) => {
                println!("the kept session ended ({reason}): sign in again");
                sessions.put(server.url(), None)?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    let Some(user) = &args.user else {
        bail!("no session kept for {}: give --user", server.url());
    };
    let password = password(user)?;
    let session = if args.sign_up {
        server.sign_up(user, &password, user).await?
    } else {
        server.sign_in(user, &password).await?
    };
    sessions.put(
        server.url(),
        Some(Saved {
            username: user.clone(),
            token: session.token.clone(),
        }),
    )?;
    Ok(session)
}

fn password(user: &str) -> Result<String> {
    if let Ok(password) = std::env::var("HEARTH_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for {user}'s password in: set HEARTH_PASSWORD");
    }
    Ok(rpassword::prompt_password(format!("{user}'s password: "))?)
}
