//! The loop `vqd train` runs for every kind of denoiser (text, class, unconditional): resume
//! from `RUN/checkpoint` when there is one (keeping the logged steps up to it, so the loss
//! curve continues), one vq-train step at a time under an indicatif bar (loss, steps/s, ETA),
//! `RUN/loss.csv` + `RUN/loss_curve.png` and the checkpoint every `--checkpoint-every` steps,
//! and a sample grid `RUN/samples/step-N.png` every `--sample-every` steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use vq_pipeline::write_atomically;
use vq_train::{
    DenoiserTrainer, DenoiserTrainingConfig, LineChart, Series, TokenDataset, TrainableDenoiser,
};

/// How long to train and how often to write.
pub struct LoopSettings {
    /// Steps in all.
    pub steps: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Steps between sample grids (0: none).
    pub sample_every: u64,
}

impl LoopSettings {
    /// The loop of a `vqd train` run.
    pub fn of(args: &crate::train::TrainArgs, config: &DenoiserTrainingConfig) -> Self {
        Self {
            steps: config.steps,
            checkpoint_every: args.checkpoint_every.max(1),
            sample_every: args.sample_every,
        }
    }
}

/// What this session did.
pub struct TrainingSession {
    /// The step it started from (after a resume: the checkpoint's).
    pub first_step: u64,
    /// Seconds spent training.
    pub seconds: f64,
}

/// Trains `trainer` on `data` in the run folder `out` (see the module docs); `sample(trainer,
/// path)` writes the sample grid `path`.
pub fn run_training<M, D>(
    trainer: &mut DenoiserTrainer<M>,
    data: &D,
    out: &Path,
    settings: &LoopSettings,
    mut sample: impl FnMut(&DenoiserTrainer<M>, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<TrainingSession>
where
    M: TrainableDenoiser,
    D: TokenDataset<Condition = M::Condition>,
{
    let checkpoint = out.join("checkpoint");
    let loss_csv = out.join("loss.csv");
    let mut log = String::from("step,loss,vlb_per_token,aux_per_token,grad_norm,lr,skipped\n");
    if trainer.resume(&checkpoint)? {
        // Keep the logged steps up to the checkpoint: the resumed run continues the curve.
        let old = std::fs::read_to_string(&loss_csv).unwrap_or_default();
        for line in old.lines().skip(1) {
            let step: u64 = line
                .split(',')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            if step <= trainer.step() {
                log.push_str(line);
                log.push('\n');
            }
        }
        eprintln!("resumed {} at step {}", out.display(), trainer.step());
    }
    let bar = ProgressBar::new(settings.steps).with_style(
        ProgressStyle::with_template(
            "{spinner} training [{bar:30}] {pos}/{len} {msg} ({per_sec}) eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position(trainer.step());
    let started = Instant::now();
    let first_step = trainer.step();
    while trainer.step() < settings.steps {
        let s = trainer.train_step(data)?;
        log.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            s.step, s.loss, s.vlb_per_token, s.aux_per_token, s.grad_norm, s.lr, s.skipped
        ));
        bar.set_position(s.step);
        bar.set_message(format!("loss {:.4}", s.loss));
        if s.step % settings.checkpoint_every == 0 || s.step == settings.steps {
            // The log first: a kill between the two leaves a log ahead of the checkpoint, which
            // the resume trims; the other order could lose the steps up to the checkpoint.
            write_atomically(&loss_csv, log.as_bytes())?;
            trainer.save_checkpoint(&checkpoint)?;
            loss_chart(&log).save(out, "loss_curve")?;
        }
        if settings.sample_every > 0 && s.step % settings.sample_every == 0 {
            let path: PathBuf = out.join(format!("samples/step-{:06}.png", s.step));
            std::fs::create_dir_all(out.join("samples"))?;
            sample(trainer, &path)?;
        }
    }
    bar.finish_and_clear();
    write_atomically(&loss_csv, log.as_bytes())?;
    Ok(TrainingSession {
        first_step,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Sets the model's weights to their EMA, when the run keeps one (what gets exported).
pub fn use_ema_weights<M: TrainableDenoiser>(trainer: &DenoiserTrainer<M>) -> anyhow::Result<()> {
    if let Some(ema) = trainer.ema() {
        let averaged = ema.weights();
        for (name, var) in trainer
            .model()
            .varmap()
            .data()
            .lock()
            .expect("varmap")
            .iter()
        {
            var.set(&averaged[name])?;
        }
    }
    Ok(())
}

/// `images` four to a row, written atomically as the PNG `path` (every sample grid of a run).
pub fn write_grid(images: &[image::RgbImage], path: &Path) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    vq_pipeline::contact_sheet(images, 4).write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    write_atomically(path, &bytes)?;
    Ok(())
}

/// The loss curve of the log so far: every step, and a moving average over 25.
fn loss_chart(log: &str) -> LineChart {
    let points: Vec<(f64, f64)> = log
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .filter(|&(_, y): &(f64, f64)| y.is_finite())
        .collect();
    let window = 25;
    let average = points
        .iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let from = i.saturating_sub(window - 1);
            let slice = &points[from..=i];
            (
                x,
                slice.iter().map(|p| p.1).sum::<f64>() / slice.len() as f64,
            )
        })
        .collect();
    LineChart {
        title: "vqd train: training loss".into(),
        x_label: "step".into(),
        y_label: "loss (VLB + auxiliary, nats per token)".into(),
        series: vec![
            Series {
                label: "loss".into(),
                points,
            },
            Series {
                label: format!("mean of the last {window} steps"),
                points: average,
            },
        ],
        log_y: false,
    }
}
