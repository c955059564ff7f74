//! Simulated work: sleeps drawn from a normal distribution.

use std::time::Duration;

use rand::Rng;

/// A duration drawn from N(`mean`, `std_dev`), at least 1 ns.
pub fn sample(mean: Duration, std_dev: Duration) -> Duration {
    let z = standard_normal();
    let secs = mean.as_secs_f64() + z * std_dev.as_secs_f64();
    Duration::try_from_secs_f64(secs)
        .map_or(Duration::from_nanos(1), |d| d.max(Duration::from_nanos(1)))
}

/// A value drawn from N(`mean`, `std_dev`).
pub fn normal(mean: f64, std_dev: f64) -> f64 {
    mean + standard_normal() * std_dev
}

/// Sleeps for a duration drawn from N(`mean`, `std_dev`).
pub async fn sleep(mean: Duration, std_dev: Duration) {
    tokio::time::sleep(sample(mean, std_dev)).await;
}

/// Box-Muller: one draw from the standard normal distribution.
fn standard_normal() -> f64 {
    let mut rng = rand::rng();
    // (0, 1]: the logarithm must not see 0.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_center_on_the_mean() {
        let mean = Duration::from_millis(50);
        let sd = Duration::from_micros(12_500);
        let n = 4000;
        let total: f64 = (0..n).map(|_| sample(mean, sd).as_secs_f64()).sum();
        let avg = total / f64::from(n);
        assert!((avg - 0.05).abs() < 0.002, "average {avg}");
        assert!((0..1000).all(|_| sample(Duration::ZERO, sd) >= Duration::from_nanos(1)));
    }
}
