//! A participant of Janus' VideoRoom plugin over the Janus WebSocket API
//! (`janus-protocol`): `create` a session, `attach` the plugin; a publisher `join`s as
//! publisher and `publish`es its offer; a subscriber `join`s as subscriber to the room's
//! feeds, answers Janus' offer and `start`s. Rooms are created up front by
//! [`create_rooms`]. Candidates travel inside the SDPs; each side then signals
//! end-of-candidates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::engine::ConnId;
use crate::scenario::{recv_tag, send_tag, Ctx};
use crate::ws::JsonWs;

/// Janus destroys sessions silent for `session_timeout` (60 s by default).
const KEEPALIVE: Duration = Duration::from_secs(20);

static TRANSACTION: AtomicU64 = AtomicU64::new(1);

/// Replies carry the request's `transaction`; acks only say "received" and are skipped.
fn key(v: &Value) -> Option<String> {
    if v.get("janus").and_then(Value::as_str) == Some("ack") {
        return None;
    }
    v.get("transaction")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A session with one VideoRoom handle.
struct Handle {
    ws: JsonWs,
    session: Value,
    handle: Value,
}

async fn request(ws: &JsonWs, janus: &str, mut frame: Value) -> anyhow::Result<Value> {
    let tx = format!("t{}", TRANSACTION.fetch_add(1, Ordering::Relaxed));
    frame["janus"] = json!(janus);
    frame["transaction"] = json!(tx);
    let resp = ws.request(tx, frame).await?;
    if resp.get("janus").and_then(Value::as_str) == Some("error") {
        bail!("janus {janus}: {}", resp.get("error").unwrap_or(&resp));
    }
    Ok(resp)
}

impl Handle {
    async fn open(url: &str, timeout: Duration) -> anyhow::Result<Handle> {
        let ws = JsonWs::connect(url, Some("janus-protocol"), key, timeout).await?;
        let created = request(&ws, "create", json!({})).await?;
        let session = created
            .pointer("/data/id")
            .cloned()
            .ok_or_else(|| anyhow!("janus create: no session id in {created}"))?;
        let attached = request(
            &ws,
            "attach",
            json!({"session_id": session, "plugin": "janus.plugin.videoroom"}),
        )
        .await?;
        let handle = attached
            .pointer("/data/id")
            .cloned()
            .ok_or_else(|| anyhow!("janus attach: no handle id in {attached}"))?;
        Ok(Handle {
            ws,
            session,
            handle,
        })
    }

    /// A VideoRoom request; returns the plugin data and the JSEP of the reply, if any.
    async fn message(&self, body: Value, jsep: Option<Value>) -> anyhow::Result<(Value, Value)> {
        let mut frame = json!({"session_id": self.session, "handle_id": self.handle, "body": body});
        if let Some(j) = jsep {
            frame["jsep"] = j;
        }
        let resp = request(&self.ws, "message", frame).await?;
        let data = resp
            .pointer("/plugindata/data")
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(err) = data.get("error") {
            bail!("videoroom {}: {err}", body["request"]);
        }
        Ok((data, resp.get("jsep").cloned().unwrap_or(Value::Null)))
    }

    fn trickle_done(&self) -> anyhow::Result<()> {
        let tx = format!("t{}", TRANSACTION.fetch_add(1, Ordering::Relaxed));
        self.ws.send(json!({
            "janus": "trickle", "transaction": tx, "session_id": self.session,
            "handle_id": self.handle, "candidate": {"completed": true}
        }))
    }

    fn keepalive(&self) -> anyhow::Result<()> {
        let tx = format!("t{}", TRANSACTION.fetch_add(1, Ordering::Relaxed));
        self.ws
            .send(json!({"janus": "keepalive", "transaction": tx, "session_id": self.session}))
    }
}

/// Creates `count` rooms numbered from `first` for `publishers` publishers each; returns
/// their numbers.
pub async fn create_rooms(
    url: &str,
    first: u64,
    count: usize,
    publishers: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let h = Handle::open(url, timeout)
        .await
        .with_context(|| format!("opening a Janus session at {url}"))?;
    let mut rooms = Vec::new();
    for i in 0..count as u64 {
        let room = first + i;
        let (data, _) = h
            .message(
                json!({
                    "request": "create", "room": room, "publishers": publishers.max(1) + 1,
                    "bitrate": 0, "fir_freq": 0, "audiocodec": "opus", "videocodec": "vp8",
                    "notify_joining": false, "permanent": false
                }),
                None,
            )
            .await
            .with_context(|| format!("creating Janus room {room}"))?;
        if data.get("videoroom").and_then(Value::as_str) != Some("created") {
            bail!("janus did not create room {room}: {data}");
        }
        rooms.push(room.to_string());
    }
    h.ws.close().await;
    Ok(rooms)
}

/// Runs participant `part` until shutdown; errors are recorded in the tracker.
pub async fn participant(ctx: Arc<Ctx>, part: usize) {
    crate::scenario::drive(ctx, part, run).await;
}

async fn run(ctx: &Ctx, part: usize, conns: &mut Vec<ConnId>) -> anyhow::Result<()> {
    let info = ctx
        .tracker
        .get(part)
        .ok_or_else(|| anyhow!("no participant {part}"))?;
    ctx.tracker
        .update(part, |p| p.started = Some(Instant::now()));
    let room: u64 = ctx.rooms[info.room].parse()?;
    let mut h = Handle::open(&ctx.url, ctx.timeout).await?;

    if info.publisher {
        let (data, _) = h
            .message(
                json!({"request": "join", "ptype": "publisher", "room": room,
                       "display": format!("load-{part}")}),
                None,
            )
            .await?;
        let feed = data
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("publisher join: no id in {data}"))?;
        ctx.tracker
            .update(part, |p| p.joined = Some(Instant::now()));
        let offer = ctx
            .engine
            .new_publisher(send_tag(part), ctx.spec.clone())
            .await?;
        conns.push(offer.conn);
        let (_, jsep) = h
            .message(
                json!({"request": "publish", "audio": ctx.spec.audio, "video": ctx.spec.video}),
                Some(json!({"type": "offer", "sdp": offer.sdp})),
            )
            .await?;
        let answer = jsep
            .get("sdp")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("publish: no answer from Janus"))?;
        ctx.engine
            .accept_answer(offer.conn, answer.to_string())
            .await?;
        h.trickle_done()?;
        ctx.tracker.add_feed(info.room, feed);
    } else {
        let feeds = ctx.tracker.feeds(info.room);
        if feeds.is_empty() {
            bail!("room {room} has no publisher to subscribe to");
        }
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let (_, jsep) = h
            .message(
                json!({"request": "join", "ptype": "subscriber", "room": room,
                       "streams": streams}),
                None,
            )
            .await?;
        ctx.tracker
            .update(part, |p| p.joined = Some(Instant::now()));
        let offer = jsep
            .get("sdp")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("subscriber join: no offer from Janus"))?;
        let conn = ctx.engine.new_subscriber(recv_tag(part)).await?;
        conns.push(conn);
        let answer = ctx.engine.accept_offer(conn, offer.to_string()).await?;
        h.message(
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
        )
        .await?;
        h.trickle_done()?;
    }

    let mut shutdown = ctx.shutdown.clone();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = keepalive.tick() => h.keepalive()?,
            n = h.ws.next_notification() => {
                if n.is_none() {
                    bail!("Janus closed the signaling connection");
                }
            }
        }
    }
    let tx = format!("t{}", TRANSACTION.fetch_add(1, Ordering::Relaxed));
    let _ =
        h.ws.send(json!({"janus": "destroy", "transaction": tx, "session_id": h.session}));
    h.ws.close().await;
    Ok(())
}
