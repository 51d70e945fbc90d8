//! The wire protocol (`docs/protocol.md`): request, response and notification types, parsed
//! and serialized in one place. It knows nothing of sockets, actors or media.

pub mod protocol;

pub use protocol::{
    parse_request, ClientRequest, Empty, ErrorCode, IceServer, JoinResponse, Notification,
    PublishResponse, PublishedProducer, RequestId, ResponseData, ServerMessage, SignalError,
    PROTOCOL_VERSION,
};
