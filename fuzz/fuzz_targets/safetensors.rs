//! The safetensors reader: header parsing, every tensor's range and dtype, the NaN scan.
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    support::read_every_tensor(&support::file("model.safetensors", data));
});
