//! A benchmark's clients: guests signed in over HTTP, WebSockets that join.

// Each benchmark uses part of this.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Signs a guest in and returns its session token.
pub async fn sign_in(http: &reqwest::Client, port: u16, name: &str) -> String {
    let session: common::SessionResponse = http
        .post(format!("http://127.0.0.1:{port}/api/session"))
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session.token
}

/// Sends `join` and reads until `joined`.
pub async fn join<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, room: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let join = serde_json::json!({"type":"join","room":room,"since":null});
    ws.send(Message::text(join.to_string())).await.unwrap();
    while let Some(Ok(frame)) = ws.next().await {
        if let Message::Text(t) = frame
            && t.contains(r#""type":"joined""#)
        {
            return;
        }
    }
    panic!("the connection ended before `joined`");
}
