//! A `vqd serve` process on a free loopback port for the server tests, killed when dropped,
//! and small HTTP helpers (blocking `ureq`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// Starts `vqd serve --port 0` on the embedded model with `args`.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vqd"))
            .env(
                "VQD_CACHE",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vqd-cache"),
            )
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("vqd serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("vqd serve prints its URL");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server { child, url }
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        answer(ureq::get(&format!("{}{path}", self.url)).call())
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        answer(
            ureq::post(&format!("{}{path}", self.url))
                .set("content-type", "application/json")
                .send_string(body),
        )
    }

    pub fn bytes(&self, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut ureq::get(&format!("{}{path}", self.url))
                .call()
                .expect("GET")
                .into_reader(),
            &mut out,
        )
        .expect("body");
        out
    }

    /// Polls a job until it has finished; returns its final state.
    pub fn wait(&self, id: u64) -> serde_json::Value {
        for _ in 0..6000 {
            let (_, state) = self.get(&format!("/api/jobs/{id}"));
            if ["done", "failed", "cancelled"].contains(&state["status"].as_str().unwrap_or("")) {
                return state;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("job {id} did not finish in 2 minutes");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and JSON body of a response (error statuses included).
pub fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    let response = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let text = response.into_string().expect("body");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// The pixels of what `vqd generate` writes for `args`.
pub fn generated_pixels(args: &[&str]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("vqd-serve-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{}.png", args.join("_").replace(['/', ' '], "-")));
    let status = Command::new(env!("CARGO_BIN_EXE_vqd"))
        .env(
            "VQD_CACHE",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vqd-cache"),
        )
        .arg("generate")
        .args(args)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    image::open(&out).unwrap().to_rgb8().into_raw()
}
