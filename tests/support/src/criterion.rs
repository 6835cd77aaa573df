//! Criterion's figures as the benches left them, for the reports that set other figures
//! against them (the exchange bench's summary, the load program's "vs 1-thread" column).

use std::time::SystemTime;

use serde_json::Value;

/// One bench's median, as criterion last wrote it.
#[derive(Debug, Clone, Copy)]
pub struct Median {
    /// µs per iteration.
    pub us: f64,
    /// When criterion wrote it (`None` where the file system keeps no time): a bench filtered
    /// out of a run keeps an older run's figure.
    pub written: Option<SystemTime>,
}

/// The median of `<group>/<bench>` under the workspace's `target/criterion/`, if criterion
/// has written one.
pub fn median(group: &str, bench: &str) -> Option<Median> {
    let path = crate::root()
        .join("target/criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    Some(Median {
        us: json["median"]["point_estimate"].as_f64()? / 1000.0,
        written: std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
    })
}
