//! Writing a signaling message to a client's WebSocket: one message, in frames small enough
//! that the connection's write buffer never grows with the room (the participants' own
//! connections, `ws`, and those relayed from other instances, `relay`).

/// Largest WebSocket frame the server writes: longer messages go as continuation frames.
pub const FRAME_BYTES: usize = 4096;

/// Sends `text` as one message, in frames of at most [`FRAME_BYTES`], letting the connection
/// write each frame before the next is queued.
///
/// Why: actix-ws encodes every queued frame into one chunk, and actix-http keeps a
/// connection's write buffer at the size of the largest chunk it wrote (up to 128 KiB). A
/// `join` response lists every participant, so in a room of 1,200 each connection kept
/// ~66 KiB for the rest of its life: 80 MB, quadratic in the room's size. Frame by frame,
/// with the HTTP server flushing every 8 KiB (`service::start`), the buffer stays at its
/// initial 8 KiB. Browsers and WebSocket libraries reassemble the message.
pub async fn send_text(
    session: &mut actix_ws::Session,
    text: String,
) -> Result<(), actix_ws::Closed> {
    use actix_web::web::Bytes;
    use actix_ws::Item;
    if text.len() <= FRAME_BYTES {
        return session.text(text).await;
    }
    let bytes = Bytes::from(text);
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + FRAME_BYTES).min(bytes.len());
        let part = bytes.slice(at..end);
        let item = if at == 0 {
            Item::FirstText(part)
        } else if end == bytes.len() {
            Item::Last(part)
        } else {
            Item::Continue(part)
        };
        session.continuation(item).await?;
        // The connection's task takes this frame before the next one is queued.
        tokio::task::yield_now().await;
        at = end;
    }
    Ok(())
}
