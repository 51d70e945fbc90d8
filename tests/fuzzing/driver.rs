//! What the stable property tests that stand in for cargo-fuzz (`tests/fuzz_signaling.rs`,
//! `tests/fuzz_datagrams.rs`) share: the corpus of a target read from `fuzz/corpus/`, each of
//! its files checked, and the generated part: inputs made fresh, mutations of two corpus
//! files, and mutations of a fresh input with a corpus file, each one checked.
//!
//! `MM_FUZZ_SEED=<n>` replays a run; `MM_FUZZ_ITERATIONS=<n>` runs longer.

use std::fmt::Debug;
use std::panic::{catch_unwind, RefUnwindSafe};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The corpus directory of fuzz target `name`.
pub fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name)
}

/// Every file of target `name`'s corpus as (path, contents), sorted; fails when the corpus has
/// fewer than `min` files (seeds lost).
pub fn corpus(name: &str, min: usize) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(name);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the corpus {} is part of the repository: {e}",
                dir.display()
            )
        })
        .map(|entry| {
            let path = entry.expect("a readable corpus entry").path();
            let data = std::fs::read(&path).expect("a readable corpus file");
            (path.display().to_string(), data)
        })
        .collect();
    out.sort();
    assert!(out.len() >= min, "the corpus lost its seeds: {}", out.len());
    out
}

/// Checks every corpus file; fails naming the first that breaks a promise.
pub fn check_corpus<T: RefUnwindSafe>(files: &[(String, T)], check: impl Fn(&T) + RefUnwindSafe) {
    for (name, input) in files {
        let result = catch_unwind(|| check(input));
        assert!(result.is_ok(), "corpus file {name} broke a promise");
    }
}

/// What one property test generates and checks.
pub struct Generated<'a, T, F, M, C> {
    /// Inputs per run unless `MM_FUZZ_ITERATIONS` says otherwise.
    pub iterations: usize,
    /// The corpus directory under `fuzz/corpus/`, named in the failure message.
    pub corpus_name: &'a str,
    /// The corpus files' contents.
    pub seeds: &'a [T],
    /// A fresh input.
    pub fresh: F,
    /// A mutation of the first input with material from the second.
    pub mutate: M,
    /// Panics when the input breaks a promise.
    pub check: C,
}

impl<T, F, M, C> Generated<'_, T, F, M, C>
where
    T: Debug + RefUnwindSafe,
    F: Fn(&mut StdRng) -> T,
    M: Fn(&mut StdRng, &T, &T) -> T,
    C: Fn(&T) + RefUnwindSafe,
{
    /// Generates and checks the inputs; fails with the seed that replays the run and the
    /// input that broke a promise.
    pub fn run(self) {
        let seed = std::env::var("MM_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        let iterations: usize = std::env::var("MM_FUZZ_ITERATIONS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.iterations);
        let mut rng = StdRng::seed_from_u64(seed);
        let seeds = self.seeds;
        for i in 0..iterations {
            let input = match rng.gen_range(0..3) {
                0 => (self.fresh)(&mut rng),
                1 => {
                    let a = &seeds[rng.gen_range(0..seeds.len())];
                    let b = &seeds[rng.gen_range(0..seeds.len())];
                    (self.mutate)(&mut rng, a, b)
                }
                _ => {
                    let base = (self.fresh)(&mut rng);
                    let other = &seeds[rng.gen_range(0..seeds.len())];
                    (self.mutate)(&mut rng, &base, other)
                }
            };
            if catch_unwind(|| (self.check)(&input)).is_err() {
                panic!(
                    "input {i} of the run with MM_FUZZ_SEED={seed} broke a promise; add it to \
                     fuzz/corpus/{}/ once fixed: {input:?}",
                    self.corpus_name
                );
            }
        }
    }
}
