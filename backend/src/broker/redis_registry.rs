//! The presence registry in Redis: who is in which room on which node, and
//! which nodes are alive.
//!
//! Keys (all under the deployment's prefix):
//! - `members:<room>`: a set of "node␟user id␟username␟user name" (U+001F,
//!   which no name may contain; an empty username for a guest).
//! - `node-entries:<node>`: a set of "room\nentry", everything `node` has
//!   in the `members:` sets, so that its entries can be removed without
//!   scanning every room when it dies. Room names never contain '\n'.
//! - `nodes`: a sorted set of node ids scored by when their liveness ends
//!   (ms, Redis's clock, so nodes' clocks need not agree).
//! - `epochs`: a hash of node id → presence epoch (see `Liveness`).
//!
//! A node writes only the rooms whose local membership changed, and beats
//! once per refresh: the steady cost is one small script per node per
//! refresh, whatever the number of rooms or members.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::User;
use redis::aio::ConnectionManager;

use super::{Liveness, PresenceEntry};

const SEPARATOR: char = '\u{1f}';

/// Renews a node's liveness and its epoch, and lists the nodes alive with
/// theirs. Returns {1 if the node was not in `nodes` (new, or removed as
/// dead), node, epoch, node, epoch, ...}.
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local out = {added}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  table.insert(out, node)
  table.insert(out, redis.call('HGET', KEYS[2], node) or '0')
end
return out
"#;

/// Removes a node whose liveness ended (or any, if ARGV[2] is '1') and
/// all its registry entries, atomically: a node that beats again after
/// this finds itself new and writes its entries again. Returns 1 if it
/// removed the node, 0 if the node is alive.
const FORGET: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[2] ~= '1' and score and tonumber(score) >= now then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local entries = ARGV[3] .. ':node-entries:' .. ARGV[1]
for _, entry in ipairs(redis.call('SMEMBERS', entries)) do
  local cut = string.find(entry, '\n', 1, true)
  if cut then
    redis.call('SREM', ARGV[3] .. ':members:' .. string.sub(entry, 1, cut - 1),
      string.sub(entry, cut + 1))
  end
end
redis.call('DEL', entries)
return 1
"#;

pub(super) struct Registry {
    prefix: String,
    conn: ConnectionManager,
    heartbeat: redis::Script,
    forget: redis::Script,
    /// What this node has written, room by room, to write only the
    /// difference next time.
    reported: Mutex<HashMap<Arc<str>, HashSet<String>>>,
    /// This node's presence epoch: starts from the clock, so a restarted
    /// node never reuses one, and moves when an event could not be sent.
    epoch: AtomicU64,
}

impl Registry {
    pub(super) fn new(prefix: &str, conn: ConnectionManager) -> Registry {
        Registry {
            prefix: prefix.to_owned(),
            conn,
            heartbeat: redis::Script::new(HEARTBEAT),
            forget: redis::Script::new(FORGET),
            reported: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(now_ms()),
        }
    }

    /// Others may have missed one of this node's presence events.
    pub(super) fn missed_an_event(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    pub(super) async fn write(
        &self,
        node: &str,
        rooms: &[(Arc<str>, Vec<User>)],
    ) -> Result<(), String> {
        let entries_key = self.key("node-entries", node);
        let mut pipe = redis::pipe();
        let mut written = Vec::with_capacity(rooms.len());
        {
            let reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
            for (room, users) in rooms {
                let now: HashSet<String> = users.iter().map(|u| entry(node, u)).collect();
                let before = reported.get(room);
                let key = self.key("members", room);
                for added in now
                    .iter()
                    .filter(|e| before.is_none_or(|b| !b.contains(*e)))
                {
                    pipe.cmd("SADD").arg(&key).arg(added).ignore();
                    pipe.cmd("SADD")
                        .arg(&entries_key)
                        .arg(format!("{room}\n{added}"))
                        .ignore();
                }
                for gone in before.into_iter().flatten().filter(|e| !now.contains(*e)) {
                    pipe.cmd("SREM").arg(&key).arg(gone).ignore();
                    pipe.cmd("SREM")
                        .arg(&entries_key)
                        .arg(format!("{room}\n{gone}"))
                        .ignore();
                }
                written.push((room.clone(), now));
            }
        }
        if !pipe.is_empty() {
            let mut conn = self.conn.clone();
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        for (room, now) in written {
            if now.is_empty() {
                reported.remove(&room);
            } else {
                reported.insert(room, now);
            }
        }
        Ok(())
    }

    pub(super) async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<Liveness, String> {
        let mut conn = self.conn.clone();
        let answer: Vec<redis::Value> = self
            .heartbeat
            .key(self.key("liveness", "nodes"))
            .key(self.key("liveness", "epochs"))
            .arg(node)
            .arg(ttl.as_millis() as u64)
            .arg(self.epoch.load(Ordering::Relaxed))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut values = answer.into_iter();
        let rejoined = matches!(values.next(), Some(redis::Value::Int(1)));
        let mut nodes = Vec::new();
        while let (Some(name), Some(epoch)) = (values.next(), values.next()) {
            let name: String = redis::from_redis_value(name).map_err(|e| e.to_string())?;
            let epoch: String = redis::from_redis_value(epoch).map_err(|e| e.to_string())?;
            nodes.push((name, epoch.parse().unwrap_or_default()));
        }
        if rejoined {
            // Whatever this node wrote is gone (or never was): write it all.
            self.reported
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        Ok(Liveness { rejoined, nodes })
    }

    pub(super) async fn forget(&self, node: &str, force: bool) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let _removed: i64 = self
            .forget
            .key(self.key("liveness", "nodes"))
            .key(self.key("liveness", "epochs"))
            .arg(node)
            .arg(if force { "1" } else { "0" })
            .arg(&self.prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// One pipeline for all the rooms: a page of the room list costs one
    /// round trip, whatever its length.
    pub(super) async fn members_of_many(
        &self,
        rooms: &[&str],
    ) -> Result<Vec<Vec<PresenceEntry>>, String> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for room in rooms {
            pipe.cmd("SMEMBERS").arg(self.key("members", room));
        }
        let mut conn = self.conn.clone();
        let answers: Vec<Vec<String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(answers
            .iter()
            .map(|members| members.iter().filter_map(|m| parse_entry(m)).collect())
            .collect())
    }
}

fn entry(node: &str, user: &User) -> String {
    format!(
        "{node}{SEPARATOR}{}{SEPARATOR}{}{SEPARATOR}{}",
        user.id,
        user.username.as_deref().unwrap_or_default(),
        user.name
    )
}

/// A registry member: "node␟user id␟username␟user name".
fn parse_entry(member: &str) -> Option<PresenceEntry> {
    let mut parts = member.splitn(4, SEPARATOR);
    let node = parts.next()?.to_owned();
    let id = parts.next()?.to_owned();
    let username = parts.next()?;
    Some(PresenceEntry {
        node,
        user: User {
            id,
            name: parts.next()?.to_owned(),
            username: (!username.is_empty()).then(|| username.to_owned()),
        },
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let user = User {
            id: "u1".into(),
            name: "Ann Lee".into(),
            username: Some("ann".into()),
        };
        let parsed = parse_entry(&entry("n1", &user)).unwrap();
        assert_eq!(parsed.node, "n1");
        assert_eq!(parsed.user, user);
        let guest = User {
            username: None,
            ..user
        };
        assert_eq!(parse_entry(&entry("n1", &guest)).unwrap().user, guest);
        assert!(parse_entry("n1\u{1f}u1").is_none());
    }
}
