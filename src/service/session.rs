//! Sessions: actix-session with Redis (shared by every instance) or, without `redisUrl`, an
//! in-memory store (one instance). Cookies are HttpOnly and SameSite=Lax; the `Secure`
//! attribute is added per request when the user's original scheme is https (see
//! [`super::proxy`]). Also watches Redis for `/health`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use actix_session::config::PersistentSession;
use actix_session::storage::{
    LoadError, RedisSessionStore, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_session::SessionMiddleware;
use actix_web::cookie::time::Duration;
use actix_web::cookie::{Key, SameSite};
use actix_web::http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use rand::distributions::{Alphanumeric, DistString};
use tracing::{info, warn};

use crate::config::Config;

type State = HashMap<String, String>;

/// Longest a session operation waits for Redis before giving up.
const REDIS_TIMEOUT: StdDuration = StdDuration::from_millis(800);

/// Runs a Redis store operation with [`REDIS_TIMEOUT`].
async fn bounded<T>(
    op: impl std::future::Future<Output = Result<T, anyhow::Error>>,
) -> Result<T, anyhow::Error> {
    tokio::time::timeout(REDIS_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "Redis did not answer within {REDIS_TIMEOUT:?}"
            ))
        })
}

/// Session storage of this instance.
#[derive(Clone)]
pub enum Sessions {
    /// In process memory: sessions die with the process and are unknown to other instances.
    Memory(MemorySessionStore),
    /// In Redis: shared by every instance using the same Redis and `cookieSecret`; failed
    /// calls are counted in the second field (metrics).
    Redis(RedisSessionStore, Arc<AtomicU64>),
}

/// Why the session store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SessionSetupError {
    /// The Redis URL or pool settings are unusable.
    #[error("cannot use Redis at redisUrl {url}: {message}. Fix redisUrl")]
    Redis {
        /// The URL (without password).
        url: String,
        /// The client's error.
        message: String,
    },
}

impl Sessions {
    /// Uses Redis when configured, else memory (and says so). Redis need not be up yet:
    /// `/health` reports 503 until it answers.
    /// Failed Redis calls are counted in `errors`.
    pub async fn from_config(
        config: &Config,
        errors: Arc<AtomicU64>,
    ) -> Result<Sessions, SessionSetupError> {
        match &config.redis_url {
            None => {
                info!("sessions are kept in memory (single instance); set redisUrl to share them between instances");
                Ok(Sessions::Memory(MemorySessionStore::default()))
            }
            Some(url) => {
                let setup_err = |message: String| SessionSetupError::Redis {
                    url: redact(url),
                    message,
                };
                // A pool rather than one auto-reconnecting connection: during an outage a
                // request fails at once instead of waiting out reconnect back-off, and the
                // first request after Redis returns gets a fresh connection.
                let pool = deadpool_redis::Config::from_url(url.clone())
                    .builder()
                    .map_err(|e| setup_err(e.to_string()))?
                    .max_size(16)
                    .wait_timeout(Some(REDIS_TIMEOUT))
                    .create_timeout(Some(REDIS_TIMEOUT))
                    .recycle_timeout(Some(REDIS_TIMEOUT))
                    .runtime(deadpool_redis::Runtime::Tokio1)
                    .build()
                    .map_err(|e| setup_err(e.to_string()))?;
                let store = RedisSessionStore::builder_pooled(pool)
                    .build()
                    .await
                    .map_err(|e| setup_err(format!("{e:#}")))?;
                info!(redis = %redact(url), "sessions are kept in Redis, shared by every instance");
                Ok(Sessions::Redis(store, errors))
            }
        }
    }

    /// The session middleware for this store, signing with `key`. Called once per HTTP
    /// worker: the key must be made once per process ([`cookie_key`]), or each worker would
    /// reject the cookies the others signed.
    pub fn middleware(self, key: Key, config: &Config) -> SessionMiddleware<Sessions> {
        SessionMiddleware::builder(self, key)
            .cookie_name(config.cookie_name.clone())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            // Secure is added per request by `secure_cookies`, from the original scheme.
            .cookie_secure(false)
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(Duration::seconds(config.cookie_max_age as i64)),
            )
            .build()
    }
}

/// The key that signs cookies: derived from `cookieSecret`, random without one. Call it once
/// per process, before the HTTP workers start, and hand the same key to every worker.
pub fn cookie_key(config: &Config) -> Key {
    match &config.cookie_secret {
        Some(secret) => {
            let mut material = secret.as_bytes().to_vec();
            // Only a development config gets here with fewer than 32 bytes.
            while material.len() < 32 {
                material.extend_from_slice(secret.as_bytes());
                material.push(b'.');
            }
            Key::derive_from(&material)
        }
        None => {
            info!(
                "no cookieSecret: sessions are signed with a key made at start-up, so they end \
                 when this process restarts and are not shared with other instances; set \
                 cookieSecret (MM_COOKIE_SECRET) to keep them"
            );
            Key::generate()
        }
    }
}

/// `redis://user:pass@host` -> `redis://host`, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Adds `Secure` to every `Set-Cookie` of the response (the user came over https).
pub fn secure_cookies(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(SET_COOKIE);
    for c in cookies {
        let text = c.to_str().unwrap_or_default();
        let has_secure = text
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("secure"));
        let value = if has_secure || text.is_empty() {
            c
        } else {
            HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(c)
        };
        headers.append(SET_COOKIE, value);
    }
}

impl SessionStore for Sessions {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        match self {
            Sessions::Memory(m) => m.load(key).await,
            // An unreachable Redis must not break pages or signaling of running meetings:
            // the session counts as unknown; /health reports the outage.
            Sessions::Redis(r, errors) => {
                let loaded = bounded(async {
                    match r.load(key).await {
                        Err(LoadError::Other(e)) => Err(e),
                        other => Ok(other),
                    }
                })
                .await;
                match loaded {
                    Ok(result) => result,
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        warn!("session store unavailable: {e:#}");
                        Ok(None)
                    }
                }
            }
        }
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        match self {
            Sessions::Memory(m) => m.save(state, ttl).await,
            Sessions::Redis(r, errors) => counted(
                errors,
                bounded(async { Ok(r.save(state, ttl).await) })
                    .await
                    .unwrap_or_else(|e| Err(SaveError::Other(e))),
            ),
        }
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        match self {
            Sessions::Memory(m) => m.update(key, state, ttl).await,
            Sessions::Redis(r, errors) => counted(
                errors,
                bounded(async { Ok(r.update(key, state, ttl).await) })
                    .await
                    .unwrap_or_else(|e| Err(UpdateError::Other(e))),
            ),
        }
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        match self {
            Sessions::Memory(m) => m.update_ttl(key, ttl).await,
            Sessions::Redis(r, errors) => counted(errors, bounded(r.update_ttl(key, ttl)).await),
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        match self {
            Sessions::Memory(m) => m.delete(key).await,
            Sessions::Redis(r, errors) => counted(errors, bounded(r.delete(key)).await),
        }
    }
}

/// Counts a failed Redis call in `errors` and passes the result on.
fn counted<T, E>(errors: &AtomicU64, result: Result<T, E>) -> Result<T, E> {
    if result.is_err() {
        errors.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// Sessions in process memory, expiring after their TTL.
#[derive(Clone, Default)]
pub struct MemorySessionStore {
    /// key -> (state, expiry); shared by every HTTP worker thread.
    inner: Arc<Mutex<HashMap<String, (State, Instant)>>>,
}

impl MemorySessionStore {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (State, Instant)>> {
        // A poisoned lock means a panic elsewhere mid-update; the map itself stays valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expiry(ttl: &Duration) -> Instant {
        Instant::now() + StdDuration::from_secs(ttl.whole_seconds().max(0) as u64)
    }

    fn new_key() -> Result<SessionKey, anyhow::Error> {
        SessionKey::try_from(Alphanumeric.sample_string(&mut rand::thread_rng(), 64))
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

impl SessionStore for MemorySessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let mut map = self.map();
        let now = Instant::now();
        map.retain(|_, (_, exp)| *exp > now);
        Ok(map.get(key.as_ref()).map(|(s, _)| s.clone()))
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let key = Self::new_key().map_err(SaveError::Other)?;
        self.map()
            .insert(key.as_ref().to_string(), (state, Self::expiry(ttl)));
        Ok(key)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        self.map()
            .insert(key.as_ref().to_string(), (state, Self::expiry(ttl)));
        Ok(key)
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        if let Some(entry) = self.map().get_mut(key.as_ref()) {
            entry.1 = Self::expiry(ttl);
        }
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        self.map().remove(key.as_ref());
        Ok(())
    }
}

/// Redis reachability as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisState {
    /// No Redis configured.
    Disabled,
    /// The last PING was answered.
    Ok,
    /// The last PING failed.
    Unreachable,
}

impl RedisState {
    /// The word in `/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            RedisState::Disabled => "disabled",
            RedisState::Ok => "ok",
            RedisState::Unreachable => "unreachable",
        }
    }
}

/// Pings Redis every second in the background; readers see the last result.
#[derive(Clone)]
pub struct RedisMonitor {
    state: Arc<AtomicU8>,
}

impl RedisMonitor {
    /// A monitor for `url`, or a permanently `Disabled` one; failed pings are counted in
    /// `errors`.
    pub fn start(url: Option<String>, errors: Arc<AtomicU64>) -> RedisMonitor {
        let state = Arc::new(AtomicU8::new(match url {
            None => 0,
            Some(_) => 1,
        }));
        if let Some(url) = url {
            let shared = state.clone();
            actix_web::rt::spawn(async move {
                let mut conn: Option<redis::aio::MultiplexedConnection> = None;
                let mut last_ok = true;
                loop {
                    let ok = ping(&url, &mut conn).await;
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if ok != last_ok {
                        if ok {
                            info!("Redis reachable again");
                        } else {
                            warn!("Redis unreachable: /health reports 503 until it answers");
                        }
                        last_ok = ok;
                    }
                    shared.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
                    tokio::time::sleep(StdDuration::from_secs(1)).await;
                }
            });
        }
        RedisMonitor { state }
    }

    /// The last observed state.
    pub fn state(&self) -> RedisState {
        match self.state.load(Ordering::SeqCst) {
            0 => RedisState::Disabled,
            1 => RedisState::Ok,
            _ => RedisState::Unreachable,
        }
    }
}

async fn ping(url: &str, conn: &mut Option<redis::aio::MultiplexedConnection>) -> bool {
    let attempt = async {
        if conn.is_none() {
            let client = redis::Client::open(url).map_err(|e| e.to_string())?;
            *conn = Some(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let c = conn.as_mut().ok_or("no connection")?;
        redis::cmd("PING")
            .query_async::<String>(c)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(StdDuration::from_millis(800), attempt).await {
        Ok(Ok(_)) => true,
        _ => {
            *conn = None;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_is_added_once() {
        let mut h = HeaderMap::new();
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("a=1; HttpOnly; SameSite=Lax"),
        );
        h.append(SET_COOKIE, HeaderValue::from_static("b=2; Secure"));
        secure_cookies(&mut h);
        let all: Vec<_> = h
            .get_all(SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            all,
            vec!["a=1; HttpOnly; SameSite=Lax; Secure", "b=2; Secure"]
        );
    }

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(
            redact("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1"), "redis://127.0.0.1");
    }
}
