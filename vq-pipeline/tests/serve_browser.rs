//! `vqd serve` in a real browser: headless Chromium driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`). Types a prompt, clicks generate, waits for the stream to finish and
//! checks that the page shows the final image — the same pixels `vqd generate` writes for the
//! same seed and settings — with the progress at 100 %; then that cancel stops a long job.
//! Saves a screenshot (`$VQD_SCREENSHOT`, else the test's scratch folder).
//!
//! Without `chromedriver` on the PATH the test is skipped with a note, unless
//! `VQD_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs the packages) makes that a failure.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::server::{Server, generated_pixels};

/// The W3C WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session on it.
struct Browser {
    driver: Child,
    base: String,
}

impl Browser {
    fn start() -> Option<Browser> {
        let driver_path = which("chromedriver")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let root = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while ureq::get(&format!("{root}/status")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut chrome = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"]
        });
        if let Some(binary) = which("chromium") {
            chrome["binary"] = binary.into();
        }
        let session = post(
            &format!("{root}/session"),
            json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": chrome}}}),
        );
        let id = session["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        Some(Browser {
            driver,
            base: format!("{root}/session/{id}"),
        })
    }

    fn command(&self, path: &str, body: Value) -> Value {
        post(&format!("{}{path}", self.base), body)
    }

    fn goto(&self, url: &str) {
        self.command("/url", json!({"url": url}));
    }

    fn element(&self, css: &str) -> String {
        let found = self.command("/element", json!({"using": "css selector", "value": css}));
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.command(&format!("/element/{e}/clear"), json!({}));
        self.command(&format!("/element/{e}/value"), json!({"text": text}));
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.command(&format!("/element/{e}/click"), json!({}));
    }

    fn script(&self, script: &str) -> Value {
        self.command("/execute/sync", json!({"script": script, "args": []}))
    }

    /// Waits until `script` returns a truthy value; returns it.
    fn wait_for(&self, script: &str, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.script(script);
            if !(v.is_null() || v == json!(false)) {
                return v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn screenshot(&self) -> Vec<u8> {
        let shot = ureq::get(&format!("{}/screenshot", self.base))
            .call()
            .unwrap()
            .into_json::<Value>()
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(shot["value"].as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn post(url: &str, body: Value) -> Value {
    let (status, v) = support::server::answer(
        ureq::post(url)
            .set("content-type", "application/json")
            .send_string(&body.to_string()),
    );
    assert!(status < 300, "{url}: {status} {v}");
    v["value"].clone()
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

#[test]
fn the_page_generates_streams_and_cancels_in_a_real_browser() {
    let Some(browser) = Browser::start() else {
        assert!(
            std::env::var("VQD_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "VQD_REQUIRE_BROWSER=1 but chromedriver is not on the PATH"
        );
        eprintln!(
            "skipped: no chromedriver on the PATH (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let server = Server::start(&["--upscale", "1"]);
    browser.goto(&server.url);
    browser.wait_for(
        "return document.getElementById('model').textContent.includes('tokens')",
        "the model line",
    );

    browser.type_into("#prompt", "a small blue square in the bottom right");
    browser.type_into("#seed", "11");
    browser.script("document.getElementById('sampler').value = 'strided';");
    browser.type_into("#steps", "20");
    browser.click("#generate");
    let src = browser.wait_for(
        "const img = document.querySelector('#gallery .card img.result');
         return img && img.complete && img.naturalWidth > 0 ? img.getAttribute('src') : null;",
        "the result image",
    );
    let progress =
        browser.script("const p = document.getElementById('progress'); return [p.value, p.max];");
    assert_eq!(progress, json!([20, 20]), "progress did not reach 100 %");
    let preview = browser.script("return document.getElementById('preview').src");
    assert!(
        preview
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );

    let shown = server.bytes(src.as_str().unwrap());
    let shown = image::load_from_memory(&shown)
        .unwrap()
        .to_rgb8()
        .into_raw();
    let cli = generated_pixels(&[
        "a small blue square in the bottom right",
        "--seed",
        "11",
        "--sampler",
        "strided",
        "--steps",
        "20",
    ]);
    assert_eq!(shown, cli, "the page's image differs from vqd generate's");

    // Settings and downloads are on the card.
    let card = browser.script("return document.querySelector('#gallery .card').textContent");
    assert!(card.as_str().unwrap().contains("\"seed\":11"), "{card}");
    assert!(card.as_str().unwrap().contains("sidecar JSON"), "{card}");

    let shot = browser.screenshot();
    let path = std::env::var("VQD_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vqd-serve.png")
        });
    std::fs::write(&path, shot).unwrap();

    // A long job, cancelled from the page.
    browser.script("document.getElementById('sampler').value = 'full';");
    browser.type_into("#steps", "");
    browser.type_into("#num-images", "16");
    browser.click("#generate");
    browser.wait_for(
        "return document.getElementById('progress').value > 0",
        "the long job to start",
    );
    browser.click("#cancel");
    browser.wait_for(
        "return document.getElementById('status').textContent.includes('cancelled')",
        "the job to be cancelled",
    );
    let cards = browser.script("return document.querySelectorAll('#gallery .card').length");
    assert_eq!(cards, json!(1), "a cancelled job added a result");
}
