//! Canned simulator runs of the situations in the TCP lifecycle: handshakes, closes in
//! every order, lost and late segments, and the ways connections get stuck. Each scenario
//! scripts two applications over a [`crate::sim::Network`], records a [`Trace`], and checks
//! its own expected outcome. `synack demo` shows them; the test suite runs them.

mod catalog;
mod world;

use std::time::Duration;

pub use world::{World, CLIENT, SERVER};

use crate::trace::Trace;

/// Knobs a user may turn on any scenario.
///
/// ```
/// use std::time::Duration;
/// use synack::scenario::{self, ScenarioOptions};
/// let mut opts = ScenarioOptions::default();
/// opts.seed = 7;
/// opts.delay = Duration::from_millis(50); // a longer path
/// let run = scenario::find("handshake-and-close").unwrap().run(&opts);
/// assert!(run.passed());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ScenarioOptions {
    /// Seed of the simulator and of both stacks' secrets (same seed, same run).
    pub seed: u64,
    /// Extra random loss on both directions, in percent.
    pub loss_pct: f64,
    /// Extra reordering on both directions, in percent.
    pub reorder_pct: f64,
    /// One-way delay.
    pub delay: Duration,
}

impl Default for ScenarioOptions {
    fn default() -> ScenarioOptions {
        ScenarioOptions {
            seed: 1,
            loss_pct: 0.0,
            reorder_pct: 0.0,
            delay: Duration::from_millis(10),
        }
    }
}

/// One named expectation and whether it held.
///
/// ```
/// use synack::scenario::{self, ScenarioOptions};
/// let run = scenario::find("refused").unwrap().run(&ScenarioOptions::default());
/// for check in &run.checks {
///     assert!(check.passed, "{}: {}", check.name, check.detail);
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Check {
    /// What is expected, in a few words.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was observed.
    pub detail: String,
}

/// The result of running a scenario.
///
/// ```
/// use synack::scenario::{self, ScenarioOptions};
/// let run = scenario::find("syn-lost").unwrap().run(&ScenarioOptions::default());
/// assert!(run.passed());
/// assert!(!run.checks.is_empty() && !run.packets.is_empty());
/// println!("{}: {}", run.name, run.lesson);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ScenarioRun {
    /// The scenario's name.
    pub name: &'static str,
    /// What happened, record by record.
    pub trace: Trace,
    /// Every packet on the simulated wire, bytes and all (for `trace::pcap`).
    pub packets: Vec<crate::sim::PacketRecord>,
    /// The expectations and their outcome.
    pub checks: Vec<Check>,
    /// What the run teaches, for the reader.
    pub lesson: &'static str,
}

impl ScenarioRun {
    /// True when every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The check named `name`, if any.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// A scenario's entry in the catalogue.
///
/// ```
/// use synack::scenario::{self, ScenarioOptions};
/// let first = &scenario::list()[0];
/// assert_eq!(first.name, "handshake-and-close");
/// println!("{}: {}", first.name, first.summary);
/// assert!(first.run(&ScenarioOptions::default()).passed());
/// ```
#[derive(Clone, Copy)]
pub struct Scenario {
    /// Its name (`synack demo NAME`).
    pub name: &'static str,
    /// One line saying what it shows.
    pub summary: &'static str,
    run: fn(&ScenarioOptions) -> ScenarioRun,
}

impl Scenario {
    /// Run it.
    pub fn run(&self, opts: &ScenarioOptions) -> ScenarioRun {
        (self.run)(opts)
    }
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .finish()
    }
}

/// Every scenario, the default (`handshake-and-close`) first.
pub fn list() -> &'static [Scenario] {
    catalog::SCENARIOS
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    list().iter().find(|s| s.name == name)
}

/// Builds the list of checks of a run.
#[derive(Default)]
pub(crate) struct Checks(Vec<Check>);

impl Checks {
    pub(crate) fn add(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.0.push(Check {
            name: name.to_string(),
            passed,
            detail: detail.into(),
        });
    }
}
