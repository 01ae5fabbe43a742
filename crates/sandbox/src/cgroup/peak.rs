//! The peak memory of one invocation, for the REPORT line's `Max Memory Used`.
//!
//! - v1: `memory.max_usage_in_bytes`, reset by writing `0` before each invocation.
//! - v2 on Linux 6.12 and later: `memory.peak` is opened once per environment; a write through
//!   that descriptor resets the peak it reports, so each invocation reads its own.
//! - v2 before 6.12: `memory.peak` is the group's lifetime peak and cannot be reset. When it rose
//!   during the invocation, the new value is the invocation's peak. Otherwise the invocation
//!   stayed below an earlier one's, and its peak is the largest `memory.current` seen at its
//!   start, at its end and at each [`PeakMeter::SAMPLE`] while it ran; a spike shorter than
//!   that interval can be missed.
//!
//! The files are opened once per environment ([`CgroupFile`]) and read (or written) at offset 0
//! for each invocation, so measuring costs no path lookups.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::file::{CgroupFile, read_u64_at_start};
use super::{Cgroup, Layout};
use crate::kernel::Kernel;

/// Measures one invocation's peak memory at a time, in one environment.
#[derive(Debug)]
pub struct PeakMeter {
    how: How,
    /// The lifetime peak when the invocation started, and the most seen since (sampled mode).
    start_peak: u64,
    seen: u64,
}

#[derive(Debug)]
enum How {
    /// v1's resettable high-water mark.
    Reset { usage: CgroupFile },
    /// v2's `memory.peak`, reset per descriptor.
    Descriptor(File),
    /// v2 without per-descriptor reset: the lifetime peak plus samples of the current usage.
    Sampled {
        peak: CgroupFile,
        current: CgroupFile,
    },
}

impl PeakMeter {
    /// How often a sampled meter reads `memory.current` while an invocation runs.
    pub const SAMPLE: Duration = Duration::from_millis(50);

    /// A meter for `cg`, using the best method the kernel offers.
    pub fn new(cg: &Cgroup, k: &dyn Kernel) -> Self {
        let how = match &cg.layout {
            Layout::V1 { .. } => How::Reset {
                usage: CgroupFile::new(cg.v1("memory").join("memory.max_usage_in_bytes"), k, true),
            },
            Layout::V2 { .. } => {
                let peak = cg.v2().join("memory.peak");
                // Before 6.12 the file has no write handler: opening it for writing fails.
                match k.open_rw(&peak) {
                    Ok(f) if f.write_at(b"reset", 0).is_ok() => How::Descriptor(f),
                    _ => How::Sampled {
                        peak: CgroupFile::new(peak, k, false),
                        current: CgroupFile::new(cg.v2().join("memory.current"), k, false),
                    },
                }
            }
        };
        Self {
            how,
            start_peak: 0,
            seen: 0,
        }
    }

    /// Whether the invocation's peak is exact only if [`sample`](Self::sample) is called every
    /// [`SAMPLE`](Self::SAMPLE) while it runs.
    pub fn wants_samples(&self) -> bool {
        matches!(self.how, How::Sampled { .. })
    }

    /// Starts measuring a new invocation.
    pub fn start(&mut self, k: &dyn Kernel) -> io::Result<()> {
        match &self.how {
            How::Reset { usage } => usage.write(k, "0"),
            How::Descriptor(f) => f.write_at(b"reset", 0).map(drop),
            How::Sampled { peak, current } => {
                self.start_peak = peak.read_u64(k)?;
                self.seen = current.read_u64(k)?;
                Ok(())
            }
        }
    }

    /// Notes the current usage (sampled mode; a no-op otherwise).
    pub fn sample(&mut self, k: &dyn Kernel) {
        if let How::Sampled { current, .. } = &self.how
            && let Ok(now) = current.read_u64(k)
        {
            self.seen = self.seen.max(now);
        }
    }

    /// The invocation's peak, bytes.
    pub fn finish(&mut self, k: &dyn Kernel) -> io::Result<u64> {
        match &self.how {
            How::Reset { usage } => usage.read_u64(k),
            How::Descriptor(f) => read_u64_at_start(f),
            How::Sampled { peak, .. } => {
                let lifetime = peak.read_u64(k)?;
                if lifetime > self.start_peak {
                    return Ok(lifetime);
                }
                self.sample(k);
                Ok(self.seen)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Limits;
    use crate::kernel::RecordingKernel;

    fn v2_group(k: &RecordingKernel) -> Cgroup {
        let layout = Layout::V2 {
            root: "/cg".into(),
            subtree: false,
        };
        let limits = Limits {
            memory_bytes: 128 << 20,
            cpu_quota_us: None,
            cpu_period_us: 100_000,
            pids_max: 1024,
        };
        Cgroup::create(k, &layout, "lamina/env-1", limits).unwrap()
    }

    #[test]
    fn without_per_descriptor_reset_a_later_smaller_invocation_reports_its_own_usage() {
        let k = RecordingKernel::default();
        let cg = v2_group(&k);
        let mut m = PeakMeter::new(&cg, &k);
        assert!(m.wants_samples(), "the fake kernel cannot open files");
        let (peak, current) = (
            "/cg/lamina/env-1/memory.peak",
            "/cg/lamina/env-1/memory.current",
        );

        // The first invocation sets the lifetime record: that is its peak.
        k.set_file(peak, "10485760\n");
        k.set_file(current, "10485760\n");
        m.start(&k).unwrap();
        k.set_file(peak, "104857600\n");
        k.set_file(current, "20971520\n");
        assert_eq!(m.finish(&k).unwrap(), 100 << 20);

        // The second stays below it: its peak is the most it was seen using.
        m.start(&k).unwrap();
        k.set_file(current, "31457280\n");
        m.sample(&k);
        k.set_file(current, "15728640\n");
        assert_eq!(m.finish(&k).unwrap(), 30 << 20);
    }

    #[test]
    fn v1_resets_the_high_water_mark_before_each_invocation() {
        let k = RecordingKernel::default();
        let layout = Layout::V1 { root: "/cg".into() };
        let limits = Limits {
            memory_bytes: 128 << 20,
            cpu_quota_us: None,
            cpu_period_us: 100_000,
            pids_max: 1024,
        };
        let cg = Cgroup::create(&k, &layout, "lamina/env-1", limits).unwrap();
        let mut m = PeakMeter::new(&cg, &k);
        assert!(!m.wants_samples());
        m.start(&k).unwrap();
        let usage = "/cg/memory/lamina/env-1/memory.max_usage_in_bytes";
        assert_eq!(k.read(usage.as_ref()).unwrap(), "0");
        k.set_file(usage, "52428800\n");
        assert_eq!(m.finish(&k).unwrap(), 50 << 20);
    }
}
