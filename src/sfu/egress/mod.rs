//! What a worker sends to subscribers, done by the worker itself rather than through str0m.

pub mod bwe;
pub mod rtcp;
pub mod srtp;
