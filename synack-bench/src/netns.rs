//! Network namespaces of the benchmark's own, and the child processes that measure
//! inside them.
//!
//! Every packet the Linux and TUN benchmarks send stays inside namespaces made here
//! (`ip netns add synack-bench-PID-N`), which are deleted when their [`Netns`] guard is
//! dropped: after a run, after a failure, while unwinding from a panic, and on SIGINT,
//! SIGTERM or SIGHUP (a watcher thread kills the children still running and deletes
//! every namespace left before exiting). Only SIGKILL of this process can leave one
//! behind (`ip netns list` shows it; `ip netns del NAME` removes it).
//!
//! The measuring code runs in a child: this same binary under
//! `ip netns exec NS synack-bench --netns-role ROLE`, which prints its result as one
//! JSON line on stdout (its messages go to stderr) and exits 0. The parent waits at most
//! a watchdog's time, then kills it and reports the timeout.
//!
//! A process that must keep running while the parent measures (a server, the relay of
//! `relay`) is started with [`Netns::spawn`]: its [`Background`] guard collects its
//! output, and kills and reaps it when dropped (before its namespace goes, being made
//! after it); the signal watcher kills it too, and it dies with this process (SIGKILL on
//! the parent's death, `PR_SET_PDEATHSIG`).

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest one child may run before it is killed.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Namespaces that exist now (deleted by the signal watcher if it fires).
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Children that have not been reaped (killed by the signal watcher if it fires).
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether this process may make namespaces: root, and `ip` present. The reason if not.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!(
            "needs root to create network namespaces (running as uid {euid})"
        ));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("the ip command (iproute2) is not available".into()),
    }
}

/// A network namespace made by this run, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Make a fresh namespace (its loopback is down until [`Netns::exec`] brings it up).
    pub fn new() -> Result<Netns, String> {
        watch_signals();
        let name = format!(
            "synack-bench-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        // Held while adding, so that the signal watcher deletes it if it fires meanwhile.
        let mut live = lock(&LIVE);
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        live.push(name.clone());
        Ok(Netns { name })
    }

    /// Run `argv` inside the namespace to completion; its stderr if it fails.
    pub fn exec(&self, argv: &[&str]) -> Result<(), String> {
        run_checked(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(argv),
        )
    }

    /// Run `argv` inside the namespace to completion; its stdout, or its stderr if it
    /// fails.
    pub fn output(&self, argv: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Start `argv` inside the namespace and leave it running; see [`Background`].
    pub fn spawn(&self, argv: &[&str]) -> Result<Background, String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only calls prctl,
        // which is async-signal-safe and touches no memory of ours. `ip netns exec` and
        // the programs it execs keep the setting (none is set-user-ID).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let mut child = {
            // Held while spawning, so that the signal watcher kills it if it fires.
            let mut children = lock(&CHILDREN);
            let child = cmd
                .spawn()
                .map_err(|e| format!("cannot start {argv:?} in {}: {e}", self.name))?;
            children.push(child.id());
            child
        };
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take(), stdout.clone()),
            collect(child.stderr.take(), stderr.clone()),
        ];
        Ok(Background {
            what: argv.join(" "),
            pid: child.id(),
            child: Some(child),
            stdout,
            stderr,
            readers,
        })
    }

    /// Set a sysctl of the namespace (the `net.*` ones given here are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), String> {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])
    }

    /// Run this binary with `--netns-role ROLE` inside the namespace, at most
    /// [`WATCHDOG`]; the JSON object it printed last on stdout.
    pub fn run_role(&self, role: &str) -> Result<serde_json::Value, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
        let mut child = {
            let mut children = lock(&CHILDREN);
            let child = Command::new("ip")
                .args(["netns", "exec", &self.name])
                .arg(&exe)
                .args(["--netns-role", role])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start ip netns exec: {e}"))?;
            children.push(child.id());
            child
        };
        let deadline = Instant::now() + WATCHDOG;
        let status = loop {
            {
                // Reaped and forgotten under one lock: the watcher never kills a reused pid.
                let mut children = lock(&CHILDREN);
                match child.try_wait() {
                    Ok(Some(status)) => {
                        children.retain(|&p| p != child.id());
                        break status;
                    }
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        children.retain(|&p| p != child.id());
                        return Err(format!(
                            "role {role} timed out after {} s (killed by the watchdog)",
                            WATCHDOG.as_secs()
                        ));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        children.retain(|&p| p != child.id());
                        return Err(format!("cannot wait for role {role}: {e}"));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        if !status.success() {
            return Err(format!(
                "role {role} failed ({status}); its messages are above"
            ));
        }
        out.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| format!("role {role} printed no JSON result: {out:?}"))
    }
}

/// A process started by [`Netns::spawn`], running while this guard lives: its stdout and
/// stderr are collected (by a thread each), and it is killed (SIGKILL) and reaped on
/// drop unless it was stopped or has exited before.
pub struct Background {
    what: String,
    pid: u32,
    /// None once reaped.
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Copy everything `from` gives into `into`, on a thread, until it ends.
fn collect(
    from: Option<impl std::io::Read + Send + 'static>,
    into: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut from) = from else { return };
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => lock(&into).extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })
}

impl Background {
    /// Its process id: that of the program itself, as `ip netns exec` execs it without
    /// forking.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stdout)).into_owned()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    /// Its exit status if it has exited (it is then reaped), None while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let mut children = lock(&CHILDREN);
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => {
                children.retain(|&p| p != self.pid);
                self.child = None;
                Some(status)
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                children.retain(|&p| p != self.pid);
                self.child = None;
                status
            }
        }
    }

    /// Wait at most `limit` for it to exit by itself (then for its output, at most 2 s
    /// more); killed, and an error, if it does not.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "{} did not finish in {} s (killed)",
                    self.what,
                    limit.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !self.readers.iter().all(JoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(status)
    }

    /// SIGTERM, then SIGKILL if it still runs after `grace`; reaped either way.
    pub fn stop(&mut self, grace: Duration) {
        {
            let children = lock(&CHILDREN);
            if self.child.is_some() && children.contains(&self.pid) {
                // SAFETY: kill has no memory effects; the pid is our unreaped child
                // (reaping clears `self.child` under this lock), so it names no other
                // process.
                unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }

    /// SIGKILL and reap, if it still runs.
    fn kill(&mut self) {
        let mut children = lock(&CHILDREN);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            children.retain(|&p| p != self.pid);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two fresh namespaces joined by a veth pair: `veth-a` with `a` in the first, `veth-b`
/// with `b` in the second (made inside the first, so it never appears outside them),
/// both up with their loopback.
pub fn veth_pair(
    a: std::net::Ipv4Addr,
    b: std::net::Ipv4Addr,
    prefix: u8,
) -> Result<(Netns, Netns), String> {
    let (na, nb) = (Netns::new()?, Netns::new()?);
    na.exec(&[
        "ip", "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", &nb.name,
    ])?;
    for (ns, dev, ip) in [(&na, "veth-a", a), (&nb, "veth-b", b)] {
        ns.exec(&["ip", "addr", "add", &format!("{ip}/{prefix}"), "dev", dev])?;
        ns.exec(&["ip", "link", "set", dev, "up"])?;
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
    }
    Ok((na, nb))
}

impl Drop for Netns {
    fn drop(&mut self) {
        let mut live = lock(&LIVE);
        delete(&self.name);
        live.retain(|n| *n != self.name);
    }
}

fn delete(name: &str) {
    let ok = Command::new("ip")
        .args(["netns", "del", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("synack-bench: could not delete network namespace {name}; remove it with: ip netns del {name}");
    }
}

fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Once, before the first namespace: block SIGINT, SIGTERM and SIGHUP in this thread
/// (the main one; threads started later inherit the mask, children get a clean one from
/// `Command`) and start a thread that waits for them, kills our children, deletes our
/// namespaces and exits with 128 + the signal.
fn watch_signals() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before any other use;
        // pthread_sigmask only changes the calling thread's mask, with a valid set pointer
        // and a null old-set pointer, which it allows.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is an initialised signal set and `sig` a valid place for
                // the result; the signals in it are blocked in every thread of ours.
                while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
                eprintln!(
                    "synack-bench: signal {sig}: stopping the children and deleting the namespaces"
                );
                let children = lock(&CHILDREN);
                for &pid in children.iter() {
                    // SAFETY: kill has no memory effects; `pid` is a child of ours that has
                    // not been reaped (reaping removes it under this lock), so it cannot
                    // name another process.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                for &pid in children.iter() {
                    // SAFETY: as above; a null status pointer is allowed. Reaps the child
                    // so that it is gone, not a zombie, when we exit.
                    unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
                }
                let live = lock(&LIVE);
                for name in live.iter() {
                    delete(name);
                }
                // Exit with both locks held: nothing can make another namespace now.
                std::process::exit(128 + sig);
            });
        if let Err(e) = spawned {
            eprintln!("synack-bench: no signal watcher ({e}); Ctrl-C may leave a namespace behind");
        }
    });
}

/// In a child: die with the parent (so that a parent killed outright does not leave
/// the measurement running), and make a panic in any thread end the process at once
/// with a message, rather than leave the others waiting until the watchdog.
pub fn child_setup() {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::exit(101);
    }));
}

/// RLIMIT_NOFILE at least `n` (wrk and the kernel service need a descriptor per
/// connection, each in its own process; wrk inherits it): the soft limit is raised, and
/// the hard one only if it is lower than `n` (which needs CAP_SYS_RESOURCE).
pub fn raise_fd_limit(n: u64) -> Result<(), String> {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass and own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) } != 0 {
        return Err(format!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    if current.rlim_cur >= n {
        return Ok(());
    }
    let limit = libc::rlimit {
        rlim_cur: n,
        rlim_max: current.rlim_max.max(n),
    };
    // SAFETY: setrlimit reads one rlimit from the struct we pass and own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!(
            "cannot raise the open-file limit to {n} (hard limit {}): {}; raise it with ulimit -Hn",
            current.rlim_max,
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
