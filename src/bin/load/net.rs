//! UDP plumbing of the load generator: a few sockets, each bound to `0.0.0.0:<port>` with
//! `IP_PKTINFO`, carry many peer connections. Every connection has its own local address
//! (one IP of a local range per connection and socket), so the server sees a distinct
//! 5-tuple per connection. The source IP is chosen per datagram with an `IP_PKTINFO`
//! control message on `sendmmsg`; the destination IP of each received datagram (read from
//! the same control message on `recvmmsg`) names the connection it belongs to.
//!
//! On loopback the whole of 127.0.0.0/8 is local; inside a network namespace a range is made
//! local with `ip route add local 10.98.0.0/16 dev lo` (see scripts/janus-bench.sh).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 64;
/// Receive buffer per datagram (str0m never sends more than ~1200 bytes).
const BUF_LEN: usize = 2048;
/// Receive buffer per message with `UDP_GRO`: one message may hold a whole GSO train.
const GRO_BUF_LEN: usize = 65_536;
/// Room for the `IP_PKTINFO`, `SO_TIMESTAMPNS` and `UDP_GRO` control messages of a datagram.
const CTRL_LEN: usize = 128;
/// Kernel socket buffers asked for (root may exceed `rmem_max` with the *FORCE options).
const SOCKET_BUFFER: libc::c_int = 16 * 1024 * 1024;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> bool {
    // SAFETY: `v` lives for the call and the length passed is its size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Makes the kernel socket buffers large (best effort; reports what was granted).
pub fn grow_buffers(fd: RawFd) -> (usize, usize) {
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if !setsockopt_int(fd, libc::SOL_SOCKET, force, SOCKET_BUFFER) {
            setsockopt_int(fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER);
        }
    }
    let get = |name| {
        let mut v: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes and `len` holds the size of `v`.
        unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                &mut v as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            );
        }
        v.max(0) as usize
    };
    (get(libc::SO_RCVBUF), get(libc::SO_SNDBUF))
}

fn to_sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut s: libc::sockaddr_in = unsafe { zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    s
}

fn from_sockaddr(s: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr)),
        u16::from_be(s.sin_port),
    )
}

/// One datagram read by [`MultiSocket::recv_batch`].
pub struct Received<'a> {
    /// Remote sender.
    pub source: SocketAddrV4,
    /// Local address it was sent to (names the connection).
    pub dest_ip: Ipv4Addr,
    /// When the kernel received it (`SO_TIMESTAMPNS`, wall clock), if it said.
    pub kernel_time: Option<Duration>,
    /// Payload: one datagram, or with `UDP_GRO` several of `segment` bytes each (the last
    /// may be shorter), all from `source` to `dest_ip`.
    pub data: &'a [u8],
    /// Size of each datagram in `data` when the kernel coalesced several (`UDP_GRO`).
    pub segment: Option<usize>,
}

impl Received<'_> {
    /// The size to cut `data` into datagrams with (`chunks`): the segment size, or the
    /// whole of `data` when it is one datagram. Never 0.
    pub fn datagram_size(&self) -> usize {
        self.segment
            .filter(|&s| s > 0)
            .unwrap_or(self.data.len())
            .max(1)
    }
}

/// A datagram waiting in a send batch.
struct Outgoing {
    src_ip: Ipv4Addr,
    dest: SocketAddrV4,
    data: Vec<u8>,
}

/// A UDP socket bound to all addresses with `IP_PKTINFO`, batched I/O in both directions.
pub struct MultiSocket {
    socket: UdpSocket,
    port: u16,
    /// Bytes per receive buffer: [`BUF_LEN`], or [`GRO_BUF_LEN`] with `UDP_GRO`.
    buf_len: usize,
    /// `BATCH` receive buffers of `buf_len` bytes each, end to end.
    rx_bufs: Vec<u8>,
    rx_names: Vec<libc::sockaddr_in>,
    /// u64 elements keep every control buffer 8-byte aligned, as cmsghdr needs.
    rx_ctrl: Vec<[u64; CTRL_LEN / 8]>,
    rx_iov: Vec<libc::iovec>,
    rx_hdrs: Vec<libc::mmsghdr>,
    rx_count: usize,
    tx_queue: Vec<Outgoing>,
    /// Datagrams the kernel refused (full send buffer), counted and dropped.
    pub tx_dropped: u64,
    /// Datagrams handed to the kernel.
    pub tx_sent: u64,
}

// SAFETY: the raw pointers in `rx_iov`/`rx_hdrs` only point into this struct's own heap
// buffers (rebuilt on every `recv_batch`), so moving the struct to another thread is sound.
unsafe impl Send for MultiSocket {}

impl MultiSocket {
    /// Binds `bind_ip:0` (use 0.0.0.0 so every local address of the range reaches it).
    /// With `gro` the kernel hands over a train of datagrams sent with `UDP_SEGMENT` as one
    /// message instead of splitting it into one socket delivery per datagram (see
    /// `--gro-receivers`).
    pub fn bind(bind_ip: Ipv4Addr, gro: bool) -> io::Result<MultiSocket> {
        let socket = UdpSocket::bind(SocketAddr::from((bind_ip, 0)))?;
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        if !setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1) {
            return Err(io::Error::last_os_error());
        }
        // Arrival times from the kernel: the receive time str0m's bandwidth estimation
        // sees must not include how long the busy engine took to get to the datagram.
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);
        grow_buffers(fd);
        if gro && !setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1) {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("UDP_GRO (--gro-receivers needs Linux 5.0 or later): {e}"),
            ));
        }
        let buf_len = if gro { GRO_BUF_LEN } else { BUF_LEN };
        let port = socket.local_addr()?.port();
        Ok(MultiSocket {
            socket,
            port,
            buf_len,
            rx_bufs: vec![0u8; BATCH * buf_len],
            // SAFETY: plain old data, all-zero is valid.
            rx_names: vec![unsafe { zeroed() }; BATCH],
            rx_ctrl: vec![[0u64; CTRL_LEN / 8]; BATCH],
            rx_iov: Vec::with_capacity(BATCH),
            rx_hdrs: Vec::with_capacity(BATCH),
            rx_count: 0,
            tx_queue: Vec::with_capacity(BATCH * 4),
            tx_dropped: 0,
            tx_sent: 0,
        })
    }

    /// Local port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// File descriptor, for `ppoll`.
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Reads up to [`BATCH`] datagrams without blocking; returns how many (0 when none).
    pub fn recv_batch(&mut self) -> io::Result<usize> {
        self.rx_iov.clear();
        self.rx_hdrs.clear();
        for buf in self.rx_bufs.chunks_exact_mut(self.buf_len) {
            self.rx_iov.push(libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            });
        }
        for i in 0..BATCH {
            // SAFETY: plain old data, all-zero is valid; the pointers set below stay valid
            // until the call returns (the vectors are not resized in between).
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = &mut self.rx_names[i] as *mut libc::sockaddr_in as *mut _;
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.rx_iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.rx_ctrl[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_controllen = CTRL_LEN as _;
            self.rx_hdrs.push(h);
        }
        // SAFETY: `rx_hdrs` holds BATCH initialised headers pointing into buffers owned by
        // self that outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                self.rx_hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            self.rx_count = 0;
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // ICMP errors for earlier sends (a port went away) surface here.
                io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => Ok(0),
                _ => Err(e),
            };
        }
        self.rx_count = n as usize;
        Ok(self.rx_count)
    }

    /// Datagram `i` of the last batch.
    pub fn received(&self, i: usize) -> Option<Received<'_>> {
        if i >= self.rx_count {
            return None;
        }
        let h = &self.rx_hdrs[i];
        let len = (h.msg_len as usize).min(self.buf_len);
        let source = from_sockaddr(&self.rx_names[i]);
        let mut dest_ip = Ipv4Addr::UNSPECIFIED;
        let mut kernel_time = None;
        let mut segment = None;
        // SAFETY: the header was filled by recvmmsg; CMSG_* walk its control buffer within
        // msg_controllen, and an IP_PKTINFO payload is an in_pktinfo.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&h.msg_hdr);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_PKTINFO {
                    let info =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::in_pktinfo);
                    dest_ip = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                } else if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                    kernel_time = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                } else if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO
                {
                    // The kernel writes the segment size as an int.
                    let size =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                    segment = usize::try_from(size).ok();
                }
                cmsg = libc::CMSG_NXTHDR(&h.msg_hdr, cmsg);
            }
        }
        Some(Received {
            source,
            dest_ip,
            kernel_time,
            data: &self.rx_bufs[i * self.buf_len..i * self.buf_len + len],
            segment,
        })
    }

    /// Queues a datagram from local `src_ip` (this socket's port) to `dest`.
    pub fn queue(&mut self, src_ip: Ipv4Addr, dest: SocketAddrV4, data: Vec<u8>) {
        self.tx_queue.push(Outgoing { src_ip, dest, data });
        if self.tx_queue.len() >= BATCH * 4 {
            self.flush();
        }
    }

    /// Datagrams queued and not yet sent.
    pub fn pending(&self) -> usize {
        self.tx_queue.len()
    }

    /// Sends everything queued with `sendmmsg`; what the kernel refuses is dropped (counted).
    pub fn flush(&mut self) {
        let mut start = 0;
        while start < self.tx_queue.len() {
            let chunk = &self.tx_queue[start..(start + BATCH).min(self.tx_queue.len())];
            let n = chunk.len();
            let mut names: [libc::sockaddr_in; BATCH] =
                // SAFETY: plain old data, all-zero is valid.
                unsafe { zeroed() };
            let mut iovs: [libc::iovec; BATCH] =
                // SAFETY: plain old data, all-zero is valid (null pointers, zero lengths).
                unsafe { zeroed() };
            let mut ctrl = [[0u64; 8]; BATCH];
            // SAFETY: plain old data, all-zero is valid.
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
            for (i, o) in chunk.iter().enumerate() {
                names[i] = to_sockaddr(o.dest);
                iovs[i] = libc::iovec {
                    iov_base: o.data.as_ptr() as *mut libc::c_void,
                    iov_len: o.data.len(),
                };
                let h = &mut hdrs[i].msg_hdr;
                h.msg_name = &mut names[i] as *mut libc::sockaddr_in as *mut libc::c_void;
                h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                h.msg_iov = &mut iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = ctrl[i].as_mut_ptr() as *mut libc::c_void;
                // SAFETY: CMSG_SPACE is a pure size computation.
                let space = unsafe { libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) };
                h.msg_controllen = space as _;
                // SAFETY: the control buffer is 64 >= CMSG_SPACE(in_pktinfo) bytes,
                // 8-byte aligned, and msg_controllen says how much of it is used.
                unsafe {
                    let cmsg = libc::CMSG_FIRSTHDR(h);
                    (*cmsg).cmsg_level = libc::IPPROTO_IP;
                    (*cmsg).cmsg_type = libc::IP_PKTINFO;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                    let mut info: libc::in_pktinfo = zeroed();
                    info.ipi_spec_dst.s_addr = u32::from(o.src_ip).to_be();
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in_pktinfo, info);
                }
            }
            // SAFETY: `hdrs[..n]` are initialised and point into locals and queued
            // buffers that live until the call returns.
            let r = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                // EAGAIN (full buffer) or an error for the first datagram (e.g. ICMP from
                // an earlier send): drop it, as a network would, and go on.
                self.tx_dropped += 1;
                start += 1;
            } else {
                self.tx_sent += r as u64;
                start += r as usize;
            }
        }
        self.tx_queue.clear();
    }
}

/// An eventfd that wakes the media loop from other threads.
pub struct Waker {
    fd: RawFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain syscall; the result is checked.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(Waker { fd })
    }

    /// Wakes a `wait` in progress (or the next one).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full counter (EAGAIN)
        // still leaves it readable, which is all that matters.
        unsafe {
            libc::write(self.fd, &one as *const u64 as *const libc::c_void, 8);
        }
    }

    /// Clears pending wake-ups.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN when nothing is pending.
        unsafe {
            libc::read(self.fd, &mut v as *mut u64 as *mut libc::c_void, 8);
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// Blocks until one of `fds` is readable or `timeout` passes. `ppoll` sleeps with
/// high-resolution timers (a socket read timeout rounds up to the scheduler tick).
pub fn wait_readable(fds: &[RawFd], timeout: Duration) {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `pfds` is a valid array of pollfd for the call, `ts` a valid timespec, no
    // signal mask. EINTR only shortens the sleep.
    unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        );
    }
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    // SAFETY: plain old data, all-zero is valid.
    let mut ts: libc::timespec = unsafe { zeroed() };
    // SAFETY: `ts` is valid for writes.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Pins the calling thread (pid 0) or process `pid` to one CPU; false when refused.
pub fn pin_to_cpu(pid: libc::pid_t, cpu: usize) -> bool {
    set_affinity(pid, cpu..cpu + 1)
}

/// CPUs the machine has online, whatever this process is pinned to (`num_cpus::get`
/// counts only the CPUs the calling thread may run on: 1 once `--client-cpu` pinned it).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf reads a system value; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Lets the calling thread (pid 0) or process `pid` run on every CPU; false when refused.
pub fn allow_all_cpus(pid: libc::pid_t) -> bool {
    set_affinity(pid, 0..libc::CPU_SETSIZE as usize)
}

/// Only a stack buffer and one syscall: safe between fork and exec.
fn set_affinity(pid: libc::pid_t, cpus: std::ops::Range<usize>) -> bool {
    // SAFETY: cpu_set_t is plain old data; CPU_SET writes inside it; the syscall reads it.
    unsafe {
        let mut set: libc::cpu_set_t = zeroed();
        cpus.for_each(|c| libc::CPU_SET(c, &mut set));
        libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiparty_meeting::sfu::batch::SendBatch;
    use std::time::Instant;

    /// Sends one frame's worth of datagrams (two full, one short) to `to` the way the server
    /// does (`SendBatch`: one GSO message), then reads until all three datagrams arrived.
    fn send_train_and_read(receiver: &mut MultiSocket) -> Vec<(Option<usize>, Vec<usize>)> {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, receiver.port()));
        let mut batch = SendBatch::default();
        for (len, fill) in [(1000, 1u8), (1000, 2), (400, 3)] {
            batch.push(to, &vec![fill; len]);
        }
        let flushed = batch.flush(&sender);
        assert_eq!(flushed.sent, 3, "{flushed:?}");
        let mut messages = Vec::new();
        let mut datagrams = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while datagrams < 3 && Instant::now() < deadline {
            wait_readable(&[receiver.fd()], Duration::from_millis(100));
            let n = receiver.recv_batch().unwrap();
            for i in 0..n {
                let d = receiver.received(i).unwrap();
                assert_eq!(d.dest_ip, Ipv4Addr::LOCALHOST);
                assert_eq!(*d.source.ip(), Ipv4Addr::LOCALHOST);
                let mut lens = Vec::new();
                for chunk in d.data.chunks(d.datagram_size()) {
                    datagrams += 1;
                    let fill = datagrams as u8;
                    assert!(
                        chunk.iter().all(|&b| b == fill),
                        "datagram {fill} cut wrong"
                    );
                    lens.push(chunk.len());
                }
                messages.push((d.segment, lens));
            }
        }
        messages
    }

    #[test]
    fn a_gro_socket_takes_a_gso_train_as_one_message_and_cuts_it_into_its_datagrams() {
        let mut receiver = MultiSocket::bind(Ipv4Addr::UNSPECIFIED, true).unwrap();
        assert_eq!(
            send_train_and_read(&mut receiver),
            vec![(Some(1000), vec![1000, 1000, 400])]
        );
    }

    #[test]
    fn a_plain_socket_gets_a_gso_train_as_separate_datagrams() {
        let mut receiver = MultiSocket::bind(Ipv4Addr::UNSPECIFIED, false).unwrap();
        assert_eq!(
            send_train_and_read(&mut receiver),
            vec![(None, vec![1000]), (None, vec![1000]), (None, vec![400])]
        );
    }
}
