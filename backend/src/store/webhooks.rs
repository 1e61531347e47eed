//! The store's part for outgoing webhooks (delivered by the `webhooks`
//! module): the webhooks, how far each has delivered each room, and the
//! leases that let one node of several deliver a webhook alone. Like `operations.rs`, one
//! trait with the SQL shared by both stores.
//!
//! What is delivered is the room's log itself: a webhook keeps a cursor per
//! room and reads the entries after it, so nothing is queued in memory for
//! a receiver that is down, and a node that restarts (or another node that
//! takes over) goes on from the last entry the receiver acknowledged.

use async_trait::async_trait;
use sqlx::Connection;

use super::Result;
use super::health::Access;
use super::operations::RoomScope;
use super::sql_store::{Dialect, SqlStore, placeholders};
use super::statement::{Columns, Driver, Read, RowsAffected};

/// A webhook as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub rooms: RoomScope,
    /// Signs every delivery (HMAC-SHA256): the receiver holds it too.
    pub secret: String,
    /// Edits, deletes, topics and reactions too, not only new messages.
    pub changes: bool,
    pub created_at: i64,
    pub state: DeliveryState,
}

/// How a webhook's deliveries are going (all zero / `None` while they
/// succeed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryState {
    /// Failed attempts in a row.
    pub failures: u32,
    /// When the first of them failed.
    pub failing_since: Option<i64>,
    /// No attempt before this (ms since the epoch; 0: at once).
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    /// It failed for too long, and waits for `hearth admin webhook resume`.
    pub paused_at: Option<i64>,
}

/// A room a webhook has not delivered to its end yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub room: String,
    /// Every entry up to this seq was delivered.
    pub delivered_seq: u64,
    /// The room's newest seq.
    pub last_seq: u64,
}

#[async_trait]
pub trait Webhooks: Send + Sync + 'static {
    /// Stores the webhook, with every existing room of its scope delivered
    /// up to its newest entry: a new webhook delivers what is new from now.
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()>;

    /// Every webhook, oldest first.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;

    /// `false`: no webhook has this id.
    async fn delete_webhook(&self, id: &str) -> Result<bool>;

    /// Records how deliveries go (after a failure, a pause, a recovery).
    /// `false`: the webhook is gone.
    async fn set_delivery_state(&self, id: &str, state: &DeliveryState) -> Result<bool>;

    /// The rooms of the webhook's scope with entries it has not delivered,
    /// by name, at most `limit`. `*` is every public room; private rooms and
    /// direct messages only when named.
    async fn webhook_backlog(&self, webhook: &Webhook, limit: u32) -> Result<Vec<Backlog>>;

    /// The webhook has delivered `room` up to `seq` (never moves back).
    /// `false`: the webhook was deleted.
    async fn advance_webhook(&self, id: &str, room: &str, seq: u64) -> Result<bool>;

    /// Takes or renews the lease `name` for `holder` until `expires_at`,
    /// if it is free, expired at `now_ms`, or `holder`'s already. Whether
    /// `holder` has it now.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        expires_at: i64,
    ) -> Result<bool>;

    /// Gives the lease up, if `holder` has it (a node shutting down).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
}

const COLUMNS: &str = "SELECT id, url, rooms, secret, changes, created_at, failures, \
     failing_since, next_attempt_at, last_error, paused_at FROM webhooks";
const CREATE: &str = "INSERT INTO webhooks (id, url, rooms, secret, changes, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";
/// Every existing room (deleted ones too: a room made again under the name
/// goes on with its seqs) starts where it is now; `$1` the webhook.
const START_ALL: &str = "INSERT INTO webhook_cursors (webhook, room, delivered_seq) \
     SELECT $1, name, last_seq FROM rooms";
const DELETE: &str = "DELETE FROM webhooks WHERE id = $1";
const DELETE_CURSORS: &str = "DELETE FROM webhook_cursors WHERE webhook = $1";
const SET_STATE: &str = "UPDATE webhooks SET failures = $2, failing_since = $3, \
     next_attempt_at = $4, last_error = $5, paused_at = $6 WHERE id = $1";
/// Only while the webhook exists: a worker still running as its webhook is
/// deleted must not leave cursors behind.
const ADVANCE: &str = "INSERT INTO webhook_cursors (webhook, room, delivered_seq) \
     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = $1) \
     ON CONFLICT (webhook, room) DO UPDATE \
     SET delivered_seq = excluded.delivered_seq \
     WHERE webhook_cursors.delivered_seq < excluded.delivered_seq";
/// Free, expired, or the holder's own: then it is the holder's until `$3`.
const TAKE_LEASE: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
     expires_at = excluded.expires_at \
     WHERE leases.holder = excluded.holder OR leases.expires_at < $4";
const RELEASE_LEASE: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";

/// A webhook, in `COLUMNS` order (fields are read in the order they are
/// written).
impl Read for Webhook {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        Ok(Webhook {
            id: columns.next()?,
            url: columns.next()?,
            // Written by `to_text`; anything else (a hand edit) delivers
            // nothing.
            rooms: RoomScope::parse(&columns.next::<String>()?)
                .unwrap_or(RoomScope::Only(Vec::new())),
            secret: columns.next()?,
            changes: columns.next::<i64>()? != 0,
            created_at: columns.next()?,
            state: DeliveryState {
                failures: u32::try_from(columns.next::<i64>()?).unwrap_or(u32::MAX),
                failing_since: columns.next()?,
                next_attempt_at: columns.next()?,
                last_error: columns.next()?,
                paused_at: columns.next()?,
            },
        })
    }
}

/// `Webhooks` for every SQL database (see `SqlStore`).
#[async_trait]
impl<DB: Dialect> Webhooks for SqlStore<DB> {
    async fn create_webhook(&self, webhook: &Webhook) -> Result<()> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            DB::query(CREATE)
                .bind(&webhook.id)
                .bind(&webhook.url)
                .bind(webhook.rooms.to_text())
                .bind(&webhook.secret)
                .bind(i64::from(webhook.changes))
                .bind(webhook.created_at)
                .execute(&mut *tx)
                .await?;
            match &webhook.rooms {
                RoomScope::All => {
                    let start = DB::query(START_ALL).bind(&webhook.id);
                    start.execute(&mut *tx).await?;
                }
                RoomScope::Only(rooms) if rooms.is_empty() => {}
                RoomScope::Only(rooms) => {
                    let statement = format!(
                        "INSERT INTO webhook_cursors (webhook, room, delivered_seq) \
                         SELECT {}, name, last_seq FROM rooms WHERE name IN ({})",
                        placeholders::<DB>(1, 1),
                        placeholders::<DB>(2, rooms.len())
                    );
                    let mut start = DB::query(&statement).bind(&webhook.id);
                    for room in rooms {
                        start = start.bind(room);
                    }
                    start.execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let statement = format!("{COLUMNS} ORDER BY created_at, id");
        self.all(Access::Read, DB::query(&statement)).await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            let deleted = DB::query(DELETE).bind(id).execute(&mut *tx).await?;
            DB::query(DELETE_CURSORS).bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(deleted.rows_affected() > 0)
        })
        .await
    }

    async fn set_delivery_state(&self, id: &str, state: &DeliveryState) -> Result<bool> {
        let update = DB::query(SET_STATE)
            .bind(id)
            .bind(i64::from(state.failures))
            .bind(state.failing_since)
            .bind(state.next_attempt_at)
            .bind(&state.last_error)
            .bind(state.paused_at);
        Ok(self.change(update).await? > 0)
    }

    async fn webhook_backlog(&self, webhook: &Webhook, limit: u32) -> Result<Vec<Backlog>> {
        // One kind of placeholder per statement (see `placeholders`), in
        // the order they appear: the webhook, then the rooms.
        let scope = match &webhook.rooms {
            RoomScope::All => "rooms.visibility = 'public'".to_owned(),
            RoomScope::Only(rooms) if rooms.is_empty() => return Ok(Vec::new()),
            RoomScope::Only(rooms) => format!(
                "rooms.visibility <> 'deleted' AND rooms.name IN ({})",
                placeholders::<DB>(2, rooms.len())
            ),
        };
        let statement = format!(
            "SELECT rooms.name, COALESCE(webhook_cursors.delivered_seq, 0), rooms.last_seq \
             FROM webhooks JOIN rooms ON webhooks.id = {} \
             LEFT JOIN webhook_cursors ON webhook_cursors.webhook = webhooks.id \
             AND webhook_cursors.room = rooms.name \
             WHERE rooms.last_seq > COALESCE(webhook_cursors.delivered_seq, 0) AND {scope} \
             ORDER BY rooms.name LIMIT {limit}",
            placeholders::<DB>(1, 1),
        );
        let mut select = DB::query(&statement).bind(&webhook.id);
        if let RoomScope::Only(rooms) = &webhook.rooms {
            for room in rooms {
                select = select.bind(room);
            }
        }
        let rows: Vec<(String, i64, i64)> = self.all(Access::Read, select).await?;
        Ok(rows
            .into_iter()
            .map(|(room, delivered, last)| Backlog {
                room,
                delivered_seq: u64::try_from(delivered).unwrap_or(0),
                last_seq: u64::try_from(last).unwrap_or(0),
            })
            .collect())
    }

    async fn advance_webhook(&self, id: &str, room: &str, seq: u64) -> Result<bool> {
        let upsert = DB::query(ADVANCE)
            .bind(id)
            .bind(room)
            .bind(super::db_seq(seq));
        if self.change(upsert).await? > 0 {
            return Ok(true);
        }
        // Nothing changed: the webhook is gone, or it was there already.
        let exists = DB::query("SELECT id FROM webhooks WHERE id = $1").bind(id);
        Ok(self.one::<String>(exists).await?.is_some())
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        expires_at: i64,
    ) -> Result<bool> {
        let upsert = DB::query(TAKE_LEASE)
            .bind(name)
            .bind(holder)
            .bind(expires_at)
            .bind(now_ms);
        Ok(self.change(upsert).await? > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let delete = DB::query(RELEASE_LEASE).bind(name).bind(holder);
        self.change(delete).await.map(drop)
    }
}
