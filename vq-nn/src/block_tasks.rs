//! The parallel skeleton shared by this crate's packed bf16 GEMM kernels (`amx.rs`,
//! `avx512_bf16.rs`): packing operand panels, splitting `C` into tasks of whole blocks, and the
//! output view those tasks write.

use rayon::prelude::*;

/// The output view, shareable across tasks that write disjoint blocks.
pub(crate) struct BlockOut {
    pub ptr: *mut f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
}

// SAFETY: the tasks of `for_each_task` write disjoint blocks (each kernel states its partition).
unsafe impl Sync for BlockOut {}

/// Fills `buffer`, in panels of `panel` elements, by `pack(index, panel)`; in parallel when
/// `parallel`.
pub(crate) fn pack_panels<T: Send>(
    buffer: &mut [T],
    panel: usize,
    parallel: bool,
    pack: impl Fn(usize, &mut [T]) + Sync,
) {
    if parallel {
        buffer
            .par_chunks_mut(panel)
            .enumerate()
            .for_each(|(i, out)| pack(i, out));
    } else {
        for (i, out) in buffer.chunks_mut(panel).enumerate() {
            pack(i, out);
        }
    }
}

/// Runs `task(rows, cols)` over a grid of `row_blocks × col_blocks` blocks of `C`, cut into
/// tasks of `m_task × n_task` blocks (ranges of block indices); in parallel when `parallel`.
pub(crate) fn for_each_task(
    row_blocks: usize,
    col_blocks: usize,
    m_task: usize,
    n_task: usize,
    parallel: bool,
    task: impl Fn(std::ops::Range<usize>, std::ops::Range<usize>) + Sync,
) {
    let tasks: Vec<(usize, usize)> = (0..row_blocks.div_ceil(m_task))
        .flat_map(|i| (0..col_blocks.div_ceil(n_task)).map(move |j| (i, j)))
        .collect();
    let run = |&(ti, tj): &(usize, usize)| {
        task(
            ti * m_task..((ti + 1) * m_task).min(row_blocks),
            tj * n_task..((tj + 1) * n_task).min(col_blocks),
        )
    };
    if parallel {
        tasks.par_iter().for_each(run);
    } else {
        tasks.iter().for_each(run);
    }
}
