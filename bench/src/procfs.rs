//! What the kernel says about a process and a CPU (`/proc`): CPU time, memory.

/// Kernel clock ticks per second (`USER_HZ`), for /proc CPU times.
pub const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of process `pid` (all its threads), in ticks.
pub fn process_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

/// Busy ticks of CPU `n` (all but idle and iowait), from /proc/stat.
pub fn cpu_busy_ticks(n: &str) -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let prefix = format!("cpu{n} ");
    stat.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            v.iter().take(8).sum::<u64>() - v.get(3).unwrap_or(&0) - v.get(4).unwrap_or(&0)
        })
        .unwrap_or(0)
}

/// (VmRSS, VmHWM) of process `pid`, in KiB.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("cannot read /proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
