//! The lease gate's kernel protocol, with real opens from another
//! thread (a lease breaks for any open but its own file's).
use super::*;
use std::time::Instant;

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(10), "waited for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A fresh file, open read-write: the only open of its inode, as the
/// run's handle on the new log is when the gate is armed.
fn new_file() -> (tempfile::TempDir, std::path::PathBuf, File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    (dir, path, file)
}

/// A run that stalls past `lease-break-time` while an open waits (the
/// kernel then lets the open through uncarried) must not count that
/// open as gated: the window's last carry would place the old inode's
/// lines after the writer's newer ones. The stall is played by moving
/// the lapse to now; the open is real.
#[test]
fn a_lease_broken_past_its_lapse_no_longer_counts_every_open_as_gated() {
    let (_dir, path, file) = new_file();
    let Some(gate) = Gate::lease(&file) else {
        return;
    };
    let Kind::Lease(l) = &gate.0 else {
        unreachable!()
    };
    // Seen whole: the lapse moves on, the gate still covers every open.
    l.lapse_at.set(Instant::now());
    assert!(gate.covered_every_open());
    assert!(l.lapse_at.get() > Instant::now() + Duration::from_secs(1));
    let p = path.clone();
    let opener = std::thread::spawn(move || drop(File::open(p).unwrap()));
    until("the open to break the lease", || l.breaking());
    l.lapse_at.set(Instant::now());
    assert!(
        !gate.covered_every_open(),
        "a break past the lapse still counted as gated"
    );
    assert!(!l.held.get());
    opener.join().unwrap();
}

#[test]
fn an_open_waits_at_the_lease_until_it_is_let_go_and_the_lease_is_taken_again_once_the_file_is_free()
 {
    let (_dir, path, file) = new_file();
    let Some(gate) = Gate::lease(&file) else {
        // Leases disabled here (/proc/sys/fs/leases-enable = 0).
        return;
    };
    assert_eq!(gate.kind(), GateKind::Lease);
    assert!(gate.covered_every_open());
    // Writes through the gated file do not break the lease.
    use std::io::Write;
    (&file).write_all(b"x\n").unwrap();
    assert!(!gate.pending());

    let opened = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p, o) = (path.clone(), opened.clone());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let f = File::open(&p).unwrap();
        o.store(true, std::sync::atomic::Ordering::SeqCst);
        // Hold the file open until told to close it.
        rx.recv().unwrap();
        drop(f);
    });
    until("the open to break the lease", || gate.pending());
    assert!(
        !opened.load(std::sync::atomic::Ordering::SeqCst),
        "the open went on while the lease was held"
    );
    assert_eq!(gate.allow_pending(), 1);
    until("the open to go on", || {
        opened.load(std::sync::atomic::Ordering::SeqCst)
    });
    assert!(!gate.covered_every_open());
    // Another process's open holds the file: the lease cannot be taken.
    gate.rearm();
    assert!(!gate.pending() && gate.allow_pending() == 0);
    let Kind::Lease(l) = &gate.0 else {
        unreachable!()
    };
    assert!(!l.held.get(), "a lease was taken while the file was open");
    tx.send(()).unwrap();
    reader.join().unwrap();
    gate.rearm();
    assert!(l.held.get(), "the lease was not taken again");
    // A break of the lease taken again signals this process as the
    // first did (`SIGURG`, ignored; `SIGIO` would kill the test).
    let p = path.clone();
    let second = std::thread::spawn(move || drop(File::open(p).unwrap()));
    until("the second open to break the lease", || gate.pending());
    assert_eq!(gate.allow_pending(), 1);
    second.join().unwrap();
    gate.rearm();
    assert!(l.held.get(), "the lease was not taken a third time");
    drop(gate);
    // Let go at the drop: a non-blocking open (`EWOULDBLOCK` at a
    // lease) goes on.
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .expect("the lease was let go at the drop");
}
