//! Rooms and who may see them: the room list, history, creating rooms,
//! and members (invite, remove, roles). Every check is here, on the
//! server; the app only reflects it.
//!
//! Rules: public rooms are open to everyone signed in (joining one that
//! does not exist creates it); private rooms to their members only.
//! Owners and moderators invite and remove; a moderator removes members
//! only; the owner promotes and demotes, and cannot leave or be removed.
//! Removing someone from a public room is a kick: they may join again.
//!
//! Over 500 lines: the rooms resource has many short endpoints that share
//! their checks (`enter`, `moderator`); split by endpoint, the checks would
//! be scattered.

use common::ApiErrorCode;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{
    CreateRoom, Invite, Notify, Role, RoomMember, RoomSummary, SetRole, StartDirect, Visibility,
    validate,
};
use serde::Deserialize;

use super::{Authenticated, body, error, internal};
use crate::AppState;
use crate::auth::Identity;
use crate::hub::now_millis;
use crate::store::Departure;
use crate::store::RoomAccess;

/// The canonical room name from a path or body, or `400 invalid_room`.
pub(super) fn room_name(raw: &str) -> Result<String, Response> {
    let room = validate::canonical_room(raw);
    validate::room_name(&room)
        .map(|()| room)
        .map_err(|why| error(StatusCode::BAD_REQUEST, ApiErrorCode::InvalidRoom, why))
}

fn forbidden(message: &str) -> Response {
    error(StatusCode::FORBIDDEN, ApiErrorCode::Forbidden, message)
}

/// The account with this username, or `404 unknown_user`.
async fn account(app: &AppState, username: &str) -> Result<common::User, Response> {
    let username = validate::canonical_username(username);
    match app.hub.store().credentials(&username).await {
        Ok(Some(found)) => Ok(found.user),
        Ok(None) => Err(error(
            StatusCode::NOT_FOUND,
            ApiErrorCode::UnknownUser,
            "nobody has that username",
        )),
        Err(err) => Err(internal(err)),
    }
}

/// The room's access for this user, if they may see it at all: `404
/// unknown_room` if it does not exist, `403 forbidden` if it is private
/// and they are not a member.
pub(super) async fn enter(
    app: &AppState,
    room: &str,
    who: &Identity,
) -> Result<RoomAccess, Response> {
    match app.hub.store().room_access(room, &who.user.id).await {
        Ok(Some(access)) if access.may_enter() => Ok(access),
        Ok(Some(_)) => Err(forbidden("this room is private")),
        Ok(None) => Err(error(
            StatusCode::NOT_FOUND,
            ApiErrorCode::UnknownRoom,
            "no such room",
        )),
        Err(err) => Err(internal(err)),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
    q: Option<String>,
}

/// Largest page of `GET /api/rooms`.
const MAX_ROOMS_PAGE: u32 = 500;

/// `GET /api/rooms?cursor=&limit=&q=`: public rooms, and the private rooms
/// the caller belongs to, by name, a page at a time (default 100, at most
/// 500), with how many people are in each and the caller's role. `q` keeps
/// names that start with it. When there may be more, a `Link: <…>;
/// rel="next"` header gives the next page. One store query and (with
/// Redis) one registry round trip per page, whatever the number of rooms.
pub async fn list(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidQuery,
            "limit must be a whole number",
        );
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_ROOMS_PAGE);
    let prefix = validate::canonical_room(query.q.as_deref().unwrap_or_default());
    if !prefix.is_empty()
        && let Err(why) = validate::room_name(&prefix)
    {
        return error(StatusCode::BAD_REQUEST, ApiErrorCode::InvalidQuery, why);
    }
    let after = query.cursor.unwrap_or_default();
    let page = match app
        .hub
        .store()
        .rooms_page(&who.user.id, &after, &prefix, limit)
        .await
    {
        Ok(page) => page,
        Err(err) => return internal(err),
    };
    let next = (page.len() == limit as usize)
        .then(|| page.last().map(|(room, _)| room.name.clone()))
        .flatten();
    let names: Vec<&str> = page.iter().map(|(room, _)| room.name.as_str()).collect();
    let last_seqs: std::collections::HashMap<String, u64> = page
        .iter()
        .map(|(room, _)| (room.name.clone(), room.last_seq))
        .collect();
    let counts = app.hub.member_counts(&names).await;
    let idle_ms =
        i64::try_from(app.config.room_list_idle_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let active_since = now_millis().saturating_sub(idle_ms);
    let mut list: Vec<RoomSummary> = page
        .into_iter()
        .zip(counts)
        // Abandoned rooms are not listed forever (yours always are). A
        // direct conversation shows for the other person once it has a
        // message.
        .filter(|((room, role), members)| match room.visibility {
            Visibility::Direct => room.last_seq > 0 || room.created_by == who.user.id,
            _ => *members > 0 || role.is_some() || room.last_active >= active_since,
        })
        .map(|((room, role), members)| RoomSummary {
            name: room.name,
            members,
            visibility: room.visibility,
            role,
            ..RoomSummary::default()
        })
        .collect();
    // Direct conversations go by the other person's name: one query for
    // all of the page's.
    let directs: Vec<&str> = list
        .iter()
        .filter(|r| r.visibility == Visibility::Direct)
        .map(|r| r.name.as_str())
        .collect();
    let others = match app.hub.store().other_members(&directs, &who.user.id).await {
        Ok(others) => others,
        Err(err) => return internal(err),
    };
    for (room, user) in others {
        if let Some(summary) = list.iter_mut().find(|r| r.name == room) {
            summary.with = Some(user);
        }
    }
    // Invitations say who invited: one query for all of them.
    let invitations = match app.hub.store().invitations(&who.user.id).await {
        Ok(invitations) => invitations,
        Err(err) => return internal(err),
    };
    for (room, by) in invitations {
        if let Some(summary) = list.iter_mut().find(|r| r.name == room) {
            summary.invited_by = Some(by);
        }
    }
    // The caller's own rooms say what is unread in them, so that a device
    // shows it before any room is opened.
    let own: Vec<(&str, u64)> = list
        .iter()
        .filter(|r| r.role.is_some())
        .map(|r| {
            (
                r.name.as_str(),
                last_seqs.get(r.name.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    // Read positions taken but not yet written are this user's newest.
    app.hub.flush_reads_of(&who.user.id).await;
    let states = match app
        .hub
        .store()
        .member_states(&who.user.id, who.user.username.as_deref(), &own)
        .await
    {
        Ok(states) => states,
        Err(err) => return internal(err),
    };
    for (room, state) in states {
        if let Some(summary) = list.iter_mut().find(|r| r.name == room) {
            summary.unread = state.unread;
            summary.mentions = state.mentions;
            summary.draft = state.draft;
            summary.notify = Some(
                state
                    .notify
                    .unwrap_or_else(|| Notify::default_for(&summary.name)),
            );
        }
    }
    let mut response = Json(list).into_response();
    if let Some(cursor) = next {
        let mut link = format!("</api/rooms?cursor={cursor}&limit={limit}");
        if !prefix.is_empty() {
            link.push_str(&format!("&q={prefix}"));
        }
        link.push_str(">; rel=\"next\"");
        if let Ok(value) = axum::http::HeaderValue::from_str(&link) {
            response
                .headers_mut()
                .insert(axum::http::header::LINK, value);
        }
    }
    response
}

/// `POST /api/rooms {name, visibility}` → `201`; the caller owns it.
pub async fn create(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    Authenticated(who): Authenticated,
    request: Result<Json<CreateRoom>, JsonRejection>,
) -> Response {
    let request = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let room = match room_name(&request.name) {
        Ok(room) => room,
        Err(response) => return response,
    };
    if validate::reserved_room(&room) || request.visibility == Visibility::Direct {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidRoom,
            "direct conversations are started with POST /api/dms",
        );
    }
    let ip = app.throttle.client_ip(peer, &headers);
    if let Err((by_address, wait)) = app.throttle.create_room(&who.user.id, ip) {
        crate::prometheus::rate_limited(if by_address {
            "rooms_created_per_ip"
        } else {
            "rooms_created"
        });
        return super::rate_limited(wait);
    }
    match app
        .hub
        .store()
        .create_room(&room, request.visibility, &who.user.id, now_millis())
        .await
    {
        Ok(true) => {
            tracing::info!(room, visibility = request.visibility.as_str(), owner = %who.user.id, "room created");
            (
                StatusCode::CREATED,
                Json(RoomSummary {
                    name: room,
                    members: 0,
                    visibility: request.visibility,
                    role: Some(Role::Owner),
                    ..RoomSummary::default()
                }),
            )
                .into_response()
        }
        Ok(false) => error(
            StatusCode::CONFLICT,
            ApiErrorCode::RoomExists,
            "a room with that name exists; choose another",
        ),
        Err(err) => internal(err),
    }
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    before: Option<u64>,
    limit: Option<u32>,
}

/// Largest page `GET /api/rooms/{room}/messages` returns.
const MAX_PAGE: u32 = 200;

/// `GET /api/rooms/{room}/messages?before=<seq>&limit=50`: the newest
/// `limit` messages before `before` (default: the newest), oldest first.
pub async fn history(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    Authenticated(who): Authenticated,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidQuery,
            "before and limit must be whole numbers",
        );
    };
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    if let Err(response) = enter(&app, &room, &who).await {
        return response;
    }
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let before = query.before.unwrap_or(u64::MAX);
    let page = match app.hub.store().page_before(&room, before, limit).await {
        Ok(page) => page,
        Err(err) => return internal(err),
    };
    // What it weighs is paid from the user's and the address's history
    // budgets, shared with replays on join: pages fetched in a loop cannot
    // turn small requests into a flood out.
    let body = serde_json::to_vec(&page).expect("messages serialize");
    let ip = app.throttle.client_ip(peer, &headers);
    if let Err(wait) = app.throttle.history_bytes(ip, &who.user.id, body.len()) {
        crate::prometheus::rate_limited("history_bytes");
        return crate::http::api::rate_limited(wait.min(std::time::Duration::from_secs(60)));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `GET /api/rooms/{room}/members`: members and their roles, owners first.
pub async fn members(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path(room): Path<String>,
) -> Response {
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    if let Err(response) = enter(&app, &room, &who).await {
        return response;
    }
    match app.hub.store().room_members(&room).await {
        Ok(members) => Json(members).into_response(),
        Err(err) => internal(err),
    }
}

/// The caller's role, if it lets them moderate; else `403 forbidden`.
async fn moderator(app: &AppState, room: &str, who: &Identity) -> Result<Role, Response> {
    let access = enter(app, room, who).await?;
    match access.role {
        Some(role) if role.moderates() => Ok(role),
        _ => Err(forbidden(
            "only the room's owner and moderators may do that",
        )),
    }
}

/// `POST /api/rooms/{room}/members {username}` → `201` (or `200` if they
/// already were a member). Owners and moderators only.
pub async fn invite(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path(room): Path<String>,
    request: Result<Json<Invite>, JsonRejection>,
) -> Response {
    let request = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    if let Err(response) = moderator(&app, &room, &who).await {
        return response;
    }
    let store = app.hub.store();
    let invitee = match account(&app, &request.username).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    match store.room_access(&room, &invitee.id).await {
        Ok(Some(RoomAccess {
            role: Some(role), ..
        })) => {
            return Json(RoomMember {
                user: invitee,
                role,
                invited: false,
            })
            .into_response();
        }
        Ok(_) => {}
        Err(err) => return internal(err),
    }
    if let Err(err) = store
        .invite_member(&room, &invitee.id, &who.user.id, now_millis())
        .await
    {
        return internal(err);
    }
    tracing::info!(room, by = %who.user.id, user = %invitee.id, "invited");
    // Their room list shows it now, wherever they are connected.
    app.hub.rooms_changed_for(&invitee.id);
    (
        StatusCode::CREATED,
        Json(RoomMember {
            user: invitee,
            role: Role::Member,
            invited: true,
        }),
    )
        .into_response()
}

/// `DELETE /api/rooms/{room}/members/{user_id}` → `204`. The removed
/// user's sockets get `left {reason: "removed"}`, on every node. Anyone
/// may remove themselves (leave a room for good, on every device: their
/// sockets get `left` without a reason, and `rooms_changed`), except a
/// private room's owner.
pub async fn remove(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path((room, user_id)): Path<(String, String)>,
) -> Response {
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    let store = app.hub.store();
    let target = match store.room_access(&room, &user_id).await {
        Ok(Some(access)) => access.role,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                ApiErrorCode::UnknownRoom,
                "no such room",
            );
        }
        Err(err) => return internal(err),
    };
    if target == Some(Role::Owner) {
        return forbidden("the owner cannot be removed from their room");
    }
    if user_id != who.user.id {
        let role = match moderator(&app, &room, &who).await {
            Ok(role) => role,
            Err(response) => return response,
        };
        if role == Role::Moderator && target == Some(Role::Moderator) {
            return forbidden("only the owner may remove a moderator");
        }
    }
    let left = user_id == who.user.id;
    let why = if left {
        Departure::Left
    } else {
        Departure::Removed
    };
    if let Err(err) = store
        .remove_member(&room, &user_id, why, now_millis())
        .await
    {
        return internal(err);
    }
    tracing::info!(room, by = %who.user.id, user = %user_id, left, "removed");
    app.hub.evict(&room, &user_id, left);
    if left {
        app.hub.rooms_changed_for(&user_id);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `PUT /api/rooms/{room}/members/{user_id} {role}` → `200`: the owner
/// makes a member a moderator, or a moderator a member.
pub async fn set_role(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path((room, user_id)): Path<(String, String)>,
    request: Result<Json<SetRole>, JsonRejection>,
) -> Response {
    let request = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    match enter(&app, &room, &who).await {
        Ok(RoomAccess {
            role: Some(Role::Owner),
            ..
        }) => {}
        Ok(_) => return forbidden("only the room's owner may change roles"),
        Err(response) => return response,
    }
    if request.role == Role::Owner || user_id == who.user.id {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidRole,
            "a room has one owner; roles are moderator or member",
        );
    }
    let store = app.hub.store();
    let member = match store.room_members(&room).await {
        Ok(members) => members.into_iter().find(|m| m.user.id == user_id),
        Err(err) => return internal(err),
    };
    let Some(RoomMember { user, invited, .. }) = member else {
        return error(
            StatusCode::NOT_FOUND,
            ApiErrorCode::NotAMember,
            "invite them first",
        );
    };
    if let Err(err) = store
        .set_role(&room, &user_id, request.role, now_millis())
        .await
    {
        return internal(err);
    }
    Json(RoomMember {
        user,
        role: request.role,
        invited,
    })
    .into_response()
}

/// `POST /api/dms {username}` → `200` with the direct conversation between
/// the caller and `username` (created if new: a room named by
/// `common::direct_room`, private, the two of them as plain members). It
/// shows in the other person's room list once it has a message. Accounts
/// only: a guest has no username to be found by, and finds nobody.
pub async fn start_direct(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    request: Result<Json<StartDirect>, JsonRejection>,
) -> Response {
    let request = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if who.user.is_guest() {
        return forbidden("sign up to send direct messages");
    }
    let store = app.hub.store();
    let other = match account(&app, &request.username).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    if other.id == who.user.id {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidUser,
            "a direct conversation is with someone else",
        );
    }
    let room = common::direct_room(&who.user.id, &other.id);
    let now = now_millis();
    let created = match store
        .create_room(&room, Visibility::Direct, &who.user.id, now)
        .await
    {
        Ok(created) => created,
        Err(err) => return internal(err),
    };
    // Made or found, it must be theirs: a direct room, with both of them
    // as plain members (the creator is not its owner).
    match store.room_access(&room, &who.user.id).await {
        Ok(Some(access)) if access.visibility == Visibility::Direct => {}
        Ok(_) => return forbidden("that conversation is not available"),
        Err(err) => return internal(err),
    }
    // Both of them plain members: on creation (the creator was made its
    // owner), and whoever left it comes back in when it is started again.
    for id in [&who.user.id, &other.id] {
        let member = match store.room_access(&room, id).await {
            Ok(access) => access.is_some_and(|a| a.role == Some(Role::Member)),
            Err(err) => return internal(err),
        };
        if !member && let Err(err) = store.set_role(&room, id, Role::Member, now).await {
            return internal(err);
        }
    }
    if created {
        tracing::info!(room, "direct conversation started");
    }
    Json(RoomSummary {
        name: room,
        members: 0,
        visibility: Visibility::Direct,
        role: Some(Role::Member),
        with: Some(other),
        ..RoomSummary::default()
    })
    .into_response()
}
