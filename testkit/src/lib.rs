//! `tandem-testkit`: helpers that several crates' test suites share (a dev-dependency only).
//!
//! The fuzz tests start from a valid input (a signed tx, a proposal, a payload transaction)
//! and change it the ways a hostile or broken peer would: [`mutation`] draws one such change.
//! The suites that run a binary stop it as an operator would: [`terminate`].

use proptest::{prelude::*, test_runner::Config};

/// One change to a valid byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// XOR the byte at `index % len` with a non-zero `mask`.
    Flip {
        /// Position (taken modulo the length).
        index: usize,
        /// Bits to flip; never zero.
        mask: u8,
    },
    /// Keep only the first `len % original length` bytes.
    Truncate {
        /// New length (taken modulo the length).
        len: usize,
    },
    /// Insert `byte` before position `index % (len + 1)`.
    Insert {
        /// Position (taken modulo the length plus one).
        index: usize,
        /// The inserted byte.
        byte: u8,
    },
    /// Replace everything with these bytes.
    Replace(Vec<u8>),
}

impl Mutation {
    /// The changed copy of `valid`, which must not be empty.
    pub fn apply(&self, valid: &[u8]) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        match self {
            Self::Flip { index, mask } => bytes[index % valid.len()] ^= mask,
            Self::Truncate { len } => bytes.truncate(len % valid.len()),
            Self::Insert { index, byte } => bytes.insert(index % (valid.len() + 1), *byte),
            Self::Replace(other) => bytes.clone_from(other),
        }
        bytes
    }
}

/// Mostly single-byte flips, then truncations, insertions and wholesale replacements by up
/// to `max_replacement` arbitrary bytes.
pub fn mutation(max_replacement: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=u8::MAX).prop_map(|(index, mask)| Mutation::Flip { index, mask }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(index, byte)| Mutation::Insert { index, byte }),
        1 => proptest::collection::vec(any::<u8>(), 0..max_replacement).prop_map(Mutation::Replace),
    ]
}

/// The environment variable that multiplies every fuzz suite's case count ([`scaled`]).
pub const FUZZ_SCALE_VAR: &str = "TANDEM_FUZZ_SCALE";

/// `n` times the positive integer in [`FUZZ_SCALE_VAR`] (1 when unset), so that a long fuzz
/// campaign is the usual test command with the variable set.
///
/// # Panics
///
/// If the variable is set to anything but a positive integer: a campaign that silently ran
/// the default number of cases would look like a pass.
pub fn scaled(n: u32) -> u32 {
    let value = std::env::var_os(FUZZ_SCALE_VAR);
    match scale(value.as_deref().map(|v| v.to_str().ok_or(v))) {
        Ok(scale) => n.saturating_mul(scale),
        Err(message) => panic!("{message}"),
    }
}

/// The scale that the value of [`FUZZ_SCALE_VAR`] (`None` when unset; `Err` when not
/// Unicode) names.
fn scale(value: Option<Result<&str, &std::ffi::OsStr>>) -> Result<u32, String> {
    match value {
        None => Ok(1),
        Some(Ok(text)) => match text.trim().parse::<u32>() {
            Ok(scale) if scale > 0 => Ok(scale),
            _ => Err(format!(
                "{FUZZ_SCALE_VAR} must be a positive integer, got {text:?}"
            )),
        },
        Some(Err(raw)) => Err(format!(
            "{FUZZ_SCALE_VAR} must be a positive integer, got \"{}\"",
            raw.display()
        )),
    }
}

/// [`scaled`]`(n)` cases and no regression files (the suites' inputs are built at run time).
pub fn cases(n: u32) -> Config {
    Config {
        cases: scaled(n),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A loopback TCP port that is free now and stays out of reach of every `bind(…:0)`: it is
/// drawn below Linux's ephemeral range (32768 and up), where the kernel never hands out ports.
///
/// For a test that stops and restarts a process on the same port: between two runs the port is
/// unbound, and a port from `bind(…:0)` could meanwhile go to any other process on the machine
/// (another test's server or client), which then makes the restart fail with "address in use".
/// Ports are drawn from a sequence seeded by the process id, so that parallel test processes
/// draw different ones, and each is checked free by binding it once.
///
/// # Panics
/// If no port in the range can be bound.
pub fn restartable_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 32_768 - LOW;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..SPAN {
        let draw = NEXT.fetch_add(1, Ordering::Relaxed);
        let offset = seed.wrapping_add(draw.wrapping_mul(7_919)) % SPAN;
        let port = u16::try_from(LOW + offset).expect("below 32768");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..32768");
}

/// Sends SIGTERM to `child` and waits for it to exit, failing the test if it has not within
/// `within`; returns its exit status. For the suites that check a binary's clean shutdown.
pub fn terminate(
    child: &mut std::process::Child,
    within: std::time::Duration,
) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    let end = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        assert!(
            std::time::Instant::now() < end,
            "process {pid} did not exit within {within:?} after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restartable_ports_are_free_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| restartable_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|p| (20_000..32_768).contains(p)));
    }

    #[test]
    fn the_scale_is_a_positive_integer_or_one_when_unset() {
        assert_eq!(scale(None), Ok(1));
        assert_eq!(scale(Some(Ok("20"))), Ok(20));
        assert_eq!(scale(Some(Ok(" 3\n"))), Ok(3));
        for bad in ["0", "-2", "1.5", "", "ten"] {
            let err = scale(Some(Ok(bad))).unwrap_err();
            assert!(err.contains(FUZZ_SCALE_VAR) && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn every_mutation_changes_or_keeps_length_as_described() {
        let valid = [1_u8, 2, 3, 4];
        assert_eq!(
            Mutation::Flip {
                index: 5,
                mask: 0xff
            }
            .apply(&valid),
            [1, 0xfd, 3, 4]
        );
        assert_eq!(Mutation::Truncate { len: 6 }.apply(&valid), [1, 2]);
        assert_eq!(
            Mutation::Insert { index: 4, byte: 9 }.apply(&valid),
            [1, 2, 3, 4, 9]
        );
        assert_eq!(Mutation::Replace(vec![]).apply(&valid), Vec::<u8>::new());
    }
}
