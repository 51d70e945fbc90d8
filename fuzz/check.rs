//! What must hold for any text a client sends to the signaling parser, checked by the stable
//! property test (`tests/fuzz_signaling.rs`) and by the cargo-fuzz target
//! (`fuzz/fuzz_targets/parse_request.rs`) alike.

use multiparty_meeting::signaling::protocol::{parse_request, request_id};
use multiparty_meeting::signaling::{ErrorCode, ServerMessage};

/// Parses `text` as a frame from a client and checks the parser's promises; panics (the
/// fuzzer's finding) when one is broken.
pub fn check(text: &str) {
    // Never a panic, whatever the input: reaching the next line is the first promise.
    let parsed = parse_request(text);
    let cheap_id = request_id(text); // what a rate-limited reply would carry
    match parsed {
        Ok((id, _request)) => {
            assert_eq!(
                cheap_id,
                Some(id),
                "a refused frame would be answered with another id: {text:?}"
            );
        }
        Err((id, error)) => {
            assert!(
                matches!(error.code, ErrorCode::BadRequest | ErrorCode::UnknownMethod),
                "a parse error is badRequest or unknownMethod, not {:?}: {text:?}",
                error.code
            );
            assert_eq!(
                cheap_id, id,
                "a refused frame would be answered with another id: {text:?}"
            );
            // The reply never grows beyond the input plus a sentence.
            assert!(
                error.message.len() <= text.len() + 512,
                "an error message of {} bytes for {} bytes of input",
                error.message.len(),
                text.len()
            );
            let reply = ServerMessage::error(id, error.clone()).to_text();
            let value: serde_json::Value =
                serde_json::from_str(&reply).expect("the error reply is JSON");
            assert_eq!(value["ok"], false);
            assert_eq!(value["error"]["code"], serde_json::json!(error.code));
        }
    }
}
