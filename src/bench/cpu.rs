//! Who used the CPU during a measurement: the server, the bench itself
//! (the generator), and everything else on the machine. All from /proc:
//!
//! - `/proc/<pid>/stat`: a process's user and system time (fields 14 and 15,
//!   in clock ticks); `/proc/self/task/<tid>/stat` the same per thread, with
//!   the thread's name, so the bench knows which of its own threads is busy.
//! - `/proc/stat`: the whole machine's time per state since boot (user,
//!   nice, system, idle, iowait, irq, softirq, steal, ...).
//!
//! Two samples, one at each end of the measured window, give each share.
//! Ticks are `USER_HZ`, 100 per second on every Linux this runs on (std
//! cannot call `sysconf`): a 5 s window is 500 ticks per busy core, so the
//! shares are good to well under 1%.

use std::path::Path;
use std::time::Instant;

/// Clock ticks per second of /proc's CPU times (`USER_HZ`).
pub const TICKS_PER_S: f64 = 100.0;

/// A generator thread busier than this (share of one core) may be what
/// limits the run, rather than the server.
pub const BOTTLENECK_SHARE: f64 = 0.9;

/// A task's name and CPU time (user + system, ticks) from a
/// `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat` line.
pub fn parse_stat(line: &str) -> Option<(String, u64)> {
    // The name is in parentheses and may itself hold spaces and ')'.
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_string();
    let mut rest = line.get(close + 1..)?.split_whitespace();
    // After the name: state (field 3) ... utime is field 14, stime 15.
    let utime: u64 = rest.nth(11)?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// The machine's CPU time since boot, in ticks, from the `cpu` line of
/// /proc/stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// Every state but idle and iowait (guest time is already in user).
    pub busy: u64,
    /// Time a hypervisor ran something else while this machine wanted a
    /// core (part of neither busy nor idle here).
    pub steal: u64,
    /// All states together.
    pub total: u64,
}

/// Parses the first (`cpu `) line of /proc/stat.
pub fn parse_machine(text: &str) -> Option<MachineTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if v.len() < 4 {
        return None;
    }
    let steal = at(7);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Some(MachineTicks {
        busy,
        steal,
        total: busy + at(3) + at(4) + steal,
    })
}

/// One thread of this process, as seen at one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTicks {
    pub tid: u64,
    pub name: String,
    pub ticks: u64,
}

/// CPU times at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub machine: Option<MachineTicks>,
    /// The server's process, if it is another process with a known pid.
    pub server: Option<u64>,
    /// This whole process.
    pub me: Option<u64>,
    /// This process's threads.
    pub threads: Vec<ThreadTicks>,
    /// The thread that took the sample.
    pub sampler_tid: Option<u64>,
}

fn read_ticks(path: &Path) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(path).ok()?).map(|(_, t)| t)
}

fn my_threads() -> Vec<ThreadTicks> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|entry| {
            let tid = entry.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (name, ticks) = parse_stat(&text)?;
            Some(ThreadTicks { tid, name, ticks })
        })
        .collect()
}

/// CPU time (ticks) of this process's thread `tid`, from
/// `/proc/self/task/<tid>/stat`: one file, so a caller watching a few
/// threads does not read all of an in-process hub's 10,000.
pub fn thread_ticks(tid: u64) -> Option<u64> {
    if tid == 0 {
        return None;
    }
    read_ticks(
        &Path::new("/proc/self/task")
            .join(tid.to_string())
            .join("stat"),
    )
}

/// The calling thread's id (its directory under /proc/self/task).
pub fn my_tid() -> Option<u64> {
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

impl Sample {
    /// Samples now; `server_pid` is the server's process if it is not this
    /// one.
    pub fn take(server_pid: Option<u32>) -> Sample {
        Sample {
            at: Instant::now(),
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| parse_machine(&t)),
            server: server_pid
                .and_then(|pid| read_ticks(&Path::new("/proc").join(pid.to_string()).join("stat"))),
            me: read_ticks(Path::new("/proc/self/stat")),
            threads: my_threads(),
            sampler_tid: my_tid(),
        }
    }
}

/// Is this thread of the bench part of the load generator? (Its threads
/// are all named `bench-...`; the sampling thread is the bench's too.)
fn is_generator(t: &ThreadTicks, sampler: Option<u64>) -> bool {
    t.name.starts_with("bench-") || Some(t.tid) == sampler
}

/// CPU ticks so far of each of `pids` (`--path-pid`), `None` for one
/// that is gone; sampled beside [`Sample::take`].
pub fn path_ticks(pids: &[u32]) -> Vec<(u32, Option<u64>)> {
    pids.iter()
        .map(|&pid| {
            (
                pid,
                read_ticks(&Path::new("/proc").join(pid.to_string()).join("stat")),
            )
        })
        .collect()
}

/// One `--path-pid` process over the window: its name (from
/// /proc/<pid>/comm) and its CPU seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct PathCpu {
    pub pid: u32,
    pub name: String,
    pub cpu_s: Option<f64>,
}

/// What each `--path-pid` process used between two [`path_ticks`].
pub fn path_between(start: &[(u32, Option<u64>)], end: &[(u32, Option<u64>)]) -> Vec<PathCpu> {
    start
        .iter()
        .zip(end)
        .map(|(&(pid, a), &(_, b))| PathCpu {
            pid,
            name: std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|n| n.trim().to_string())
                .unwrap_or_else(|_| "?".into()),
            cpu_s: a
                .zip(b)
                .map(|(a, b)| b.saturating_sub(a) as f64 / TICKS_PER_S),
        })
        .collect()
}

/// Who used the CPU between two samples, in cores (1.0 = one core busy for
/// the whole window).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Length of the window, seconds.
    pub window_s: f64,
    /// Cores on the machine.
    pub cores: usize,
    /// The server's CPU over the window (seconds); `None` when unknown.
    pub server_cpu_s: Option<f64>,
    /// The bench's own CPU over the window (seconds).
    pub generator_cpu_s: f64,
    /// The bench's busiest thread and its share of one core.
    pub busiest_thread: Option<(String, f64)>,
    /// The whole machine, busy (cores, averaged over the window).
    pub machine_busy: Option<f64>,
    /// Steal time (cores).
    pub steal: Option<f64>,
    /// Everything but the server and the bench (cores): other processes,
    /// and the kernel's work not charged to either.
    pub others: Option<f64>,
}

impl Usage {
    /// The usage between `start` and `end`. `in_process`: the server runs in
    /// this process, so its share is this process's threads that are not
    /// the bench's.
    pub fn between(start: &Sample, end: &Sample, in_process: bool) -> Usage {
        let window_s = end.at.duration_since(start.at).as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = |t: &ThreadTicks| -> u64 {
            let before = start
                .threads
                .iter()
                .find(|s| s.tid == t.tid)
                .map_or(0, |s| s.ticks);
            t.ticks.saturating_sub(before)
        };
        let sampler = end.sampler_tid;
        let secs = |ticks: u64| ticks as f64 / TICKS_PER_S;
        let generator_ticks: u64 = if in_process {
            end.threads
                .iter()
                .filter(|t| is_generator(t, sampler))
                .map(per_thread)
                .sum()
        } else {
            match (start.me, end.me) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => 0,
            }
        };
        let server_cpu_s = if in_process {
            let ticks: u64 = end
                .threads
                .iter()
                .filter(|t| !is_generator(t, sampler))
                .map(per_thread)
                .sum();
            Some(secs(ticks))
        } else {
            match (start.server, end.server) {
                (Some(a), Some(b)) => Some(secs(b.saturating_sub(a))),
                _ => None,
            }
        };
        let busiest_thread = end
            .threads
            .iter()
            .filter(|t| is_generator(t, sampler))
            .map(|t| (t.name.clone(), secs(per_thread(t)) / window_s.max(1e-9)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let machine = match (start.machine, end.machine) {
            (Some(a), Some(b)) if b.total > a.total => Some((a, b)),
            _ => None,
        };
        let in_cores = |ticks: u64| secs(ticks) / window_s.max(1e-9);
        let machine_busy = machine.map(|(a, b)| in_cores(b.busy.saturating_sub(a.busy)));
        let steal = machine.map(|(a, b)| in_cores(b.steal.saturating_sub(a.steal)));
        let generator_cpu_s = secs(generator_ticks);
        let others = machine_busy.map(|busy| {
            let ours = server_cpu_s.unwrap_or(0.0) + generator_cpu_s;
            (busy - ours / window_s.max(1e-9)).max(0.0)
        });
        Usage {
            window_s,
            cores,
            server_cpu_s,
            generator_cpu_s,
            busiest_thread,
            machine_busy,
            steal,
            others,
        }
    }

    /// The server's CPU in cores (1.0 = one core for the whole window).
    pub fn server_cores(&self) -> Option<f64> {
        self.server_cpu_s.map(|s| s / self.window_s.max(1e-9))
    }

    /// The bench's CPU in cores.
    pub fn generator_cores(&self) -> f64 {
        self.generator_cpu_s / self.window_s.max(1e-9)
    }

    /// True when the whole machine was busy (above [`BOTTLENECK_SHARE`] of
    /// its cores): server, bench and other processes competed for the CPU,
    /// so throughput says as much about the machine as about the server.
    pub fn machine_saturated(&self) -> bool {
        self.machine_busy
            .is_some_and(|busy| busy > BOTTLENECK_SHARE * self.cores as f64)
    }

    /// Why the bench itself, not the server, set the rate, if it did: see
    /// [`generator_bound`].
    pub fn generator_bottleneck(&self) -> Option<String> {
        let busiest = self.busiest_thread.as_ref().map(|(n, s)| (n.as_str(), *s));
        generator_bound(busiest, self.generator_cores(), self.cores)
    }
}

/// The flag a report carries when the generator, not the server, set the
/// rate: its busiest thread above [`BOTTLENECK_SHARE`] of a core (a
/// receiver that cannot read faster, or a publisher that cannot write
/// faster), or all its threads together above that share of every core.
/// Below it the thread waited for the server some of the time, so the
/// server set the pace.
pub fn generator_bound(
    busiest: Option<(&str, f64)>,
    cores_used: f64,
    cores: usize,
) -> Option<String> {
    if let Some((name, share)) = busiest
        && share > BOTTLENECK_SHARE
    {
        let role = thread_role(name);
        return Some(format!(
            "generator-bound: {role} thread {name} at {:.0} % of a core: the bench, not the server, set the rate",
            share * 100.0
        ));
    }
    if cores_used > BOTTLENECK_SHARE * cores as f64 {
        return Some(format!(
            "generator-bound: the bench used {cores_used:.2} of {cores} cores: it, not the server, set the rate"
        ));
    }
    None
}

/// What a bench thread does, from its name (`bench-rx-*` receive,
/// `bench-pub-rx-*` read a publisher's half, `bench-pub-*` publish).
fn thread_role(name: &str) -> &'static str {
    if name.starts_with("bench-rx-") || name.starts_with("bench-pub-rx-") {
        "receiver"
    } else if name.starts_with("bench-pub-") {
        "publisher"
    } else {
        "bench"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stat_line() {
        // A real line, with a name holding a space and a parenthesis.
        let line = "4242 (bench-rx 0)) S 1 4242 4242 0 -1 4194560 1029 0 0 0 \
                    731 215 0 0 20 0 3 0 86023 12345678 1234 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(("bench-rx 0)".to_string(), 731 + 215))
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&me).is_some(), "{me}");
    }

    #[test]
    fn reads_the_machine_line() {
        let text = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\n";
        assert_eq!(
            parse_machine(text),
            Some(MachineTicks {
                busy: 100 + 5 + 50 + 3 + 2,
                steal: 7,
                total: 160 + 1000 + 20 + 7,
            })
        );
        assert_eq!(parse_machine("intr 1 2 3"), None);
        assert!(parse_machine(&std::fs::read_to_string("/proc/stat").unwrap()).is_some());
    }

    fn sample(
        at: Instant,
        machine: (u64, u64, u64),
        server: u64,
        me: u64,
        threads: &[(u64, &str, u64)],
    ) -> Sample {
        Sample {
            at,
            machine: Some(MachineTicks {
                busy: machine.0,
                steal: machine.1,
                total: machine.2,
            }),
            server: Some(server),
            me: Some(me),
            threads: threads
                .iter()
                .map(|&(tid, name, ticks)| ThreadTicks {
                    tid,
                    name: name.into(),
                    ticks,
                })
                .collect(),
            sampler_tid: Some(1),
        }
    }

    #[test]
    fn shares_come_from_the_two_samples() {
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(2);
        let a = sample(
            t0,
            (1000, 10, 5000),
            300,
            100,
            &[(1, "tcphub", 10), (2, "bench-rx-0", 50)],
        );
        let b = sample(
            t1,
            (1380, 30, 5400),
            450,
            290,
            &[(1, "tcphub", 12), (2, "bench-rx-0", 240)],
        );
        let u = Usage::between(&a, &b, false);
        assert!((u.window_s - 2.0).abs() < 1e-9);
        assert_eq!(u.server_cpu_s, Some(1.5));
        assert!((u.server_cores().unwrap() - 0.75).abs() < 1e-9);
        assert!((u.generator_cpu_s - 1.9).abs() < 1e-9);
        let (name, share) = u.busiest_thread.clone().unwrap();
        assert_eq!(name, "bench-rx-0");
        assert!((share - 0.95).abs() < 1e-9);
        assert!((u.machine_busy.unwrap() - 1.9).abs() < 1e-9);
        assert!((u.steal.unwrap() - 0.1).abs() < 1e-9);
        // 1.9 cores busy, of which 0.75 server and 0.95 bench
        assert!((u.others.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(
            u.generator_bottleneck().as_deref(),
            Some(
                "generator-bound: receiver thread bench-rx-0 at 95 % of a core: \
                 the bench, not the server, set the rate"
            )
        );

        // In-process: the server is this process's threads that are not the bench's.
        let a = sample(
            t0,
            (0, 0, 0),
            0,
            0,
            &[(1, "main", 0), (2, "bench-rx-0", 0), (3, "dispatcher", 0)],
        );
        let b = sample(
            t1,
            (0, 0, 0),
            0,
            0,
            &[
                (1, "main", 4),
                (2, "bench-rx-0", 60),
                (3, "dispatcher", 100),
                (4, "client-1", 20),
            ],
        );
        let u = Usage::between(&a, &b, true);
        assert_eq!(u.server_cpu_s, Some(1.2));
        assert!((u.generator_cpu_s - 0.64).abs() < 1e-9);
        assert_eq!(u.machine_busy, None);
        assert_eq!(u.generator_bottleneck(), None);
    }

    #[test]
    fn generator_bound_names_the_thread_that_set_the_rate() {
        let flag = |name, share, used| generator_bound(Some((name, share)), used, 2);
        assert!(
            flag("bench-rx-0", 0.97, 1.0)
                .unwrap()
                .starts_with("generator-bound: receiver thread bench-rx-0 at 97 % of a core")
        );
        assert!(
            flag("bench-pub-0", 0.95, 1.0)
                .unwrap()
                .contains("publisher thread bench-pub-0 at 95 %")
        );
        assert!(
            flag("bench-pub-rx-1", 0.93, 1.0)
                .unwrap()
                .contains("receiver thread")
        );
        // at or under 90 % the thread waited for the server: no flag
        assert_eq!(flag("bench-rx-0", 0.9, 1.0), None);
        assert_eq!(flag("bench-rx-0", 0.69, 1.0), None);
        // many threads, none busy alone, the whole machine's worth together
        assert!(
            flag("bench-rx-3", 0.6, 1.85)
                .unwrap()
                .contains("the bench used 1.85 of 2 cores")
        );
        assert_eq!(generator_bound(None, 0.1, 2), None);
    }
}
