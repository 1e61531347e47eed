//! A bot in a few lines: signed in as its own account (say `pingbot`), it
//! answers "@pingbot ping" with "pong" in the rooms it is in, and keeps
//! doing so through server restarts.
//!
//! ```text
//! HEARTH_SERVER=http://127.0.0.1:3000 HEARTH_USER=pingbot HEARTH_PASSWORD=… \
//!   cargo run -p hearth-client --example bot -- general random
//! ```

use hearth_client::{Client, Event, Server, ServerMsg};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let server = Server::new(&env("HEARTH_SERVER")?)?;
    let session = server
        .sign_in(&env("HEARTH_USER")?, &env("HEARTH_PASSWORD")?)
        .await?;
    let me = format!("@{}", session.user.username.clone().unwrap_or_default());

    let client = Client::connect(&session);
    let mut events = client.events();
    for room in std::env::args().skip(1) {
        client.join(&room).await?;
    }
    while let Some(event) = events.next().await {
        match event {
            Event::Server(ServerMsg::Message(m))
                if m.user.id != session.user.id && m.content.trim() == format!("{me} ping") =>
            {
                let answer = format!("pong, {}", m.user.name);
                // Stored exactly once, even if the server restarts meanwhile.
                client.send(&m.room, &answer).await?;
            }
            Event::SignedOut(reason) => return Err(reason.into()),
            _ => {}
        }
    }
    Ok(())
}
