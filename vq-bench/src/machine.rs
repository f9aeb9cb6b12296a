//! The machine and build a report was measured on: CPU model, the instruction-set flags that
//! matter (AVX2, AVX-512, AMX), cores, threads, and the cargo features of this build.

/// What the report says about the machine.
pub struct Machine {
    cpu: String,
    flags: Vec<String>,
    cores: usize,
    threads: usize,
    build: String,
}

impl Machine {
    /// A Markdown paragraph.
    pub fn markdown(&self) -> String {
        format!(
            "Machine: {} ({} cores visible, {} threads per implementation), flags {}. Build: {}.\n",
            self.cpu,
            self.cores,
            self.threads,
            self.flags.join(" "),
            self.build
        )
    }
}

/// The current machine; `threads` is the thread count both implementations use.
pub fn describe(threads: usize) -> Machine {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let wanted = [
        "avx2",
        "fma",
        "avx512f",
        "avx512_bf16",
        "avx512_fp16",
        "avx512_vnni",
        "amx_bf16",
        "amx_int8",
        "amx_tile",
    ];
    let present = field("flags");
    let flags = wanted
        .iter()
        .filter(|f| present.split_whitespace().any(|p| p == **f))
        .map(|f| f.to_string())
        .collect();
    let mut build = vec!["release".to_string()];
    if cfg!(feature = "mkl") {
        build.push(match vq_nn::gemm_backend() {
            vq_nn::GemmBackend::Mkl => "feature mkl, GEMMs by Intel MKL".into(),
            vq_nn::GemmBackend::Rust => "feature mkl, GEMMs by the pure-Rust gemm crate".into(),
        });
    } else {
        build.push("default pure-Rust backend".into());
    }
    if cfg!(feature = "cuda") {
        build.push("feature cuda".into());
    }
    Machine {
        cpu: field("model name"),
        flags,
        cores: std::thread::available_parallelism().map_or(1, |p| p.get()),
        threads,
        build: build.join(", "),
    }
}
