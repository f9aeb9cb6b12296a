//! The prompt path: any text (lossily decoded as UTF-8) through the embedded model's real CLIP
//! tokenizer, with both truncation rules, into the id tensor the text encoder reads.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static clip_text::ClipTokenizer {
    static TOKENIZER: OnceLock<clip_text::ClipTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models/shape-world/tokenizer");
        clip_text::ClipTokenizer::from_pretrained(&dir).expect("the embedded model's tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let prompts = vec![text.clone(), String::new(), text];
    if let Ok(batch) = tokenizer().encode_batch(&prompts) {
        let ids = batch
            .to_tensor(&candle_core::Device::Cpu)
            .expect("ids tensor");
        assert_eq!(ids.dims(), [3, tokenizer().max_length()]);
    }
});
