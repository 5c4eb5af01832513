//! int8 matrix products: weights quantized per output channel (symmetric, `w ≈ s_j·q`), activations
//! quantized per row at run time (`x ≈ s_x·q`), products accumulated in i32.
//!
//! Weights are packed in panels of 16 output channels × 4 inputs (`[rows/16][cols/4][16][4]`),
//! the operand layout of AVX-512 VNNI's `vpdpbusd` (64 u8×i8 products into 16 i32 lanes per
//! instruction); rows of activations are taken 8 at a time against 2 panels (16 accumulators),
//! as in [`crate::dense`]. Without VNNI the same loop runs as plain code compiled for AVX2 (or
//! portably). `vpdpbusd` multiplies *unsigned* activations by signed weights, so activations are
//! shifted by +128 and the shift is taken back with each channel's weight sum:
//! `Σ (q_k+128)·w_jk = Σ q_k·w_jk + 128·Σ w_jk`.

use crate::dense::{for_each_panel_pair, OutPtr};
use crate::threads::Threads;

/// Rows of activations per tile.
const TILE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Vnni,
    Avx2,
    Portable,
}

fn best_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("SEQKD_KERNEL").is_some_and(|v| v == "portable") {
            return Kernel::Portable;
        }
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
            return Kernel::Vnni;
        }
        if is_x86_feature_detected!("avx2") {
            return Kernel::Avx2;
        }
    }
    Kernel::Portable
}

/// An int8 weight matrix `[rows (out), cols (in)]` with one scale per row.
#[derive(Debug, Clone)]
pub struct QuantizedMatrix {
    pub rows: usize,
    pub cols: usize,
    /// Row-major int8 weights: what is stored on disk.
    pub q: Vec<i8>,
    pub scales: Vec<f32>,
    /// `Σ_k q_jk`, to take back the activation shift.
    row_sums: Vec<i32>,
    kernel: Kernel,
    /// The weights in panel layout (zero padded).
    packed: Vec<i8>,
}

impl QuantizedMatrix {
    /// Quantizes f32 weights: `s_j = max_k |w_jk| / 127`, `q = round(w / s_j)`.
    pub fn new(w: &[f32], rows: usize, cols: usize) -> Self {
        let mut q = vec![0i8; rows * cols];
        let mut scales = vec![0f32; rows];
        for j in 0..rows {
            let row = &w[j * cols..(j + 1) * cols];
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales[j] = s;
            for (o, v) in q[j * cols..(j + 1) * cols].iter_mut().zip(row) {
                *o = (v / s).round().clamp(-127.0, 127.0) as i8;
            }
        }
        Self::from_parts(q, scales, rows, cols)
    }

    /// From stored int8 weights and scales.
    pub fn from_parts(q: Vec<i8>, scales: Vec<f32>, rows: usize, cols: usize) -> Self {
        assert_eq!(q.len(), rows * cols);
        assert_eq!(scales.len(), rows);
        let row_sums = q.chunks_exact(cols.max(1)).map(|r| r.iter().map(|&v| v as i32).sum()).collect();
        let packed = pack(&q, rows, cols);
        Self { rows, cols, q, scales, row_sums, kernel: best_kernel(), packed }
    }

    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) {
        let s = self.scales[i];
        for (o, &v) in out.iter_mut().zip(&self.q[i * self.cols..(i + 1) * self.cols]) {
            *o = v as f32 * s;
        }
    }

    /// `y[m, rows] = x[m, cols]·Wᵀ (+ bias)`, activations quantized per row of `x`.
    pub fn matmul_transposed(
        &self,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        bias: Option<&[f32]>,
        threads: Threads,
    ) {
        let (n, k) = (self.rows, self.cols);
        assert!(x.len() >= m * k && y.len() >= m * n, "int8 matmul: sizes");
        let k4 = k.div_ceil(4) * 4;
        // Quantize activations: q in [-127, 127], stored +128 as u8.
        let mut xq = vec![128u8; m * k4];
        let mut x_scales = vec![0f32; m];
        for i in 0..m {
            x_scales[i] = quantize_row(&x[i * k..(i + 1) * k], &mut xq[i * k4..i * k4 + k]);
        }
        let panels = n.div_ceil(PANEL);
        let out = OutPtr(y.as_mut_ptr());
        let work = |first: usize, count: usize| {
            let w = &self.packed[first * k4 * PANEL..(first + count) * k4 * PANEL];
            let cols = (n - first * PANEL).min(count * PANEL);
            let mut r = 0;
            while r < m {
                let rows = (m - r).min(TILE);
                let mut acc = [[0i32; 2 * PANEL]; TILE];
                let xr = &xq[r * k4..(r + rows) * k4];
                match self.kernel {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: chosen only when the CPU reports avx512f and avx512vnni.
                    Kernel::Vnni => unsafe { tile_vnni(xr, k4, rows, w, count, &mut acc) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: chosen only when the CPU reports avx2.
                    Kernel::Avx2 => unsafe { tile_avx2(xr, k4, rows, w, count, &mut acc) },
                    _ => tile(xr, k4, rows, w, count, &mut acc),
                }
                for (i, a) in acc.iter().enumerate().take(rows) {
                    let xs = x_scales[r + i];
                    // SAFETY: row r + i, columns first·16 .. +cols are inside y, and only this
                    // task writes its panels' columns.
                    let dst = unsafe { out.slice((r + i) * n + first * PANEL, cols) };
                    let j = first * PANEL;
                    let (sums, scales) = (&self.row_sums[j..j + cols], &self.scales[j..j + cols]);
                    let dequantized =
                        a.iter().zip(sums).zip(scales).map(|((&v, &s), &sc)| (v - 128 * s) as f32 * xs * sc);
                    match bias {
                        Some(b) => dst
                            .iter_mut()
                            .zip(dequantized)
                            .zip(&b[j..j + cols])
                            .for_each(|((d, v), b)| *d = v + b),
                        None => dst.iter_mut().zip(dequantized).for_each(|(d, v)| *d = v),
                    }
                }
                r += rows;
            }
        };
        for_each_panel_pair(panels, m * n * k, threads, work);
    }
}

/// Output channels per panel.
const PANEL: usize = 16;

/// Quantizes one row of activations into `out` (+128-shifted); returns its scale.
fn quantize_row(x: &[f32], out: &mut [u8]) -> f32 {
    let mut max = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(0f32, |a, v| a.max(v.abs()));
    for c in chunks {
        for l in 0..16 {
            max[l] = max[l].max(c[l].abs());
        }
    }
    let max = max.iter().copied().fold(tail, f32::max);
    let s = if max > 0.0 { max / 127.0 } else { 1.0 };
    let inv = 1.0 / s;
    // Adding and removing 1.5·2^23 rounds to nearest (ties to even) in plain arithmetic, which
    // vectorises; `f32::round` is a libm call per value on baseline x86-64.
    const MAGIC: f32 = 12_582_912.0;
    for (o, v) in out.iter_mut().zip(x) {
        let r = ((v * inv + MAGIC) - MAGIC).clamp(-127.0, 127.0);
        *o = (r as i32 + 128) as u8;
    }
    s
}

fn pack(q: &[i8], rows: usize, cols: usize) -> Vec<i8> {
    let (panels, k4) = (rows.div_ceil(PANEL), cols.div_ceil(4) * 4);
    let mut packed = vec![0i8; panels * k4 * PANEL];
    for j in 0..rows {
        for c in 0..cols {
            let (p, lane, kk, t) = (j / PANEL, j % PANEL, c / 4, c % 4);
            packed[((p * k4 / 4 + kk) * PANEL + lane) * 4 + t] = q[j * cols + c];
        }
    }
    packed
}

/// `acc[i][p·16 + l] = Σ_c xq[i][c]·w[p][c][l]` (panel layout), in plain code.
#[inline(always)]
fn tile(xq: &[u8], k4: usize, rows: usize, w: &[i8], count: usize, acc: &mut [[i32; 2 * PANEL]; TILE]) {
    for (i, a) in acc.iter_mut().enumerate().take(rows) {
        let xr = &xq[i * k4..(i + 1) * k4];
        for p in 0..count {
            let wp = &w[p * k4 * PANEL..(p + 1) * k4 * PANEL];
            let mut s = [0i32; PANEL];
            for (kk, x4) in xr.chunks_exact(4).enumerate() {
                let block = &wp[kk * PANEL * 4..(kk + 1) * PANEL * 4];
                for l in 0..PANEL {
                    for t in 0..4 {
                        s[l] += x4[t] as i32 * block[l * 4 + t] as i32;
                    }
                }
            }
            a[p * PANEL..(p + 1) * PANEL].copy_from_slice(&s);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(
    xq: &[u8],
    k4: usize,
    rows: usize,
    w: &[i8],
    count: usize,
    acc: &mut [[i32; 2 * PANEL]; TILE],
) {
    tile(xq, k4, rows, w, count, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn tile_vnni(
    xq: &[u8],
    k4: usize,
    rows: usize,
    w: &[i8],
    count: usize,
    acc: &mut [[i32; 2 * PANEL]; TILE],
) {
    use std::arch::x86_64::*;
    let kq = k4 / 4;
    debug_assert!(xq.len() >= rows * k4 && w.len() >= count * k4 * PANEL);
    let x32 = xq.as_ptr() as *const i32;
    let w0 = w.as_ptr();
    if count == 2 && rows == TILE {
        let w1 = w0.add(k4 * PANEL);
        let mut a = [_mm512_setzero_si512(); 2 * TILE];
        for kk in 0..kq {
            let b0 = _mm512_loadu_si512(w0.add(kk * 64) as *const _);
            let b1 = _mm512_loadu_si512(w1.add(kk * 64) as *const _);
            for i in 0..TILE {
                let x = _mm512_set1_epi32(x32.add(i * kq + kk).read_unaligned());
                a[2 * i] = _mm512_dpbusd_epi32(a[2 * i], x, b0);
                a[2 * i + 1] = _mm512_dpbusd_epi32(a[2 * i + 1], x, b1);
            }
        }
        for i in 0..TILE {
            _mm512_storeu_si512(acc[i].as_mut_ptr() as *mut _, a[2 * i]);
            _mm512_storeu_si512(acc[i].as_mut_ptr().add(PANEL) as *mut _, a[2 * i + 1]);
        }
    } else {
        for (i, out) in acc.iter_mut().enumerate().take(rows) {
            for p in 0..count {
                let wp = w0.add(p * k4 * PANEL);
                let mut a = _mm512_setzero_si512();
                for kk in 0..kq {
                    let x = _mm512_set1_epi32(x32.add(i * kq + kk).read_unaligned());
                    a = _mm512_dpbusd_epi32(a, x, _mm512_loadu_si512(wp.add(kk * 64) as *const _));
                }
                _mm512_storeu_si512(out.as_mut_ptr().add(p * PANEL) as *mut _, a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_gives_the_same_integers_and_approximates_f32() {
        // Sizes that are not multiples of the tile, the panel or 4.
        for (m, n, k) in [(1, 5, 3), (5, 37, 70), (11, 64, 32), (17, 50, 9)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 201) as f32 - 100.0) / 150.0).collect();
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 104729 % 97) as f32 - 48.0) / 40.0).collect();
            let mut qm = QuantizedMatrix::new(&w, n, k);
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01).collect();
            let mut outputs = Vec::new();
            for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Vnni] {
                #[cfg(target_arch = "x86_64")]
                {
                    let ok = match kernel {
                        Kernel::Vnni => {
                            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")
                        }
                        Kernel::Avx2 => is_x86_feature_detected!("avx2"),
                        Kernel::Portable => true,
                    };
                    if !ok {
                        continue;
                    }
                }
                qm.kernel = kernel;
                for threads in [Threads(1), Threads(2)] {
                    let mut y = vec![f32::NAN; m * n];
                    qm.matmul_transposed(&x, m, &mut y, Some(&bias), threads);
                    outputs.push(y);
                }
            }
            for y in &outputs[1..] {
                assert_eq!(y, &outputs[0], "kernels disagree");
            }
            let scale = (0..m * n).fold(0f32, |a, e| {
                let (i, j) = (e / n, e % n);
                a.max((0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>().abs())
            });
            for (e, got) in outputs[0].iter().enumerate() {
                let (i, j) = (e / n, e % n);
                let want = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>() + bias[j];
                assert!((got - want).abs() < 0.02 * scale.max(1.0), "{m}x{n}x{k} ({i},{j}): {got} vs {want}");
            }
        }
    }
}
