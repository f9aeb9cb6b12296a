//! Generation options as JSON (a sidecar or an HTTP request body): validated against a chain
//! length, split into batches, turned into a sampler configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&t, json)) = data.split_first() else {
        return;
    };
    let Ok(options) = serde_json::from_slice::<vq_pipeline::GenerationOptions>(json) else {
        return;
    };
    let big_t = usize::from(t) + 1;
    if options.validate_allowing_empty_prompts(big_t).is_ok() {
        let runs = options.batches(3).expect("valid options split");
        let total: usize = runs
            .iter()
            .map(|r| r.prompts.len() * r.num_images_per_prompt)
            .sum();
        assert_eq!(total, options.batch_size().unwrap());
        let _ = options.sampler_config(big_t, 64);
        let _ = options.effective_settings();
    }
});
