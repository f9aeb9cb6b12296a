//! Regression tests from fuzzing (`fuzz/fuzz_targets/tokenizer_files.rs`): malformed tokenizer
//! files are errors naming the file and the position, never a panic.

use std::path::Path;

use clip_text::{ClipTokenizer, Error, SpecialTokens};

#[test]
fn a_syntax_error_in_tokenizer_json_is_an_error_not_a_panic() {
    // Found by the fuzzer: the `tokenizers` crate panics ("Helper") on this file.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/malformed/tokenizer_syntax_error_in_decoder.json");
    let Err(err) = ClipTokenizer::from_tokenizer_json(&path, SpecialTokens::default()) else {
        panic!("a malformed file must not load")
    };
    let Error::Tokenizer(message) = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("tokenizer_syntax_error_in_decoder.json") && message.contains("column"),
        "{message}"
    );
}
