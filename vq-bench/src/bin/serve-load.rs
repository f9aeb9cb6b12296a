//! A bounded load test of `vqd serve` on loopback: starts the server (its own process, on a
//! free port), runs `--clients` concurrent clients for `--requests` requests in all, and
//! reports requests per second, latency percentiles (request to image received), how many
//! requests got an image and how many a clean 503, and the server's resident memory over the
//! run (sampled every 100 ms from `/proc`). It stops by itself after the requests, or at
//! `--time-limit`, and kills the server.
//!
//! `cargo build --release -p vq-pipeline && cargo run --release -p vq-bench --bin serve-load -- --out DIR`

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Bounded load test of vqd serve on loopback")]
struct Args {
    /// The `vqd` binary.
    #[arg(long, default_value = "target/release/vqd")]
    vqd: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 64)]
    requests: usize,
    /// The server's --max-queue.
    #[arg(long, default_value_t = 4)]
    max_queue: usize,
    /// The request body.
    #[arg(
        long,
        default_value = r#"{"prompt": "a small red circle in the top left", "sampler": "strided", "steps": 25}"#
    )]
    body: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    time_limit: u64,
    /// Folder for report.md and report.json.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Default)]
struct Outcomes {
    images: Vec<f64>,
    refused: usize,
    errors: Vec<String>,
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One request: submit, wait for the job, fetch its first image. `Ok(None)` is a clean 503.
fn one_request(url: &str, body: &str, deadline: Instant) -> Result<Option<()>, String> {
    let submitted = ureq::post(&format!("{url}/api/generate"))
        .set("content-type", "application/json")
        .send_string(body);
    let job: serde_json::Value = match submitted {
        Ok(r) => r.into_json().map_err(|e| e.to_string())?,
        Err(ureq::Error::Status(503, r)) => {
            if r.header("retry-after").is_none() {
                return Err("503 without Retry-After".into());
            }
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    let id = job["id"].as_u64().ok_or("no job id")?;
    loop {
        let state: serde_json::Value = ureq::get(&format!("{url}/api/jobs/{id}"))
            .call()
            .map_err(|e| e.to_string())?
            .into_json()
            .map_err(|e| e.to_string())?;
        match state["status"].as_str() {
            Some("done") => {
                let image = state["images"][0].as_str().ok_or("no image URL")?;
                let mut png = Vec::new();
                ureq::get(&format!("{url}{image}"))
                    .call()
                    .map_err(|e| e.to_string())?
                    .into_reader()
                    .read_to_end(&mut png)
                    .map_err(|e| e.to_string())?;
                if !png.starts_with(b"\x89PNG") {
                    return Err("the image is not a PNG".into());
                }
                return Ok(Some(()));
            }
            Some("failed") | Some("cancelled") => return Err(format!("job {id}: {state}")),
            _ => {}
        }
        if Instant::now() > deadline {
            return Err("time limit".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut server = Command::new(&args.vqd)
        .args(["serve", "--port", "0", "--max-queue"])
        .arg(args.max_queue.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (build it: cargo build --release -p vq-pipeline)",
                args.vqd.display()
            )
        })?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("piped")).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
        .trim_end_matches('/')
        .to_string();
    let pid = server.id();
    let idle_rss = rss_mib(pid).unwrap_or(f64::NAN);

    let deadline = Instant::now() + Duration::from_secs(args.time_limit);
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let remaining = Arc::new(AtomicUsize::new(args.requests));
    let done = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (done, samples) = (done.clone(), samples.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(r) = rss_mib(pid) {
                    samples.lock().unwrap().push(r);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.clients {
            s.spawn(|| {
                while remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    if Instant::now() > deadline {
                        break;
                    }
                    let t = Instant::now();
                    let result = one_request(&url, &args.body, deadline);
                    let mut o = outcomes.lock().unwrap();
                    match result {
                        Ok(Some(())) => o.images.push(t.elapsed().as_secs_f64()),
                        Ok(None) => {
                            o.refused += 1;
                            drop(o);
                            // A client that was refused waits as the server asked.
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        Err(e) => o.errors.push(e),
                    }
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let _ = server.kill();
    let _ = server.wait();

    let o = outcomes.lock().unwrap();
    let mut latencies = o.images.clone();
    latencies.sort_by(f64::total_cmp);
    let rss = samples.lock().unwrap().clone();
    let peak = rss.iter().copied().fold(f64::NAN, f64::max);
    let tenth = rss.len() / 10;
    let early = rss.get(tenth).copied().unwrap_or(f64::NAN);
    let late = rss.last().copied().unwrap_or(f64::NAN);
    let answered = o.images.len() + o.refused;
    let report = serde_json::json!({
        "clients": args.clients,
        "requests": args.requests,
        "max_queue": args.max_queue,
        "body": args.body,
        "wall_seconds": wall,
        "images": o.images.len(),
        "refused_503": o.refused,
        "errors": o.errors,
        "images_per_second": o.images.len() as f64 / wall,
        "requests_per_second": answered as f64 / wall,
        "latency_seconds": {
            "p50": percentile(&latencies, 0.5),
            "p90": percentile(&latencies, 0.9),
            "p99": percentile(&latencies, 0.99),
            "max": latencies.last().copied().unwrap_or(f64::NAN),
        },
        "server_rss_mib": {"idle": idle_rss, "at_10_percent": early, "peak": peak, "end": late},
    });
    let md = format!(
        "| clients | requests | max queue | images | clean 503 | errors | images/s | requests/s | latency p50 / p90 / p99 (s) | server RSS idle / 10 % / peak / end (MiB) |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\
         | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {:.0} / {:.0} / {:.0} / {:.0} |\n\n\
         Body: `{}`; wall {:.1} s.\n",
        args.clients,
        args.requests,
        args.max_queue,
        o.images.len(),
        o.refused,
        o.errors.len(),
        o.images.len() as f64 / wall,
        answered as f64 / wall,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        idle_rss,
        early,
        peak,
        late,
        args.body,
        wall
    );
    print!("{md}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), &md)?;
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(&report)? + "\n",
        )?;
    }
    anyhow::ensure!(
        o.errors.is_empty(),
        "{} requests failed: {:?}",
        o.errors.len(),
        o.errors
    );
    Ok(())
}
