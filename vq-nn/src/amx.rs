//! A bf16 GEMM on Intel AMX tiles, in Rust with inline assembly: `C ← [C +] A·B` with bf16
//! operands, f32 accumulation and f32 output, by `TDPBF16PS` (Intel 64 and IA-32 Architectures
//! Software Developer's Manual, vol. 1 ch. 18 "Intel AMX"; vol. 2 `TDPBF16PS`).
//!
//! It gives the default (pure-Rust) build native bf16 products on CPUs with AMX-BF16 (Sapphire
//! Rapids and later), where bf16 weights would otherwise be widened to f32.
//!
//! Layout. Eight tile registers of 16 rows × 64 bytes: four hold a 32 × 32 block of `C` (f32),
//! two the block's `A` rows (16 rows × 32 bf16 each) and two its `B` columns in the "VNNI"
//! layout `TDPBF16PS` reads (row `r` of a `B` tile holds, for 16 columns `j`, the pair
//! `B[2r][j], B[2r + 1][j]`). Each call packs `A` into contiguous 1 KiB tiles and `B` into
//! VNNI tiles, zero-padded to multiples of 32 in every dimension (zeros add nothing to the
//! dot products), then walks blocks of `C` in parallel, each block's `A` rows sized to stay in
//! the L2 cache while the `B` panels stream past them. Partial blocks at the edges of `C` go
//! through a 32 × 32 scratch buffer.
//!
//! Linux only: a process must ask the kernel for the tile state
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`) before its first tile instruction;
//! [`available`] does, once, and reports `false` (so callers use another path) on other
//! systems, CPUs without AMX-BF16, or when the kernel refuses.

use half::bf16;

use crate::block_tasks::{BlockOut, for_each_task, pack_panels};
use crate::gemm::{MatMut, MatRef, Threads};

/// Whether this process can run [`gemm_bf16`]: an x86-64 Linux CPU with AMX-TILE and
/// AMX-BF16 whose kernel granted the tile state. Checked once.
pub(crate) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| imp::cpu_has_amx_bf16() && imp::request_tile_state())
}

/// Elements of one tile (16 rows × 64 bytes of bf16).
const TILE: usize = 512;
/// Rows and columns of the `C` block one micro-kernel call computes.
const BLOCK: usize = 32;
/// Bytes of packed `A` rows a task keeps in the L2 cache, and columns of `C` per task: on the
/// transformer's `(2048, 1408) × (1408, 5632)` product (2-core Sapphire Rapids, one run)
/// 512 KiB × 128 columns gave 1003 GFLOP/s, 256 KiB 814-899, 1 MiB 902-933.
const A_BLOCK_BYTES: usize = 1 << 19;
/// See [`A_BLOCK_BYTES`].
const N_TASK: usize = 128;
/// `k` steps (of 32) per pass over a block of `C`.
const K_SLICE: usize = 256;

/// `c ← [c +] a·b`; `a` and `b` any strided views. Callers check [`available`] first.
pub(crate) fn gemm_bf16(
    c: MatMut,
    a: MatRef<bf16>,
    b: MatRef<bf16>,
    accumulate: bool,
    threads: Threads,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let ksteps = k.div_ceil(BLOCK);
    let (mp, np) = (m.div_ceil(BLOCK), n.div_ceil(BLOCK));
    let panel = ksteps * 2 * TILE;
    let parallel = threads == Threads::All && candle_core::utils::get_num_threads() > 1;
    let mut ap = vec![0u16; mp * panel];
    let mut bp = vec![0u16; np * panel];
    pack_panels(&mut ap, panel, parallel, |i, out| {
        pack_a(&a, i, ksteps, out)
    });
    pack_panels(&mut bp, panel, parallel, |j, out| {
        pack_b(&b, j, ksteps, out)
    });
    let out = BlockOut {
        ptr: c.ptr_mut(),
        rows: m,
        cols: n,
        rs: c.rs,
    };
    // Tasks: blocks of `C` rows whose packed `A` fits the L2 budget, by `N_TASK` columns.
    let m_task = (A_BLOCK_BYTES / (panel * 2)).max(1);
    for_each_task(mp, np, m_task, N_TASK / BLOCK, parallel, |is, js| {
        let _tiles = imp::Tiles::configure();
        let mut scratch = [0f32; BLOCK * BLOCK];
        // `k` in slices of `K_SLICE` steps (slicing it finer, so that a `B` panel's slice
        // stays in the L1 cache, was slower: 725 against 913 GFLOP/s at 256).
        for s0 in (0..ksteps).step_by(K_SLICE) {
            let s1 = (s0 + K_SLICE).min(ksteps);
            for j in js.clone() {
                let bj = &bp[j * panel..(j + 1) * panel];
                for i in is.clone() {
                    let ai = &ap[i * panel..(i + 1) * panel];
                    // SAFETY: block (i, j) of `C` belongs to this task alone; `out` is inside
                    // the view the caller checked.
                    unsafe { block(&out, i, j, ai, bj, s0..s1, ksteps, accumulate, &mut scratch) };
                }
            }
        }
    });
}

/// Steps `steps` of one 32 × 32 block `(i, j)` of `C`: loads it (or zeros, on the first slice
/// when not accumulating), accumulates, stores. Edge blocks (partial rows or columns) run
/// every step at once, through the scratch buffer, on the first slice and are skipped after.
///
/// # Safety
/// The block must be inside `out` and owned by the caller; the tile configuration of
/// [`imp::Tiles`] must be loaded on this thread.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    out: &BlockOut,
    i: usize,
    j: usize,
    a: &[u16],
    b: &[u16],
    steps: std::ops::Range<usize>,
    ksteps: usize,
    accumulate: bool,
    scratch: &mut [f32; BLOCK * BLOCK],
) {
    let (r0, c0) = (i * BLOCK, j * BLOCK);
    let rows = BLOCK.min(out.rows - r0);
    let cols = BLOCK.min(out.cols - c0);
    let full = rows == BLOCK && cols == BLOCK;
    let first = steps.start == 0;
    if !full && !first {
        return;
    }
    let steps = if full { steps } else { 0..ksteps };
    let accumulate = accumulate || !first;
    // SAFETY: `(r0, c0)` is inside the view.
    let corner = unsafe { out.ptr.add(r0 * out.rs + c0) };
    let (cptr, stride) = if full {
        (corner, out.rs * 4)
    } else {
        scratch.fill(0.0);
        if accumulate {
            for r in 0..rows {
                // SAFETY: rows `r0 + r` and columns `c0 .. c0 + cols` are inside the view.
                let src = unsafe { std::slice::from_raw_parts(corner.add(r * out.rs), cols) };
                scratch[r * BLOCK..r * BLOCK + cols].copy_from_slice(src);
            }
        }
        (scratch.as_mut_ptr(), BLOCK * 4)
    };
    // SAFETY: `cptr` addresses 32 rows of 32 f32 at `stride` bytes (the view or the scratch);
    // `a` and `b` hold `ksteps` pairs of tiles.
    unsafe {
        if accumulate || !full {
            imp::load_c(cptr, stride);
        } else {
            imp::zero_c();
        }
        for s in steps {
            imp::step(a.as_ptr().add(s * 2 * TILE), b.as_ptr().add(s * 2 * TILE));
        }
        imp::store_c(cptr, stride);
    }
    if !full {
        for r in 0..rows {
            // SAFETY: as above, for writes; this task owns the block.
            let dst = unsafe { std::slice::from_raw_parts_mut(corner.add(r * out.rs), cols) };
            dst.copy_from_slice(&scratch[r * BLOCK..r * BLOCK + cols]);
        }
    }
}

/// Packs rows `32·i ..` of `a` as `ksteps` pairs of tiles (rows 0–15, then 16–31), each 16
/// rows × 32 consecutive `k`, zero-padded.
fn pack_a(a: &MatRef<bf16>, i: usize, ksteps: usize, out: &mut [u16]) {
    let r0 = i * BLOCK;
    for s in 0..ksteps {
        let k0 = s * BLOCK;
        let kn = BLOCK.min(a.cols - k0);
        for half in 0..2 {
            let tile = &mut out[(s * 2 + half) * TILE..(s * 2 + half + 1) * TILE];
            for r in 0..16 {
                let row = r0 + half * 16 + r;
                if row >= a.rows {
                    break;
                }
                let dst = &mut tile[r * BLOCK..r * BLOCK + kn];
                let base = row * a.rs + k0 * a.cs;
                if a.cs == 1 {
                    for (d, s) in dst.iter_mut().zip(&a.data[base..base + kn]) {
                        *d = s.to_bits();
                    }
                } else {
                    for (p, d) in dst.iter_mut().enumerate() {
                        *d = a.data[base + p * a.cs].to_bits();
                    }
                }
            }
        }
    }
}

/// Packs columns `32·j ..` of `b` as `ksteps` pairs of VNNI tiles (columns 0–15, then 16–31):
/// element `(r, col, p)` of a tile is `b[k0 + 2r + p][col]`, zero-padded.
fn pack_b(b: &MatRef<bf16>, j: usize, ksteps: usize, out: &mut [u16]) {
    let c0 = j * BLOCK;
    for s in 0..ksteps {
        let k0 = s * BLOCK;
        let kn = BLOCK.min(b.rows - k0);
        for half in 0..2 {
            let tile = &mut out[(s * 2 + half) * TILE..(s * 2 + half + 1) * TILE];
            for col in 0..16 {
                let cj = c0 + half * 16 + col;
                if cj >= b.cols {
                    break;
                }
                let base = k0 * b.rs + cj * b.cs;
                for kk in 0..kn {
                    tile[(kk / 2) * BLOCK + col * 2 + kk % 2] = b.data[base + kk * b.rs].to_bits();
                }
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    //! The tile instructions, the tile configuration and the kernel request.

    use std::arch::asm;

    /// CPUID leaf 7: EDX bit 24 (AMX-TILE) and bit 22 (AMX-BF16).
    pub fn cpu_has_amx_bf16() -> bool {
        // `cpuid` is available on every x86-64 CPU; leaf 7 exists when leaf 0 says so.
        if std::arch::x86_64::__cpuid(0).eax < 7 {
            return false;
        }
        let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
        edx & (1 << 24) != 0 && edx & (1 << 22) != 0
    }

    /// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: true when granted.
    pub fn request_tile_state() -> bool {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: a plain system call; it changes only this process's permitted xsave state.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }

    /// The 64-byte tile configuration (palette 1): eight tiles of 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct Config {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    /// The tile configuration, loaded on this thread while the guard lives; released after.
    pub struct Tiles;

    impl Tiles {
        pub fn configure() -> Self {
            let mut cfg = Config {
                palette: 1,
                start_row: 0,
                reserved: [0; 14],
                colsb: [0; 16],
                rows: [0; 16],
            };
            cfg.colsb[..8].fill(64);
            cfg.rows[..8].fill(16);
            // SAFETY: a valid palette-1 configuration; the process holds the tile state
            // (`available` checked it).
            unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack)) };
            Tiles
        }
    }

    impl Drop for Tiles {
        fn drop(&mut self) {
            // SAFETY: returns the tiles to their initial state.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }

    /// Tiles 0–3 ← the 32 × 32 f32 block at `c` (row stride `stride` bytes).
    ///
    /// # Safety
    /// `c` must address 32 readable rows of 32 f32; tiles configured.
    pub unsafe fn load_c(c: *const f32, stride: usize) {
        // SAFETY: per the contract.
        unsafe {
            asm!(
                "tileloadd tmm0, [{c} + {s} * 1]",
                "tileloadd tmm1, [{c} + {s} * 1 + 64]",
                "tileloadd tmm2, [{c1} + {s} * 1]",
                "tileloadd tmm3, [{c1} + {s} * 1 + 64]",
                c = in(reg) c,
                c1 = in(reg) c.cast::<u8>().add(16 * stride),
                s = in(reg) stride,
                options(nostack, readonly),
            );
        }
    }

    /// Tiles 0–3 ← 0.
    ///
    /// # Safety
    /// Tiles configured.
    pub unsafe fn zero_c() {
        // SAFETY: per the contract.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
    }

    /// The 32 × 32 f32 block at `c` ← tiles 0–3.
    ///
    /// # Safety
    /// `c` must address 32 writable rows of 32 f32; tiles configured.
    pub unsafe fn store_c(c: *mut f32, stride: usize) {
        // SAFETY: per the contract.
        unsafe {
            asm!(
                "tilestored [{c} + {s} * 1], tmm0",
                "tilestored [{c} + {s} * 1 + 64], tmm1",
                "tilestored [{c1} + {s} * 1], tmm2",
                "tilestored [{c1} + {s} * 1 + 64], tmm3",
                c = in(reg) c,
                c1 = in(reg) c.cast::<u8>().add(16 * stride),
                s = in(reg) stride,
                options(nostack),
            );
        }
    }

    /// One `k` step: the two `A` tiles at `a` and two VNNI `B` tiles at `b` (1 KiB each,
    /// consecutive) multiplied into tiles 0–3.
    ///
    /// # Safety
    /// `a` and `b` must address 2 KiB each; tiles configured.
    #[inline(always)]
    pub unsafe fn step(a: *const u16, b: *const u16) {
        // SAFETY: per the contract.
        unsafe {
            asm!(
                "tileloadd tmm4, [{a} + {s} * 1]",
                "tileloadd tmm6, [{b} + {s} * 1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{b} + {s} * 1 + 1024]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{a} + {s} * 1 + 1024]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a = in(reg) a,
                b = in(reg) b,
                s = in(reg) 64usize,
                options(nostack, readonly),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    //! No AMX outside x86-64 Linux: [`super::available`] is false and nothing below runs.

    pub fn cpu_has_amx_bf16() -> bool {
        false
    }
    pub fn request_tile_state() -> bool {
        false
    }
    pub struct Tiles;
    impl Tiles {
        pub fn configure() -> Self {
            unreachable!("AMX is not available on this target")
        }
    }
    pub unsafe fn load_c(_: *const f32, _: usize) {}
    pub unsafe fn zero_c() {}
    pub unsafe fn store_c(_: *mut f32, _: usize) {}
    pub unsafe fn step(_: *const u16, _: *const u16) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::check_bf16_kernel;

    #[test]
    fn tiles_multiply_like_the_definition_at_every_edge() {
        if !available() {
            eprintln!("no AMX-BF16 on this machine: the AMX kernel is not tested here");
            return;
        }
        // Full blocks, partial blocks in every dimension, odd k, and transposed operands.
        check_bf16_kernel(
            gemm_bf16,
            &[
                (64, 64, 64),
                (37, 53, 29),
                (1, 1, 1),
                (33, 95, 70),
                (200, 88, 77),
            ],
        );
    }
}
