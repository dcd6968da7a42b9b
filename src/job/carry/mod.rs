//! The carry window (issue 14, G7): right after a swap, lock-less writers
//! (class A until it notices the new inode and reopens, class C for the
//! line in flight, class B for ever) still append to the old inode, now a
//! rotated file. Left there, their lines reach the live path only at the
//! next run. So the run keeps watching the old inode for `carry_window`
//! (polled every [`TICK`]) and appends each complete line that lands there
//! to the live log at once, under the writers' `flock`, until the census
//! shows no process holds the old inode for writing, or the window ends.
//!
//! Lines carried here are live-log lines from then on: the late-write
//! watch's `carried` advances with them, so the next fold does not place
//! them again, and the swap point moves to the end of each carry, so the
//! old inode's later lines (a writer still there when the window closed)
//! fold in after the ones carried, in that writer's order. Lines written to the old inode after the
//! window are carried by the next run, at the swap point, as before
//! (`late.rs`).
//!
//! Crash order of one carry (G2): (1) the late-write state is rewritten
//! with the watch advanced and a [`Carrying`] journal naming the live offset
//! (atomic replace: file fsync, rename, directory fsync); (2) the bytes are
//! appended in one `write`; (3) the log is fdatasynced. A kill or a power
//! cut between (1) and (3) leaves the journal, and the next run's
//! `late::load` checks the live log at that offset: the bytes are there
//! (the watch stays advanced) or not (it goes back): never lost, never
//! carried twice. Step (3) comes before the next carry's (1), so no journal
//! on disk can name a carry whose predecessors' bytes are not durable.
//!
//! The open gate ([`Gate`]): where the run may (a fanotify mark as root, a
//! write lease as the log's owner), an open of the live path during the
//! window waits until the old inode's complete lines are carried, so an
//! app that reopens right after its last write to the old inode reads that
//! write (issue 14's class-A app).
//!
//! Invariant: each writer's lines keep their order (a writer's lines reach
//! the old inode before it reopens, and are carried before or as they come;
//! its later lines go to the live log after that).

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::job::census::{self};
use crate::job::late::LateWrites;

mod copy;
mod os;
pub use crate::job::record::report::{GateKind, Window};
use copy::{Ends, carry_all, carry_once};
pub use copy::{append_handle, first};
pub use os::Gate;
use os::Notify;

/// How often the old inode is polled for new bytes.
pub const TICK: Duration = Duration::from_millis(5);
/// How often the census of the old inode is taken.
const CENSUS_EVERY: Duration = Duration::from_millis(50);
/// With a blind census, the window closes before its end only after the
/// old inode got no line for this long: longer than a lock-less writer
/// takes to reopen after it sees a new inode (150 ms for the class-A
/// daemon), so a writer the census cannot see is still followed.
const BLIND_QUIET: Duration = Duration::from_millis(400);

/// Run the window for the file rotated by this swap. `state` is the
/// late-write state the swap made true; its watch of `rotated` advances as
/// lines are carried. `before` is the census of the log taken before the
/// swap.
///
/// The writers followed are those of `before` and those of a census of the
/// old inode taken now, after the exchange (see [`after_exchange`]): when
/// both see every process and name nobody, no process can append to the
/// old inode any more, and the window closes as soon as it holds no
/// uncarried byte, without waiting.
#[allow(clippy::too_many_arguments)]
pub fn run(
    log: &Path,
    live: &File,
    gate: Gate,
    rotated: &Path,
    old: &File,
    state_dir: &Path,
    state: &mut LateWrites,
    window: Duration,
    before: &census::Census,
) -> Result<Window> {
    let t0 = Instant::now();
    let mut out = Window {
        gated: gate.armed(),
        gate: gate.kind(),
        ..Window::default()
    };
    let notify = Notify::new(rotated);
    let writers = after_exchange(rotated, before);
    let mut polls = Polls {
        ends: Ends {
            log,
            live,
            rotated,
            old,
        },
        gate: &gate,
        state_dir,
        pids: &writers.pids,
        t0,
        window,
        // The census after the exchange is the window's first.
        last_census: Some(t0),
        last_poll: t0,
        empty_seen: writers.nobody(),
        blind: writers.blind,
        last_growth: t0,
    };
    loop {
        match polls.poll(state, &mut out)? {
            Next::Close => break,
            Next::Again => continue,
            Next::Wait => notify.wait(TICK, &gate),
        }
    }
    retire(gate, notify);
    close(out, t0, rotated, &writers)
}

/// End the gate and the wake-up: let every open waiting at the gate
/// through, remove both marks, then close both on a thread of their own.
/// Closing an fsnotify group (fanotify, inotify) waits until the kernel
/// has freed its marks, an RCU grace period (1-15 ms measured, as long as
/// the rest of a run with no writer; two closes in a row waited two):
/// with the marks removed first that wait is one, and off the run's path.
/// An open that reached the gate after the answer here is answered as the
/// close begins; the thread ends at the latest as the process exits.
fn retire(gate: Gate, notify: Notify) {
    gate.allow_pending();
    gate.unmark();
    notify.unwatch();
    let closing = move || {
        drop(gate);
        drop(notify);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("carry-close".into())
        .spawn(closing)
    {
        // No thread: the failed spawn dropped the closure, which closed
        // them here.
        tracing::debug!("closed the carry window's gate inline: {e}");
    }
}

/// Who may still append to the old inode, as the window starts.
struct Writers {
    /// The openers of the census before the swap, then those only the
    /// census after the exchange saw (each pid once).
    openers: Vec<census::Opener>,
    pids: Vec<u32>,
    /// Either census could not see every process.
    blind: bool,
}

impl Writers {
    /// Nobody holds the old inode for writing, and the censuses saw every
    /// process: no process can append to it from now on.
    fn nobody(&self) -> bool {
        !self.blind && self.pids.is_empty()
    }
}

/// The writers to follow: the census of the log taken before the swap
/// (`before`) and a census of the old inode (`rotated`) taken now, after
/// the exchange.
///
/// Why the second census: only an fd opened before the exchange reaches
/// the old inode (an open after it resolves the log's name to the new
/// inode), and an fd stays in `/proc/<pid>/fd` until it is closed. So a
/// census after the exchange that sees every process lists every process
/// that can still append to the old inode, including a per-line writer
/// (class C) that opened it between the census before the swap and the
/// exchange; one that already closed it wrote its bytes first, and the
/// window carries them before it closes (`Polls::done` waits until the old
/// inode holds no uncarried byte). A blind census proves no absence: then
/// the window waits for [`BLIND_QUIET`] as before.
fn after_exchange(rotated: &Path, before: &census::Census) -> Writers {
    let now = census::take(&[rotated]);
    let mut openers = before.openers.clone();
    for o in &now.openers {
        if !openers.iter().any(|b| b.pid == o.pid) {
            openers.push(o.clone());
        }
    }
    let mut pids: Vec<u32> = openers.iter().map(|o| o.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    Writers {
        openers,
        pids,
        blind: !before.complete() || !now.complete(),
    }
}

/// What the window does after one poll.
enum Next {
    /// The window closes.
    Close,
    /// Poll again at once (the census just found the old inode free).
    Again,
    /// Wait for new bytes in the old inode, or an open at the gate, or a
    /// [`TICK`].
    Wait,
}

/// The window's polling state: what one poll reads and advances.
struct Polls<'a> {
    ends: Ends<'a>,
    gate: &'a Gate,
    state_dir: &'a Path,
    /// The writers of the census taken before the swap and of the one
    /// taken after the exchange ([`after_exchange`]).
    pids: &'a [u32],
    t0: Instant,
    window: Duration,
    last_census: Option<Instant>,
    last_poll: Instant,
    empty_seen: bool,
    /// The census before the swap could not see every process (a PID
    /// namespace of its own, unreadable processes): an empty census of
    /// the old inode does not mean its writers left, so the window closes
    /// early only once the old inode has been quiet for [`BLIND_QUIET`].
    blind: bool,
    /// When a poll last carried a line.
    last_growth: Instant,
}

impl Polls<'_> {
    /// One poll of the old inode: carry what landed there (letting gated
    /// opens through after it), then decide whether the window closes.
    fn poll(&mut self, state: &mut LateWrites, out: &mut Window) -> Result<Next> {
        let gap = self.last_poll.elapsed();
        self.last_poll = Instant::now();
        self.gate.rearm();
        if self.writers_left() {
            self.last_carry(state, out, gap)?;
            return Ok(Next::Close);
        }
        let n = self.carry(state, out)?;
        if n > 0 {
            self.last_growth = Instant::now();
        }
        note(out, n, gap + self.last_poll.elapsed());
        if self.done(n, state) {
            return Ok(Next::Close);
        }
        if self.empty_seen && n > 0 {
            // Nobody can append any more: carry the rest now.
            return Ok(Next::Again);
        }
        if self.last_census.is_none_or(|t| t.elapsed() >= CENSUS_EVERY) {
            self.last_census = Some(Instant::now());
            // One more poll after the census finds the old inode free: its
            // last writer's final bytes landed before it closed.
            self.empty_seen = census::take_among(&[self.ends.rotated], self.pids).is_empty()
                && (!self.blind || self.last_growth.elapsed() >= BLIND_QUIET);
            if self.empty_seen {
                return Ok(Next::Again);
            }
        }
        Ok(Next::Wait)
    }

    /// Every writer that held the old inode has left it.
    ///
    /// Once that is so, a line still there was written before its writer
    /// reopened, and its writer may already have written newer lines to
    /// the live log: carrying it to the end now could put it after them.
    /// It stays for the next fold, at the swap point (the end of the last
    /// carry), which is before anything that writer wrote after reopening.
    fn writers_left(&self) -> bool {
        !self.pids.is_empty() && census::take_among(&[self.ends.rotated], self.pids).is_empty()
    }

    /// The carry made as the window closes because its writers left.
    ///
    /// With an open gate that every open so far waited at, that writer
    /// could not have written to the live log without opening it, and
    /// every open of it waited for a carry of all the complete lines then
    /// in the old inode: so the ones still there were written before it
    /// reopened, and carrying them now is in its order. Its reload waits
    /// for them. Otherwise (no gate, or a lease let go once: an open may
    /// have passed while it was not held) nothing is carried
    /// ([`Polls::writers_left`]).
    fn last_carry(&self, state: &mut LateWrites, out: &mut Window, gap: Duration) -> Result<()> {
        if self.gate.covered_every_open() {
            self.gate.pending();
            let n = carry_all(&self.ends, self.state_dir, state)?;
            note(out, n, gap + self.last_poll.elapsed());
            out.gated_opens += self.gate.allow_pending();
        }
        Ok(())
    }

    /// One poll's carry. Returns how many lines were carried.
    fn carry(&self, state: &mut LateWrites, out: &mut Window) -> Result<u64> {
        Ok(if self.gate.pending() {
            // Opens of the live path wait here: carry every complete line
            // the old inode holds now, then let them through.
            let n = carry_all(&self.ends, self.state_dir, state)?;
            out.gated_opens += self.gate.allow_pending();
            n
        } else {
            carry_once(&self.ends, Some(self.state_dir), state)?
        })
    }

    /// The window closes at its end, or once no writer of the old inode is
    /// left and it holds no uncarried byte (the last bytes of a per-line
    /// writer that closed it after the swap are carried first). `n` is the
    /// lines this poll carried.
    fn done(&self, n: u64, state: &LateWrites) -> bool {
        let (rotated, old) = (self.ends.rotated, self.ends.old);
        let settled = || {
            state
                .watches
                .iter()
                .find(|w| w.rotated == rotated)
                .is_none_or(|w| old.metadata().is_ok_and(|m| m.len() <= w.carried))
        };
        self.t0.elapsed() >= self.window || (self.empty_seen && n == 0 && settled())
    }
}

/// The window's record, once it has closed (and the gate with it): who
/// followed the new inode and who stayed on the old one.
fn close(mut out: Window, t0: Instant, rotated: &Path, writers: &Writers) -> Result<Window> {
    out.ms = ms(t0.elapsed());
    if !writers.pids.is_empty() {
        let now = census::take_among(&[rotated], &writers.pids);
        out.stayed = now.of(rotated).cloned().collect();
    }
    out.followed = writers
        .openers
        .iter()
        .filter(|o| !out.stayed.iter().any(|s| s.pid == o.pid))
        .cloned()
        .collect();
    Ok(out)
}

fn note(out: &mut Window, n: u64, waited: Duration) {
    if n > 0 {
        out.lines += n;
        out.max_carry_ms = out.max_carry_ms.max(ms(waited));
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
