//! A signaling message longer than a WebSocket frame goes out as continuation frames of at
//! most 4 KiB (`service::ws::send_text`), so that no connection keeps a write buffer the size
//! of the room's largest message, and arrives whole: read frame by frame by a raw client, and
//! reassembled by a WebSocket library (the Rust client's tokio-tungstenite).

use std::time::Duration;

use multiparty_meeting::client::Client;
use multiparty_meeting::{server, Config};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PEERS: usize = 60;
const FRAME_BYTES: usize = 4096;

/// Opens a WebSocket on `path` by hand and returns the stream after the 101.
async fn raw_ws(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("a handshake response");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Sends one masked text frame.
async fn send_text(s: &mut TcpStream, text: &str) {
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81];
    let n = text.len();
    if n < 126 {
        frame.push(0x80 | n as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend((n as u16).to_be_bytes());
    }
    frame.extend(mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).await.unwrap();
}

/// Reads one frame: (FIN, opcode, payload).
async fn read_frame(s: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.expect("a frame");
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.unwrap();
            usize::from(u16::from_be_bytes(l))
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).await.unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.unwrap();
    (h[0] & 0x80 != 0, h[0] & 0x0f, payload)
}

#[actix_rt::test]
async fn a_join_response_longer_than_a_frame_arrives_whole_in_4_kib_frames() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut peers = Vec::new();
    for i in 0..PEERS {
        // The longest display names allowed: the join response grows with the room.
        let name = format!("{i:02}-{}", "x".repeat(61));
        peers.push(Client::connect(&base, "big", &name).await.expect("joins"));
    }

    let mut ws = raw_ws(srv.http_addr, "/ws/big").await;
    send_text(
        &mut ws,
        r#"{"type":"request","id":1,"method":"join","data":{"displayName":"Raw","protocolVersion":1}}"#,
    )
    .await;
    let read = async {
        loop {
            let (mut fin, opcode, mut message) = read_frame(&mut ws).await;
            if opcode != 1 {
                continue; // ping
            }
            let mut frames = vec![message.len()];
            while !fin {
                let (f, op, part) = read_frame(&mut ws).await;
                assert_eq!(op, 0, "a continuation frame follows the first");
                frames.push(part.len());
                message.extend(part);
                fin = f;
            }
            let v: Value = serde_json::from_slice(&message).expect("the reassembled JSON parses");
            if v["type"] == "response" && v["id"] == 1 {
                return (v, frames);
            }
        }
    };
    let (response, frames) = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the join response");
    let total: usize = frames.iter().sum();
    assert!(total > 2 * FRAME_BYTES, "a long message: {total} bytes");
    assert!(
        frames.iter().all(|&f| f <= FRAME_BYTES),
        "frames of at most 4 KiB: {frames:?}"
    );
    assert_eq!(frames.len(), total.div_ceil(FRAME_BYTES));
    assert_eq!(response["ok"], true, "{response}");
    assert_eq!(
        response["data"]["peers"].as_array().map(Vec::len),
        Some(PEERS),
        "every participant listed"
    );

    // A WebSocket library reassembles it too.
    let late = Client::connect(&base, "big", "Late").await.expect("joins");
    assert_eq!(
        late.join_response().peers.len(),
        PEERS + 1,
        "everyone, the raw client too"
    );
}
