//! The worker's network side: the UDP socket (large buffers, `ppoll` waits), the ICE-TCP
//! listener and its reader threads, and the entry of every datagram, routed to the transport
//! that accepts it.

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::KeyframeRequestKind;
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::Input;
use tracing::{debug, trace, warn};

use super::{Conn, TKey, Worker};
use crate::ids::ConsumerId;
use crate::model::Direction;
use crate::sfu::recv::conn::parse_stun;

/// Socket buffer the media sockets ask for: a few hundred milliseconds of a busy worker's
/// traffic, so join bursts and scheduling hiccups do not drop datagrams.
pub(super) const SOCKET_BUFFER: usize = 8 << 20;

/// Sets the integer socket option `level`/`name` of `socket` to `value`; false when the
/// kernel refuses it.
fn set_int(socket: &UdpSocket, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is an open socket; `value` lives for the call and the length is its size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// The integer socket option `level`/`name` of `socket`; None when the kernel refuses.
fn get_int(socket: &UdpSocket, level: libc::c_int, name: libc::c_int) -> Option<libc::c_int> {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given.
    let got = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &mut value as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    (got == 0).then_some(value)
}

/// Asks for [`SOCKET_BUFFER`] bytes (beyond `net.core.*mem_max` when privileged); returns what
/// the kernel granted (it reports twice the usable size).
pub(super) fn grow_buffer(socket: &UdpSocket, opt: libc::c_int, force: libc::c_int) -> usize {
    let want = SOCKET_BUFFER as libc::c_int;
    if !set_int(socket, libc::SOL_SOCKET, force, want) {
        set_int(socket, libc::SOL_SOCKET, opt, want);
    }
    let got = get_int(socket, libc::SOL_SOCKET, opt).unwrap_or(0);
    usize::try_from(got).unwrap_or(0) / 2
}

/// Sets Don't Fragment on every datagram `socket` sends, whatever path MTU the kernel has
/// cached (`IP_PMTUDISC_PROBE`, and its IPv6 twin on an IPv6 socket); returns whether the
/// kernel took it.
///
/// Media packets are sized to fit any path (about 1,200 bytes), and browsers send theirs
/// with DF too (libwebrtc sets it): a router that cannot carry one drops it rather than
/// splitting it, and nothing is fragmented here. By default (`IP_PMTUDISC_WANT`) a GSO
/// message longer than the route's MTU left without DF, and every datagram took the kernel's
/// hashed IP ID (`__ip_select_ident`, 0.4 % of the core at 1,200 streams); with DF set the ID
/// of an unfragmentable datagram is simply 0 (RFC 6864).
pub(super) fn dont_fragment(socket: &UdpSocket) -> bool {
    let v4 = || {
        set_int(
            socket,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    };
    match socket.local_addr() {
        Ok(SocketAddr::V6(_)) => {
            // A dual-stack socket sends to IPv4 peers on the IPv4 path: both, where the
            // kernel takes the IPv4 option on an IPv6 socket.
            let _ = v4();
            set_int(
                socket,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_PROBE,
            )
        }
        _ => v4(),
    }
}

/// Blocks until `socket` is readable or `timeout` passes. `ppoll` sleeps with high-resolution
/// timers; a socket read timeout would round up to the kernel tick (4 ms here) and delay
/// every packet str0m wants sent at a precise time.
pub(super) fn wait_readable(socket: &UdpSocket, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` is one valid pollfd for the duration of the call, `ts` a valid timespec,
    // and no signal mask is passed. An error (EINTR) only shortens the sleep.
    unsafe {
        libc::ppoll(&mut fds, 1, &ts, std::ptr::null());
    }
}

/// Binds UDP and TCP on the same port, the first free one of the range.
pub(super) fn bind_in_range(
    ip: IpAddr,
    (min, max): (u16, u16),
) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for port in min..=max {
        let udp = match UdpSocket::bind(SocketAddr::new(ip, port)) {
            Ok(s) => s,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        match TcpListener::bind(SocketAddr::new(ip, port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(std::io::Error::new(
        ErrorKind::AddrInUse,
        format!(
            "no port free for both UDP and TCP in {min}-{max} on {ip} (last error: {}); widen rtcMinPort-rtcMaxPort",
            last_err.map(|e| e.to_string()).unwrap_or_default()
        ),
    ))
}

/// What the ICE-TCP threads tell the worker.
pub(super) enum TcpEvent {
    /// A browser connected; the stream is the worker's writing half.
    Opened(SocketAddr, TcpStream),
    /// One RFC 4571 frame (a STUN, DTLS, RTP or RTCP packet).
    Frame(SocketAddr, Vec<u8>),
    /// The connection ended.
    Closed(SocketAddr),
}

/// Accepts ICE-TCP connections (passive candidates) and starts a reader thread for each,
/// which de-frames RFC 4571 packets into the worker's queue.
pub(super) fn spawn_tcp_acceptor(
    index: usize,
    listener: TcpListener,
    events: Sender<TcpEvent>,
    poke: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("media-tcp-{index}"))
        .spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let Ok(peer) = stream.peer_addr() else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                let Ok(writer) = stream.try_clone() else {
                    continue;
                };
                if events.send(TcpEvent::Opened(peer, writer)).is_err() {
                    return;
                }
                let (events, poke) = (events.clone(), poke.clone());
                let _ = std::thread::Builder::new()
                    .name(format!("media-tcp-{index}-conn"))
                    .spawn(move || read_frames(peer, stream, events, poke));
            }
        })?;
    Ok(())
}

fn read_frames(
    peer: SocketAddr,
    mut stream: TcpStream,
    events: Sender<TcpEvent>,
    poke: Arc<UdpSocket>,
) {
    let mut len = [0u8; 2];
    loop {
        if stream.read_exact(&mut len).is_err() {
            break;
        }
        let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut frame).is_err() {
            break;
        }
        if events.send(TcpEvent::Frame(peer, frame)).is_err() {
            return;
        }
        let _ = poke.send(&[0]);
    }
    let _ = events.send(TcpEvent::Closed(peer));
    let _ = poke.send(&[0]);
}

/// The network side a worker is built with.
pub(super) struct WorkerIo {
    /// The UDP socket, owned by the worker thread.
    pub(super) socket: UdpSocket,
    /// Announced address:port of the UDP and TCP candidates.
    pub(super) candidate_addr: SocketAddr,
    /// Source address of wake-up datagrams, to drop them.
    pub(super) poke_source: SocketAddr,
    /// ICE-TCP events from the TCP threads.
    pub(super) tcp_rx: Receiver<TcpEvent>,
}

/// RTCP by RFC 5761's demultiplexing: RTP version 2, and a second byte of 192-223 (RTCP
/// packet types; no RTP payload type with the marker bit lands there).
fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && (128..192).contains(&data[0]) && (192..224).contains(&data[1])
}

impl Worker {
    pub(super) fn on_packet(&mut self, proto: Protocol, source: SocketAddr, data: &[u8]) {
        if is_rtcp(data) {
            // A subscriber's RTCP is about what the egress sent: it reads it, not str0m.
            if let Some(key) = self.routes.get(&source).copied().filter(|k| {
                self.transports
                    .get(k)
                    .is_some_and(|t| !t.dead && t.egress.is_some())
            }) {
                self.on_subscriber_rtcp(key, data);
                return;
            }
        }
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return;
        };
        let now = Instant::now();
        let destination = self.candidate_addr;
        // Parsed once here, not by each recv connection the datagram is tried against.
        let stun = parse_stun(data);
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let routed = self
            .routes
            .get(&source)
            .copied()
            .filter(|k| {
                self.transports
                    .get(k)
                    .is_some_and(|t| !t.dead && t.conn.accepts(&input, source, stun.as_ref()))
            })
            .or_else(|| {
                self.transports
                    .iter()
                    .find(|(_, t)| !t.dead && t.conn.accepts(&input, source, stun.as_ref()))
                    .map(|(k, _)| *k)
            });
        let Some(key) = routed else {
            debug!(worker = self.index, %source, "datagram for no transport");
            return;
        };
        self.routes.insert(source, key);
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        t.remotes.insert(source);
        let handled = match &mut t.conn {
            Conn::Send(rtc) => rtc.handle_input(input).map_err(|e| e.to_string()),
            Conn::Recv(c) => c
                .handle_datagram(now, proto, source, destination, data, stun)
                .map_err(|e| e.to_string()),
            Conn::Broken => Ok(()),
        };
        if let Err(e) = handled {
            warn!(peer = %t.peer, "transport input error: {e}");
            t.conn.disconnect();
        }
        if t.direction == Direction::Send {
            // In RTP mode str0m holds one received packet until the next poll, and a second
            // datagram would replace it: a publisher's transport is polled (its packet
            // forwarded) before the next datagram is read.
            self.poll(key);
        } else {
            self.mark_dirty(key);
        }
    }
}

impl Worker {
    /// SRTCP from a subscriber: reports and transport-wide feedback go to its egress; NACKs
    /// are answered from the producers' histories, keyframe requests go to the publishers.
    fn on_subscriber_rtcp(&mut self, key: TKey, data: &[u8]) {
        let now = Instant::now();
        let mut requests = std::mem::take(&mut self.requests);
        requests.clear();
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let Some(egress) = t.egress.as_mut() else {
            return;
        };
        if let Err(e) = egress.on_rtcp(data, now, &mut requests) {
            // Forged, replayed or malformed: dropped, as str0m would.
            trace!(peer = %t.peer, "subscriber RTCP dropped: {e}");
            self.stats.subscriber_rtcp_dropped += 1;
        }
        // Feedback may start a probe or move the next report.
        let next = egress.next_timeout(now);
        self.egress_timers.schedule(key, next);
        self.next_wakeup = self.next_wakeup.min(next);
        let nacks: Vec<(ConsumerId, u64)> = requests
            .nacks
            .iter()
            .filter_map(|(mid, seq)| t.consumers_by_mid.get(mid).map(|c| (c.clone(), *seq)))
            .collect();
        let keyframes: Vec<ConsumerId> = requests
            .keyframes
            .iter()
            .filter_map(|mid| t.consumers_by_mid.get(mid).cloned())
            .collect();
        self.requests = requests;
        self.stats.nacks_received += nacks.len() as u64;
        let mut at = 0;
        while at < nacks.len() {
            // One answer per consumer, with all its sequence numbers.
            let cid = nacks[at].0.clone();
            let seqs: Vec<u64> = nacks[at..]
                .iter()
                .take_while(|(c, _)| *c == cid)
                .map(|(_, s)| *s)
                .collect();
            at += seqs.len();
            self.answer_nack(key, &cid, &seqs);
        }
        for cid in keyframes {
            self.stats.plis_received += 1;
            let Some(c) = self.consumers.get(&cid) else {
                continue;
            };
            let layer = c.current.clone().or_else(|| c.target.clone());
            debug!(consumer = %cid, ?layer, "a subscriber asks for a keyframe");
            let pid = c.producer.clone();
            self.request_keyframe(&pid, layer, KeyframeRequestKind::Pli);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel holds for a socket option of `level`.
    fn option(socket: &UdpSocket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        get_int(socket, level, name).expect("getsockopt")
    }

    #[test]
    fn media_sockets_send_with_dont_fragment_over_ipv4_and_ipv6() {
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_ne!(
            option(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_PROBE,
            "not the kernel's default"
        );
        assert!(dont_fragment(&v4));
        assert_eq!(
            option(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_PROBE
        );
        let v6 = UdpSocket::bind("[::1]:0").unwrap();
        assert!(dont_fragment(&v6));
        assert_eq!(
            option(&v6, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
            libc::IPV6_PMTUDISC_PROBE
        );
        // Still sends: a datagram goes out and arrives whole.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        v4.send_to(&[7u8; 1_200], rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 2_048];
        assert_eq!(rx.recv(&mut buf).unwrap(), 1_200);
    }
}
