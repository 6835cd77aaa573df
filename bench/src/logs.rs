//! claimex's JSON log lines: timestamps, audit decisions, warnings.

use serde_json::Value;

/// Unix time in microseconds of an RFC 3339 UTC timestamp (`2026-01-02T03:04:05.678901Z`).
pub fn parse_timestamp(ts: &str) -> Option<f64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss) * 1e6)
}

/// The log's JSON lines.
pub fn log_lines(log: &str) -> impl Iterator<Item = Value> + '_ {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
}

/// Audit decisions in a log: (allowed, other), and the first non-allow line.
pub fn audit_decisions(log: &str) -> (u64, u64, Option<String>) {
    let (mut allow, mut other, mut first) = (0, 0, None);
    for line in log_lines(log) {
        if line["target"] != "claimex::audit" {
            continue;
        }
        if line["decision"] == "allow" {
            allow += 1;
        } else {
            other += 1;
            first.get_or_insert_with(|| line.to_string());
        }
    }
    (allow, other, first)
}

/// Warnings and errors in a log (not audit lines).
pub fn problems(log: &str) -> Vec<String> {
    log_lines(log)
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .map(|l| l.to_string())
        .collect()
}
