//! The carry window's OS glue: what wakes it ([`Notify`], inotify on the
//! old inode) and what holds readers back until it has caught up
//! ([`Gate`], a fanotify open-permission mark on the new inode). Both
//! degrade to nothing where the system refuses them; the window then polls.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// Wakes the window as soon as the old inode is written (inotify
/// `IN_MODIFY`), or after the tick where inotify is not available.
pub(super) struct Notify(Option<std::os::fd::OwnedFd>);

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
            if libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) < 0 {
                return Notify(None);
            }
            Notify(Some(fd))
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
            let mut p: Vec<libc::pollfd> = [self.0.as_ref(), gate.fd.as_ref()]
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
                    if let Some(fd) = &self.0 {
                        while libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) > 0 {}
                    }
                }
                return;
            }
        }
        std::thread::sleep(tick);
    }
}

/// The open gate (Linux, `CAP_SYS_ADMIN`): a fanotify `FAN_OPEN_PERM` mark
/// on the new live inode for the carry window. An open of the live path
/// waits until the window has carried every complete line the old inode
/// holds, so a reader that opens the path finds every line written before
/// its open, whatever the scheduler does (an app that reloads right after
/// its last write to the old inode, issue 14). Armed on the new file
/// before the exchange, so no open of the path escapes it. Closing the
/// group (the window's end, or the run's death) lets every waiting open
/// through: the kernel answers for a group that is gone. Not armed where
/// fanotify permission events are refused (not root, other systems, or
/// `LOGKEEPER_OPEN_GATE=off`): then the window only polls.
pub struct Gate {
    fd: Option<std::os::fd::OwnedFd>,
    /// Event fds read and not answered yet.
    waiting: std::cell::RefCell<Vec<i32>>,
}

impl Gate {
    /// No gate.
    pub fn off() -> Gate {
        Gate {
            fd: None,
            waiting: Default::default(),
        }
    }

    /// Arm the gate on the inode `file` is open on.
    #[cfg(target_os = "linux")]
    pub fn arm(file: &File) -> Gate {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        if std::env::var("LOGKEEPER_OPEN_GATE").is_ok_and(|v| v == "off") {
            return Gate::off();
        }
        // SAFETY: plain syscalls on fds we own; a null path marks the
        // inode `file` is open on.
        unsafe {
            let fd = libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
            );
            if fd < 0 {
                return Gate::off();
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
                return Gate::off();
            }
            Gate {
                fd: Some(fd),
                waiting: Default::default(),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn arm(_file: &File) -> Gate {
        Gate::off()
    }

    pub fn armed(&self) -> bool {
        self.fd.is_some()
    }

    /// Whether an open waits at the gate (its events are read and kept
    /// until [`Gate::allow_pending`]).
    pub(super) fn pending(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use std::os::fd::AsRawFd;
            let mut buf = [0u64; 512];
            let size = std::mem::size_of::<libc::fanotify_event_metadata>();
            loop {
                // SAFETY: the buffer is valid (and 8-aligned) for its length.
                let n =
                    unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8 * buf.len()) };
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
                        self.waiting.borrow_mut().push(m.fd);
                    }
                    at += m.event_len as usize;
                }
            }
        }
        !self.waiting.borrow().is_empty()
    }

    /// Let every open read so far through. Returns how many.
    pub(super) fn allow_pending(&self) -> u64 {
        let waiting: Vec<i32> = std::mem::take(&mut *self.waiting.borrow_mut());
        #[cfg(target_os = "linux")]
        if let Some(g) = &self.fd {
            use std::os::fd::AsRawFd;
            for &fd in &waiting {
                let r = libc::fanotify_response {
                    fd,
                    response: libc::FAN_ALLOW,
                };
                // SAFETY: `r` is valid for the write; `fd` is the event's
                // fd, ours to close once answered.
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
        waiting.len() as u64
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // Answered before the group closes (closing would allow them too).
        self.allow_pending();
    }
}
