//! The watchdog's sweep cost per process at 1,000 real processes, against the physical limit.
//!
//! Three ways to read the resident memory of the same 1,000 idle child processes, one sweep per
//! iteration:
//! * `statm_pread_kept_open`: the limit. One `/proc/PID/statm` descriptor per process, kept open
//!   and read with pread at offset 0, parsed for the resident pages. Nothing else.
//! * `sysinfo_memory_only`: sysinfo refreshing only memory (`without_tasks()`), which is what the
//!   watchdog used before (it opens and reads `stat` and `status` per process).
//! * `watchdog_reader`: what the watchdog uses now, [`StatmReader::read`], including its
//!   bookkeeping (start times, zombie and exit handling, the result map).
//!
//! `scripts/bench-sweep` runs this and turns criterion's estimates into ns per process.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, Stdio};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outage_lab_watchdog::statm::{StatmReader, parse_resident_pages};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// How many processes a sweep reads: a 500-server fleet (an agent and a storage process each).
const PROCESSES: usize = 1_000;

/// Idle children, killed and reaped when dropped (also when a benchmark panics).
struct Fleet(Vec<Child>);

impl Fleet {
    fn start(n: usize) -> Self {
        let children = (0..n)
            .map(|_| {
                Command::new("sleep")
                    .arg("3600")
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn sleep")
            })
            .collect();
        Self(children)
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

fn sweep(c: &mut Criterion) {
    let fleet = Fleet::start(PROCESSES);
    let pids = fleet.pids();
    let mut group = c.benchmark_group(format!("sweep_{PROCESSES}"));
    group.throughput(Throughput::Elements(PROCESSES as u64));

    let files: Vec<File> = pids
        .iter()
        .map(|pid| File::open(format!("/proc/{pid}/statm")).expect("open statm"))
        .collect();
    group.bench_function("statm_pread_kept_open", |b| {
        let mut buf = [0u8; 128];
        b.iter(|| {
            let mut total = 0u64;
            for f in &files {
                let n = f.read_at(&mut buf, 0).expect("pread");
                total += parse_resident_pages(&buf[..n]).expect("parse");
            }
            std::hint::black_box(total)
        });
    });

    let sys_pids: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p)).collect();
    let mut system = System::new().expect("sysinfo reads /proc");
    group.bench_function("sysinfo_memory_only", |b| {
        b.iter(|| {
            system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&sys_pids),
                true,
                ProcessRefreshKind::nothing().with_memory().without_tasks(),
            );
            let total: u64 = sys_pids
                .iter()
                .filter_map(|p| system.process(*p))
                .map(|p| p.memory())
                .sum();
            std::hint::black_box(total)
        });
    });

    let mut reader = StatmReader::new();
    group.bench_function("watchdog_reader", |b| {
        b.iter(|| std::hint::black_box(reader.read(&pids).len()));
    });
    group.finish();
    drop(fleet);
}

criterion_group!(benches, sweep);
criterion_main!(benches);
