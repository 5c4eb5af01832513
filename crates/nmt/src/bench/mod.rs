//! Benchmarks of the code users run: `seqkd bench` ([`speed`]: a training step and decoding against
//! the same work in PyTorch) and `seqkd bench-kd` ([`kd`]: what distillation costs with a real
//! teacher). Each reports ratios against a baseline measured in the same process.

pub mod kd;
pub mod speed;

use std::time::Instant;

use tch::Device;

/// Waits for the device's queued work (a no-op on CPU).
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Runs `f` `warmup` times untimed, then `steps` times timed: seconds per call.
fn time_per_call(device: Device, steps: usize, warmup: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    sync(device);
    let start = Instant::now();
    for _ in 0..steps {
        f();
    }
    sync(device);
    start.elapsed().as_secs_f64() / steps as f64
}

/// Peak resident set size of this process (VmHWM), Linux only.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
