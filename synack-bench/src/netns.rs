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

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
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
