//! The carry window's OS glue: what wakes it ([`Notify`], inotify on the
//! old inode) and what holds readers back until it has caught up
//! ([`Gate`], a fanotify open-permission mark or a write lease on the new
//! inode). Both degrade to nothing where the system refuses them; the
//! window then polls.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use crate::job::record::report::GateKind;

/// Wakes the window as soon as the old inode is written (inotify
/// `IN_MODIFY`, the fd and its watch), or after the tick where inotify is
/// not available.
pub(super) struct Notify(Option<(std::os::fd::OwnedFd, i32)>);

impl Notify {
    #[cfg(target_os = "linux")]
    pub(super) fn new(path: &Path) -> Notify {
        use std::os::fd::FromRawFd;
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
            return Notify(None);
        };
        // SAFETY: plain syscalls on a fresh fd we own.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if fd < 0 {
                return Notify(None);
            }
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            use std::os::fd::AsRawFd;
            let wd = libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY);
            if wd < 0 {
                return Notify(None);
            }
            Notify(Some((fd, wd)))
        }
    }

    /// Remove the watch, so that closing the fd later has no mark left to
    /// wait for (see [`Gate::unmark`]).
    pub(super) fn unwatch(&self) {
        #[cfg(target_os = "linux")]
        if let Some((fd, wd)) = &self.0 {
            use std::os::fd::AsRawFd;
            // SAFETY: a syscall on an fd we own; failure leaves the watch,
            // which the close removes.
            unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), *wd) };
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn new(_path: &Path) -> Notify {
        Notify(None)
    }

    /// Wait until the file is modified, an open waits at `gate`, or
    /// `tick` passes; drain the file's events.
    pub(super) fn wait(&self, tick: Duration, gate: &Gate) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut p: Vec<libc::pollfd> = [self.0.as_ref().map(|(fd, _)| fd), gate.wake_fd()]
                .into_iter()
                .flatten()
                .map(|fd| libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            if !p.is_empty() {
                let mut buf = [0u8; 4096];
                // SAFETY: valid pollfds and buffer for the calls' durations.
                unsafe {
                    libc::poll(p.as_mut_ptr(), p.len() as _, tick.as_millis() as i32);
                    if let Some((fd, _)) = &self.0 {
                        while libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) > 0 {}
                    }
                }
                return;
            }
        }
        std::thread::sleep(tick);
    }
}

/// The open gate: for the carry window, opens of the live path wait until
/// the window has carried every complete line the old inode holds, so a
/// reader that opens the path finds every line written before its open,
/// whatever the scheduler does (an app that reloads right after its last
/// write to the old inode, issue 14). Armed on the new file before the
/// exchange, so no open of the path escapes it. Two kinds, the first the
/// run may arm (`LOGKEEPER_OPEN_GATE=lease` forces the second, `off`
/// neither; other systems have neither):
///
/// - **fanotify** (`CAP_SYS_ADMIN`): a `FAN_OPEN_PERM` mark on the new
///   inode. Every open waits; each is let through after a carry. Closing
///   the group (the window's end, or the run's death) lets every waiting
///   open through. A stopped run (`SIGSTOP`) holds opens until it goes on
///   or dies: the kernel sets no bound.
/// - **lease** (the file's owner, or `CAP_LEASE`): a write lease
///   (`F_SETLEASE F_WRLCK`) on the new file, taken while the run's handle
///   is its only open. An open by any other process breaks it and waits;
///   the window sees the break (`F_GETLEASE` no longer says `F_WRLCK`),
///   carries, and lets go, which lets every waiting open through. It takes
///   the lease again as soon as no other process has the file open, so an
///   open is gated unless another process holds the file open at that
///   moment. The lease dies with the run's descriptor (its end, or its
///   death); a stopped run holds opens for at most
///   `/proc/sys/fs/lease-break-time` seconds (45 by default), after which
///   the kernel breaks the lease itself.
///
/// Opens with `O_NONBLOCK` fail with `EWOULDBLOCK` at a lease instead of
/// waiting (rare for regular files).
pub struct Gate(Kind);

enum Kind {
    Off,
    Fanotify {
        fd: std::os::fd::OwnedFd,
        /// Event fds read and not answered yet.
        waiting: std::cell::RefCell<Vec<i32>>,
    },
    Lease(Lease),
}

/// A write lease on the new file, through a duplicate of the run's append
/// handle (a lease belongs to the open file, which the duplicate shares:
/// the carry's writes through the handle do not break it).
struct Lease {
    fd: std::os::fd::OwnedFd,
    /// The lease is ours now.
    held: std::cell::Cell<bool>,
    /// It was let go for a break at least once: an open since then may
    /// have passed ungated (while another process held the file open).
    released: std::cell::Cell<bool>,
    /// When the kernel may have broken the lease by itself: a break that
    /// began after the last time the lease was seen whole ends at most
    /// `lease-break-time` later, and the open then goes on uncarried (the
    /// run stopped or stalled meanwhile). Seen whole: taken, or
    /// `F_GETLEASE` says `F_WRLCK`.
    lapse_at: std::cell::Cell<std::time::Instant>,
}

/// The signal the kernel sends the lease holder on a break. The default,
/// `SIGIO`, would terminate the run; `SIGURG`'s default action is to
/// ignore it. The window learns of a break from `F_GETLEASE`, not from
/// the signal.
#[cfg(target_os = "linux")]
const BREAK_SIGNAL: libc::c_int = libc::SIGURG;

/// `fcntl(F_SETSIG)` (`asm-generic/fcntl.h`; not in the `libc` crate).
#[cfg(target_os = "linux")]
const F_SETSIG: libc::c_int = 10;

impl Gate {
    /// No gate.
    pub fn off() -> Gate {
        Gate(Kind::Off)
    }

    /// Arm the gate on the inode `file` is open on. `file` must be the
    /// only open of that inode (for a lease).
    #[cfg(target_os = "linux")]
    pub fn arm(file: &File) -> Gate {
        match std::env::var("LOGKEEPER_OPEN_GATE").as_deref() {
            Ok("off") => Gate::off(),
            Ok("lease") => Gate::lease(file).unwrap_or_else(Gate::off),
            _ => Gate::fanotify(file)
                .or_else(|| Gate::lease(file))
                .unwrap_or_else(Gate::off),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn arm(_file: &File) -> Gate {
        Gate::off()
    }

    #[cfg(target_os = "linux")]
    fn fanotify(file: &File) -> Option<Gate> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: plain syscalls on fds we own; a null path marks the
        // inode `file` is open on.
        unsafe {
            let fd = libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
            );
            if fd < 0 {
                return None;
            }
            let fd = OwnedFd::from_raw_fd(fd);
            if libc::fanotify_mark(
                fd.as_raw_fd(),
                libc::FAN_MARK_ADD,
                libc::FAN_OPEN_PERM,
                file.as_raw_fd(),
                std::ptr::null(),
            ) < 0
            {
                return None;
            }
            Some(Gate(Kind::Fanotify {
                fd,
                waiting: Default::default(),
            }))
        }
    }

    #[cfg(target_os = "linux")]
    fn lease(file: &File) -> Option<Gate> {
        let fd: std::os::fd::OwnedFd = file.try_clone().ok()?.into();
        take_lease(&fd).then(|| {
            Gate(Kind::Lease(Lease {
                fd,
                held: std::cell::Cell::new(true),
                released: std::cell::Cell::new(false),
                lapse_at: std::cell::Cell::new(lapse_from_now()),
            }))
        })
    }

    pub fn kind(&self) -> GateKind {
        match self.0 {
            Kind::Off => GateKind::None,
            Kind::Fanotify { .. } => GateKind::Fanotify,
            Kind::Lease(_) => GateKind::Lease,
        }
    }

    pub fn armed(&self) -> bool {
        !matches!(self.0, Kind::Off)
    }

    /// Stop gating (fanotify: remove the group's mark; opens already
    /// waiting still wait for an answer, which [`Gate::allow_pending`] or
    /// the close gives). Closing an fsnotify group that still has marks
    /// waits for the kernel to free them, an RCU grace period (1-15 ms
    /// measured); marks removed first are freed in the background, and
    /// one grace period serves every mark removed together (the gate's and
    /// [`Notify`]'s), so the close that follows has nothing left to wait
    /// for.
    pub(super) fn unmark(&self) {
        #[cfg(target_os = "linux")]
        if let Kind::Fanotify { fd, .. } = &self.0 {
            use std::os::fd::AsRawFd;
            // SAFETY: a syscall on an fd we own; FAN_MARK_FLUSH removes
            // every inode mark of the group (its one mark). A failure
            // leaves the mark, which the close removes.
            unsafe {
                libc::fanotify_mark(
                    fd.as_raw_fd(),
                    libc::FAN_MARK_FLUSH,
                    0,
                    libc::AT_FDCWD,
                    std::ptr::null(),
                )
            };
        }
    }

    /// Every open of the live path since the exchange waited for a carry
    /// of the old inode's complete lines (or is waiting now).
    pub(super) fn covered_every_open(&self) -> bool {
        match &self.0 {
            Kind::Off => false,
            Kind::Fanotify { .. } => true,
            Kind::Lease(l) => {
                l.check_lapse();
                !l.released.get()
            }
        }
    }

    /// The fd that becomes readable when an open waits (fanotify only: a
    /// lease break is seen by [`Gate::pending`] at the next tick).
    fn wake_fd(&self) -> Option<&std::os::fd::OwnedFd> {
        match &self.0 {
            Kind::Fanotify { fd, .. } => Some(fd),
            _ => None,
        }
    }

    /// Take the lease again once no other process has the file open
    /// (a cheap `fcntl`; it fails while one does).
    pub(super) fn rearm(&self) {
        #[cfg(target_os = "linux")]
        if let Kind::Lease(l) = &self.0
            && !l.held.get()
            && take_lease(&l.fd)
        {
            l.held.set(true);
            l.lapse_at.set(lapse_from_now());
        }
    }

    /// Whether an open waits at the gate (fanotify: its events are read
    /// and kept until [`Gate::allow_pending`]; a lease: it is being broken).
    pub(super) fn pending(&self) -> bool {
        match &self.0 {
            Kind::Off => false,
            Kind::Fanotify { fd, waiting } => {
                read_events(fd, &mut waiting.borrow_mut());
                !waiting.borrow().is_empty()
            }
            Kind::Lease(l) => {
                l.check_lapse();
                l.held.get() && l.breaking()
            }
        }
    }

    /// Let every open read so far through. Returns how many (a lease: 1
    /// for the break).
    pub(super) fn allow_pending(&self) -> u64 {
        match &self.0 {
            Kind::Off => 0,
            Kind::Fanotify { fd, waiting } => {
                let waiting: Vec<i32> = std::mem::take(&mut *waiting.borrow_mut());
                allow(fd, &waiting);
                waiting.len() as u64
            }
            Kind::Lease(l) => {
                if !(l.held.get() && l.breaking()) {
                    return 0;
                }
                l.release();
                l.released.set(true);
                1
            }
        }
    }
}

/// Take a write lease on the file `fd` is open on, with [`BREAK_SIGNAL`]
/// as its break signal. Set before each take: letting a lease go
/// (`F_UNLCK`) resets the file's signal to `SIGIO`, which would kill the
/// run at the next break.
#[cfg(target_os = "linux")]
fn take_lease(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on an fd we own.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), F_SETSIG, BREAK_SIGNAL) == 0
            && libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) == 0
    }
}

/// When a lease seen whole now may have been broken by the kernel at the
/// earliest: `/proc/sys/fs/lease-break-time` (45 s by default) less a
/// margin for the clock's and the check's granularity.
fn lapse_from_now() -> std::time::Instant {
    static SECS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let secs = *SECS.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/fs/lease-break-time")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(45)
    });
    std::time::Instant::now() + Duration::from_secs(secs).saturating_sub(Duration::from_secs(2))
}

impl Lease {
    /// Seen whole now: the lapse moves on. Past its lapse and being
    /// broken: the kernel may have let an open through uncarried, so no
    /// open counts as gated any more (`released`), and the lease is not
    /// ours (taken again by [`Gate::rearm`] when the file is free).
    fn check_lapse(&self) {
        if !self.held.get() {
            return;
        }
        if !self.breaking() {
            self.lapse_at.set(lapse_from_now());
        } else if std::time::Instant::now() >= self.lapse_at.get() {
            self.release();
            self.released.set(true);
        }
    }

    /// Another open wants the file: `F_GETLEASE` says what the lease is
    /// being broken to (`F_RDLCK` or `F_UNLCK`).
    fn breaking(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: fcntl on an fd we own.
            let now = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_GETLEASE) };
            now != libc::F_WRLCK
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Let go: every open waiting on the lease goes on.
    fn release(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: fcntl on an fd we own. A lease the kernel already
            // broke (after lease-break-time) is simply not there.
            unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        }
        self.held.set(false);
    }
}

/// Read the fanotify events waiting on `fd` into `waiting` (their fds).
fn read_events(fd: &std::os::fd::OwnedFd, waiting: &mut Vec<i32>) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut buf = [0u64; 512];
        let size = std::mem::size_of::<libc::fanotify_event_metadata>();
        loop {
            // SAFETY: the buffer is valid (and 8-aligned) for its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8 * buf.len()) };
            if n <= 0 {
                break;
            }
            let bytes = n as usize;
            let mut at = 0;
            while at + size <= bytes {
                // SAFETY: the kernel wrote whole events into the buffer;
                // `at` stays 8-aligned (event_len is a multiple of 8).
                let m: libc::fanotify_event_metadata =
                    unsafe { std::ptr::read(buf.as_ptr().cast::<u8>().add(at).cast()) };
                if m.event_len as usize == 0 {
                    break;
                }
                if m.fd >= 0 {
                    waiting.push(m.fd);
                }
                at += m.event_len as usize;
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (fd, waiting);
}

/// Answer `FAN_ALLOW` to each waiting open's event, and close its fd.
fn allow(g: &std::os::fd::OwnedFd, waiting: &[i32]) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        for &fd in waiting {
            let r = libc::fanotify_response {
                fd,
                response: libc::FAN_ALLOW,
            };
            // SAFETY: `r` is valid for the write; `fd` is the event's fd,
            // ours to close once answered.
            unsafe {
                libc::write(
                    g.as_raw_fd(),
                    (&r as *const libc::fanotify_response).cast(),
                    std::mem::size_of::<libc::fanotify_response>(),
                );
                libc::close(fd);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (g, waiting);
}

impl Drop for Gate {
    fn drop(&mut self) {
        match &self.0 {
            // Answered before the group closes (closing would allow them
            // too).
            Kind::Fanotify { .. } => {
                self.allow_pending();
            }
            // Closing the duplicate would not end the lease while the run's
            // append handle lives: let go now.
            Kind::Lease(l) if l.held.get() => l.release(),
            _ => {}
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
