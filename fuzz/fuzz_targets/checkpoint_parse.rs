//! Fuzz target: arbitrary bytes through the checkpoint parser. The body is a library
//! call so that `tests/checkpoint_fuzz.rs` replays the committed corpus through the
//! same code on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    idmlp::checkpoint::fuzz_checkpoint_parse(data);
});
