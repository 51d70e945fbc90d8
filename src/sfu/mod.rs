//! The media plane: worker threads that own the UDP sockets and the transports, and
//! forward RTP between them without crossing an actor boundary per packet. Rooms are assigned
//! to workers; everything about one room happens on one worker.
//!
//! - [`worker`]: the socket loop, transports, producers, consumers;
//! - [`simulcast`]: layer measurement and choice;
//! - [`dtls`]: DTLS with one configuration shared by all transports, and the SRTP keys its
//!   handshakes make;
//! - [`egress`]: what the worker sends to subscribers, written and encrypted by itself:
//!   SRTP, RTCP, bandwidth estimation and probing;
//! - [`recv`]: a subscriber's connection (ICE-lite, DTLS, the SDP the server offers),
//!   without str0m's `Rtc`;
//! - [`history`]: one packet history per producer layer, for every subscriber's NACKs;
//! - [`rewrite`]: what a forwarded RTP packet becomes for each consumer;
//! - [`keyframes`]: when a keyframe request may go to a publisher;
//! - [`speaker`]: active speaker detection;
//! - [`timers`]: when each transport of a worker next wants time;
//! - [`messages`]: commands in, events out.

pub mod batch;
pub mod dtls;
pub mod egress;
pub mod history;
pub mod keyframes;
pub mod messages;
pub mod recv;
pub mod rewrite;
pub mod simulcast;
pub mod speaker;
pub mod timers;
pub mod worker;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub use messages::{MediaError, MediaEvent, RoomMediaEvent, WorkerCommand, WorkerStats};
pub use worker::{WorkerHandle, WorkerSettings};

use crate::config::Config;

/// All media workers of this instance.
#[derive(Debug, Clone)]
pub struct MediaPlane {
    workers: Arc<Vec<WorkerHandle>>,
    next: Arc<AtomicUsize>,
}

/// Why the media plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum MediaStartError {
    /// No UDP port could be bound for a worker.
    #[error("media worker {index}: {source}")]
    Bind {
        /// Which worker.
        index: usize,
        /// The socket error, naming the range.
        source: std::io::Error,
    },
}

impl MediaPlane {
    /// Starts `config.workers()` workers, each on its own UDP port of the configured range.
    pub fn start(config: &Config) -> Result<MediaPlane, MediaStartError> {
        let settings = WorkerSettings {
            listen_ip: config
                .rtc_listen_ip
                .parse()
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            announced_ip: config.announced_ip(),
            port_range: (config.rtc_min_port, config.rtc_max_port),
            initial_bitrate: config.initial_available_outgoing_bitrate,
            request_timeout: config.request_timeout(),
        };
        let mut workers = Vec::new();
        for index in 0..config.workers() {
            let (handle, _thread) = worker::spawn(index, &settings)
                .map_err(|source| MediaStartError::Bind { index, source })?;
            workers.push(handle);
        }
        Ok(MediaPlane {
            workers: Arc::new(workers),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The worker a new room goes to (round robin).
    pub fn assign(&self) -> WorkerHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.workers[i].clone()
    }

    /// Every worker, for stats.
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Sums the counters of all workers.
    pub async fn stats(&self) -> WorkerStats {
        let mut total = WorkerStats::default();
        for w in self.workers.iter() {
            if let Ok(s) = w.request(|reply| WorkerCommand::Stats { reply }).await {
                total.rooms += s.rooms;
                total.transports += s.transports;
                total.producers += s.producers;
                total.consumers += s.consumers;
                total.frames_forwarded += s.frames_forwarded;
                total.packets_forwarded += s.packets_forwarded;
                total.datagrams_in += s.datagrams_in;
                total.datagrams_out += s.datagrams_out;
                total.messages_out += s.messages_out;
                total.bytes_in += s.bytes_in;
                total.bytes_out += s.bytes_out;
                total.nacks_received += s.nacks_received;
                total.nacks_sent += s.nacks_sent;
                total.resends_from_history += s.resends_from_history;
                total.keyframes_replayed += s.keyframes_replayed;
                total.plis_received += s.plis_received;
                total.plis_sent += s.plis_sent;
                total.subscriber_rtcp_dropped += s.subscriber_rtcp_dropped;
                total.layer_switches += s.layer_switches;
            }
        }
        total
    }

    /// Stops every worker thread (their sockets close when the threads end).
    pub fn stop(&self) {
        for w in self.workers.iter() {
            w.stop();
        }
    }
}
