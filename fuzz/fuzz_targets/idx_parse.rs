//! Fuzz target: arbitrary bytes through the IDX parser (and, for inputs that start
//! with the gzip magic, the bounded gzip reader). The body is a library call so that
//! `tests/idx.rs` replays the committed corpus through the same code on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    idmlp::idx::fuzz_idx_parse(data);
});
