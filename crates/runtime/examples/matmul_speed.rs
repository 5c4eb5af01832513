//! Speed of the f32 and int8 matrix products at decoding shapes (GMAC/s, one thread):
//! `cargo run --release -p seqkd-runtime --example matmul_speed`
use std::time::Instant;

use seqkd_runtime::dense::DenseMatrix;
use seqkd_runtime::int8::QuantizedMatrix;
use seqkd_runtime::kernels::Threads;

fn main() {
    for (m, n, k) in [
        (320, 8000, 256),
        (64, 8000, 256),
        (5, 8000, 256),
        (1, 8000, 256),
        (320, 1024, 256),
        (320, 256, 1024),
    ] {
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 201) as f32 - 100.0) / 150.0).collect();
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 104729 % 97) as f32 - 48.0) / 40.0).collect();
        let mut y = vec![0f32; m * n];
        let dense = DenseMatrix::new(&w, n, k);
        let int8 = QuantizedMatrix::new(&w, n, k);
        let reps = (2_000_000_000 / (m * n * k)).max(3);
        let rate = |f: &mut dyn FnMut()| {
            f();
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            (m * n * k * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
        };
        let f = rate(&mut || dense.matmul_transposed(&x, m, &mut y, None, Threads(1)));
        let q = rate(&mut || int8.matmul_transposed(&x, m, &mut y, None, Threads(1)));
        println!("{m:>4} x {n:>5} x {k:>5}: f32 {f:6.1} GMAC/s, int8 {q:6.1} GMAC/s");
    }
}
