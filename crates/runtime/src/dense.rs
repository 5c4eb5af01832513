//! f32 matrix products for decoding: `y = x·Wᵀ (+ b)` with W stored in panels of 16 output
//! channels (`[rows/16][cols][16]`), so that one vector load gives 16 outputs' weights for one
//! input and no horizontal sums are needed. Rows of `x` are taken 8 at a time (16 accumulators:
//! 8 rows × 2 panels), so each weight panel is read once per 8 rows while it sits in L1.
//!
//! Decoding multiplies few rows (a beam, a batch of 64) by wide matrices (the output layer), where
//! general GEMM libraries spend their time packing; this layout is packed once, at load time.
//! Kernels: AVX-512 when the CPU has it, the same loop compiled for AVX2+FMA, or portable code.

use rayon::prelude::*;

use crate::threads::Threads;

/// Output channels per panel.
pub const PANEL: usize = 16;
/// Rows of `x` per tile.
const TILE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Avx512,
    Avx2,
    Portable,
}

fn best_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("SEQKD_KERNEL").is_some_and(|v| v == "portable") {
            return Kernel::Portable;
        }
        if is_x86_feature_detected!("avx512f") {
            return Kernel::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Kernel::Avx2;
        }
    }
    Kernel::Portable
}

/// A weight matrix `[rows (out), cols (in)]` in panel layout.
#[derive(Debug, Clone)]
pub struct DenseMatrix {
    pub rows: usize,
    pub cols: usize,
    packed: Vec<f32>,
    kernel: Kernel,
}

impl DenseMatrix {
    /// From row-major data (as torch stores a `Linear` weight).
    pub fn new(data: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix data does not match its shape");
        let panels = rows.div_ceil(PANEL);
        let mut packed = vec![0f32; panels * cols * PANEL];
        for j in 0..rows {
            let (p, lane) = (j / PANEL, j % PANEL);
            for c in 0..cols {
                packed[(p * cols + c) * PANEL + lane] = data[j * cols + c];
            }
        }
        Self { rows, cols, packed, kernel: best_kernel() }
    }

    pub fn row_into(&self, j: usize, out: &mut [f32]) {
        let (p, lane) = (j / PANEL, j % PANEL);
        for (c, o) in out.iter_mut().enumerate().take(self.cols) {
            *o = self.packed[(p * self.cols + c) * PANEL + lane];
        }
    }

    pub fn to_row_major(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (j, row) in out.chunks_mut(self.cols.max(1)).enumerate().take(self.rows) {
            self.row_into(j, row);
        }
        out
    }

    /// `y[m, rows] = x[m, cols]·Wᵀ (+ bias)`.
    pub fn matmul_transposed(
        &self,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        bias: Option<&[f32]>,
        threads: Threads,
    ) {
        let (n, k) = (self.rows, self.cols);
        assert!(x.len() >= m * k && y.len() >= m * n, "matmul: sizes");
        let panels = n.div_ceil(PANEL);
        let out = OutPtr(y.as_mut_ptr());
        let work = |first: usize, count: usize| {
            let w = &self.packed[first * k * PANEL..(first + count) * k * PANEL];
            let mut r = 0;
            while r < m {
                let rows = (m - r).min(TILE);
                let mut acc = [[0f32; 2 * PANEL]; TILE];
                match self.kernel {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: chosen only when the CPU reports avx512f.
                    Kernel::Avx512 => unsafe { tile_avx512(&x[r * k..], k, rows, w, count, &mut acc) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: chosen only when the CPU reports avx2 and fma.
                    Kernel::Avx2 => unsafe { tile_avx2(&x[r * k..], k, rows, w, count, &mut acc) },
                    _ => tile(&x[r * k..], k, rows, w, count, &mut acc),
                }
                let cols = (n - first * PANEL).min(count * PANEL);
                let bias = bias.map(|b| &b[first * PANEL..first * PANEL + cols]);
                for (i, a) in acc.iter().enumerate().take(rows) {
                    // SAFETY: row r + i, columns first·16 .. +cols are inside y (checked sizes),
                    // and only this task writes its panels' columns.
                    let dst = unsafe { out.slice((r + i) * n + first * PANEL, cols) };
                    match bias {
                        Some(b) => dst.iter_mut().zip(a).zip(b).for_each(|((d, v), b)| *d = v + b),
                        None => dst.copy_from_slice(&a[..cols]),
                    }
                }
                r += rows;
            }
        };
        for_each_panel_pair(panels, m * n * k, threads, work);
    }
}

/// Runs `work(first, count)` over the panels two at a time (`count` is 2, or 1 for an odd last
/// one), spread over the thread pool when the product (`macs` multiply-adds) is worth it.
pub(crate) fn for_each_panel_pair(
    panels: usize,
    macs: usize,
    threads: Threads,
    work: impl Fn(usize, usize) + Sync,
) {
    let run = |pair: usize| work(2 * pair, (panels - 2 * pair).min(2));
    let pairs = panels.div_ceil(2);
    // Below ~256k multiply-adds the fork/join costs more than it saves.
    if threads.0 > 1 && pairs > 1 && macs >= 1 << 18 {
        (0..pairs).into_par_iter().for_each(run);
    } else {
        (0..pairs).for_each(run);
    }
}

/// The output buffer shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: tasks write disjoint elements (their own output channels).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}
impl OutPtr {
    /// # Safety
    /// `start .. start + len` must be in bounds and written by no other thread meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

/// `acc[i][l] = Σ_c x[i][c]·w[c][l]` for `rows` rows and `count` (1 or 2) panels.
#[inline(always)]
fn tile(x: &[f32], k: usize, rows: usize, w: &[f32], count: usize, acc: &mut [[f32; 2 * PANEL]; TILE]) {
    for (i, a) in acc.iter_mut().enumerate().take(rows) {
        let xr = &x[i * k..(i + 1) * k];
        for p in 0..count {
            let wp = &w[p * k * PANEL..(p + 1) * k * PANEL];
            let mut s = [0f32; PANEL];
            for (c, &xv) in xr.iter().enumerate() {
                let wc = &wp[c * PANEL..(c + 1) * PANEL];
                for l in 0..PANEL {
                    s[l] += xv * wc[l];
                }
            }
            a[p * PANEL..(p + 1) * PANEL].copy_from_slice(&s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(
    x: &[f32],
    k: usize,
    rows: usize,
    w: &[f32],
    count: usize,
    acc: &mut [[f32; 2 * PANEL]; TILE],
) {
    tile(x, k, rows, w, count, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(
    x: &[f32],
    k: usize,
    rows: usize,
    w: &[f32],
    count: usize,
    acc: &mut [[f32; 2 * PANEL]; TILE],
) {
    use std::arch::x86_64::*;
    debug_assert!(x.len() >= rows * k && w.len() >= count * k * PANEL);
    let (xp, w0) = (x.as_ptr(), w.as_ptr());
    if count == 2 && rows == TILE {
        let w1 = w0.add(k * PANEL);
        let mut a = [_mm512_setzero_ps(); 2 * TILE];
        for c in 0..k {
            let (b0, b1) = (_mm512_loadu_ps(w0.add(c * PANEL)), _mm512_loadu_ps(w1.add(c * PANEL)));
            for i in 0..TILE {
                let xv = _mm512_set1_ps(*xp.add(i * k + c));
                a[2 * i] = _mm512_fmadd_ps(xv, b0, a[2 * i]);
                a[2 * i + 1] = _mm512_fmadd_ps(xv, b1, a[2 * i + 1]);
            }
        }
        for i in 0..TILE {
            _mm512_storeu_ps(acc[i].as_mut_ptr(), a[2 * i]);
            _mm512_storeu_ps(acc[i].as_mut_ptr().add(PANEL), a[2 * i + 1]);
        }
    } else {
        // Edge tiles, one row at a time: four partial sums per panel over interleaved inputs, so
        // that consecutive FMAs do not wait for each other (a single chain runs at 1/8 speed).
        for (i, out) in acc.iter_mut().enumerate().take(rows) {
            let xr = xp.add(i * k);
            for p in 0..count {
                let wp = w0.add(p * k * PANEL);
                let mut a = [_mm512_setzero_ps(); 4];
                let mut c = 0;
                while c + 4 <= k {
                    for (u, acc) in a.iter_mut().enumerate() {
                        let xv = _mm512_set1_ps(*xr.add(c + u));
                        *acc = _mm512_fmadd_ps(xv, _mm512_loadu_ps(wp.add((c + u) * PANEL)), *acc);
                    }
                    c += 4;
                }
                while c < k {
                    a[0] =
                        _mm512_fmadd_ps(_mm512_set1_ps(*xr.add(c)), _mm512_loadu_ps(wp.add(c * PANEL)), a[0]);
                    c += 1;
                }
                let sum = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
                _mm512_storeu_ps(out.as_mut_ptr().add(p * PANEL), sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_matches_the_definition_for_awkward_sizes() {
        for (m, n, k) in [(1, 1, 1), (3, 17, 5), (8, 32, 16), (13, 50, 33), (20, 70, 64)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
            let mut dm = DenseMatrix::new(&w, n, k);
            assert_eq!(dm.to_row_major(), w);
            for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
                #[cfg(target_arch = "x86_64")]
                {
                    let available = match kernel {
                        Kernel::Avx512 => is_x86_feature_detected!("avx512f"),
                        Kernel::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
                        Kernel::Portable => true,
                    };
                    if !available {
                        continue;
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                if kernel != Kernel::Portable {
                    continue;
                }
                dm.kernel = kernel;
                for threads in [Threads(1), Threads(2)] {
                    let mut y = vec![f32::NAN; m * n];
                    dm.matmul_transposed(&x, m, &mut y, Some(&bias), threads);
                    for i in 0..m {
                        for j in 0..n {
                            let want: f32 =
                                (0..k).map(|c| x[i * k + c] * w[j * k + c]).sum::<f32>() + bias[j];
                            let got = y[i * n + j];
                            assert!(
                                (got - want).abs() < 1e-3,
                                "{kernel:?} {m}x{n}x{k} ({i},{j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
