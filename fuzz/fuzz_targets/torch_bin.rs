//! The PyTorch `.bin` reader (zip archive + data-only pickle): every tensor read and scanned.
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    support::read_every_tensor(&support::file("pytorch_model.bin", data));
});
