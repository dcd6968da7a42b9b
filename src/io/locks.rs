//! Who holds a `flock` on a file, from `/proc/locks` (Linux; elsewhere
//! nobody is known). Used to name the writer a run waits for (C.12 of
//! issue 16): the writers' lock on the live log is taken by `try_lock` in a
//! loop, so the run itself never shows up as a waiter.

use std::fs::Metadata;

/// The pids holding a `FLOCK` on the inode of `meta` (blocked waiters, the
/// `->` lines, are not holders). Best effort: empty if `/proc/locks` cannot
/// be read.
pub fn flock_holders(meta: &Metadata) -> Vec<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(text) = std::fs::read_to_string("/proc/locks") else {
            return Vec::new();
        };
        holders_in(&text, meta.dev(), meta.ino())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = meta;
        Vec::new()
    }
}

/// `/proc/locks` lines look like
/// `1: FLOCK  ADVISORY  WRITE 4242 08:01:1311 0 EOF`: the device is
/// `major:minor` in hex, the inode in decimal.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn holders_in(text: &str, dev: u64, ino: u64) -> Vec<u32> {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    );
    let mut pids: Vec<u32> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().skip(1);
            let kind = f.next()?;
            if kind != "FLOCK" {
                return None;
            }
            let (_, _, pid, inode) = (f.next()?, f.next()?, f.next()?, f.next()?);
            (inode == want).then(|| pid.parse().ok()).flatten()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// `pid 4242 (marshal)`, or just `pid 4242` if its name cannot be read.
pub fn describe_pid(pid: u32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!("pid {pid} ({})", comm.trim()),
        Err(_) => format!("pid {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_matched_by_device_and_inode_and_waiters_skipped() {
        let dev = libc::makedev(8, 1) as u64;
        let text = "1: FLOCK  ADVISORY  WRITE 4242 08:01:1311 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 77 08:01:1311 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 99 08:01:1311 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 5 08:01:13110 0 EOF\n";
        assert_eq!(holders_in(text, dev, 1311), vec![4242]);
    }
}
