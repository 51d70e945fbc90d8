//! The generated part of the stable property tests that stand in for cargo-fuzz
//! (`tests/fuzz_signaling.rs`, `tests/fuzz_datagrams.rs`): inputs made fresh, mutations of two
//! corpus files, and mutations of a fresh input with a corpus file, each one checked.
//!
//! `MM_FUZZ_SEED=<n>` replays a run; `MM_FUZZ_ITERATIONS=<n>` runs longer.

use std::fmt::Debug;
use std::panic::{catch_unwind, RefUnwindSafe};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
