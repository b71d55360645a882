//! The stack's secret keys: where they come from ([`Secrets`]) and the keys themselves,
//! one per use so that learning one output says nothing about another.
//!
//! By default every key is drawn from the operating system's random source when a
//! [`crate::Stack`] is made, at its full width (SipHash takes 128 bits, ChaCha 256), so
//! no two stacks share a key and nothing about one can be computed from outside.
//! [`Secrets::Deterministic`] derives them all from a seed instead, for runs that must
//! repeat exactly (the simulator, scenarios, `synack drill`, fuzzing).
//!
//! The random source is the `getrandom` crate, with or without std (it is itself
//! `no_std`). On a target without an operating system (synack built without its `std`
//! feature, for firmware) getrandom has no source of its own: the embedder registers
//! one, a hardware RNG, with getrandom's custom backend (build with
//! `RUSTFLAGS='--cfg getrandom_backend="custom"'` and define
//! `__getrandom_v03_custom`, as getrandom's documentation shows). `Secrets::Random` stays
//! the default there too. A test build may choose [`Secrets::Deterministic`] instead and
//! getrandom's `unsupported` backend (then `Secrets::Random` panics in `Stack::new`);
//! never a stack that faces a network.

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Where a stack's secret keys come from: the keys of its initial sequence numbers
/// (RFC 6528), ephemeral ports (RFC 6056), SYN cookies (RFC 4987), timestamp offsets
/// (RFC 7323 7.1) and its TIME_WAIT index.
///
/// # Examples
///
/// ```
/// use synack::{Config, Secrets, Stack};
/// // The default: fresh random keys for every stack.
/// assert_eq!(Config::default().secrets, Secrets::Random);
/// // Determinism where it is the point (a simulation that must repeat): never on a
/// // stack an attacker can reach.
/// let mut config = Config::default();
/// config.secrets = Secrets::Deterministic(42);
/// let (mut a, mut b) = (Stack::new(config.clone()), Stack::new(config));
/// for s in [&mut a, &mut b] {
///     s.add_address("198.18.0.1".parse().unwrap());
/// }
/// let now = synack::Instant::ZERO;
/// a.connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// b.connect(now, "198.18.0.2:80".parse().unwrap()).unwrap();
/// // The same ISN and ephemeral port: the same SYN, byte for byte.
/// assert_eq!(a.poll_transmit(now), b.poll_transmit(now));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Secrets {
    /// Fresh keys from the operating system's random source (`getrandom`) for every
    /// stack, as Linux draws its keys at boot. The default.
    #[default]
    Random,
    /// Keys derived from this seed (ChaCha20): the same for every stack made with the
    /// same seed, so simulated runs repeat exactly. Anyone who knows or guesses the seed
    /// can predict ISNs, ports and SYN cookies: never for a stack that faces a network
    /// an attacker can reach.
    Deterministic(u64),
}

/// The keys, drawn once when the stack is made. Never copied into a [`crate::Config`],
/// so a cloned configuration does not carry them to another stack.
pub(crate) struct Keys {
    /// RFC 6528's secret key F for ISNs (Linux's `net_secret`).
    pub(crate) isn: [u8; 16],
    /// The key of each connection's TSval offset (Linux's `ts_secret`).
    pub(crate) ts_offset: [u8; 16],
    /// The two SYN-cookie hash keys (Linux's `syncookie_secret[2]`).
    pub(crate) syncookie: [[u8; 16]; 2],
    /// The seed of the ephemeral-port generator.
    pub(crate) ports: [u8; 32],
    /// The key of the TIME_WAIT table's index hash.
    pub(crate) time_wait: [u8; 16],
    /// The key of the connection index's hash (drawn last, so the others stay as they
    /// were for a given deterministic seed).
    pub(crate) connections: [u8; 16],
    /// The key of the hash maps of fragment queues, held SYNs and UDP ports (drawn after
    /// the others, for the same reason).
    pub(crate) maps: [u8; 16],
    /// The TCP Fast Open cookie key (Linux's `tcp_fastopen_key`), drawn last.
    pub(crate) fastopen: [u8; 16],
}

impl Keys {
    /// Draw every key from `source`.
    ///
    /// # Panics
    /// If the operating system's random source fails (on Linux, `getrandom(2)` does not
    /// once the kernel's pool is initialised), as `std`'s `RandomState` does: a stack
    /// without secret keys must not run.
    pub(crate) fn new(source: Secrets) -> Keys {
        let mut keys = Keys {
            isn: [0; 16],
            ts_offset: [0; 16],
            syncookie: [[0; 16]; 2],
            ports: [0; 32],
            time_wait: [0; 16],
            connections: [0; 16],
            maps: [0; 16],
            fastopen: [0; 16],
        };
        match source {
            Secrets::Random => keys.fill(|b| {
                getrandom::fill(b).unwrap_or_else(|e| {
                    panic!("synack: the operating system's random source failed ({e}); cannot make secret keys")
                })
            }),
            Secrets::Deterministic(seed) => {
                let mut rng = ChaCha20Rng::seed_from_u64(seed);
                keys.fill(|b| rng.fill_bytes(b));
            }
        }
        keys
    }

    fn fill(&mut self, mut f: impl FnMut(&mut [u8])) {
        f(&mut self.isn);
        f(&mut self.ts_offset);
        f(&mut self.syncookie[0]);
        f(&mut self.syncookie[1]);
        f(&mut self.ports);
        f(&mut self.time_wait);
        f(&mut self.connections);
        f(&mut self.maps);
        f(&mut self.fastopen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(k: &Keys) -> Vec<u8> {
        let mut v = Vec::new();
        for part in [
            &k.isn[..],
            &k.ts_offset,
            &k.syncookie[0],
            &k.syncookie[1],
            &k.ports,
            &k.time_wait,
            &k.connections,
            &k.maps,
            &k.fastopen,
        ] {
            v.extend_from_slice(part);
        }
        v
    }

    #[test]
    fn random_keys_differ_between_stacks_and_between_uses() {
        let (a, b) = (Keys::new(Secrets::Random), Keys::new(Secrets::Random));
        assert_ne!(all(&a), all(&b));
        // No key is a copy of another (a 128-bit collision by chance is impossible).
        let parts = [
            a.isn,
            a.ts_offset,
            a.syncookie[0],
            a.syncookie[1],
            a.time_wait,
            a.connections,
            a.maps,
            a.fastopen,
        ];
        for (i, x) in parts.iter().enumerate() {
            assert_ne!(*x, [0; 16]);
            assert!(parts[i + 1..].iter().all(|y| y != x));
        }
    }

    #[test]
    fn deterministic_keys_repeat_for_a_seed_and_differ_between_seeds() {
        let a = Keys::new(Secrets::Deterministic(7));
        assert_eq!(all(&a), all(&Keys::new(Secrets::Deterministic(7))));
        assert_ne!(all(&a), all(&Keys::new(Secrets::Deterministic(8))));
    }
}
