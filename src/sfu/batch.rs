//! Outgoing datagrams of one worker loop turn, sent with one `sendmmsg(2)` per batch instead
//! of one `sendto(2)` per packet: the system call was a third of the worker's time in a
//! 1→100 fan-out. Consecutive datagrams to one destination of one size (the packets of one
//! video frame to one subscriber; the last may be shorter) go as one message with UDP
//! generic segmentation offload (`UDP_SEGMENT`, Linux 4.18): the kernel walks its stack once
//! for the lot and still delivers separate datagrams. A kernel that refuses GSO gets plain
//! datagrams from then on. Owns only the batch buffers; the worker owns the socket.
//!
//! Incoming datagrams come the same way: [`RecvBatch`] reads what is waiting with one
//! `recvmmsg(2)` instead of one `recvfrom(2)` per datagram and one more to learn that nothing
//! is left.

use std::io::ErrorKind;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Messages sent per `sendmmsg` call (the kernel caps a call at 1024).
pub const MAX_BATCH: usize = 64;
/// Linux's `UDP_SEGMENT` socket option (`linux/udp.h`); the libc crate defines it only for
/// some targets.
const UDP_SEGMENT: libc::c_int = 103;
/// Segments the kernel takes in one GSO message (`UDP_MAX_SEGMENTS`).
const MAX_SEGMENTS: usize = 64;
/// Bytes of one GSO message: below the 65,507-byte UDP payload limit.
const MAX_GSO_BYTES: usize = 60_000;

/// Queued datagrams: payload bytes in one buffer, (destination, range) per datagram.
#[derive(Default)]
pub struct SendBatch {
    data: Vec<u8>,
    items: Vec<(SocketAddr, usize, usize)>,
    /// The kernel refused a GSO message once: send plain datagrams.
    no_gso: bool,
}

/// Datagrams sent as one message: `count` items from `first`, each `segment` bytes but the
/// last, which may be shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: usize,
    count: usize,
    segment: usize,
    bytes: usize,
}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams dropped after an error.
    pub dropped: usize,
    /// Messages handed to the kernel (fewer than `sent` when GSO joined datagrams).
    pub messages: usize,
}

impl SendBatch {
    /// Queues one datagram.
    pub fn push(&mut self, destination: SocketAddr, payload: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(payload);
        self.items.push((destination, start, payload.len()));
    }

    /// True when the batch should be sent before a datagram to `destination` is queued: it
    /// holds a `sendmmsg` worth of datagrams, and the datagram would not extend the run of
    /// the last destination (one GSO message), or that run is already a message long.
    pub fn full_before(&self, destination: SocketAddr) -> bool {
        let len = self.items.len();
        len >= MAX_BATCH
            && (self.items.last().is_some_and(|(d, _, _)| *d != destination)
                || len >= MAX_BATCH + MAX_SEGMENTS)
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drops everything queued without sending it.
    pub fn clear(&mut self) {
        self.items.clear();
        self.data.clear();
    }

    /// Sends everything queued on `socket` (non-blocking) and empties the batch. A full
    /// socket buffer is waited for briefly; a datagram the kernel refuses (unreachable
    /// destination) is dropped, as UDP would.
    pub fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut done = Flushed::default();
        let mut next = 0;
        let mut full_waits = 0;
        while next < self.items.len() {
            let runs = self.runs(next, MAX_BATCH);
            match self.send_runs(socket, &runs) {
                Ok(n) => {
                    let datagrams: usize = runs[..n].iter().map(|r| r.count).sum();
                    next += datagrams;
                    done.sent += datagrams;
                    done.messages += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock && full_waits < 3 => {
                    full_waits += 1;
                    wait_writable(socket, Duration::from_millis(2));
                }
                Err(e) if runs[0].count > 1 && gso_refused(&e) => {
                    tracing::info!("the kernel refuses UDP GSO ({e}): sending plain datagrams");
                    self.no_gso = true;
                }
                Err(e) => {
                    // The first message of the batch failed: drop it and go on.
                    tracing::debug!("send to {} failed: {e}", self.items[next].0);
                    next += runs[0].count;
                    done.dropped += runs[0].count;
                }
            }
        }
        self.clear();
        done
    }

    /// Up to `max` messages from `items[start..]`: runs of datagrams to one destination, of
    /// one size but the last (one datagram each without GSO).
    fn runs(&self, start: usize, max: usize) -> Vec<Run> {
        let mut runs: Vec<Run> = Vec::new();
        for (i, (dest, _, len)) in self.items.iter().enumerate().skip(start) {
            if let Some(run) = runs.last_mut() {
                let (run_dest, _, _) = self.items[run.first];
                let (_, _, last_len) = self.items[run.first + run.count - 1];
                let joins = !self.no_gso
                    && run_dest == *dest
                    && last_len == run.segment
                    && *len <= run.segment
                    && run.count < MAX_SEGMENTS
                    && run.bytes + len <= MAX_GSO_BYTES;
                if joins {
                    run.count += 1;
                    run.bytes += len;
                    continue;
                }
            }
            if runs.len() == max {
                break;
            }
            runs.push(Run {
                first: i,
                count: 1,
                segment: *len,
                bytes: *len,
            });
        }
        runs
    }

    /// One `sendmmsg` with one message per run; returns how many messages the kernel took.
    fn send_runs(&self, socket: &UdpSocket, runs: &[Run]) -> std::io::Result<usize> {
        let count = runs.len();
        // SAFETY: sockaddr_storage and mmsghdr are plain C structs for which all-zero bytes are
        // a valid value.
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { mem::zeroed() }; count];
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(count);
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; count];
        // One control buffer per message, 8-byte aligned as cmsghdr needs.
        let mut controls: Vec<[u64; 4]> = vec![[0; 4]; count];
        // SAFETY: CMSG_SPACE only computes a size.
        let control_len = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;
        debug_assert!(control_len <= mem::size_of::<[u64; 4]>());
        for (i, run) in runs.iter().enumerate() {
            let (dest, offset, _) = &self.items[run.first];
            let addr_len = write_sockaddr(&mut addrs[i], dest);
            // Queued payloads are contiguous in `data`, so a run is one range.
            iovs.push(libc::iovec {
                iov_base: self.data[*offset..].as_ptr() as *mut libc::c_void,
                iov_len: run.bytes,
            });
            msgs[i].msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
            msgs[i].msg_hdr.msg_namelen = addr_len;
        }
        // iovs and controls are complete: their addresses are stable from here on.
        for (i, msg) in msgs.iter_mut().enumerate() {
            msg.msg_hdr.msg_iov = &mut iovs[i];
            msg.msg_hdr.msg_iovlen = 1;
            if runs[i].count > 1 {
                msg.msg_hdr.msg_control = controls[i].as_mut_ptr() as *mut libc::c_void;
                msg.msg_hdr.msg_controllen = control_len as _;
                // SAFETY: the control buffer is control_len bytes, aligned, and holds exactly
                // one cmsghdr with a u16 of data (CMSG_SPACE(2) <= 32 bytes).
                unsafe {
                    let cmsg = libc::CMSG_FIRSTHDR(&msg.msg_hdr);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
                    (libc::CMSG_DATA(cmsg) as *mut u16).write_unaligned(runs[i].segment as u16);
                }
            }
        }
        // SAFETY: every msghdr points into `addrs`, `iovs`, `controls` and `self.data`, which
        // outlive the call and are not moved during it; `count` matches the array length.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                count as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Bytes of one received datagram, more than any datagram a peer sends the worker (media
/// stays under the path MTU); a longer one is cut to this, as by `recv_from` into a buffer of
/// this size.
pub const MAX_DATAGRAM: usize = 2000;

/// Datagrams read by one [`RecvBatch::recv`].
pub const RECV_BATCH: usize = 64;

/// Received datagrams: [`RECV_BATCH`] buffers, filled by one `recvmmsg` call.
pub struct RecvBatch {
    bufs: Box<[[u8; MAX_DATAGRAM]; RECV_BATCH]>,
    /// Source address, buffer index and length of each datagram of the last call.
    got: Vec<(SocketAddr, usize, usize)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            bufs: Box::new([[0; MAX_DATAGRAM]; RECV_BATCH]),
            got: Vec::with_capacity(RECV_BATCH),
        }
    }
}

impl RecvBatch {
    /// Reads the datagrams waiting on `socket`, up to [`RECV_BATCH`], without blocking;
    /// returns how many (0: none was waiting). An error is the socket's (an ICMP error for
    /// an earlier send, on Linux): the datagrams behind it are read by the next call.
    pub fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        self.got.clear();
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which all-zero
        // bytes are a valid value.
        let mut addrs: [libc::sockaddr_storage; RECV_BATCH] = unsafe { mem::zeroed() };
        let mut iovs: [libc::iovec; RECV_BATCH] = unsafe { mem::zeroed() };
        let mut msgs: [libc::mmsghdr; RECV_BATCH] = unsafe { mem::zeroed() };
        for (i, buf) in self.bufs.iter_mut().enumerate() {
            iovs[i] = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: MAX_DATAGRAM,
            };
        }
        for (i, msg) in msgs.iter_mut().enumerate() {
            msg.msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
            msg.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_hdr.msg_iov = &mut iovs[i];
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every msghdr points into `addrs`, `iovs` and `self.bufs`, which outlive the
        // call and do not move during it; RECV_BATCH matches the arrays' length.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        for (i, (msg, addr)) in msgs.iter().zip(&addrs).take(n as usize).enumerate() {
            // A source of another family cannot happen on an IP socket; skipped if it did,
            // and the datagrams after it keep their own buffers.
            if let Some(source) = read_sockaddr(addr) {
                let len = (msg.msg_len as usize).min(MAX_DATAGRAM);
                self.got.push((source, i, len));
            }
        }
        Ok(n as usize)
    }

    /// The datagrams of the last [`RecvBatch::recv`], with their sources.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.got
            .iter()
            .map(|&(source, i, len)| (source, &self.bufs[i][..len]))
    }
}

/// The address in `storage`, when it is IPv4 or IPv6.
fn read_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, for which it is large
            // and aligned enough.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::from((
                sin.sin_addr.s_addr.to_ne_bytes(),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Errors with which a kernel (or a device without checksum offload) refuses GSO.
fn gso_refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Fills `storage` with `addr`; returns the length to pass to the kernel.
fn write_sockaddr(storage: &mut libc::sockaddr_storage, addr: &SocketAddr) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { (storage as *mut _ as *mut libc::sockaddr_in).write(sin) };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { (storage as *mut _ as *mut libc::sockaddr_in6).write(sin6) };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn wait_writable(socket: &UdpSocket, timeout: Duration) {
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe {
        libc::poll(&mut fds, 1, timeout.as_millis() as libc::c_int);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_is_sent_between_subscribers_runs_not_inside_one() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let mut batch = SendBatch::default();
        for _ in 0..MAX_BATCH - 3 {
            batch.push(b, &[0; 100]);
        }
        // Not full yet: anything may join.
        assert!(!batch.full_before(a));
        for _ in 0..3 {
            batch.push(a, &[1; 100]);
        }
        assert_eq!(batch.len(), MAX_BATCH);
        // Full: a's run goes on in the same message; another subscriber waits for a send.
        assert!(!batch.full_before(a), "a's run is not cut");
        assert!(batch.full_before(b), "b starts after the send");
        // A run as long as a GSO message takes cuts it anyway: the batch stays bounded.
        while batch.len() < MAX_BATCH + MAX_SEGMENTS {
            assert!(!batch.full_before(a));
            batch.push(a, &[1; 100]);
        }
        assert!(batch.full_before(a));
    }

    #[test]
    fn a_batch_arrives_whole_and_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let dest = rx.local_addr().unwrap();
        let mut batch = SendBatch::default();
        for i in 0..150u16 {
            batch.push(dest, &vec![i as u8; 100 + usize::from(i)]);
        }
        assert_eq!(batch.len(), 150);
        let done = batch.flush(&tx);
        assert_eq!((done.sent, done.dropped), (150, 0));
        assert!(batch.is_empty());
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 2000];
        for i in 0..150u16 {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(n, 100 + usize::from(i), "datagram {i} keeps its size");
            assert!(
                buf[..n].iter().all(|b| *b == i as u8),
                "datagram {i} keeps its bytes"
            );
        }
    }

    #[test]
    fn a_receive_batch_reads_every_waiting_datagram_with_its_source_in_one_call() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.2:0").unwrap();
        let dest = rx.local_addr().unwrap();
        let mut inbox = RecvBatch::default();
        assert_eq!(
            inbox.recv(&rx).unwrap(),
            0,
            "nothing waiting: no datagram, no error"
        );
        a.send_to(&[1; 10], dest).unwrap();
        b.send_to(&[2; 1200], dest).unwrap();
        a.send_to(&[3; MAX_DATAGRAM + 500], dest).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(inbox.recv(&rx).unwrap(), 3);
        let got: Vec<(SocketAddr, Vec<u8>)> =
            inbox.datagrams().map(|(s, d)| (s, d.to_vec())).collect();
        assert_eq!(got[0], (a.local_addr().unwrap(), vec![1; 10]));
        assert_eq!(got[1], (b.local_addr().unwrap(), vec![2; 1200]));
        assert_eq!(got[2].1, vec![3; MAX_DATAGRAM], "a longer datagram is cut");
        assert_eq!(inbox.recv(&rx).unwrap(), 0);
        assert_eq!(inbox.datagrams().count(), 0);
    }

    #[test]
    fn a_receive_batch_takes_at_most_its_size_and_leaves_the_rest_for_the_next_call() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = rx.local_addr().unwrap();
        for i in 0..RECV_BATCH + 5 {
            tx4.send_to(&[i as u8; 20], dest).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut inbox = RecvBatch::default();
        assert_eq!(inbox.recv(&rx).unwrap(), RECV_BATCH);
        assert!(inbox
            .datagrams()
            .enumerate()
            .all(|(i, (_, d))| d == [i as u8; 20]));
        assert_eq!(inbox.recv(&rx).unwrap(), 5);
        assert_eq!(inbox.datagrams().next().unwrap().1, [RECV_BATCH as u8; 20]);
    }

    #[test]
    fn a_receive_batch_reads_ipv6_sources() {
        let bind = |a: &str| {
            UdpSocket::bind(a).unwrap_or_else(|e| {
                panic!("binding {a}: {e}; the test needs IPv6 on the loopback interface")
            })
        };
        let (rx, tx) = (bind("[::1]:0"), bind("[::1]:0"));
        tx.send_to(b"six", rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut inbox = RecvBatch::default();
        assert_eq!(inbox.recv(&rx).unwrap(), 1);
        let (source, data) = inbox.datagrams().next().unwrap();
        assert_eq!((source, data), (tx.local_addr().unwrap(), &b"six"[..]));
    }

    fn sizes(batch: &SendBatch, runs: &[Run]) -> Vec<(usize, usize)> {
        runs.iter()
            .map(|r| {
                let lens: Vec<usize> = batch.items[r.first..r.first + r.count]
                    .iter()
                    .map(|i| i.2)
                    .collect();
                assert_eq!(r.bytes, lens.iter().sum::<usize>());
                (r.count, r.segment)
            })
            .collect()
    }

    #[test]
    fn a_frames_packets_to_one_subscriber_make_one_message() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let mut batch = SendBatch::default();
        for (dest, len) in [
            (a, 1200),
            (a, 1200),
            (a, 1200),
            (a, 700), // a frame: three full packets and a short last one
            (a, 1200),
            (b, 1200), // another destination
            (b, 1200),
            (b, 300),
            (b, 1200), // larger than the short one before: a new message
            (a, 90),
        ] {
            batch.push(dest, &vec![0; len]);
        }
        let runs = batch.runs(0, MAX_BATCH);
        assert_eq!(
            sizes(&batch, &runs),
            vec![(4, 1200), (1, 1200), (3, 1200), (1, 1200), (1, 90)]
        );
        // At most MAX_SEGMENTS datagrams per message, and `max` messages per call.
        let mut batch = SendBatch::default();
        for _ in 0..150 {
            batch.push(a, &[0; 100]);
        }
        assert_eq!(
            sizes(&batch, &batch.runs(0, MAX_BATCH)),
            vec![(64, 100), (64, 100), (22, 100)]
        );
        assert_eq!(sizes(&batch, &batch.runs(140, 1)), vec![(10, 100)]);
        // Without GSO every datagram is a message.
        batch.no_gso = true;
        assert_eq!(batch.runs(0, MAX_BATCH).len(), 64);
    }

    #[test]
    fn segmented_messages_arrive_as_the_datagrams_they_were() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let dest = rx.local_addr().unwrap();
        let mut batch = SendBatch::default();
        let lens = [1200, 1200, 1200, 700, 1200, 1200, 50];
        for (i, len) in lens.iter().enumerate() {
            batch.push(dest, &vec![i as u8; *len]);
        }
        let done = batch.flush(&tx);
        assert_eq!((done.sent, done.dropped), (lens.len(), 0));
        // Loopback supports GSO on every kernel since 4.18; if this fails, the kernel refused
        // it and the worker sends plain datagrams (slower, still correct).
        assert!(!batch.no_gso, "this kernel refused UDP GSO on loopback");
        assert_eq!(
            done.messages, 2,
            "GSO joins 1200,1200,1200,700 and 1200,1200,50: {done:?}"
        );
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 2000];
        for (i, len) in lens.iter().enumerate() {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(n, *len, "datagram {i} keeps its size");
            assert!(
                buf[..n].iter().all(|b| *b == i as u8),
                "datagram {i} keeps its bytes"
            );
        }
    }

    #[test]
    fn ipv6_destinations_work() {
        let rx = UdpSocket::bind("[::1]:0")
            .expect("binding [::1]: this test needs IPv6 on loopback (ip link set lo up)");
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        let mut batch = SendBatch::default();
        batch.push(rx.local_addr().unwrap(), b"hello");
        assert_eq!(batch.flush(&tx).sent, 1);
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
    }
}
