//! Hostile input for the signaling parser, on the stable toolchain (cargo-fuzz needs nightly:
//! `scripts/fuzz` runs libFuzzer on the same target). Every file of the corpus
//! (`fuzz/corpus/parse_request/`) and tens of thousands of generated frames (random JSON
//! trees shaped like requests, and mutations of the corpus: byte flips, insertions of
//! protocol words, truncations, splices) must keep the promises of `fuzz/check.rs`: no panic,
//! a typed error, the request id read the same way for refused frames, a bounded reply.
//!
//! `MM_FUZZ_SEED=<n>` replays a run; `MM_FUZZ_ITERATIONS=<n>` runs longer.

#[path = "../fuzz/check.rs"]
mod check;
#[path = "fuzzing/driver.rs"]
mod driver;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map, Value};

use driver::Generated;

const METHODS: &[&str] = &[
    "join",
    "publish",
    "recvAnswer",
    "pauseProducer",
    "resumeProducer",
    "closeProducer",
    "setConsumerPreferences",
    "requestKeyFrame",
    "changeDisplayName",
    "leave",
];

const WORDS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e400",
    "\\u0000",
    "\\ud800",
    "\"id\"",
    "\"type\"",
    "\"request\"",
    "\"method\"",
    "\"data\"",
    "\"sdp\"",
    "\"displayName\"",
    "\"protocolVersion\"",
    "\"producers\"",
    "\"mid\"",
    "\"kind\"",
    "\"source\"",
    "\"producerId\"",
    "\"consumerId\"",
    "\"width\"",
    "\"height\"",
    "é",
    "🎥",
];

const KEYS: &[&str] = &[
    "displayName",
    "protocolVersion",
    "sdp",
    "producers",
    "mid",
    "kind",
    "source",
    "producerId",
    "consumerId",
    "width",
    "height",
    "token",
    "",
];

fn corpus() -> Vec<(String, String)> {
    driver::corpus("parse_request", 20)
        .into_iter()
        .map(|(name, bytes)| (name, String::from_utf8_lossy(&bytes).to_string()))
        .collect()
}

/// A random JSON value, at most `depth` deep.
fn value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.gen()),
        2 => json!(rng.gen_range(-3i64..3)),
        3 => json!(rng.gen::<u64>()),
        4 => json!(rng.gen::<f64>() * 1e10),
        5 => Value::String(match rng.gen_range(0..4) {
            0 => String::new(),
            1 => WORDS[rng.gen_range(0..WORDS.len())].to_string(),
            2 => (0..rng.gen_range(0..80))
                .map(|_| char::from_u32(rng.gen_range(0..0x11000)).unwrap_or('?'))
                .collect(),
            _ => "x".repeat(rng.gen_range(60..200)),
        }),
        6 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.gen_range(0..5) {
                m.insert(
                    KEYS[rng.gen_range(0..KEYS.len())].to_string(),
                    value(rng, depth - 1),
                );
            }
            Value::Object(m)
        }
    }
}

/// A frame shaped like a request, each part sometimes wrong.
fn request(rng: &mut StdRng) -> String {
    let mut m = Map::new();
    if rng.gen_bool(0.9) {
        m.insert(
            "type".into(),
            if rng.gen_bool(0.9) {
                json!("request")
            } else {
                value(rng, 1)
            },
        );
    }
    if rng.gen_bool(0.9) {
        m.insert(
            "id".into(),
            if rng.gen_bool(0.8) {
                json!(rng.gen_range(0u64..1 << 53))
            } else {
                value(rng, 1)
            },
        );
    }
    if rng.gen_bool(0.95) {
        m.insert(
            "method".into(),
            if rng.gen_bool(0.85) {
                json!(METHODS[rng.gen_range(0..METHODS.len())])
            } else {
                value(rng, 1)
            },
        );
    }
    if rng.gen_bool(0.8) {
        m.insert("data".into(), value(rng, 3));
    }
    Value::Object(m).to_string()
}

/// `text` changed a little, at a char boundary.
fn mutate(rng: &mut StdRng, text: &str, other: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.gen_range(1..4) {
        let at = rng.gen_range(0..=chars.len());
        match rng.gen_range(0..5) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => chars
                .splice(at..at, WORDS[rng.gen_range(0..WORDS.len())].chars())
                .for_each(drop),
            2 => chars.truncate(at),
            3 if at < chars.len() => {
                chars[at] = char::from_u32(rng.gen_range(0..0x80)).unwrap_or(' ')
            }
            _ => {
                let tail: Vec<char> = other.chars().skip(at % (other.len() + 1)).collect();
                chars.truncate(at);
                chars.extend(tail);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn every_corpus_file_keeps_the_parsers_promises() {
    driver::check_corpus(&corpus(), |text: &String| check::check(text));
}

#[test]
fn generated_and_mutated_frames_keep_the_parsers_promises() {
    let seeds: Vec<String> = corpus().into_iter().map(|(_, t)| t).collect();
    Generated {
        iterations: 30_000,
        corpus_name: "parse_request",
        seeds: &seeds,
        fresh: request,
        mutate: |rng: &mut StdRng, a: &String, b: &String| mutate(rng, a, b),
        check: |text: &String| check::check(text),
    }
    .run();
}
