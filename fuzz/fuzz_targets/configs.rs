//! Every config parser of a model folder: the first byte picks the file, the rest is its text.
//! Each must return a value or an error, never panic or allocate without bound.
#![no_main]

#[path = "support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else {
        return;
    };
    match kind % 7 {
        0 => {
            let _ = vq_transformer::Transformer2DConfig::from_file(support::file("t.json", text))
                .and_then(|c| c.validate().map(|_| c.grid()));
        }
        1 => {
            let _ = vq_codebook::VqModelConfig::from_file(support::file("v.json", text))
                .and_then(|c| c.validate());
        }
        2 => {
            let _ = clip_text::ClipTextConfig::from_file(&support::file("c.json", text));
        }
        3 => {
            // The schedule and the chain built from it (the tables are sized by T).
            if let Ok(s) =
                discrete_diffusion::VqDiffusionSchedule::from_file(support::file("s.json", text))
            {
                let _ = discrete_diffusion::MaskAndReplace::from_scheduler_config(&s);
            }
        }
        4 => {
            let _ = vq_pipeline::ModelIndex::from_file(&support::file("model_index.json", text));
        }
        5 => {
            let dir = support::file(vq_pipeline::GENERATION_CONFIG, text);
            let _ = vq_pipeline::GenerationDefaults::from_pretrained(dir.parent().unwrap());
        }
        _ => {
            let _ = serde_json::from_slice::<vq_pipeline::NullEmbeddingConfig>(text);
        }
    }
});
