//! The numeric kernels of the decoder: matrix products (f32 through the `gemm` crate, int8 in
//! [`crate::int8`]), layer normalisation, softmax, and the row gather that beam search reorders
//! its caches with. Matrices are row-major `&[f32]` slices with their sizes passed alongside.

use gemm::Parallelism;

use crate::int8::QuantizedMatrix;

/// How many threads the matrix products may use (the caller runs inside a rayon pool this size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads(pub usize);

impl Threads {
    fn parallelism(self, m: usize, n: usize, k: usize) -> Parallelism {
        // Below ~1 MFLOP the fork/join costs more than it saves.
        if self.0 > 1 && m * n * k >= 1 << 20 {
            Parallelism::Rayon(self.0)
        } else {
            Parallelism::None
        }
    }
}

/// A weight matrix `[out, in]` (as torch's `Linear` stores it), f32 or int8.
#[derive(Debug, Clone)]
pub enum Matrix {
    F32 { data: Vec<f32>, rows: usize, cols: usize },
    Int8(QuantizedMatrix),
}

impl Matrix {
    pub fn rows(&self) -> usize {
        match self {
            Matrix::F32 { rows, .. } => *rows,
            Matrix::Int8(q) => q.rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Matrix::F32 { cols, .. } => *cols,
            Matrix::Int8(q) => q.cols,
        }
    }

    /// Row `i` as f32 (embedding lookups), dequantized for int8.
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        match self {
            Matrix::F32 { data, cols, .. } => out.copy_from_slice(&data[i * cols..(i + 1) * cols]),
            Matrix::Int8(q) => q.dequantize_row(i, out),
        }
    }

    /// `y[m, rows] = x[m, cols]·Wᵀ (+ bias)`; `y` is resized.
    pub fn apply(&self, x: &[f32], m: usize, y: &mut Vec<f32>, bias: Option<&[f32]>, threads: Threads) {
        let (n, k) = (self.rows(), self.cols());
        debug_assert_eq!(x.len(), m * k);
        y.clear();
        y.resize(m * n, 0.0);
        match self {
            Matrix::F32 { data, .. } => {
                if let Some(b) = bias {
                    for row in y.chunks_exact_mut(n) {
                        row.copy_from_slice(b);
                    }
                }
                matmul_transposed(x, data, m, n, k, y, bias.is_some(), threads);
            }
            Matrix::Int8(q) => q.matmul_transposed(x, m, y, bias, threads),
        }
    }

    pub fn quantize(&self) -> Matrix {
        match self {
            Matrix::F32 { data, rows, cols } => Matrix::Int8(QuantizedMatrix::new(data, *rows, *cols)),
            Matrix::Int8(_) => self.clone(),
        }
    }
}

/// A fully connected layer: `y = x·Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Matrix,
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    pub fn out_dim(&self) -> usize {
        self.weight.rows()
    }

    pub fn in_dim(&self) -> usize {
        self.weight.cols()
    }

    /// `y[m, out] = x[m, in]·Wᵀ + b`; `y` is resized.
    pub fn forward(&self, x: &[f32], m: usize, y: &mut Vec<f32>, threads: Threads) {
        self.weight.apply(x, m, y, self.bias.as_deref(), threads)
    }
}

/// `y[m, n] (+)= x[m, k]·w[n, k]ᵀ` in f32; with `accumulate` the product is added to `y`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_transposed(
    x: &[f32],
    w: &[f32],
    m: usize,
    n: usize,
    k: usize,
    y: &mut [f32],
    accumulate: bool,
    threads: Threads,
) {
    assert!(x.len() >= m * k && w.len() >= n * k && y.len() >= m * n, "matmul_transposed: sizes");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above bound every index gemm computes from these sizes and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            threads.parallelism(m, n, k),
        )
    }
}

/// Layer normalisation of each row of `x` (`[_, d]`), in place; eps as torch's default.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32]) {
    let d = gamma.len();
    for row in x.chunks_exact_mut(d) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + 1e-5).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// `out = layer_norm(x)` without touching `x`.
pub fn layer_norm_into(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut Vec<f32>) {
    out.clear();
    out.extend_from_slice(x);
    layer_norm(out, gamma, beta);
}

/// Softmax of `x` in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `log Σ exp(x)`, the normaliser that turns logits into log-probabilities.
pub fn log_sum_exp(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x.iter().map(|v| (v - max).exp()).sum();
    max + sum.ln()
}

pub fn relu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = v.max(0.0);
    }
}

pub fn add_in_place(y: &mut [f32], x: &[f32]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums so the compiler can vectorise without reassociating.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `y += a·x`.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (v, u) in y.iter_mut().zip(x) {
        *v += a * u;
    }
}

/// Rows of `src` (each `width` long) picked by `index`, into `dst` (resized).
pub fn gather_rows(src: &[f32], width: usize, index: &[usize], dst: &mut Vec<f32>) {
    dst.clear();
    dst.reserve(index.len() * width);
    for &i in index {
        dst.extend_from_slice(&src[i * width..(i + 1) * width]);
    }
}

/// The sinusoidal position table of "Attention Is All You Need" §3.5, interleaved as seqkd's
/// training code builds it: `[pos, 2i] = sin(pos·f_i)`, `[pos, 2i+1] = cos(pos·f_i)`,
/// `f_i = 10000^(-2i/d)`. Row `pos` is written into `out`.
pub fn sinusoid(pos: usize, out: &mut [f32]) {
    let d = out.len();
    for i in 0..d / 2 {
        // Computed as libtorch does (f32 frequency, f32 angle) so positions match bit for bit.
        let freq = ((2 * i) as f32 * (-(10000f64.ln()) as f32 / d as f32)).exp();
        let angle = pos as f32 * freq;
        out[2 * i] = angle.sin();
        out[2 * i + 1] = angle.cos();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
            }
        }
        y
    }

    #[test]
    fn matmul_transposed_matches_the_definition() {
        let (m, n, k) = (7, 33, 19);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0).collect();
        let mut y = vec![0.0; m * n];
        for threads in [Threads(1), Threads(2)] {
            matmul_transposed(&x, &w, m, n, k, &mut y, false, threads);
            for (a, b) in y.iter().zip(naive(&x, &w, m, n, k)) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn softmax_and_log_sum_exp_agree() {
        let mut x = vec![1.0, -2.0, 3.5, 0.25];
        let lse = log_sum_exp(&x);
        let expect: Vec<f32> = x.iter().map(|v| (v - lse).exp()).collect();
        softmax(&mut x);
        for (a, b) in x.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn layer_norm_gives_zero_mean_unit_variance() {
        let mut x: Vec<f32> = (0..16).map(|i| i as f32 * 0.7 - 3.0).collect();
        layer_norm(&mut x, &[1.0; 16], &[0.0; 16]);
        let mean: f32 = x.iter().sum::<f32>() / 16.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 16.0;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3, "{mean} {var}");
    }
}
