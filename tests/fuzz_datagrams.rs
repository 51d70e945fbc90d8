//! Hostile datagrams against a media worker's routing, on the stable toolchain (cargo-fuzz
//! needs nightly: `scripts/fuzz route_datagram` runs libFuzzer on the same harness). Every
//! file of the corpus (`fuzz/corpus/route_datagram/`) and thousands of generated inputs
//! (random records, and mutations of the corpus: byte flips, insertions, truncations,
//! splices) go through a real worker with two peers' transports and must keep the promises
//! of `sfu::worker::hostile`: no panic, no route or transport touched by a datagram that no
//! transport accepts, routes only to live transports that accepted that source, and every
//! transport that nothing reached still alive. The input format is documented there.
//!
//! `MM_FUZZ_SEED=<n>` replays a run; `MM_FUZZ_ITERATIONS=<n>` runs longer.

#[path = "fuzzing/driver.rs"]
mod driver;

use driver::Generated;
use multiparty_meeting::sfu::worker::hostile;
use rand::rngs::StdRng;
use rand::Rng;

fn corpus() -> Vec<(String, Vec<u8>)> {
    driver::corpus("route_datagram", 7)
}

/// One file of the corpus.
fn seed(file: &str) -> Vec<u8> {
    std::fs::read(driver::corpus_dir("route_datagram").join(file)).expect("a corpus file")
}

/// Typical first bytes of what arrives on a media port: STUN, DTLS, RTP, RTCP.
const PREFIXES: &[&[u8]] = &[
    &[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42],
    &[0x01, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42],
    &[0x16, 0xfe, 0xfd],
    &[0x15, 0xfe, 0xfd],
    &[0x17, 0xfe, 0xfd],
    &[0x80, 0x60],
    &[0x90, 0xe0],
    &[0x80, 0xc8],
    &[0x81, 0xcd],
    &[0x81, 0xce],
];

/// A random input: records of every kind, raw datagrams starting like real traffic.
fn records(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(1..24) {
        let head: u8 = rng.gen();
        out.push(head);
        match (head >> 4) & 3 {
            0 => {
                let mut d = PREFIXES[rng.gen_range(0..PREFIXES.len())].to_vec();
                let extra = rng.gen_range(0..200);
                d.extend((0..extra).map(|_| rng.gen::<u8>()));
                d.truncate(rng.gen_range(0..=d.len()));
                out.extend_from_slice(&(d.len() as u16).to_be_bytes());
                out.extend_from_slice(&d);
            }
            1 => {
                let n = rng.gen_range(0..8u8);
                out.push(n);
                out.extend((0..n).map(|_| rng.gen::<u8>()));
            }
            2 => out.push(rng.gen()),
            _ => out.extend_from_slice(&[rng.gen(), rng.gen()]),
        }
    }
    out
}

fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..rng.gen_range(1..6) {
        let at = rng.gen_range(0..=bytes.len());
        match rng.gen_range(0..4) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 => {
                let n = rng.gen_range(1..8);
                bytes.splice(at..at, (0..n).map(|_| rng.gen::<u8>()));
            }
            2 => bytes.truncate(at),
            _ => {
                let from = rng.gen_range(0..=other.len());
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
        }
    }
    bytes
}

#[test]
fn every_corpus_file_keeps_the_workers_promises() {
    driver::check_corpus(&corpus(), |data: &Vec<u8>| hostile::check(data));
}

#[test]
fn a_signed_request_reaches_its_transport_and_garbage_reaches_none() {
    // Sanity of the harness itself, so that the generated runs below test something: the
    // corpus seed with a correctly signed binding request makes a route, the one with
    // strangers' garbage makes none.
    let mut h = hostile::Harness::new().unwrap();
    h.feed(&seed("signed-then-media"));
    assert_eq!(
        h.routes(),
        1,
        "a signed binding request must make one route"
    );
    let mut h = hostile::Harness::new().unwrap();
    h.feed(&seed("strangers"));
    assert_eq!(h.routes(), 0, "strangers' garbage must make no route");
}

#[test]
fn generated_and_mutated_inputs_keep_the_workers_promises() {
    let seeds: Vec<Vec<u8>> = corpus().into_iter().map(|(_, d)| d).collect();
    Generated {
        iterations: 2_000,
        corpus_name: "route_datagram",
        seeds: &seeds,
        fresh: records,
        mutate: |rng: &mut StdRng, a: &Vec<u8>, b: &Vec<u8>| mutate(rng, a, b),
        check: |input: &Vec<u8>| hostile::check(input),
    }
    .run();
}
