//! `--udp-floor`: what the kernel alone costs per datagram on this machine, to put the
//! server's egress packets per CPU-second in proportion. 1200-byte datagrams over loopback
//! with `sendmmsg`/`recvmmsg` (64 per call):
//! - `send_recv_one_core`: one thread, pinned, sends a batch and receives it, in a loop;
//!   every datagram is sent and received on that core (the loopback delivery runs there too);
//! - `send_only`: the sending thread alone (a receiver drains on another core); closest to a
//!   server's egress, where the receiving happens elsewhere.
//!
//! Each figure is given per wall-clock second of a core kept 100% busy by the loop, and per
//! CPU-second of the thread as the kernel accounts it (softirq time may be accounted apart).

use std::mem::zeroed;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::net::{grow_buffers, pin_to_cpu, thread_cpu, wait_readable};

const SIZE: usize = 1200;
const BATCH: usize = 64;

#[derive(Debug, Clone, Serialize)]
pub struct FloorFigure {
    pub datagrams: u64,
    pub wall_secs: f64,
    pub thread_cpu_secs: f64,
    /// Datagrams per second of wall clock (the core is busy the whole time).
    pub per_wall_second: f64,
    /// Datagrams per CPU-second of the measured thread.
    pub per_thread_cpu_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FloorResult {
    pub datagram_bytes: usize,
    pub send_recv_one_core: FloorFigure,
    pub send_only: FloorFigure,
}

fn figure(datagrams: u64, wall: Duration, cpu: Duration) -> FloorFigure {
    FloorFigure {
        datagrams,
        wall_secs: wall.as_secs_f64(),
        thread_cpu_secs: cpu.as_secs_f64(),
        per_wall_second: datagrams as f64 / wall.as_secs_f64().max(1e-9),
        per_thread_cpu_second: datagrams as f64 / cpu.as_secs_f64().max(1e-9),
    }
}

struct Batch {
    bufs: Vec<[u8; SIZE + 64]>,
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Batch {
        let mut b = Batch {
            bufs: vec![[0x5a; SIZE + 64]; BATCH],
            iov: Vec::with_capacity(BATCH),
            hdrs: Vec::with_capacity(BATCH),
        };
        for i in 0..BATCH {
            b.iov.push(libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: SIZE,
            });
        }
        for i in 0..BATCH {
            // SAFETY: plain old data, all-zero is valid; the iovec pointer stays valid as
            // `iov` is never resized after this loop.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_iov = &mut b.iov[i];
            h.msg_hdr.msg_iovlen = 1;
            b.hdrs.push(h);
        }
        b
    }

    fn send(&mut self, fd: i32) -> u64 {
        // SAFETY: BATCH initialised headers pointing into buffers owned by self.
        let n = unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr(), BATCH as u32, 0) };
        n.max(0) as u64
    }

    fn recv(&mut self, fd: i32) -> u64 {
        for i in 0..BATCH {
            self.iov[i].iov_len = SIZE + 64;
        }
        // SAFETY: as in `send`; the kernel writes at most iov_len bytes per buffer.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        for i in 0..BATCH {
            self.iov[i].iov_len = SIZE;
        }
        n.max(0) as u64
    }
}

fn pair() -> anyhow::Result<(UdpSocket, UdpSocket)> {
    let rx = UdpSocket::bind("127.0.0.1:0").context("binding the floor receiver")?;
    let tx = UdpSocket::bind("127.0.0.1:0").context("binding the floor sender")?;
    tx.connect(rx.local_addr()?)?;
    grow_buffers(rx.as_raw_fd());
    grow_buffers(tx.as_raw_fd());
    Ok((tx, rx))
}

/// Measures both figures, `duration` each, the measured thread pinned to `cpu` (the
/// receiver of `send_only` to `other_cpu`).
pub fn run(duration: Duration, cpu: usize, other_cpu: usize) -> anyhow::Result<FloorResult> {
    // One thread sends and receives.
    let one = std::thread::spawn(move || -> anyhow::Result<FloorFigure> {
        pin_to_cpu(0, cpu);
        let (tx, rx) = pair()?;
        let mut out = Batch::new();
        let mut inb = Batch::new();
        let (start, cpu0) = (Instant::now(), thread_cpu());
        let mut received = 0u64;
        while start.elapsed() < duration {
            out.send(tx.as_raw_fd());
            loop {
                let n = inb.recv(rx.as_raw_fd());
                received += n;
                if n < BATCH as u64 {
                    break;
                }
            }
        }
        Ok(figure(received, start.elapsed(), thread_cpu() - cpu0))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("floor thread panicked"))??;

    // Sender alone; a receiver drains on the other core.
    let (tx, rx) = pair()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_rx = stop.clone();
    let receiver = std::thread::spawn(move || {
        pin_to_cpu(0, other_cpu);
        let mut inb = Batch::new();
        let mut received = 0u64;
        while !stop_rx.load(Ordering::Relaxed) {
            let n = inb.recv(rx.as_raw_fd());
            received += n;
            if n == 0 {
                wait_readable(&[rx.as_raw_fd()], Duration::from_millis(5));
            }
        }
        received
    });
    let sender = std::thread::spawn(move || {
        pin_to_cpu(0, cpu);
        let mut out = Batch::new();
        let (start, cpu0) = (Instant::now(), thread_cpu());
        let mut sent = 0u64;
        while start.elapsed() < duration {
            sent += out.send(tx.as_raw_fd());
        }
        (sent, start.elapsed(), thread_cpu() - cpu0)
    });
    let (sent, wall, cpu_time) = sender
        .join()
        .map_err(|_| anyhow::anyhow!("floor sender panicked"))?;
    stop.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    Ok(FloorResult {
        datagram_bytes: SIZE,
        send_recv_one_core: one,
        send_only: figure(sent, wall, cpu_time),
    })
}
