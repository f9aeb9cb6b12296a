//! AdamW gives candle-nn's weights bit for bit, and a run resumed from its saved state (weights +
//! moments + step) continues exactly as the uninterrupted run; the EMA follows its recurrence.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use vq_train::{AdamW, AdamWFile, Ema, Error, ParamsAdamW};

fn params() -> ParamsAdamW {
    ParamsAdamW {
        lr: 0.05,
        weight_decay: 0.1,
        ..Default::default()
    }
}

/// A small regression problem: weights `(4, 3)`, a fixed target.
fn model(varmap: &VarMap) -> Tensor {
    let vb = VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu);
    vb.get_with_hints((4, 3), "layer.weight", candle_nn::Init::Const(0.5))
        .unwrap()
}

fn loss(w: &Tensor, step: usize) -> Tensor {
    let x = Tensor::arange(0f32, 12.0, &Device::Cpu)
        .unwrap()
        .reshape((4, 3))
        .unwrap();
    let target = ((x * 0.1).unwrap() + step as f64 * 0.01).unwrap();
    (w - target).unwrap().sqr().unwrap().sum_all().unwrap()
}

fn weights(w: &Tensor) -> Vec<f32> {
    w.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn the_update_is_candle_nns_bit_for_bit() {
    let (a, b) = (VarMap::new(), VarMap::new());
    let (wa, wb) = (model(&a), model(&b));
    let mut ours = AdamW::from_varmap(&a, params()).unwrap();
    let mut theirs = candle_nn::AdamW::new(b.all_vars(), params()).unwrap();
    for step in 0..25 {
        ours.step(&loss(&wa, step).backward().unwrap()).unwrap();
        theirs.step(&loss(&wb, step).backward().unwrap()).unwrap();
    }
    assert_eq!(weights(&wa), weights(&wb));
}

#[test]
fn a_resumed_run_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Uninterrupted: 20 steps.
    let full = VarMap::new();
    let w = model(&full);
    let mut opt = AdamW::from_varmap(&full, params()).unwrap();
    for step in 0..20 {
        opt.step(&loss(&w, step).backward().unwrap()).unwrap();
    }
    // Interrupted after 8: weights and optimiser state saved, a fresh process restores them.
    let first = VarMap::new();
    let w1 = model(&first);
    let mut opt1 = AdamW::from_varmap(&first, params()).unwrap();
    for step in 0..8 {
        opt1.step(&loss(&w1, step).backward().unwrap()).unwrap();
    }
    first.save(dir.path().join("model.safetensors")).unwrap();
    opt1.save(&dir.path().join("optimiser.safetensors"))
        .unwrap();

    let mut resumed = VarMap::new();
    let w2 = model(&resumed);
    resumed.load(dir.path().join("model.safetensors")).unwrap();
    let mut opt2 = AdamW::from_varmap(&resumed, params()).unwrap();
    opt2.load(&dir.path().join("optimiser.safetensors"))
        .unwrap();
    assert_eq!(opt2.step_count(), 8);
    for step in 8..20 {
        opt2.step(&loss(&w2, step).backward().unwrap()).unwrap();
    }
    assert_eq!(weights(&w), weights(&w2), "the resumed run diverged");

    // A state for another model is refused, naming the variable.
    let other = VarMap::new();
    VarBuilder::from_varmap(&other, DType::F32, &Device::Cpu)
        .get_with_hints(5, "bias", candle_nn::Init::Const(0.0))
        .unwrap();
    let mut wrong = AdamW::from_varmap(&other, params()).unwrap();
    match wrong.load(&dir.path().join("optimiser.safetensors")) {
        Err(Error::State(m)) => assert!(m.contains("bias.m"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn the_ema_follows_its_warmed_up_recurrence() {
    let varmap = VarMap::new();
    let w = model(&varmap);
    let mut ema = Ema::new(&varmap, 0.9).unwrap();
    let mut expected = 0.5f64;
    let mut opt = AdamW::from_varmap(&varmap, params()).unwrap();
    for step in 0..30 {
        opt.step(&loss(&w, step).backward().unwrap()).unwrap();
        let d = ema.current_decay();
        assert!((d - 0.9f64.min((1.0 + step as f64) / (10.0 + step as f64))).abs() < 1e-12);
        expected = d * expected + (1.0 - d) * f64::from(weights(&w)[0]);
        ema.update(&varmap).unwrap();
    }
    let averaged: Vec<f32> = ema.weights()["layer.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!((f64::from(averaged[0]) - expected).abs() < 1e-5);
    assert!(matches!(
        Ema::new(&varmap, 1.0),
        Err(Error::InvalidSetting(_))
    ));
}
