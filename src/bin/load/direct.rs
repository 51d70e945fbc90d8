//! The `direct` target: no server. Each subscriber gets its own publisher connection in the
//! same engine, negotiated in-process, so the figures show what the load generator itself
//! adds (its loop, str0m on both ends, the kernel): the floor under every server's figures.

use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;

use crate::engine::ConnId;
use crate::scenario::{recv_tag, send_tag, Ctx};

/// Runs participant `part` until shutdown; errors are recorded in the tracker.
pub async fn participant(ctx: Arc<Ctx>, part: usize) {
    crate::scenario::drive(ctx, part, run).await;
}

async fn run(ctx: &Ctx, part: usize, conns: &mut Vec<ConnId>) -> anyhow::Result<()> {
    let info = ctx
        .tracker
        .get(part)
        .ok_or_else(|| anyhow!("no participant {part}"))?;
    let now = Instant::now();
    ctx.tracker.update(part, |p| {
        p.started = Some(now);
        p.joined = Some(now);
    });
    if info.publisher {
        // Publishers of the scenario have no peer here; each subscriber brings its own.
        ctx.tracker
            .update(part, |p| p.send_connected = Some(Instant::now()));
    } else {
        let offer = ctx
            .engine
            .new_publisher(send_tag(part), ctx.spec.clone())
            .await?;
        conns.push(offer.conn);
        let sub = ctx.engine.new_subscriber(recv_tag(part)).await?;
        conns.push(sub);
        let answer = ctx.engine.accept_offer(sub, offer.sdp).await?;
        ctx.engine.accept_answer(offer.conn, answer).await?;
    }
    let mut shutdown = ctx.shutdown.clone();
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    Ok(())
}
