//! [`RedisDirectory`]: the room directory of several instances sharing one Redis.
//!
//! - `mm:room:<room>:host` holds the id of the instance hosting the room, with a lease of
//!   [`LEASE_TTL`] that the host renews every [`LEASE_RENEW_INTERVAL`]. Claiming, renewing and
//!   releasing are Lua scripts, so each is one atomic step in Redis: two instances can never
//!   both believe they hold a room, and a lease left by a dead instance expires by itself.
//! - `mm:node:<node>` holds an instance's [`NodeInfo`] (JSON) for [`NODE_TTL`], refreshed
//!   every [`NODE_ANNOUNCE_INTERVAL`].
//!
//! Every call is bounded by [`CALL_TIMEOUT`]: while Redis is unreachable the callers get
//! [`DirectoryError::Unavailable`] at once instead of waiting, and the first call after Redis
//! returns uses a fresh connection (a pool, as the session store does).

use std::time::Duration;

use deadpool_redis::redis::{self, Script};
use deadpool_redis::{Pool, Runtime};

use super::{Claim, DirectoryError, DirectoryFuture, NodeInfo, RoomDirectory, LEASE_TTL, NODE_TTL};
use crate::ids::{NodeId, RoomId};

/// Longest a directory call waits for Redis.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(800);

/// Prefix of every key this directory writes.
pub const KEY_PREFIX: &str = "mm:";

/// KEYS[1] = lease; ARGV = node, ttl ms, node-key prefix. Returns {1} when the caller holds the
/// room now, {0, holder, holder's announcement or ""} otherwise.
const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1}
end
local info = redis.call('GET', ARGV[3] .. cur)
if not info then info = '' end
return {0, cur, info}
"#;

/// KEYS = leases; ARGV = node, ttl ms. Extends the caller's leases, re-takes expired ones, and
/// returns the (1-based) indexes of the keys another node holds now.
const RENEW: &str = r#"
local lost = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not cur then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost
"#;

/// KEYS[1] = lease; ARGV[1] = node. Deletes the lease only if the caller holds it.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// The room directory in Redis, for one instance (`node`).
#[derive(Clone)]
pub struct RedisDirectory {
    pool: Pool,
    node: NodeId,
}

impl std::fmt::Debug for RedisDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDirectory")
            .field("node", &self.node)
            .finish()
    }
}

/// The lease key of a room.
pub fn lease_key(room: &RoomId) -> String {
    format!("{KEY_PREFIX}room:{room}:host")
}

/// The announcement key of an instance.
pub fn node_key(node: &NodeId) -> String {
    format!("{KEY_PREFIX}node:{node}")
}

fn unavailable(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(e.to_string())
}

impl RedisDirectory {
    /// A directory for `node` on the Redis at `url`. Connects lazily: Redis need not be up.
    pub fn new(url: &str, node: NodeId) -> Result<Self, DirectoryError> {
        let pool = deadpool_redis::Config::from_url(url)
            .builder()
            .map_err(unavailable)?
            .max_size(8)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CALL_TIMEOUT))
            .recycle_timeout(Some(CALL_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(unavailable)?;
        Ok(Self { pool, node })
    }

    /// Runs `op` on a pooled connection within [`CALL_TIMEOUT`].
    async fn call<T, F, Fut>(pool: Pool, op: F) -> Result<T, DirectoryError>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = pool.get().await.map_err(unavailable)?;
            op(conn).await.map_err(|e| {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    unavailable(e)
                } else {
                    DirectoryError::Protocol(e.to_string())
                }
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(DirectoryError::Unavailable(format!(
                    "no answer within {CALL_TIMEOUT:?}"
                )))
            })
    }
}

/// Decodes the CLAIM script's answer.
fn parse_claim(reply: Vec<redis::Value>) -> Result<Claim, DirectoryError> {
    let text = |v: &redis::Value| -> Option<String> {
        match v {
            redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            redis::Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }
    };
    match reply.as_slice() {
        [redis::Value::Int(1)] => Ok(Claim::Mine),
        [redis::Value::Int(0), holder, info] => {
            let holder = text(holder)
                .ok_or_else(|| DirectoryError::Protocol(format!("claim holder {holder:?}")))?;
            let info = text(info)
                .filter(|s| !s.is_empty())
                .and_then(|s| serde_json::from_str::<NodeInfo>(&s).ok());
            Ok(Claim::HeldBy(NodeId::from_raw(holder), info))
        }
        other => Err(DirectoryError::Protocol(format!(
            "claim answered {other:?}"
        ))),
    }
}

impl RoomDirectory for RedisDirectory {
    fn shared(&self) -> bool {
        true
    }

    fn claim(&self, room: &RoomId) -> DirectoryFuture<Claim> {
        let (pool, key, node) = (self.pool.clone(), lease_key(room), self.node.clone());
        Box::pin(async move {
            let reply: Vec<redis::Value> = Self::call(pool, |mut conn| async move {
                Script::new(CLAIM)
                    .key(key)
                    .arg(node.as_str())
                    .arg(LEASE_TTL.as_millis() as u64)
                    .arg(format!("{KEY_PREFIX}node:"))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
            parse_claim(reply)
        })
    }

    fn renew(&self, rooms: Vec<RoomId>) -> DirectoryFuture<Vec<RoomId>> {
        let (pool, node) = (self.pool.clone(), self.node.clone());
        Box::pin(async move {
            if rooms.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = rooms.iter().map(lease_key).collect();
            let lost: Vec<usize> = Self::call(pool, |mut conn| async move {
                Script::new(RENEW)
                    .key(keys)
                    .arg(node.as_str())
                    .arg(LEASE_TTL.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
            Ok(lost
                .into_iter()
                .filter_map(|i| rooms.get(i.wrapping_sub(1)).cloned())
                .collect())
        })
    }

    fn release(&self, room: &RoomId) -> DirectoryFuture<()> {
        let (pool, key, node) = (self.pool.clone(), lease_key(room), self.node.clone());
        Box::pin(async move {
            let _: i64 = Self::call(pool, |mut conn| async move {
                Script::new(RELEASE)
                    .key(key)
                    .arg(node.as_str())
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
            Ok(())
        })
    }

    fn holder(&self, room: &RoomId) -> DirectoryFuture<Option<(NodeId, Option<NodeInfo>)>> {
        let (pool, key) = (self.pool.clone(), lease_key(room));
        Box::pin(async move {
            Self::call(pool, |mut conn| async move {
                let holder: Option<String> =
                    redis::cmd("GET").arg(key).query_async(&mut conn).await?;
                let Some(holder) = holder else {
                    return Ok(None);
                };
                let holder = NodeId::from_raw(holder);
                let info: Option<String> = redis::cmd("GET")
                    .arg(node_key(&holder))
                    .query_async(&mut conn)
                    .await?;
                let info = info.and_then(|s| serde_json::from_str::<NodeInfo>(&s).ok());
                Ok(Some((holder, info)))
            })
            .await
        })
    }

    fn announce(&self, me: NodeInfo) -> DirectoryFuture<()> {
        let (pool, key) = (self.pool.clone(), node_key(&self.node));
        Box::pin(async move {
            let json =
                serde_json::to_string(&me).map_err(|e| DirectoryError::Protocol(e.to_string()))?;
            Self::call(pool, |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(json)
                    .arg("PX")
                    .arg(NODE_TTL.as_millis() as u64)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
        })
    }

    fn withdraw(&self) -> DirectoryFuture<()> {
        let (pool, key) = (self.pool.clone(), node_key(&self.node));
        Box::pin(async move {
            Self::call(pool, |mut conn| async move {
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
        })
    }

    fn live_nodes(&self) -> DirectoryFuture<Vec<NodeInfo>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            Self::call(pool, |mut conn| async move {
                // Few instances, few keys: SCAN with a pattern is enough (no index to keep).
                let mut keys: Vec<String> = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{KEY_PREFIX}node:*"))
                        .arg("COUNT")
                        .arg(200)
                        .query_async(&mut conn)
                        .await?;
                    keys.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let values: Vec<Option<String>> =
                    redis::cmd("MGET").arg(keys).query_async(&mut conn).await?;
                Ok(values
                    .into_iter()
                    .flatten()
                    .filter_map(|v| serde_json::from_str::<NodeInfo>(&v).ok())
                    .collect())
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_answers_decode() {
        assert_eq!(parse_claim(vec![redis::Value::Int(1)]), Ok(Claim::Mine));
        let info = NodeInfo {
            id: NodeId::from_raw("b"),
            internal_url: "http://10.0.0.2:3443".into(),
            draining: false,
            rooms: 1,
            peers: 2,
            version: "x".into(),
        };
        let held = parse_claim(vec![
            redis::Value::Int(0),
            redis::Value::BulkString(b"b".to_vec()),
            redis::Value::BulkString(serde_json::to_vec(&info).unwrap()),
        ]);
        assert_eq!(held, Ok(Claim::HeldBy(NodeId::from_raw("b"), Some(info))));
        let dead = parse_claim(vec![
            redis::Value::Int(0),
            redis::Value::BulkString(b"c".to_vec()),
            redis::Value::BulkString(Vec::new()),
        ]);
        assert_eq!(dead, Ok(Claim::HeldBy(NodeId::from_raw("c"), None)));
        assert!(parse_claim(vec![]).is_err());
    }

    #[test]
    fn keys_are_prefixed_and_named_as_documented() {
        assert_eq!(
            lease_key(&RoomId::parse("standup").unwrap()),
            "mm:room:standup:host"
        );
        assert_eq!(node_key(&NodeId::from_raw("n1")), "mm:node:n1");
    }
}
