//! Matrix multiplication on host slices, the one place the CPU layers of this crate call a GEMM:
//! `C ← C·[accumulate] + A·B` for strided f32 views (any row/column strides, so transposed
//! weights, the heads of a fused q/k/v projection or a column block of an output are used in
//! place, without copies), and for bf16 operands with f32 accumulation and output.
//!
//! Backends: the pure-Rust `gemm` crate (the default; runtime SIMD dispatch up to AVX-512), or
//! Intel MKL with the `mkl` feature (`cblas_sgemm`; `cblas_gemm_bf16bf16f32`, which uses AMX
//! tiles or AVX-512-BF16 where the CPU has them and is dispatched by MKL at run time). Without
//! MKL, bf16 operands are widened to f32 in blocks and multiplied in f32: the same results as
//! f32 weights rounded to bf16.
//!
//! An `mkl` build chooses at run time ([`gemm_backend`]): MKL on Intel CPUs, the `gemm` crate
//! elsewhere, where MKL's code paths are slower (on a 2-core AMD EPYC with AVX2, MKL's
//! `cblas_sgemm` reached 65 GFLOP/s on the transformer's product against the `gemm` crate's
//! 113 in the default build; docs/performance.md). `VQ_GEMM_BACKEND=mkl` or `=rust` overrides.

use half::bf16;

/// A strided read-only matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `rows × cols` matrix with row stride `rs`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose (a view, no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn check(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(
                last < self.data.len(),
                "{what}: view {}x{} (strides {}, {}) exceeds its {} elements",
                self.rows,
                self.cols,
                self.rs,
                self.cs,
                self.data.len()
            );
        }
    }
}

/// A row-major writable view: element `(i, j)` is at `ptr + i·rs + j`.
///
/// Built from a slice (bounds-checked) or, for disjoint blocks of one output written by
/// parallel tasks (heads of an attention output interleave within rows), from a raw pointer.
pub(crate) struct MatMut<'a> {
    ptr: *mut f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> MatMut<'a> {
    /// A view into `data`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, rs: usize) -> Self {
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * rs + cols <= data.len(),
                "output view {rows}x{cols} (row stride {rs}) exceeds its {} elements",
                data.len()
            );
        }
        Self {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            rs,
            _borrow: std::marker::PhantomData,
        }
    }

    /// A view at `ptr`.
    ///
    /// # Safety
    /// Every element `(i, j)`, `i < rows`, `j < cols`, at `ptr + i·rs + j` must be valid for
    /// writes for `'a`, and no other live reference or view may touch those elements.
    pub unsafe fn from_raw(ptr: *mut f32, rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            ptr,
            rows,
            cols,
            rs,
            _borrow: std::marker::PhantomData,
        }
    }

    fn check(&self) {}

    /// The address of element `(0, 0)`.
    pub(crate) fn ptr_mut(&self) -> *mut f32 {
        self.ptr
    }

    fn row(&mut self, i: usize) -> &mut [f32] {
        // SAFETY: the constructors guarantee the row lies in the view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.rs), self.cols) }
    }
}

/// Whether a GEMM call may use several threads (`false` inside already-parallel loops).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The calling thread only.
    One,
    /// candle's thread count.
    All,
}

/// `c ← [c +] a·b` in f32.
pub(crate) fn sgemm(c: MatMut, a: MatRef<f32>, b: MatRef<f32>, accumulate: bool, threads: Threads) {
    sgemm_by(gemm_backend(), c, a, b, accumulate, threads)
}

/// [`sgemm`] by the given backend.
fn sgemm_by(
    backend: GemmBackend,
    c: MatMut,
    a: MatRef<f32>,
    b: MatRef<f32>,
    accumulate: bool,
    threads: Threads,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    assert_eq!((c.rows, c.cols), (a.rows, b.cols), "output shape");
    a.check("lhs");
    b.check("rhs");
    c.check();
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            let mut c = c;
            for i in 0..c.rows {
                c.row(i).fill(0.0);
            }
        }
        return;
    }
    #[cfg(feature = "mkl")]
    if backend == GemmBackend::Mkl {
        let _one = (threads == Threads::One).then(mkl::SingleThread::new);
        mkl::sgemm(c, a, b, accumulate);
        return;
    }
    #[cfg(not(feature = "mkl"))]
    let _ = backend;
    let parts = match threads {
        Threads::One => 1,
        Threads::All => candle_core::utils::get_num_threads(),
    };
    split_across_threads(c, a, b, accumulate, parts);
}

/// A GEMM implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmBackend {
    /// The pure-Rust `gemm` crate.
    Rust,
    /// Intel MKL (`mkl` builds).
    Mkl,
}

/// The backend this process multiplies with: [`GemmBackend::Rust`] without the `mkl` feature; with
/// it, [`GemmBackend::Mkl`] on Intel CPUs and [`GemmBackend::Rust`] on others, unless the environment
/// variable `VQ_GEMM_BACKEND` says `mkl` or `rust` (read once; any other value is ignored).
pub fn gemm_backend() -> GemmBackend {
    #[cfg(feature = "mkl")]
    {
        static CHOICE: std::sync::OnceLock<GemmBackend> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            match std::env::var("VQ_GEMM_BACKEND").as_deref() {
                Ok("mkl") => return GemmBackend::Mkl,
                Ok("rust") => return GemmBackend::Rust,
                _ => {}
            }
            if mkl::intel_cpu() {
                GemmBackend::Mkl
            } else {
                GemmBackend::Rust
            }
        })
    }
    #[cfg(not(feature = "mkl"))]
    {
        GemmBackend::Rust
    }
}

/// `c ← [c +] a·b` on `parts` threads, each multiplying one block of `c`'s columns (or rows,
/// when `c` is taller than wide) single-threaded. The `gemm` crate's own threading leaves
/// products below its size threshold on one thread and splits larger ones more finely than
/// needed: on the CLIP encoder's 72 products (154 rows, weights of 512 × 512 to 2048 × 512) an
/// even split took 43 ms against the crate's 60 ms, and equal time on the transformer's
/// 2048-row ones (same run, this project's 2-core Sapphire Rapids machine).
fn split_across_threads(c: MatMut, a: MatRef<f32>, b: MatRef<f32>, accumulate: bool, parts: usize) {
    use rayon::prelude::*;
    let flops = c.rows * c.cols * a.cols;
    let parts = if flops < 1 << 18 { 1 } else { parts };
    if parts <= 1 {
        gemm_one_thread(c, a, b, accumulate);
        return;
    }
    let by_columns = c.cols >= c.rows;
    let (len, align) = if by_columns {
        (c.cols, 16)
    } else {
        (c.rows, 8)
    };
    let block = len.div_ceil(parts).div_ceil(align) * align;
    let blocks = len.div_ceil(block);
    let ptr = c.ptr as usize;
    let rs = c.rs;
    (0..blocks).into_par_iter().for_each(|p| {
        let start = p * block;
        let size = block.min(len - start);
        // SAFETY: the blocks of `c` are disjoint and inside the view checked by `sgemm`.
        if by_columns {
            let c = unsafe { MatMut::from_raw((ptr as *mut f32).add(start), c.rows, size, rs) };
            let b = MatRef {
                data: &b.data[start * b.cs..],
                cols: size,
                ..b
            };
            gemm_one_thread(c, a, b, accumulate);
        } else {
            let c =
                unsafe { MatMut::from_raw((ptr as *mut f32).add(start * rs), size, c.cols, rs) };
            let a = MatRef {
                data: &a.data[start * a.rs..],
                rows: size,
                ..a
            };
            gemm_one_thread(c, a, b, accumulate);
        }
    });
}

/// `c ← [c +] a·b` by the `gemm` crate on the calling thread.
fn gemm_one_thread(c: MatMut, a: MatRef<f32>, b: MatRef<f32>, accumulate: bool) {
    // SAFETY: the views were bounds-checked by `sgemm` (sub-blocks stay inside them); `c` is
    // exclusively borrowed.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            c.ptr,
            1,
            c.rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Whether bf16 operands multiply natively (any build on a CPU with AMX-BF16 or AVX-512-BF16, by
/// this crate's AMX or AVX-512 kernel; an `mkl` build there, by MKL); elsewhere bf16 weights are
/// better widened once per call and multiplied with f32 activations.
pub fn native_bf16() -> bool {
    if crate::amx::available() || crate::avx512_bf16::available() {
        return true;
    }
    #[cfg(feature = "mkl")]
    {
        gemm_backend() == GemmBackend::Mkl && mkl::has_bf16_gemm()
    }
    #[cfg(not(feature = "mkl"))]
    {
        false
    }
}

/// `c ← [c +] a·b` with bf16 operands, f32 accumulation and output.
pub(crate) fn gemm_bf16(
    c: MatMut,
    a: MatRef<bf16>,
    b: MatRef<bf16>,
    accumulate: bool,
    threads: Threads,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    assert_eq!((c.rows, c.cols), (a.rows, b.cols), "output shape");
    a.check("lhs");
    b.check("rhs");
    c.check();
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    // MKL's bf16 GEMM where an `mkl` build multiplies with MKL (1747 GFLOP/s on the
    // transformer's product against 1003 for the AMX kernel of this crate, 2-core Sapphire
    // Rapids), else this crate's AMX kernel where the CPU has AMX-BF16, else its AVX-512-BF16
    // kernel (AMD Zen 4 and Zen 5).
    #[cfg(feature = "mkl")]
    {
        if gemm_backend() == GemmBackend::Mkl && mkl::has_bf16_gemm() && a.cols > 0 {
            let _one = (threads == Threads::One).then(mkl::SingleThread::new);
            mkl::gemm_bf16(c, a, b, accumulate);
            return;
        }
    }
    if crate::amx::available() && a.cols > 0 {
        crate::amx::gemm_bf16(c, a, b, accumulate, threads);
        return;
    }
    if crate::avx512_bf16::available() && a.cols > 0 {
        crate::avx512_bf16::gemm_bf16(c, a, b, accumulate, threads);
        return;
    }
    // Widen to f32: `a` whole (activations are small next to weights), `b` too.
    let wa = widen(a);
    let wb = widen(b);
    sgemm(
        c,
        MatRef::row_major(&wa, a.rows, a.cols, a.cols),
        MatRef::row_major(&wb, b.rows, b.cols, b.cols),
        accumulate,
        threads,
    );
}

/// A strided bf16 view widened to a row-major f32 matrix.
fn widen(m: MatRef<bf16>) -> Vec<f32> {
    // SAFETY: every row is written below.
    let mut out: Vec<f32> = unsafe { crate::host::uninit_vec(m.rows * m.cols) };
    for i in 0..m.rows {
        let row = &mut out[i * m.cols..(i + 1) * m.cols];
        if m.cs == 1 {
            crate::simd::bf16_to_f32(&m.data[i * m.rs..i * m.rs + m.cols], row);
        } else {
            for (j, o) in row.iter_mut().enumerate() {
                *o = m.data[i * m.rs + j * m.cs].to_f32();
            }
        }
    }
    out
}

#[cfg(feature = "mkl")]
mod mkl {
    //! CBLAS entry points of Intel MKL (linked by candle's `mkl` feature through
    //! `intel-mkl-src`).

    use super::{MatMut, MatRef};
    // `c.ptr` is read inside this module only.
    use half::bf16;

    const ROW_MAJOR: i32 = 101;
    const NO_TRANS: i32 = 111;
    const TRANS: i32 = 112;

    unsafe extern "C" {
        fn MKL_Set_Num_Threads_Local(nt: i32) -> i32;
        fn cblas_sgemm(
            layout: i32,
            ta: i32,
            tb: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
        fn cblas_gemm_bf16bf16f32(
            layout: i32,
            ta: i32,
            tb: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const u16,
            lda: i32,
            b: *const u16,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
    }

    /// MKL runs single-threaded on this thread while the guard lives (for GEMMs issued from
    /// an already parallel loop).
    pub struct SingleThread(i32);

    impl SingleThread {
        pub fn new() -> Self {
            // SAFETY: a thread-local MKL setting.
            Self(unsafe { MKL_Set_Num_Threads_Local(1) })
        }
    }

    impl Drop for SingleThread {
        fn drop(&mut self) {
            // SAFETY: restores the previous thread-local setting.
            unsafe { MKL_Set_Num_Threads_Local(self.0) };
        }
    }

    /// `(transpose flag, leading dimension)` of a view for row-major CBLAS, or `None` when
    /// neither stride is 1 (then it is copied first).
    fn layout<T>(m: &MatRef<T>) -> Option<(i32, i32)> {
        if m.cs == 1 && m.rs >= m.cols.max(1) {
            Some((NO_TRANS, m.rs.max(1) as i32))
        } else if m.rs == 1 && m.cs >= m.rows.max(1) {
            Some((TRANS, m.cs.max(1) as i32))
        } else {
            None
        }
    }

    fn compact<T: Copy + Default>(m: &MatRef<T>) -> Vec<T> {
        let mut out = vec![T::default(); m.rows * m.cols];
        for i in 0..m.rows {
            for j in 0..m.cols {
                out[i * m.cols + j] = m.data[i * m.rs + j * m.cs];
            }
        }
        out
    }

    /// Whether the CPU's vendor string is `GenuineIntel`.
    pub fn intel_cpu() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `cpuid` is available on every x86-64 CPU; leaf 0 holds the vendor in
            // EBX, EDX, ECX.
            let id = std::arch::x86_64::__cpuid(0);
            let mut vendor = [0u8; 12];
            vendor[..4].copy_from_slice(&id.ebx.to_le_bytes());
            vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
            vendor[8..].copy_from_slice(&id.ecx.to_le_bytes());
            &vendor == b"GenuineIntel"
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether the CPU runs MKL's bf16 GEMM natively (AVX-512-BF16 or AMX-BF16); elsewhere the
    /// f32 path is used.
    pub fn has_bf16_gemm() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            // AMX-BF16 is CPUID leaf 7, EDX bit 22 (its detection macro is not stable yet).
            // SAFETY: `cpuid` is available on every x86-64 CPU.
            let amx = std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 22) != 0;
            std::arch::is_x86_feature_detected!("avx512bf16") || amx
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    pub fn sgemm(c: MatMut, a: MatRef<f32>, b: MatRef<f32>, accumulate: bool) {
        let (ca, cb);
        let (a, (ta, lda)) = match layout(&a) {
            Some(l) => (a, l),
            None => {
                ca = compact(&a);
                let v = MatRef::row_major(&ca, a.rows, a.cols, a.cols);
                (v, (NO_TRANS, a.cols as i32))
            }
        };
        let (b, (tb, ldb)) = match layout(&b) {
            Some(l) => (b, l),
            None => {
                cb = compact(&b);
                let v = MatRef::row_major(&cb, b.rows, b.cols, b.cols);
                (v, (NO_TRANS, b.cols as i32))
            }
        };
        // SAFETY: views are bounds-checked by the caller; dimensions fit i32 for our models.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                ta,
                tb,
                c.rows as i32,
                c.cols as i32,
                a.cols as i32,
                1.0,
                a.data.as_ptr(),
                lda,
                b.data.as_ptr(),
                ldb,
                if accumulate { 1.0 } else { 0.0 },
                c.ptr,
                c.rs as i32,
            )
        }
    }

    pub fn gemm_bf16(c: MatMut, a: MatRef<bf16>, b: MatRef<bf16>, accumulate: bool) {
        let (ca, cb);
        let (a, (ta, lda)) = match layout(&a) {
            Some(l) => (a, l),
            None => {
                ca = compact(&a);
                let v = MatRef::row_major(&ca, a.rows, a.cols, a.cols);
                (v, (NO_TRANS, a.cols as i32))
            }
        };
        let (b, (tb, ldb)) = match layout(&b) {
            Some(l) => (b, l),
            None => {
                cb = compact(&b);
                let v = MatRef::row_major(&cb, b.rows, b.cols, b.cols);
                (v, (NO_TRANS, b.cols as i32))
            }
        };
        // SAFETY: as above; `half::bf16` is `repr(transparent)` over `u16`.
        unsafe {
            cblas_gemm_bf16bf16f32(
                ROW_MAJOR,
                ta,
                tb,
                c.rows as i32,
                c.cols as i32,
                a.cols as i32,
                1.0,
                a.data.as_ptr().cast(),
                lda,
                b.data.as_ptr().cast(),
                ldb,
                if accumulate { 1.0 } else { 0.0 },
                c.ptr,
                c.rs as i32,
            )
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `a·b` by the definition, accumulated in f64 (shared with the bf16 kernels' tests).
    pub(crate) fn naive<T: Copy + Into<f64>>(a: &MatRef<T>, b: &MatRef<T>) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.rs + p * a.cs].into() * b.data[p * b.rs + j * b.cs].into();
                }
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    /// The signature of the bf16 kernels (`amx.rs`, `avx512_bf16.rs`).
    pub(crate) type Bf16Kernel = fn(MatMut, MatRef<bf16>, MatRef<bf16>, bool, Threads);

    fn bf16_values(len: usize, seed: usize) -> Vec<bf16> {
        (0..len)
            .map(|i| bf16::from_f32(((i * 31 + seed) % 23) as f32 / 11.0 - 1.0))
            .collect()
    }

    /// Checks a bf16 kernel against [`naive`] on `shapes` `(m, k, n)`, with `b` transposed and
    /// not, one thread and all, accumulating and not; then on a transposed `a` writing into an
    /// output whose row stride is wider than its columns (the padding must stay untouched).
    pub(crate) fn check_bf16_kernel(kernel: Bf16Kernel, shapes: &[(usize, usize, usize)]) {
        for &(m, k, n) in shapes {
            let a = bf16_values(m * k, 1);
            let bt = bf16_values(n * k, 5);
            let b = bf16_values(k * n, 9);
            let av = MatRef::row_major(&a, m, k, k);
            for bv in [
                MatRef::row_major(&bt, n, k, k).t(),
                MatRef::row_major(&b, k, n, n),
            ] {
                let want = naive(&av, &bv);
                for threads in [Threads::One, Threads::All] {
                    for accumulate in [false, true] {
                        let mut c = vec![1f32; m * n];
                        kernel(MatMut::new(&mut c, m, n, n), av, bv, accumulate, threads);
                        let extra = if accumulate { 1.0 } else { 0.0 };
                        for (x, y) in c.iter().zip(&want) {
                            assert!((x - (y + extra)).abs() < 1e-3, "{m}x{k}x{n}: {x} vs {y}");
                        }
                    }
                }
            }
        }
        let (m, k, n) = (40, 36, 50);
        let at = bf16_values(k * m, 3);
        let b = bf16_values(k * n, 4);
        let av = MatRef::row_major(&at, k, m, m).t();
        let bv = MatRef::row_major(&b, k, n, n);
        let want = naive(&av, &bv);
        let mut c = vec![7f32; m * (n + 3)];
        kernel(
            MatMut::new(&mut c, m, n, n + 3),
            av,
            bv,
            false,
            Threads::All,
        );
        for i in 0..m {
            for j in 0..n {
                assert!((c[i * (n + 3) + j] - want[i * n + j]).abs() < 1e-3);
            }
            assert_eq!(&c[i * (n + 3) + n..(i + 1) * (n + 3)], &[7.0; 3]);
        }
    }

    #[test]
    fn strided_views_multiply_like_the_definition() {
        let (m, k, n) = (37, 53, 29);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
            .collect();
        // b stored transposed (n × k row-major, used as k × n).
        let bt: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
            .collect();
        let av = MatRef::row_major(&a, m, k, k);
        let bv = MatRef::row_major(&bt, n, k, k).t();
        let want = naive(&av, &bv);
        // Both backends of an `mkl` build (the default build has only the first).
        for backend in [GemmBackend::Rust, GemmBackend::Mkl] {
            for threads in [Threads::One, Threads::All] {
                let mut c = vec![1f32; m * n];
                sgemm_by(backend, MatMut::new(&mut c, m, n, n), av, bv, true, threads);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - (y + 1.0)).abs() < 1e-4, "{backend:?}: {x} vs {y} + 1");
                }
            }
        }
        // bf16 operands: the product of the rounded values.
        let ab: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
        let bb: Vec<bf16> = bt.iter().map(|&x| bf16::from_f32(x)).collect();
        let ar: Vec<f32> = ab.iter().map(|x| x.to_f32()).collect();
        let br: Vec<f32> = bb.iter().map(|x| x.to_f32()).collect();
        let want = naive(
            &MatRef::row_major(&ar, m, k, k),
            &MatRef::row_major(&br, n, k, k).t(),
        );
        let mut c = vec![0f32; m * n];
        gemm_bf16(
            MatMut::new(&mut c, m, n, n),
            MatRef::row_major(&ab, m, k, k),
            MatRef::row_major(&bb, n, k, k).t(),
            false,
            Threads::All,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-3, "{x} vs {y}");
        }
    }
}
