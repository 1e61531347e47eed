//! A Hearth server's address and its HTTP API: signing in, and the few
//! calls a client makes beside its WebSocket (rooms, history, signing out).

use std::sync::Arc;

use common::{ApiError, ChatMessage, RoomSummary, SessionRequest, SessionResponse, User};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Where a Hearth server is: `https://chat.example.com` (or `http://` for
/// one on this machine; `wss://` and `ws://` are read the same way).
#[derive(Clone)]
pub struct Server {
    /// `http(s)://host[:port][/prefix]`, without a trailing slash.
    base: String,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("base", &self.base).finish()
    }
}

impl Server {
    pub fn new(url: &str) -> Result<Server, Error> {
        let url = url.trim().trim_end_matches('/');
        let base = if let Some(rest) = url.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = url.strip_prefix("ws://") {
            format!("http://{rest}")
        } else if url.starts_with("https://") || url.starts_with("http://") {
            url.to_owned()
        } else {
            return Err(Error::InvalidServer(format!(
                "{url:?}: give the server as https://host (or http://host for one on this machine)"
            )));
        };
        let host = base.split_once("://").map_or("", |(_, rest)| rest);
        if host.is_empty() || host.starts_with('/') {
            return Err(Error::InvalidServer(format!("{url:?} names no host")));
        }
        let tls = Arc::new(tls_config());
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .user_agent(concat!("hearth-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|err| Error::InvalidServer(err.to_string()))?;
        Ok(Server { base, http, tls })
    }

    /// `https://host…`, as given.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The WebSocket endpoint: `wss://host…/ws` (`ws://` for `http://`).
    pub fn ws_url(&self) -> String {
        match self.base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}/ws"),
            None => format!("ws://{}/ws", &self.base["http://".len()..]),
        }
    }

    pub(crate) fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// Signs in with a password (`POST /api/session`).
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<Session, Error> {
        let request = SessionRequest::Password {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.session_from(Method::POST, "/api/session", None, Some(&request))
            .await
    }

    /// Creates an account and signs in (`POST /api/accounts`).
    pub async fn sign_up(
        &self,
        username: &str,
        password: &str,
        display_name: &str,
    ) -> Result<Session, Error> {
        let request = common::SignUpRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: display_name.to_owned(),
        };
        self.session_from(Method::POST, "/api/accounts", None, Some(&request))
            .await
    }

    /// Signs in as a guest, by a display name alone (only where the server
    /// runs with `--allow-guests`).
    pub async fn guest(&self, name: &str) -> Result<Session, Error> {
        let request = SessionRequest::Guest {
            name: name.to_owned(),
        };
        self.session_from(Method::POST, "/api/session", None, Some(&request))
            .await
    }

    /// A session from a token kept from before, if it still works
    /// (`GET /api/session`); `Error::SignedOut` if it does not.
    pub async fn resume(&self, token: &str) -> Result<Session, Error> {
        let user: User = self
            .call(Method::GET, "/api/session", Some(token), None::<&()>)
            .await?;
        Ok(Session {
            server: self.clone(),
            token: token.to_owned(),
            user,
        })
    }

    async fn session_from<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<Session, Error> {
        let response: SessionResponse = self.call(method, path, token, body).await?;
        Ok(Session {
            server: self.clone(),
            token: response.token,
            user: response.user,
        })
    }

    /// One API call: the JSON answer, or the server's error with its code.
    pub(crate) async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let response = self.send(method, path, token, body).await?;
        response
            .json()
            .await
            .map_err(|err| Error::Unreachable(format!("an answer that is not Hearth's: {err}")))
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|err| Error::Unreachable(describe(&err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let error = response.json::<ApiError>().await.ok();
        Err(match (status, error) {
            (StatusCode::UNAUTHORIZED, Some(error))
                if token.is_some() && error.error != common::ApiErrorCode::BadCredentials =>
            {
                Error::SignedOut(error.message)
            }
            (_, Some(error)) => Error::Api {
                status: status.as_u16(),
                code: Some(error.error),
                message: error.message,
            },
            (_, None) => Error::Api {
                status: status.as_u16(),
                code: None,
                message: format!("the server answered {status}"),
            },
        })
    }
}

/// Who is signed in where: what `Client::connect` needs.
#[derive(Debug, Clone)]
pub struct Session {
    pub server: Server,
    /// The session token (`Authorization: Bearer`). Keep it as you would a
    /// password: it is one until it is signed out.
    pub token: String,
    pub user: User,
}

impl Session {
    /// The rooms this person may see (`GET /api/rooms`): theirs first,
    /// with unread counts.
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, Error> {
        self.server
            .call(Method::GET, "/api/rooms", Some(&self.token), None::<&()>)
            .await
    }

    /// Up to `limit` messages of `room` before seq `before` (the newest
    /// when `None`), oldest first.
    pub async fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, Error> {
        let mut path = format!("/api/rooms/{}/messages?limit={limit}", path_segment(room));
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        self.server
            .call(Method::GET, &path, Some(&self.token), None::<&()>)
            .await
    }

    /// Ends this session on the server: its token stops working and its
    /// sockets close, on every node.
    pub async fn sign_out(&self) -> Result<(), Error> {
        self.server
            .send(
                Method::DELETE,
                "/api/session",
                Some(&self.token),
                None::<&()>,
            )
            .await
            .map(drop)
    }

    /// Ends every session of this account, this one too, on every device
    /// (`DELETE /api/account/sessions`).
    pub async fn sign_out_everywhere(&self) -> Result<(), Error> {
        self.server
            .send(
                Method::DELETE,
                "/api/account/sessions",
                Some(&self.token),
                None::<&()>,
            )
            .await
            .map(drop)
    }
}

/// Room names are `[a-z0-9_-]`-like already; anything else is
/// percent-encoded so a path can never be changed by one.
fn path_segment(room: &str) -> String {
    let mut out = String::with_capacity(room.len());
    for byte in room.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// reqwest's errors say "error sending request"; the cause says why.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// rustls with its default provider (aws-lc-rs) and Mozilla's roots: the
/// same trust for the HTTP calls and the WebSocket.
fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("aws-lc-rs supports TLS 1.2 and 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_read_from_its_web_or_websocket_address() {
        let server = Server::new("https://chat.example.com/").unwrap();
        assert_eq!(server.url(), "https://chat.example.com");
        assert_eq!(server.ws_url(), "wss://chat.example.com/ws");
        let server = Server::new("ws://127.0.0.1:3000").unwrap();
        assert_eq!(server.url(), "http://127.0.0.1:3000");
        assert_eq!(server.ws_url(), "ws://127.0.0.1:3000/ws");
        assert!(matches!(
            Server::new("chat.example.com"),
            Err(Error::InvalidServer(_))
        ));
        assert!(matches!(
            Server::new("https://"),
            Err(Error::InvalidServer(_))
        ));
    }

    #[test]
    fn a_room_name_cannot_change_the_path() {
        assert_eq!(path_segment("general"), "general");
        assert_eq!(path_segment("../x?y"), "..%2Fx%3Fy");
    }
}
