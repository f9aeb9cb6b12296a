//! Every parameter must receive a non-zero gradient after one backward pass (candle's fused
//! layer-norm/softmax ops have no backward and would silently cut the graph).

mod common;

use common::{seeded_model, tiny_config, uniform};

fn grad_report(codebook_term: bool) -> Vec<(String, f32)> {
    let config = tiny_config();
    let (varmap, model) = seeded_model(&config, 11);
    let images = uniform(&[2, 3, 8, 8], 12);
    let fwd = model.forward_train(&images).unwrap();
    let reconstruction = (&fwd.reconstruction - &images)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap();
    let vq = if codebook_term {
        fwd.quantised.loss(0.25, true).unwrap()
    } else {
        (&fwd.quantised.commitment_loss * 0.25).unwrap()
    };
    let loss = (reconstruction + vq).unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let size = grads
                .get(data[name].as_tensor())
                .map(|g| {
                    g.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                })
                .unwrap_or(0.0);
            (name.clone(), size)
        })
        .collect()
}

#[test]
fn every_parameter_gets_a_gradient_with_the_codebook_loss() {
    let report = grad_report(true);
    assert!(report.len() > 60, "{}", report.len());
    let missing: Vec<&String> = report
        .iter()
        .filter(|(_, g)| !(*g > 0.0 && g.is_finite()))
        .map(|(n, _)| n)
        .collect();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}

#[test]
fn with_ema_only_the_codebook_is_left_to_the_ema() {
    let report = grad_report(false);
    for (name, g) in report {
        if name == "quantize.embedding.weight" {
            assert_eq!(g, 0.0);
        } else {
            assert!(g > 0.0 && g.is_finite(), "no gradient for {name}");
        }
    }
}
