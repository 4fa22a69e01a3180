//! The supervisor between the server and a command: a process that owns every process the
//! command starts, however they leave its process group, and ends them all when the command
//! ends, when it is told to, or when the server dies.
//!
//! The server forks it (std's `Command` with a `pre_exec` hook that never returns); it makes
//! itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so a process that daemonises
//! (`setsid`, a double fork, `nohup … &`) is reparented to it rather than to init, and forks
//! the command, which execs in a process group of its own. Then it waits for signals:
//!
//! - `SIGCHLD`: it reaps its children; when the command itself has exited, it kills every
//!   process left under it (its children, level by level as each one's own children are
//!   reparented to it), reaps them, and exits as the command did (the same exit status, or
//!   the same signal), so the server's `wait4` sees the command's status and the CPU time of
//!   everything reaped under it.
//! - `SIGTERM`, `SIGINT`: passed on to the command's process group (a cancel).
//! - `SIGUSR1` (the server gives up on it), `SIGHUP` (the server's thread died:
//!   `PR_SET_PDEATHSIG`): `SIGKILL` to the command's process group; the rest follows as above.
//!
//! Everything here runs in the child of a fork of a multithreaded process, so it calls only
//! system calls and allocates nothing (no library does this job: a subreaper has to be the
//! command's ancestor, and a cgroup needs a delegated hierarchy this machine may not have).

use std::io;

/// The signals the supervisor takes by `sigwaitinfo`, blocked before the command is forked.
const HANDLED: [libc::c_int; 5] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    KILL_ALL,
];

/// The signal with which the server asks the supervisor to kill everything at once.
pub const KILL_ALL: libc::c_int = libc::SIGUSR1;

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset only write into it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in HANDLED {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// The `pre_exec` hook: returns `Ok` only in the command's process (which std then execs);
/// the supervisor itself never returns.
///
/// # Safety
/// Must run as a `pre_exec` hook: in a freshly forked child, before exec.
pub unsafe fn split() -> io::Result<()> {
    // SAFETY: each call is a plain system call on this process's own state, valid in a
    // freshly forked child; no memory is shared with other threads (there are none).
    unsafe {
        let set = handled_set();
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGHUP);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        // A raw fork: glibc's fork() runs atfork handlers that take locks another thread of
        // the server may have held when it forked us.
        let command = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) as libc::pid_t;
        if command < 0 {
            return Err(io::Error::last_os_error());
        }
        if command == 0 {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            return Ok(());
        }
        supervise(command, &set)
    }
}

/// The supervisor's life after the fork: never returns.
unsafe fn supervise(command: libc::pid_t, set: &libc::sigset_t) -> ! {
    // SAFETY: system calls only, as above.
    unsafe {
        // The command's output pipes and std's exec-error pipe stay with the command: held
        // here they would keep readers waiting for an end of file.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..4096 {
                libc::close(fd);
            }
        }
        let mut status: Option<libc::c_int> = None;
        while status.is_none() {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            match libc::sigwaitinfo(set, &mut info) {
                libc::SIGCHLD => status = reap(command),
                libc::SIGTERM | libc::SIGINT => {
                    libc::kill(-command, libc::SIGTERM);
                }
                libc::SIGHUP | KILL_ALL => {
                    libc::kill(-command, libc::SIGKILL);
                }
                _ => {}
            }
        }
        end_everything();
        let status = status.unwrap_or(0);
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            libc::signal(signal, libc::SIG_DFL);
            let mut only: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut only);
            libc::sigaddset(&mut only, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

/// Reaps every child that has exited; returns the command's wait status once it has.
unsafe fn reap(command: libc::pid_t) -> Option<libc::c_int> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: a valid pointer to a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == command {
            found = Some(status);
        }
    }
}

/// Kills the children left, and the children they leave, until there are none.
unsafe fn end_everything() {
    loop {
        let mut any = false;
        // SAFETY: reads into a local buffer; kill and waitpid are plain system calls.
        unsafe {
            for_each_child(|pid| {
                any = true;
                libc::kill(pid, libc::SIGKILL);
            });
            let mut status = 0;
            if libc::waitpid(-1, &mut status, 0) < 0 && !any {
                return;
            }
        }
    }
}

/// Calls `f` with the id of each of this process's children, read from
/// `/proc/thread-self/children` (the supervisor is single-threaded).
unsafe fn for_each_child(mut f: impl FnMut(libc::pid_t)) {
    let mut buf = [0u8; 4096];
    // SAFETY: open/read/close into a local buffer.
    let n = unsafe {
        let fd = libc::open(c"/proc/thread-self/children".as_ptr(), libc::O_RDONLY);
        if fd < 0 {
            return;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return;
    }
    let mut pid: libc::pid_t = 0;
    // A number cut by the end of the buffer is left for the next round.
    for &b in &buf[..n as usize] {
        if b.is_ascii_digit() {
            pid = pid * 10 + (b - b'0') as libc::pid_t;
        } else {
            if pid > 0 {
                f(pid);
            }
            pid = 0;
        }
    }
}
