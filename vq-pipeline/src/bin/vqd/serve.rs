//! `vqd serve`: the pipeline behind a local web app and a JSON HTTP API (axum on tokio).
//!
//! The model loads once. Every request becomes a job in a bounded queue (a full queue answers
//! 503 with `Retry-After`); `--concurrency` jobs run at a time on blocking threads, the rest
//! wait. A job's progress — step, steps per second, ETA and a preview of the current tokens
//! (decoded, masked positions drawn as a checkerboard) — is streamed as Server-Sent Events;
//! cancelling stops the job at its next step. Finished jobs keep their PNGs and sidecar in
//! memory (the most recent `KEPT_JOBS`).
//!
//! Routes (all JSON unless stated; errors are `{"error": message, "field": name-or-null}`):
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the page (HTML, CSS and JS embedded in the binary, no network) |
//! | `GET /api/health` | `{"status": "ok"}` |
//! | `GET /api/openapi.json` | an OpenAPI 3.1 description of these routes |
//! | `GET /api/model` | the loaded model, its recommended settings and the server's limits |
//! | `POST /api/generate` | a job (body: [`JobRequest`]) → 202 `{id, status, events}` |
//! | `GET /api/jobs/{id}` | the job's state; `images` and `sidecar` URLs when done |
//! | `GET /api/jobs/{id}/events` | its progress as Server-Sent Events (`progress`, then `done`, `failed` or `cancelled`) |
//! | `POST /api/jobs/{id}/cancel` | stop it |
//! | `GET /api/jobs/{id}/images/{i}` | image `i`, PNG |
//! | `GET /api/jobs/{id}/sidecar` | the sidecar JSON (every setting, as `vqd generate` writes it) |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use discrete_diffusion::{Reimpose, SeededNoise, StepEvent, Truncation};
use serde::Deserialize;
use vq_pipeline::{
    EditInput, Error, GenerationOptions, ModelRecord, NullCondition, RunLog, SamplerChoice,
    VqDiffusionPipeline, box_mask, upscale_nearest,
};

/// Finished jobs kept in memory (their images and sidecars); older ones are dropped.
const KEPT_JOBS: usize = 64;
/// The shortest interval between two previews of a job (the last step is always shown).
const PREVIEW_INTERVAL: Duration = Duration::from_millis(100);

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Jobs queued or running at once; more are answered 503.
    pub max_queue: usize,
    /// Jobs running at once.
    pub concurrency: usize,
    /// Images per request.
    pub max_images: usize,
    /// Request body size in bytes.
    pub max_body: usize,
}

/// A job request: the options of `vqd generate` (and, with `image`, of `vqd inpaint` /
/// `vqd vary`). Unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The prompts (or `prompt` for one).
    #[serde(default)]
    prompts: Vec<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default = "one")]
    num_images: usize,
    #[serde(default)]
    sampler: Option<SamplerChoice>,
    #[serde(default)]
    steps: Option<usize>,
    #[serde(default)]
    guidance_scale: Option<f64>,
    #[serde(default)]
    truncation_rate: Option<f32>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    null: Option<NullCondition>,
    #[serde(default)]
    prior_weight: Option<f64>,
    #[serde(default)]
    unmask_per_call: Option<usize>,
    /// Settings of the MaskGIT-family, threshold, entropy-bounded and predictor-corrector
    /// samplers (`vqd generate`'s flags of the same names, with underscores).
    #[serde(default)]
    sampler_settings: Option<vq_pipeline::SamplerSettings>,
    /// An edit's source image: a PNG, base64 or as a `data:` URL.
    #[serde(default)]
    image: Option<String>,
    /// The region to regenerate (white = regenerate), a PNG like `image`.
    #[serde(default)]
    mask: Option<String>,
    /// The region as `[x0, y0, x1, y1]` in the source's pixels.
    #[serde(default, rename = "box")]
    region: Option<[u32; 4]>,
    #[serde(default)]
    strength: Option<f64>,
    #[serde(default)]
    reimpose: Option<Reimpose>,
    #[serde(default)]
    paste_back: Option<f32>,
}

fn one() -> usize {
    1
}

/// A request error: status, message, and the request field at fault when known.
struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn bad(field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: field.map(String::from),
            retry_after: None,
        }
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
    /// An option error of the library, with the field its message names.
    fn option(e: Error) -> Self {
        let message = e.to_string();
        let field = field_named_in(&message);
        Self::bad(field.as_deref(), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message, "field": self.field});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, s.to_string().parse().expect("digits"));
        }
        response
    }
}

/// The request field a library message is about: its `--option`, or a known word.
fn field_named_in(message: &str) -> Option<String> {
    if let Some(i) = message.find("--") {
        let name: String = message[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let name = match name.as_str() {
            "num-images" => "num_images".to_string(),
            "null" => "null".to_string(),
            // The newer samplers' settings travel in one object.
            "unmask-schedule" | "temperature" | "choice-temperature" | "threshold"
            | "edit-threshold" | "entropy-bound" | "remask" | "corrector-steps"
            | "corrected-steps" => "sampler_settings".to_string(),
            other => other.replace('-', "_"),
        };
        return Some(name);
    }
    [
        ("guidance scale", "guidance_scale"),
        ("truncation", "truncation_rate"),
        ("top-k", "top_k"),
        ("prompt", "prompts"),
        ("strength", "strength"),
        ("mask", "mask"),
        ("feather", "paste_back"),
        ("source image", "image"),
        ("prior weight", "prior_weight"),
        ("box", "box"),
        ("threshold", "sampler_settings"),
        ("entropy bound", "sampler_settings"),
        ("temperature", "sampler_settings"),
        ("remasking", "sampler_settings"),
        ("corrector", "sampler_settings"),
        ("MaskGIT", "steps"),
    ]
    .iter()
    .find(|(word, _)| message.contains(word))
    .map(|(_, field)| field.to_string())
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    fn finished(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

/// A job's mutable state.
struct Progress {
    status: Status,
    call: usize,
    planned: usize,
    t: Option<usize>,
    started: Option<Instant>,
    finished: Option<Instant>,
    preview: Option<String>,
    images: Vec<Vec<u8>>,
    sidecar: Option<serde_json::Value>,
    error: Option<String>,
}

struct Job {
    id: u64,
    request: JobRequest,
    progress: Mutex<Progress>,
    cancel: AtomicBool,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock().expect("job state"));
        self.changed.send_modify(|v| *v += 1);
    }

    /// The job's state as JSON (the body of `GET /api/jobs/{id}` and of each event).
    fn snapshot(&self, with_preview: bool) -> serde_json::Value {
        let p = self.progress.lock().expect("job state");
        let elapsed = p
            .started
            .map(|s| p.finished.unwrap_or_else(Instant::now) - s);
        let rate = elapsed
            .filter(|e| p.call > 0 && e.as_secs_f64() > 0.0)
            .map(|e| p.call as f64 / e.as_secs_f64());
        let eta = rate
            .filter(|_| !p.status.finished())
            .map(|r| (p.planned.saturating_sub(p.call)) as f64 / r);
        let base = format!("/api/jobs/{}", self.id);
        let mut v = serde_json::json!({
            "id": self.id,
            "status": p.status,
            "call": p.call,
            "planned_calls": p.planned,
            "t": p.t,
            "steps_per_second": rate,
            "eta_seconds": eta,
            "elapsed_seconds": elapsed.map(|e| e.as_secs_f64()),
            "error": p.error,
        });
        if p.status == Status::Done {
            v["images"] = (0..p.images.len())
                .map(|i| format!("{base}/images/{i}"))
                .collect::<Vec<_>>()
                .into();
            v["sidecar"] = format!("{base}/sidecar").into();
        }
        if with_preview {
            v["preview"] = p.preview.clone().into();
        }
        v
    }
}

/// The server's state.
struct App {
    pipeline: VqDiffusionPipeline,
    record: ModelRecord,
    limits: Limits,
    upscale: u32,
    jobs: Mutex<BTreeMap<u64, Arc<Job>>>,
    next_id: AtomicU64,
    running: Arc<tokio::sync::Semaphore>,
}

impl App {
    fn job(&self, id: u64) -> Result<Arc<Job>, ApiError> {
        self.jobs
            .lock()
            .expect("job table")
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
    }

    /// The options and edit input of a request, checked as `vqd` checks its arguments.
    fn options(&self, r: &JobRequest) -> Result<(GenerationOptions, Option<EditInput>), ApiError> {
        let mut prompts = r.prompts.clone();
        if let Some(p) = &r.prompt {
            if !prompts.is_empty() {
                return Err(ApiError::bad(
                    Some("prompt"),
                    "give either prompt or prompts, not both",
                ));
            }
            prompts.push(p.clone());
        }
        let edit = match &r.image {
            Some(image) => Some(self.edit_input(r, image)?),
            None => {
                for (set, field) in [
                    (r.mask.is_some(), "mask"),
                    (r.region.is_some(), "box"),
                    (r.strength.is_some(), "strength"),
                    (r.reimpose.is_some(), "reimpose"),
                    (r.paste_back.is_some(), "paste_back"),
                ] {
                    if set {
                        return Err(ApiError::bad(
                            Some(field),
                            format!("{field} has no effect without an image to edit"),
                        ));
                    }
                }
                None
            }
        };
        if edit.is_some() && prompts.is_empty() {
            prompts.push(String::new());
        }
        if r.num_images == 0 || r.num_images > self.limits.max_images {
            return Err(ApiError::bad(
                Some("num_images"),
                format!(
                    "num_images must be in [1, {}] (this server's limit), got {}",
                    self.limits.max_images, r.num_images
                ),
            ));
        }
        if prompts.len() * r.num_images > self.limits.max_images {
            return Err(ApiError::bad(
                Some("prompts"),
                format!(
                    "{} prompts × {} images is more than this server's {} images per request",
                    prompts.len(),
                    r.num_images,
                    self.limits.max_images
                ),
            ));
        }
        let mut o = self
            .pipeline
            .default_options(prompts)
            .num_images_per_prompt(r.num_images);
        if let Some(s) = r.sampler {
            o.sampler = s;
        }
        o.steps = r.steps;
        if let Some(g) = r.guidance_scale {
            o.guidance_scale = g;
        }
        match (r.top_k, r.truncation_rate) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad(
                    Some("top_k"),
                    "give top_k or truncation_rate, not both",
                ));
            }
            (Some(k), None) => o.truncation = Truncation::TopK(k),
            (None, Some(t)) => o.truncation = Truncation::TopR(t),
            (None, None) => {}
        }
        if let Some(n) = r.null {
            o.null_condition = n;
        }
        if let Some(w) = r.prior_weight {
            o.prior_weight = w;
        }
        o.unmask_per_call = r.unmask_per_call;
        o.sampler_settings = r.sampler_settings.clone().unwrap_or_default();
        let t = self.pipeline.num_timesteps();
        if edit.is_some() {
            o.validate_allowing_empty_prompts(t)
        } else {
            o.validate(t)
        }
        .map_err(ApiError::option)?;
        Ok((o, edit))
    }

    fn edit_input(&self, r: &JobRequest, image: &str) -> Result<EditInput, ApiError> {
        let image = decode_png(image, "image")?.to_rgb8();
        let mask = match (&r.mask, r.region) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad(Some("box"), "give mask or box, not both"));
            }
            (Some(m), None) => Some(decode_png(m, "mask")?.to_luma8()),
            (None, Some([x0, y0, x1, y1])) => Some(
                box_mask(image.width(), image.height(), (x0, y0, x1, y1))
                    .map_err(|e| ApiError::bad(Some("box"), e.to_string()))?,
            ),
            (None, None) => None,
        };
        let strength = match (r.strength, &mask) {
            (Some(s), _) => s,
            (None, Some(_)) => 1.0,
            (None, None) => {
                return Err(ApiError::bad(
                    Some("strength"),
                    "a variation (an image without mask or box) needs a strength in [0, 1]",
                ));
            }
        };
        Ok(EditInput {
            image,
            mask,
            strength,
            reimpose: r.reimpose.unwrap_or_default(),
            paste_back: r.paste_back,
        })
    }
}

/// A PNG given as base64 or a `data:` URL.
fn decode_png(text: &str, field: &str) -> Result<image::DynamicImage, ApiError> {
    let data = text.split_once("base64,").map_or(text, |(_, b)| b).trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| ApiError::bad(Some(field), format!("{field} is not base64: {e}")))?;
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| ApiError::bad(Some(field), format!("{field} is not a readable PNG: {e}")))
}

fn png_bytes(image: &image::RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("PNG encoding into memory");
    bytes
}

/// Runs a job to the end on the current (blocking) thread.
fn run_job(app: &App, job: &Job, options: GenerationOptions, edit: Option<EditInput>) {
    job.update(|p| {
        p.status = Status::Running;
        p.started = Some(Instant::now());
    });
    let mut noise = SeededNoise::new(job.request.seed);
    let mut last_preview: Option<Instant> = None;
    let mut on_step = |e: &StepEvent| -> vq_pipeline::Result<()> {
        if job.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let last = e.call + 1 >= e.planned_calls;
        let due = last_preview.is_none_or(|t| t.elapsed() >= PREVIEW_INTERVAL);
        let preview = if due || last {
            last_preview = Some(Instant::now());
            let first = e.tokens.narrow(0, 0, 1)?;
            app.pipeline.decode_preview(&first)?.first().map(|img| {
                let png = png_bytes(&upscale_nearest(img, app.upscale));
                format!(
                    "data:image/png;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(png)
                )
            })
        } else {
            None
        };
        job.update(|p| {
            p.call = e.call + 1;
            p.planned = e.planned_calls;
            p.t = Some(e.t);
            if preview.is_some() {
                p.preview = preview;
            }
        });
        Ok(())
    };
    let result = match &edit {
        None => app.pipeline.generate(&options, &mut noise, &mut on_step),
        Some(input) => app.pipeline.edit(&options, input, &mut noise, &mut on_step),
    };
    match result {
        Ok(generation) => {
            let mut log = RunLog::default();
            log.record(&generation);
            let mut sidecar = log.sidecar(&options, &app.record);
            sidecar["images"] = (0..generation.images.len())
                .map(|i| format!("/api/jobs/{}/images/{i}", job.id))
                .collect::<Vec<_>>()
                .into();
            sidecar["upscale"] = app.upscale.into();
            let images = generation
                .images
                .iter()
                .map(|img| png_bytes(&upscale_nearest(img, app.upscale)))
                .collect();
            job.update(|p| {
                p.status = Status::Done;
                p.images = images;
                p.sidecar = Some(sidecar);
                p.call = p.planned.max(p.call);
                p.finished = Some(Instant::now());
            });
        }
        Err(Error::Cancelled) => job.update(|p| {
            p.status = Status::Cancelled;
            p.finished = Some(Instant::now());
        }),
        Err(e) => job.update(|p| {
            p.status = Status::Failed;
            p.error = Some(e.to_string());
            p.finished = Some(Instant::now());
        }),
    }
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn model(State(app): State<Arc<App>>) -> axum::Json<serde_json::Value> {
    let p = &app.pipeline;
    let (w, h) = p.image_size();
    let defaults = p.default_options(["x"]);
    axum::Json(serde_json::json!({
        "model": app.record,
        "num_timesteps": p.num_timesteps(),
        "token_grid": p.grid(),
        "image_size": [w, h],
        "upscale": app.upscale,
        "learned_null": p.has_learned_null(),
        "recommended": {
            "guidance_scale": defaults.guidance_scale,
            "truncation": defaults.truncation,
            "sampler": defaults.sampler,
        },
        "samplers": SamplerChoice::ALL.map(SamplerChoice::name),
        "limits": {
            "max_queue": app.limits.max_queue,
            "concurrency": app.limits.concurrency,
            "max_images": app.limits.max_images,
            "max_body_bytes": app.limits.max_body,
        },
        "versions": vq_pipeline::crate_versions(),
    }))
}

/// The request body, at most `limit` bytes. A longer one is answered 413 — after reading (and
/// dropping) the rest of it up to a bound, so that the client, still sending, gets the answer
/// instead of a broken connection.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let drain_cap = limit.saturating_mul(8).max(64 << 20);
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad(None, format!("request body: {e}")))?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            kept.extend_from_slice(&chunk);
        } else if total > drain_cap {
            break;
        }
    }
    if total > limit {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body refused: larger than the limit of {limit} bytes"),
            field: None,
            retry_after: None,
        });
    }
    Ok(kept)
}

async fn generate(State(app): State<Arc<App>>, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body, app.limits.max_body).await?;
    let request: JobRequest = serde_json::from_slice(&body).map_err(|e| {
        let message = e.to_string();
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .map(String::from);
        ApiError::bad(field.as_deref(), format!("invalid request: {message}"))
    })?;
    let (options, edit) = app.options(&request)?;
    let job = {
        let mut jobs = app.jobs.lock().expect("job table");
        let active = jobs
            .values()
            .filter(|j| !j.progress.lock().expect("job state").status.finished())
            .count();
        if active >= app.limits.max_queue {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "the queue is full ({active} jobs queued or running); retry later"
                ),
                field: None,
                retry_after: Some(5),
            });
        }
        // Keep the newest finished jobs only.
        let finished: Vec<u64> = jobs
            .iter()
            .filter(|(_, j)| j.progress.lock().expect("job state").status.finished())
            .map(|(&id, _)| id)
            .collect();
        for id in finished
            .iter()
            .take(finished.len().saturating_sub(KEPT_JOBS))
        {
            jobs.remove(id);
        }
        let id = app.next_id.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(Job {
            id,
            request,
            progress: Mutex::new(Progress {
                status: Status::Queued,
                call: 0,
                planned: 0,
                t: None,
                started: None,
                finished: None,
                preview: None,
                images: Vec::new(),
                sidecar: None,
                error: None,
            }),
            cancel: AtomicBool::new(false),
            changed: tokio::sync::watch::Sender::new(0),
        });
        jobs.insert(id, job.clone());
        job
    };
    let (runner, queued) = (app.clone(), job.clone());
    tokio::spawn(async move {
        let permit = runner.running.clone().acquire_owned().await;
        if queued.cancel.load(Ordering::Relaxed) {
            queued.update(|p| p.status = Status::Cancelled);
            return;
        }
        let task = tokio::task::spawn_blocking(move || {
            run_job(&runner, &queued, options, edit);
            drop(permit);
        });
        let _ = task.await;
    });
    let id = job.id;
    let body = serde_json::json!({
        "id": id,
        "status": format!("/api/jobs/{id}"),
        "events": format!("/api/jobs/{id}/events"),
    });
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

async fn job_status(
    State(app): State<Arc<App>>,
    Path(id): Path<u64>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(app.job(id)?.snapshot(false)))
}

async fn cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<u64>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let job = app.job(id)?;
    job.cancel.store(true, Ordering::Relaxed);
    job.changed.send_modify(|v| *v += 1);
    Ok(axum::Json(job.snapshot(false)))
}

async fn image(
    State(app): State<Arc<App>>,
    Path((id, index)): Path<(u64, usize)>,
) -> Result<Response, ApiError> {
    let job = app.job(id)?;
    let p = job.progress.lock().expect("job state");
    let png = p
        .images
        .get(index)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("job {id} has no image {index}")))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

async fn sidecar(
    State(app): State<Arc<App>>,
    Path(id): Path<u64>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let job = app.job(id)?;
    let p = job.progress.lock().expect("job state");
    p.sidecar
        .clone()
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("job {id} has not finished")))
}

async fn events(
    State(app): State<Arc<App>>,
    Path(id): Path<u64>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError>
{
    let job = app.job(id)?;
    let receiver = job.changed.subscribe();
    // One event per change (changes in between are coalesced), then the final one.
    let stream = futures_util::stream::unfold(
        (job, receiver, true, false),
        |(job, mut rx, first, ended)| async move {
            if ended {
                return None;
            }
            if !first && rx.changed().await.is_err() {
                return None;
            }
            rx.borrow_and_update();
            let snapshot = job.snapshot(true);
            let status = job.progress.lock().expect("job state").status;
            let name = match status {
                Status::Done => "done",
                Status::Failed => "failed",
                Status::Cancelled => "cancelled",
                Status::Queued | Status::Running => "progress",
            };
            let event = Event::default().event(name).data(snapshot.to_string());
            Some((Ok(event), (job, rx, false, status.finished())))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see GET /api/model and the README's API section)")
}

/// Serves `pipeline` on `host:port` until interrupted (Ctrl-C). Prints the URL once listening.
pub fn serve(
    pipeline: VqDiffusionPipeline,
    record: ModelRecord,
    host: &str,
    port: u16,
    limits: Limits,
    upscale: u32,
) -> anyhow::Result<()> {
    anyhow::ensure!(limits.max_queue >= 1, "--max-queue must be at least 1");
    anyhow::ensure!(limits.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(limits.max_images >= 1, "--max-images must be at least 1");
    let app = Arc::new(App {
        pipeline,
        record,
        limits,
        upscale,
        jobs: Mutex::new(BTreeMap::new()),
        next_id: AtomicU64::new(1),
        running: Arc::new(tokio::sync::Semaphore::new(limits.concurrency)),
    });
    let router = Router::new()
        .route("/", get(page))
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/api/model", get(model))
        .route("/api/generate", post(generate))
        .route("/api/jobs/{id}", get(job_status))
        .route("/api/jobs/{id}/events", get(events))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .route("/api/jobs/{id}/images/{index}", get(image))
        .route("/api/jobs/{id}/sidecar", get(sidecar))
        .fallback(not_found)
        // `generate` enforces --max-body-mib itself (read_body).
        .layer(DefaultBodyLimit::disable())
        .with_state(app);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {host}:{port}: {e}"))?;
        let address = listener.local_addr()?;
        println!("listening on http://{address}/");
        use std::io::Write;
        std::io::stdout().flush()?;
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}
