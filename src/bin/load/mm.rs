//! A participant of our server (docs/protocol.md): WebSocket, `welcome`, `join`; publishers
//! `publish` their send connection's offer; everyone answers each `recvOffer` on a receive
//! connection with `recvAnswer`. Media runs in the engine; this task only signals, then
//! keeps the WebSocket open until the run ends.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};

use crate::engine::ConnId;
use crate::scenario::{recv_tag, send_tag, Ctx};
use crate::ws::JsonWs;

/// Responses are matched by their `id`.
fn key(v: &Value) -> Option<String> {
    (v.get("type").and_then(Value::as_str) == Some("response"))
        .then(|| v.get("id").map(Value::to_string))
        .flatten()
}

struct Session {
    ws: JsonWs,
    next_id: u64,
}

impl Session {
    async fn request(&mut self, method: &str, data: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = json!({"type": "request", "id": id, "method": method, "data": data});
        let resp = self.ws.request(id.to_string(), frame).await?;
        if resp.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(resp.get("data").cloned().unwrap_or(Value::Null))
        } else {
            Err(anyhow!(
                "{method} refused: {}",
                resp.get("error").unwrap_or(&resp)
            ))
        }
    }
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
    let url = format!("{}/ws/{}", ctx.url, ctx.rooms[info.room]);
    let ws = JsonWs::connect(&url, None, key, ctx.timeout).await?;
    let mut s = Session { ws, next_id: 1 };
    let welcome = tokio::time::timeout(ctx.timeout, async {
        while let Some(v) = s.ws.next_notification().await {
            if v.get("method").and_then(Value::as_str) == Some("welcome") {
                return Some(v);
            }
        }
        None
    })
    .await
    .map_err(|_| anyhow!("no welcome within {:?}", ctx.timeout))?;
    if welcome.is_none() {
        bail!("signaling closed before welcome");
    }
    s.request(
        "join",
        json!({"displayName": format!("load-{part}"), "protocolVersion": 1}),
    )
    .await?;
    ctx.tracker
        .update(part, |p| p.joined = Some(Instant::now()));

    if info.publisher {
        let offer = ctx
            .engine
            .new_publisher(send_tag(part), ctx.spec.clone())
            .await?;
        conns.push(offer.conn);
        let producers: Vec<Value> = offer
            .tracks
            .iter()
            .map(|(mid, kind)| {
                let source = match kind {
                    multiparty_meeting::client::Kind::Audio => "mic",
                    multiparty_meeting::client::Kind::Video => "webcam",
                };
                json!({"mid": mid, "kind": kind.as_str(), "source": source})
            })
            .collect();
        let resp = s
            .request("publish", json!({"sdp": offer.sdp, "producers": producers}))
            .await?;
        let answer = resp
            .get("sdp")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("publish response without sdp: {resp}"))?;
        ctx.engine
            .accept_answer(offer.conn, answer.to_string())
            .await?;
    }

    let mut recv: Option<ConnId> = None;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            n = s.ws.next_notification() => {
                let Some(v) = n else { bail!("the server closed the signaling connection") };
                match v.get("method").and_then(Value::as_str) {
                    Some("recvOffer") => {
                        let sdp = v
                            .pointer("/data/sdp")
                            .and_then(Value::as_str)
                            .ok_or_else(|| anyhow!("recvOffer without sdp"))?
                            .to_string();
                        let conn = match recv {
                            Some(c) => c,
                            None => {
                                let c = ctx.engine.new_subscriber(recv_tag(part)).await?;
                                conns.push(c);
                                recv = Some(c);
                                c
                            }
                        };
                        let answer = ctx.engine.accept_offer(conn, sdp).await?;
                        s.request("recvAnswer", json!({"sdp": answer})).await?;
                    }
                    Some("reconnect") => bail!("the server asked us to reconnect: {v}"),
                    _ => {}
                }
            }
        }
    }
    s.ws.close().await;
    Ok(())
}
