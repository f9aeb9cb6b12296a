//! `vqd serve`'s HTTP API without a browser: a job runs to the same image as `vqd generate`,
//! its progress streams as Server-Sent Events, bad requests get 4xx JSON errors naming the
//! field, oversized bodies 413, a full queue 503 with Retry-After, and cancel stops a job.

mod support;

use std::io::{BufRead, BufReader};

use support::server::{Server, generated_pixels};

#[test]
fn a_job_streams_its_progress_and_gives_the_cli_image() {
    let server = Server::start(&[]);
    assert_eq!(
        server.get("/api/health"),
        (200, serde_json::json!({"status": "ok"}))
    );
    let (status, model) = server.get("/api/model");
    assert_eq!(status, 200);
    assert_eq!(model["num_timesteps"], 100);
    assert!(
        model["model"]["name"]
            .as_str()
            .unwrap()
            .starts_with("embedded:")
    );

    let body = r#"{"prompt": "a red circle in the top left", "seed": 7, "sampler": "strided", "steps": 10}"#;
    let (status, job) = server.post("/api/generate", body);
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_u64().unwrap();

    // The event stream: progress events, then `done` with the image URLs.
    let events = ureq::get(&format!(
        "{}{}",
        server.url,
        job["events"].as_str().unwrap()
    ))
    .call()
    .unwrap();
    let mut names = Vec::new();
    let mut last = serde_json::Value::Null;
    for line in BufReader::new(events.into_reader()).lines() {
        let line = line.unwrap();
        if let Some(name) = line.strip_prefix("event: ") {
            names.push(name.to_string());
        } else if let Some(data) = line.strip_prefix("data: ") {
            last = serde_json::from_str(data).unwrap();
            if names.last().is_some_and(|n| n != "progress") {
                break;
            }
        }
    }
    assert_eq!(names.last().map(String::as_str), Some("done"), "{names:?}");
    assert!(names.iter().filter(|n| *n == "progress").count() >= 1);
    assert_eq!(last["call"], 10);
    assert_eq!(last["planned_calls"], 10);
    assert!(
        last["preview"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );

    let state = server.wait(id);
    assert_eq!(state["status"], "done");
    let png = server.bytes(state["images"][0].as_str().unwrap());
    let served = image::load_from_memory(&png).unwrap().to_rgb8().into_raw();
    let cli = generated_pixels(&[
        "a red circle in the top left",
        "--seed",
        "7",
        "--sampler",
        "strided",
        "--steps",
        "10",
    ]);
    assert_eq!(
        served, cli,
        "the server's image differs from vqd generate's"
    );
    let (status, sidecar) = server.get(state["sidecar"].as_str().unwrap());
    assert_eq!(status, 200);
    assert_eq!(sidecar["seed"], 7);
    assert_eq!(sidecar["options"]["steps"], 10);
}

#[test]
fn bad_requests_get_json_errors_naming_the_field() {
    let server = Server::start(&["--max-body-mib", "1"]);
    for (body, field, needle) in [
        (
            r#"{"prompt": "a", "colour": "red"}"#,
            "colour",
            "unknown field",
        ),
        (
            r#"{"prompt": "a", "sampler": "full", "steps": 10}"#,
            "steps",
            "no effect",
        ),
        (
            r#"{"prompt": "a", "num_images": 0}"#,
            "num_images",
            "num_images",
        ),
        (
            r#"{"prompt": "a", "num_images": 1000}"#,
            "num_images",
            "limit",
        ),
        (
            r#"{"prompt": "a", "guidance_scale": -3}"#,
            "guidance_scale",
            "guidance",
        ),
        (
            r#"{"prompt": "a", "image": "not base64!"}"#,
            "image",
            "base64",
        ),
        (
            r#"{"prompt": "a", "mask": "AAAA"}"#,
            "mask",
            "without an image",
        ),
        (r#"{"prompts": []}"#, "prompts", "prompt"),
        (
            r#"{"prompt": "a", "sampler": "halton", "sampler_settings": {"threshold": 0.5}}"#,
            "sampler_settings",
            "--threshold has no effect with the halton sampler",
        ),
        (
            r#"{"prompt": "a", "sampler": "threshold", "sampler_settings": {"threshold": 2}}"#,
            "sampler_settings",
            "threshold must lie in (0, 1]",
        ),
        (
            r#"{"prompt": "a", "sampler_settings": {"colour": 1}}"#,
            "",
            "unknown field",
        ),
        (r#"{"prompt": "a", "seed": "seven"}"#, "", "invalid type"),
        ("not json", "", "invalid request"),
    ] {
        let (status, error) = server.post("/api/generate", body);
        assert_eq!(status, 400, "{body}: {error}");
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
        if !field.is_empty() {
            assert_eq!(error["field"], field, "{body}: {error}");
        }
    }
    // Oversized: 2 MiB against a 1 MiB limit.
    let big = format!(r#"{{"prompt": "{}"}}"#, "a".repeat(2 << 20));
    let (status, error) = server.post("/api/generate", &big);
    assert_eq!(status, 413, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("limit"),
        "{error}"
    );
    // Unknown routes and jobs.
    assert_eq!(server.get("/api/nothing").0, 404);
    let (status, error) = server.get("/api/jobs/999");
    assert_eq!(status, 404);
    assert!(error["error"].as_str().unwrap().contains("no job 999"));
}

#[test]
fn a_full_queue_answers_503_and_every_accepted_job_finishes() {
    let server = Server::start(&["--max-queue", "2"]);
    let body = r#"{"prompt": "a blue square", "sampler": "full", "num_images": 4}"#;
    let answers: Vec<(u16, serde_json::Value, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let r = ureq::post(&format!("{}/api/generate", server.url))
                        .set("content-type", "application/json")
                        .send_string(body);
                    let retry = match &r {
                        Err(ureq::Error::Status(_, resp)) => {
                            resp.header("retry-after").map(String::from)
                        }
                        _ => None,
                    };
                    let (status, json) = support::server::answer(r);
                    (status, json, retry)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let accepted: Vec<u64> = answers
        .iter()
        .filter(|(s, ..)| *s == 202)
        .map(|(_, j, _)| j["id"].as_u64().unwrap())
        .collect();
    let refused: Vec<_> = answers.iter().filter(|(s, ..)| *s == 503).collect();
    assert_eq!(accepted.len() + refused.len(), 6, "{answers:?}");
    assert!(!refused.is_empty() && accepted.len() >= 2, "{answers:?}");
    for (_, error, retry) in &refused {
        assert!(error["error"].as_str().unwrap().contains("queue is full"));
        assert_eq!(retry.as_deref(), Some("5"));
    }
    for id in accepted {
        assert_eq!(server.wait(id)["status"], "done");
    }
}

#[test]
fn cancel_stops_a_running_job() {
    let server = Server::start(&[]);
    let (_, job) = server.post(
        "/api/generate",
        r#"{"prompt": "a green triangle", "sampler": "full", "num_images": 16}"#,
    );
    let id = job["id"].as_u64().unwrap();
    // Wait until it runs, then cancel.
    for _ in 0..500 {
        if server.get(&format!("/api/jobs/{id}")).1["call"].as_u64() > Some(0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (status, _) = server.post(&format!("/api/jobs/{id}/cancel"), "");
    assert_eq!(status, 200);
    let state = server.wait(id);
    assert_eq!(state["status"], "cancelled");
    assert!(state["call"].as_u64().unwrap() < 100, "{state}");
    // Its images do not exist.
    assert_eq!(server.get(&format!("/api/jobs/{id}/images/0")).0, 404);
}

#[test]
fn edits_take_an_image_with_a_box_mask_or_a_strength() {
    use base64::Engine;
    let server = Server::start(&[]);
    // A source: the server's own generation.
    let (_, job) = server.post(
        "/api/generate",
        r#"{"prompt": "a large red circle in the center", "seed": 2}"#,
    );
    let state = server.wait(job["id"].as_u64().unwrap());
    let png = server.bytes(state["images"][0].as_str().unwrap());
    let image = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    );
    for edit in [
        serde_json::json!({"prompt": "a large blue circle in the center", "image": image, "box": [8, 8, 24, 24]}),
        serde_json::json!({"image": image, "strength": 0.3, "num_images": 2}),
    ] {
        let (status, job) = server.post("/api/generate", &edit.to_string());
        assert_eq!(status, 202, "{job}");
        let state = server.wait(job["id"].as_u64().unwrap());
        assert_eq!(state["status"], "done", "{state}");
        let (_, sidecar) = server.get(state["sidecar"].as_str().unwrap());
        assert!(sidecar["edit"]["image_sha256"].is_string(), "{sidecar}");
    }
    // A variation needs a strength; a box outside the image is refused.
    let (status, error) = server.post(
        "/api/generate",
        &serde_json::json!({"image": image}).to_string(),
    );
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("strength")),
        "{error}"
    );
    let (status, error) = server.post(
        "/api/generate",
        &serde_json::json!({"prompt": "a", "image": image, "box": [40, 40, 50, 50]}).to_string(),
    );
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("box")),
        "{error}"
    );
}

#[test]
fn the_newer_samplers_run_with_their_settings() {
    let server = Server::start(&[]);
    let (_, model) = server.get("/api/model");
    let samplers: Vec<&str> = model["samplers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for name in ["maskgit", "halton", "threshold", "first-hitting", "fast"] {
        assert!(samplers.contains(&name), "{samplers:?}");
    }
    let (status, job) = server.post(
        "/api/generate",
        r#"{"prompt": "a red circle", "sampler": "halton", "steps": 6,
            "sampler_settings": {"temperature": 0.5, "unmask_schedule": "arccos"}}"#,
    );
    assert_eq!(status, 202, "{job}");
    let done = server.wait(job["id"].as_u64().unwrap());
    assert_eq!(done["status"], "done", "{done}");
}
