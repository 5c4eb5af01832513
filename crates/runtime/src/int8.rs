//! int8 matrix products: weights quantized per output channel (symmetric, `w ≈ s_j·q`), activations
//! quantized per row at run time (`x ≈ s_x·q`), products accumulated in i32.
//!
//! Three kernels, chosen at run time: AVX-512 VNNI (`vpdpbusd`: 64 u8×i8 products per
//! instruction, 16 output channels per register), AVX2 (i8 widened to i16, `vpmaddwd`), and a
//! portable one. VNNI multiplies *unsigned* activations by signed weights, so activations are
//! shifted by +128 and the shift is taken back with each channel's weight sum:
//! `Σ (q_k+128)·w_jk = Σ q_k·w_jk + 128·Σ w_jk`.

use rayon::prelude::*;

use crate::kernels::Threads;

/// Output channels per VNNI block (one 512-bit register of i32).
const BLOCK: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Vnni,
    Avx2,
    Portable,
}

fn best_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("SEQKD_INT8_KERNEL").is_some_and(|v| v == "portable") {
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
    /// `Σ_k q_jk`, for the VNNI activation shift.
    row_sums: Vec<i32>,
    kernel: Kernel,
    /// The weights rearranged for the VNNI kernel: `[rows/16][cols/4][16][4]` (zero padded).
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
        let kernel = best_kernel();
        let packed = if kernel == Kernel::Vnni { pack_vnni(&q, rows, cols) } else { Vec::new() };
        Self { rows, cols, q, scales, row_sums, kernel, packed }
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
        let k4 = k.div_ceil(4) * 4;
        // Quantize activations: signed q in [-127, 127], stored +128 as u8 for VNNI.
        let mut xq = vec![0u8; m * k4];
        let mut x_scales = vec![0f32; m];
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let max = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            x_scales[i] = s;
            let inv = 1.0 / s;
            let out = &mut xq[i * k4..(i + 1) * k4];
            for (o, v) in out.iter_mut().zip(row) {
                *o = ((v * inv).round().clamp(-127.0, 127.0) as i32 + 128) as u8;
            }
            for o in &mut out[k..] {
                *o = 128; // padding: a zero activation against zero weights
            }
        }
        let finish = |i: usize, acc: &[i32], y_row: &mut [f32]| {
            for j in 0..n {
                let dot = acc[j] - 128 * self.row_sums[j];
                y_row[j] = dot as f32 * x_scales[i] * self.scales[j] + bias.map_or(0.0, |b| b[j]);
            }
        };
        let work = |(i, y_row): (usize, &mut [f32])| {
            let mut acc = vec![0i32; n.div_ceil(BLOCK) * BLOCK];
            let xr = &xq[i * k4..(i + 1) * k4];
            match self.kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: chosen only when the CPU reports avx512f and avx512vnni.
                Kernel::Vnni => unsafe { vnni_row(&self.packed, xr, n, k4, &mut acc) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: chosen only when the CPU reports avx2.
                Kernel::Avx2 => unsafe { avx2_row(&self.q, xr, n, k, &mut acc) },
                _ => portable_row(&self.q, xr, n, k, &mut acc),
            }
            finish(i, &acc, y_row);
        };
        if threads.0 > 1 && m > 1 && m * n * k >= 1 << 20 {
            y.par_chunks_mut(n).take(m).enumerate().for_each(work);
        } else {
            y.chunks_mut(n).take(m).enumerate().for_each(work);
        }
    }
}

fn pack_vnni(q: &[i8], rows: usize, cols: usize) -> Vec<i8> {
    let (blocks, k4) = (rows.div_ceil(BLOCK), cols.div_ceil(4));
    let mut packed = vec![0i8; blocks * k4 * BLOCK * 4];
    for j in 0..rows {
        for c in 0..cols {
            let (jb, jj, kk, t) = (j / BLOCK, j % BLOCK, c / 4, c % 4);
            packed[((jb * k4 + kk) * BLOCK + jj) * 4 + t] = q[j * cols + c];
        }
    }
    packed
}

/// `acc[j] = Σ_k xq_k·q_jk` with `xq` the +128-shifted activations (what VNNI computes).
fn portable_row(q: &[i8], xq: &[u8], n: usize, k: usize, acc: &mut [i32]) {
    for j in 0..n {
        acc[j] = q[j * k..(j + 1) * k].iter().zip(xq).map(|(&w, &a)| w as i32 * a as i32).sum();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni_row(packed: &[i8], xq: &[u8], n: usize, k4: usize, acc: &mut [i32]) {
    use std::arch::x86_64::*;
    let kq = k4 / 4;
    let blocks = n.div_ceil(BLOCK);
    debug_assert!(packed.len() >= blocks * kq * 64 && xq.len() >= k4 && acc.len() >= blocks * BLOCK);
    let x32 = xq.as_ptr() as *const i32;
    let mut jb = 0;
    // Two blocks (32 channels) at a time: each broadcast activation feeds two products.
    while jb + 1 < blocks {
        let (mut a0, mut a1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let (p0, p1) = (packed.as_ptr().add(jb * kq * 64), packed.as_ptr().add((jb + 1) * kq * 64));
        for kk in 0..kq {
            let a = _mm512_set1_epi32(x32.add(kk).read_unaligned());
            a0 = _mm512_dpbusd_epi32(a0, a, _mm512_loadu_si512(p0.add(kk * 64) as *const _));
            a1 = _mm512_dpbusd_epi32(a1, a, _mm512_loadu_si512(p1.add(kk * 64) as *const _));
        }
        _mm512_storeu_si512(acc.as_mut_ptr().add(jb * BLOCK) as *mut _, a0);
        _mm512_storeu_si512(acc.as_mut_ptr().add((jb + 1) * BLOCK) as *mut _, a1);
        jb += 2;
    }
    if jb < blocks {
        let mut a0 = _mm512_setzero_si512();
        let p0 = packed.as_ptr().add(jb * kq * 64);
        for kk in 0..kq {
            let a = _mm512_set1_epi32(x32.add(kk).read_unaligned());
            a0 = _mm512_dpbusd_epi32(a0, a, _mm512_loadu_si512(p0.add(kk * 64) as *const _));
        }
        _mm512_storeu_si512(acc.as_mut_ptr().add(jb * BLOCK) as *mut _, a0);
    }
}

/// AVX2: 16 weights and 16 (shifted) activations widened to i16, multiplied and pair-summed to
/// i32 with `vpmaddwd` (no saturation, unlike `vpmaddubsw`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_row(q: &[i8], xq: &[u8], n: usize, k: usize, acc: &mut [i32]) {
    use std::arch::x86_64::*;
    let chunks = k / 16;
    for (j, out) in acc.iter_mut().enumerate().take(n) {
        let w = q.as_ptr().add(j * k);
        let mut sum = _mm256_setzero_si256();
        for c in 0..chunks {
            let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(c * 16) as *const _));
            let xv = _mm256_cvtepu8_epi16(_mm_loadu_si128(xq.as_ptr().add(c * 16) as *const _));
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(wv, xv));
        }
        let mut lanes = [0i32; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut _, sum);
        let mut total: i32 = lanes.iter().sum();
        for (c, &x) in xq.iter().enumerate().take(k).skip(chunks * 16) {
            total += *w.add(c) as i32 * x as i32;
        }
        *out = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        (0..m).flat_map(|i| (0..n).map(move |j| (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum())).collect()
    }

    #[test]
    fn every_kernel_gives_the_same_integers_and_approximates_f32() {
        let (m, n, k) = (5, 37, 70); // sizes that are not multiples of the block or of 4
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
            qm.packed = pack_vnni(&qm.q, n, k);
            let mut y = vec![0f32; m * n];
            qm.matmul_transposed(&x, m, &mut y, Some(&bias), Threads(1));
            outputs.push(y);
        }
        for y in &outputs[1..] {
            assert_eq!(y, &outputs[0], "kernels disagree");
        }
        let exact = reference(&x, &w, m, n, k);
        let scale = exact.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (j, (a, b)) in outputs[0].iter().zip(&exact).enumerate() {
            let b = b + bias[j % n];
            assert!((a - b).abs() < 0.02 * scale, "{a} vs {b}");
        }
    }
}
