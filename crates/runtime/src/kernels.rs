//! The numeric kernels of the decoder: matrix products (f32 in [`crate::dense`], int8 in
//! [`crate::int8`]), layer normalisation, softmax, positions. Activations are row-major `&[f32]`
//! slices with their sizes passed alongside.

use crate::dense::DenseMatrix;
use crate::int8::QuantizedMatrix;

pub use crate::threads::Threads;

/// A weight matrix `[out, in]` (as torch's `Linear` stores it), f32 or int8.
#[derive(Debug, Clone)]
pub enum Matrix {
    F32(DenseMatrix),
    Int8(QuantizedMatrix),
}

impl Matrix {
    pub fn rows(&self) -> usize {
        match self {
            Matrix::F32(d) => d.rows,
            Matrix::Int8(q) => q.rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Matrix::F32(d) => d.cols,
            Matrix::Int8(q) => q.cols,
        }
    }

    /// Row `i` as f32 (embedding lookups), dequantized for int8.
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        match self {
            Matrix::F32(d) => d.row_into(i, out),
            Matrix::Int8(q) => q.dequantize_row(i, out),
        }
    }

    /// `y[m, rows] = x[m, cols]·Wᵀ (+ bias)`; `y` is resized.
    pub fn apply(&self, x: &[f32], m: usize, y: &mut Vec<f32>, bias: Option<&[f32]>, threads: Threads) {
        let (n, k) = (self.rows(), self.cols());
        debug_assert_eq!(x.len(), m * k);
        // Every element is overwritten: only grow (zeroing just the new part) or shrink.
        if y.len() > m * n {
            y.truncate(m * n);
        } else {
            y.resize(m * n, 0.0);
        }
        match self {
            Matrix::F32(d) => d.matmul_transposed(x, m, y, bias, threads),
            Matrix::Int8(q) => q.matmul_transposed(x, m, y, bias, threads),
        }
    }

    pub fn quantize(&self) -> Matrix {
        match self {
            Matrix::F32(d) => Matrix::Int8(QuantizedMatrix::new(&d.to_row_major(), d.rows, d.cols)),
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

/// Layer normalisation of each row of `x` (`[_, d]`), in place; eps as torch's default.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32]) {
    for row in x.chunks_exact_mut(gamma.len()) {
        let (mean, inv) = row_moments(row);
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// `out = layer_norm(x)` without touching `x` (`out` is resized).
pub fn layer_norm_into(x: &[f32], gamma: &[f32], beta: &[f32], out: &mut Vec<f32>) {
    let d = gamma.len();
    out.resize(x.len(), 0.0);
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let (mean, inv) = row_moments(row);
        for (((o, v), g), b) in o.iter_mut().zip(row).zip(gamma).zip(beta) {
            *o = (v - mean) * inv * g + b;
        }
    }
}

/// A row's mean and 1/sqrt(variance + eps), for [`layer_norm`].
#[inline(always)]
fn row_moments(row: &[f32]) -> (f32, f32) {
    let d = row.len() as f32;
    let mean = row.iter().sum::<f32>() / d;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    (mean, 1.0 / (var + 1e-5).sqrt())
}

/// `e^x` for f32 in branch-free arithmetic the compiler vectorises (libm's `expf` is a call per
/// value): `n = round(x·log2 e)`, `r = x − n·ln 2` (ln 2 split in two parts so `r` is exact, as in
/// Cody & Waite), `e^x = 2^n · e^r` with `e^r` by its degree-7 Taylor polynomial on
/// `|r| ≤ ln 2 / 2`. Relative error below 4e-7 (a few ulp) on [-87, 88]; `x < -87` gives 0.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let xc = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and removing 1.5·2^23 (vectorises; `round` may be a libm call).
    const MAGIC: f32 = 12_582_912.0;
    let n = (xc * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, xc));
    let p = (1.0f32 / 5040.0).mul_add(r, 1.0 / 720.0);
    let p = p.mul_add(r, 1.0 / 120.0);
    let p = p.mul_add(r, 1.0 / 24.0);
    let p = p.mul_add(r, 1.0 / 6.0);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r, 1.0);
    let p = p.mul_add(r, 1.0);
    let scaled = f32::from_bits(((n as i32 + 127) as u32) << 23);
    // Below e^-87 f32 is subnormal: nothing there changes a sum of probabilities.
    if x < -87.0 {
        0.0
    } else {
        p * scaled
    }
}

/// `Σ exp(x - shift)`, and `x ← exp(x - shift)` when `store`.
#[inline(always)]
fn exp_sum_body(x: &mut [f32], shift: f32, store: bool) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = x.chunks_exact_mut(16);
    for c in &mut chunks {
        for l in 0..16 {
            let e = fast_exp(c[l] - shift);
            if store {
                c[l] = e;
            }
            acc[l] += e;
        }
    }
    let mut tail = 0.0;
    for v in chunks.into_remainder() {
        let e = fast_exp(*v - shift);
        if store {
            *v = e;
        }
        tail += e;
    }
    acc.iter().sum::<f32>() + tail
}

/// [`exp_sum_body`] in AVX-512 intrinsics: the same range reduction and polynomial, with
/// `vscalefps` for the `2^n` factor and `vrndscaleps` for the rounding.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn exp_sum_avx512(x: &mut [f32], shift: f32, store: bool) -> f32 {
    use std::arch::x86_64::*;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let coeffs = [1.0f32 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0];
    let c: [__m512; 8] = coeffs.map(|v| _mm512_set1_ps(v));
    let (shift_v, lo_clamp, hi_clamp) = (_mm512_set1_ps(shift), _mm512_set1_ps(-87.0), _mm512_set1_ps(88.0));
    let (log2e, ln2_hi, ln2_lo) =
        (_mm512_set1_ps(std::f32::consts::LOG2_E), _mm512_set1_ps(LN2_HI), _mm512_set1_ps(LN2_LO));
    let mut acc = _mm512_setzero_ps();
    let n_vec = x.len() / 16;
    let p = x.as_mut_ptr();
    for i in 0..n_vec {
        let v = _mm512_sub_ps(_mm512_loadu_ps(p.add(16 * i)), shift_v);
        let below = _mm512_cmp_ps_mask(v, lo_clamp, _CMP_LT_OQ);
        let xc = _mm512_min_ps(_mm512_max_ps(v, lo_clamp), hi_clamp);
        let n = _mm512_roundscale_ps(_mm512_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        let r = _mm512_fnmadd_ps(n, ln2_lo, _mm512_fnmadd_ps(n, ln2_hi, xc));
        let mut poly = _mm512_fmadd_ps(c[0], r, c[1]);
        for ci in &c[2..] {
            poly = _mm512_fmadd_ps(poly, r, *ci);
        }
        let e = _mm512_maskz_mov_ps(!below, _mm512_scalef_ps(poly, n));
        if store {
            _mm512_storeu_ps(p.add(16 * i), e);
        }
        acc = _mm512_add_ps(acc, e);
    }
    let tail = exp_sum_body(&mut x[n_vec * 16..], shift, store);
    _mm512_reduce_add_ps(acc) + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_sum_avx2(x: &mut [f32], shift: f32, store: bool) -> f32 {
    exp_sum_body(x, shift, store)
}

fn exp_sum(x: &mut [f32], shift: f32, store: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { exp_sum_avx512(x, shift, store) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { exp_sum_avx2(x, shift, store) };
        }
    }
    exp_sum_body(x, shift, store)
}

/// The index and value of the first maximum of `x`, as libtorch's `argmax` gives it (NaNs are
/// passed over; `(0, −∞)` when nothing is larger than −∞). One vectorised pass for the maximum
/// and a scan for its first position: greedy search's argmax over the vocabulary.
pub fn first_max(x: &[f32]) -> (usize, f32) {
    let max = max_of(x);
    if max == f32::NEG_INFINITY {
        return (0, max);
    }
    (x.iter().position(|&v| v == max).unwrap_or(0), max)
}

fn max_of(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for l in 0..16 {
            m[l] = m[l].max(c[l]);
        }
    }
    m.iter().copied().fold(tail, f32::max)
}

/// Softmax of `x` in place.
pub fn softmax(x: &mut [f32]) {
    let max = max_of(x);
    let inv = 1.0 / exp_sum(x, max, true);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The softmax probabilities of the entries `ids` of `x` (`ids[0]` its maximum, as
/// search's top-k gives them), passed to `f(id, p)` in order; the normaliser is
/// computed over all of `x`, which is left unchanged.
pub fn softmax_top(x: &mut [f32], ids: &[usize], mut f: impl FnMut(usize, f32)) {
    let Some(&first) = ids.first() else { return };
    let max = x[first];
    let inv = 1.0 / exp_sum(x, max, false);
    for &id in ids {
        f(id, (x[id] - max).exp() * inv);
    }
}

/// `log Σ exp(x)`, the normaliser that turns logits into log-probabilities (`x` is unchanged;
/// it is `&mut` only to share the vectorised loop with [`softmax`]).
pub fn log_sum_exp(x: &mut [f32]) -> f32 {
    let max = max_of(x);
    log_sum_exp_given_max(x, max)
}

/// [`log_sum_exp`] when the caller already knows `max(x)` (search does, from its top-k).
pub fn log_sum_exp_given_max(x: &mut [f32], max: f32) -> f32 {
    max + exp_sum(x, max, false).ln()
}

pub fn relu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = v.max(0.0);
    }
}

/// The feed-forward non-linearity, in place: ReLU, exact GELU `x·Φ(x)` (erf, as libtorch's
/// default) or swish `x·σ(x)`.
pub fn activate(activation: crate::format::Activation, x: &mut [f32]) {
    use crate::format::Activation;
    match activation {
        Activation::Relu => relu(x),
        Activation::Gelu => {
            for v in x.iter_mut() {
                *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
        Activation::Swish => {
            for v in x.iter_mut() {
                *v /= 1.0 + (-*v).exp();
            }
        }
    }
}

pub fn add_in_place(y: &mut [f32], x: &[f32]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

#[inline(always)]
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
#[inline(always)]
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
        // f32 frequency and angle as in the libtorch model; libm's sin/cos may still differ from
        // ATen's in the last bit.
        let freq = ((2 * i) as f32 * (-(10000f64.ln()) as f32 / d as f32)).exp();
        let angle = pos as f32 * freq;
        out[2 * i] = angle.sin();
        out[2 * i + 1] = angle.cos();
    }
}

/// The sinusoid of position `pos` as `[sin(pos·ω) | cos(pos·ω)]` halves (Marian, fairseq),
/// computed in f64 and rounded once, as `transformers`' MarianMT computes its table.
pub fn sinusoid_halves(pos: usize, out: &mut [f32]) {
    let d = out.len();
    let half = d / 2;
    for i in 0..half {
        let angle = pos as f64 / 10000f64.powf((2 * i) as f64 / d as f64);
        out[i] = angle.sin() as f32;
        out[half + i] = angle.cos() as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first strict maximum by a plain scan (the definition `first_max` must match).
    fn first_max_by_scan(x: &[f32]) -> (usize, f32) {
        x.iter().enumerate().fold((0, f32::NEG_INFINITY), |a, (i, &v)| if v > a.1 { (i, v) } else { a })
    }

    #[test]
    fn first_max_is_the_first_of_tied_maxima_and_passes_over_nans() {
        let mut rng = 0x2016u64;
        let mut next = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 40) as f32 / (1u64 << 24) as f32
        };
        for len in [0, 1, 7, 16, 17, 33, 2000] {
            for _ in 0..20 {
                // Values on a coarse grid, so that maxima tie often.
                let mut x: Vec<f32> = (0..len).map(|_| (next() * 8.0).floor()).collect();
                if len > 3 {
                    x[1] = f32::NAN;
                    x[len - 1] = f32::NEG_INFINITY;
                }
                assert_eq!(first_max(&x), first_max_by_scan(&x), "{x:?}");
            }
        }
        assert_eq!(first_max(&[f32::NEG_INFINITY, f32::NAN]), (0, f32::NEG_INFINITY));
        assert_eq!(first_max(&[f32::NAN, 2.0, 5.0, 5.0]), (2, 5.0));
    }

    #[test]
    fn softmax_and_log_sum_exp_agree() {
        let mut x = vec![1.0, -2.0, 3.5, 0.25];
        let lse = log_sum_exp(&mut x);
        let expect: Vec<f32> = x.iter().map(|v| (v - lse).exp()).collect();
        softmax(&mut x);
        for (a, b) in x.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn fast_exp_is_within_a_few_ulp_of_libm() {
        for i in -2000..=1760 {
            let x = i as f32 * 0.05;
            let (got, want) = (fast_exp(x), x.exp());
            if x < -87.0 {
                assert_eq!(got, 0.0);
            } else {
                assert!((got - want).abs() <= 4e-7 * want, "exp({x}): {got} vs {want}");
            }
        }
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        let mut long: Vec<f32> =
            (0..1000).map(|i| (i as f32 * 0.37).sin() * 8.0 - (i % 7) as f32 * 20.0).collect();
        let exact = long.iter().map(|v| v.exp()).sum::<f32>().ln();
        assert!((log_sum_exp(&mut long) - exact).abs() < 1e-5);
        let portable = exp_sum_body(&mut long.clone(), 3.0, false);
        assert!((exp_sum(&mut long, 3.0, false) - portable).abs() <= 1e-5 * portable);
        let mut stored = long.clone();
        softmax(&mut stored);
        for (p, v) in stored.iter().zip(&long) {
            assert!((p - (v - exact).exp()).abs() < 1e-6);
        }
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
