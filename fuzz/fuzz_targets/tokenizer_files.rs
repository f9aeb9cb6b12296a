//! Tokenizer files: a `tokenizer.json` of any content, then a prompt encoded with it.
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = support::file("tokenizer.json", data);
    if let Ok(tok) =
        clip_text::ClipTokenizer::from_tokenizer_json(&path, clip_text::SpecialTokens::default())
    {
        let _ = tok.encode_batch(&["a red circle in the top left".to_string()]);
    }
});
