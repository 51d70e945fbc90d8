//! A subscriber's connection without str0m's `Rtc`: ICE-lite answers, DTLS, and the SDP the
//! server offers. What is sent and the subscriber's RTCP are the egress' (`sfu::egress`).
//!
//! - [`conn`]: the connection (ICE with str0m's public agent, DTLS, the offer/answer state);
//! - [`sdp`]: the offer it writes and the answer it reads.

pub mod conn;
pub mod sdp;

#[cfg(test)]
mod tests;
