//! Health checks: one control thread per backend runs the configured checks every interval, and a
//! [`Tracker`] turns the results into transitions with rise/fall counts and a hold-down. The
//! outcome is a [`HealthView`]: `address -> healthy`, with the counters the metrics export and a
//! change channel per subscriber, so that every transition triggers a table rebuild and swap.
//!
//! Flap damping: a backend that became unhealthy stays unhealthy for at least `hold_down`, even
//! when it passes `rise` rounds sooner (the rounds still count, and it recovers as soon as the
//! hold-down ends if its last `rise` rounds passed). Going down is never delayed: a backend that
//! fails `fall` rounds is taken out at once. Each director decides on its own.

use super::probe::{self, GueProbe};
use crate::healthcheck_config::HealthcheckConfig;
use chance_director::{Backend, BackendState};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One backend's rise/fall and hold-down state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracker {
    healthy: bool,
    passes: u32,
    fails: u32,
    /// When it last became unhealthy (the hold-down runs from there).
    went_down: Option<Instant>,
}

impl Tracker {
    /// A backend starting `healthy` (the file's value) with no history.
    pub fn new(healthy: bool) -> Self {
        Self {
            healthy,
            passes: 0,
            fails: 0,
            went_down: None,
        }
    }

    /// Whether the backend counts as healthy.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Records one round's result at `now`; returns the new health when it changes.
    pub fn record(
        &mut self,
        passed: bool,
        now: Instant,
        config: &HealthcheckConfig,
    ) -> Option<bool> {
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.fails = 0;
            let held = self
                .went_down
                .is_some_and(|at| now.saturating_duration_since(at) < config.hold_down);
            if !self.healthy && self.passes >= config.rise && !held {
                self.healthy = true;
                return Some(true);
            }
        } else {
            self.fails = self.fails.saturating_add(1);
            self.passes = 0;
            if self.healthy && self.fails >= config.fall {
                self.healthy = false;
                self.went_down = Some(now);
                return Some(false);
            }
        }
        None
    }
}

/// What the view knows of one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackendHealth {
    /// Whether it counts as healthy.
    pub healthy: bool,
    /// Rounds passed.
    pub checks_passed: u64,
    /// Rounds failed.
    pub checks_failed: u64,
    /// Transitions to healthy.
    pub went_up: u64,
    /// Transitions to unhealthy.
    pub went_down: u64,
    /// Why the last failed round failed.
    pub last_error: Option<String>,
    /// Rise/fall counts and hold-down: kept in the view so that they outlive a restart of the
    /// checks (a reload).
    #[serde(skip)]
    tracker: Tracker,
    /// When it last became healthy again: until it has settled it is built as filling.
    #[serde(skip)]
    came_up: Option<Instant>,
}

/// A change of one backend's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthChange {
    /// The backend.
    pub address: Ipv4Addr,
    /// Its new health.
    pub healthy: bool,
}

/// `address -> health` for every checked backend, and who to tell when it changes.
#[derive(Debug, Default)]
pub struct HealthView {
    backends: Mutex<BTreeMap<Ipv4Addr, BackendHealth>>,
    subscribers: Mutex<Vec<Sender<HealthChange>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HealthView {
    /// A view of `backends` at the health the file gives them.
    pub fn new(backends: &[Backend]) -> Self {
        let view = Self::default();
        view.track(backends);
        view
    }

    /// Tracks exactly `backends`: new ones start at the file's health, known ones keep theirs
    /// and their counters, gone ones are forgotten.
    pub fn track(&self, backends: &[Backend]) {
        let mut map = lock(&self.backends);
        map.retain(|a, _| backends.iter().any(|b| b.address == *a));
        for b in backends {
            map.entry(b.address).or_insert_with(|| BackendHealth {
                healthy: b.healthy,
                tracker: Tracker::new(b.healthy),
                ..BackendHealth::default()
            });
        }
    }

    /// The health of every tracked backend.
    pub fn snapshot(&self) -> BTreeMap<Ipv4Addr, BackendHealth> {
        lock(&self.backends).clone()
    }

    /// Whether `address` is healthy (`None`: not tracked).
    pub fn healthy(&self, address: Ipv4Addr) -> Option<bool> {
        lock(&self.backends).get(&address).map(|h| h.healthy)
    }

    /// `backends` with `healthy` as the checks say at `now`: what the table builder builds from.
    ///
    /// An active backend whose checks passed again less than `settle` ago is given as filling:
    /// the table is built from the current states only, and while two or more backends were
    /// unhealthy, the connections of its rows went to backends that a returning *active* one
    /// would push off the hop list. As filling it takes new connections and still passes the
    /// others on; once it has settled (see [`settling_until`](Self::settling_until)) the next
    /// build makes it active.
    pub fn apply(&self, backends: &[Backend], now: Instant, settle: Duration) -> Vec<Backend> {
        let map = lock(&self.backends);
        backends
            .iter()
            .map(|b| {
                let health = map.get(&b.address);
                let healthy = health.map_or(b.healthy, |h| h.healthy);
                let settling = health
                    .and_then(|h| h.came_up)
                    .is_some_and(|at| now.saturating_duration_since(at) < settle);
                let state = if healthy && settling && b.state == BackendState::Active {
                    BackendState::Filling
                } else {
                    b.state
                };
                Backend {
                    healthy,
                    state,
                    ..*b
                }
            })
            .collect()
    }

    /// When the first backend still settling after coming back (see [`apply`](Self::apply))
    /// will have settled, if any is: the table must be rebuilt then.
    pub fn settling_until(&self, now: Instant, settle: Duration) -> Option<Instant> {
        lock(&self.backends)
            .values()
            .filter(|h| h.healthy)
            .filter_map(|h| h.came_up.map(|at| at + settle))
            .filter(|&until| until > now)
            .min()
    }

    /// A channel that hears of every change from now on.
    pub fn subscribe(&self) -> Receiver<HealthChange> {
        let (tx, rx) = mpsc::channel();
        lock(&self.subscribers).push(tx);
        rx
    }

    /// Records a round's result at `now` through the backend's tracker.
    pub(crate) fn record_round(
        &self,
        address: Ipv4Addr,
        result: &Result<(), String>,
        now: Instant,
        config: &HealthcheckConfig,
    ) {
        let transition = match lock(&self.backends).get_mut(&address) {
            Some(h) => h.tracker.record(result.is_ok(), now, config),
            None => return,
        };
        self.record(address, result, transition);
    }

    /// Records a round's result and its transition, if any; on a transition, logs it and tells
    /// the subscribers.
    pub(crate) fn record(
        &self,
        address: Ipv4Addr,
        result: &Result<(), String>,
        transition: Option<bool>,
    ) {
        {
            let mut map = lock(&self.backends);
            let Some(h) = map.get_mut(&address) else {
                return;
            };
            match result {
                Ok(()) => h.checks_passed += 1,
                Err(e) => {
                    h.checks_failed += 1;
                    h.last_error = Some(e.clone());
                }
            }
            match transition {
                Some(true) => h.went_up += 1,
                Some(false) => h.went_down += 1,
                None => return,
            }
            if let Some(healthy) = transition {
                h.healthy = healthy;
                h.tracker.healthy = healthy;
                h.came_up = healthy.then(Instant::now);
            }
        }
        let Some(healthy) = transition else { return };
        if healthy {
            tracing::warn!(backend = %address, "backend healthy: checks pass again");
        } else {
            let error = result.as_ref().err().map_or("", String::as_str);
            tracing::warn!(backend = %address, error, "backend unhealthy: its rows move as when it drains");
        }
        lock(&self.subscribers).retain(|tx| tx.send(HealthChange { address, healthy }).is_ok());
    }
}

/// The checks of one round.
#[derive(Debug)]
struct Checks {
    config: HealthcheckConfig,
    gue: Option<GueProbe>,
}

impl Checks {
    /// Every configured check, in order; the first failure fails the round.
    fn round(&self, backend: Ipv4Addr) -> Result<(), String> {
        if let Some(gue) = &self.gue {
            gue.probe(backend, self.config.timeout)?;
        }
        if let Some(port) = self.config.tcp_port {
            probe::tcp(backend, port, self.config.timeout)?;
        }
        if let Some(http) = &self.config.http {
            probe::http(backend, http.port, &http.path, self.config.timeout)?;
        }
        Ok(())
    }
}

/// How long a stop waits for the checks under way.
pub const STOP_GRACE: Duration = Duration::from_millis(200);

/// The running health checks: one thread per backend.
#[derive(Debug)]
pub struct HealthChecker {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HealthChecker {
    /// Starts checking `backends` every interval; results go to `view`. `source` and `gue_port`
    /// address the GUE probe.
    pub fn start(
        config: &HealthcheckConfig,
        backends: &[Backend],
        source: Ipv4Addr,
        gue_port: u16,
        view: &Arc<HealthView>,
    ) -> Result<Self, String> {
        view.track(backends);
        let stop = Arc::new(AtomicBool::new(false));
        let mut checker = Self {
            stop: Arc::clone(&stop),
            threads: Vec::with_capacity(backends.len()),
        };
        for backend in backends {
            // Each backend's probe has its own sockets: a reply read from a shared socket by
            // another backend's thread would be lost to the probe waiting for it.
            let gue = match config
                .gue
                .then(|| GueProbe::open(source, gue_port))
                .transpose()
            {
                Ok(gue) => gue,
                Err(e) => {
                    checker.stop();
                    return Err(e);
                }
            };
            let checks = Checks {
                config: config.clone(),
                gue,
            };
            let (view, stop) = (Arc::clone(view), Arc::clone(&stop));
            let address = backend.address;
            let spawned = std::thread::Builder::new()
                .name(format!("chance-health-{address}"))
                .spawn(move || check_loop(address, &checks, &view, &stop));
            match spawned {
                Ok(thread) => checker.threads.push(thread),
                Err(e) => {
                    checker.stop();
                    return Err(format!("health checks: cannot start a thread: {e}"));
                }
            }
        }
        tracing::info!(
            backends = backends.len(),
            interval_ms = config.interval.as_millis() as u64,
            rise = config.rise,
            fall = config.fall,
            "health checks running"
        );
        Ok(checker)
    }

    /// Stops every thread. A thread in the middle of a check records nothing more and ends when
    /// the check does (at most a timeout); it is not waited for beyond [`STOP_GRACE`], so that a
    /// stop or a reload never waits for a slow backend.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let until = Instant::now() + STOP_GRACE;
        for thread in self.threads {
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

fn check_loop(address: Ipv4Addr, checks: &Checks, view: &HealthView, stop: &AtomicBool) {
    let interval = checks.config.interval;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let result = checks.round(address);
        if stop.load(Ordering::Relaxed) {
            // Stopped during the round (a reload or a stop): the result is not recorded.
            return;
        }
        view.record_round(address, &result, Instant::now(), &checks.config);
        next += interval;
        // Sleep in short steps so that a stop is seen quickly.
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
        if Instant::now() > next + interval {
            next = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rise: u32, fall: u32, hold_down_ms: u64) -> HealthcheckConfig {
        HealthcheckConfig {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(50),
            rise,
            fall,
            hold_down: Duration::from_millis(hold_down_ms),
            gue: false,
            tcp_port: Some(1),
            http: None,
        }
    }

    #[test]
    fn fall_consecutive_failures_take_a_backend_down_and_rise_passes_bring_it_back() {
        let c = config(2, 3, 0);
        let mut t = Tracker::new(true);
        let now = Instant::now();
        assert_eq!(t.record(false, now, &c), None);
        assert_eq!(t.record(false, now, &c), None);
        assert_eq!(t.record(true, now, &c), None, "a pass resets the failures");
        assert_eq!(t.record(false, now, &c), None);
        assert_eq!(t.record(false, now, &c), None);
        assert_eq!(t.record(false, now, &c), Some(false));
        assert_eq!(t.record(false, now, &c), None, "one transition only");
        assert_eq!(t.record(true, now, &c), None);
        assert_eq!(t.record(true, now, &c), Some(true));
        assert!(t.healthy());
    }

    #[test]
    fn a_backend_that_went_down_stays_down_for_the_hold_down() {
        let c = config(1, 1, 1000);
        let mut t = Tracker::new(true);
        let start = Instant::now();
        assert_eq!(t.record(false, start, &c), Some(false));
        assert_eq!(t.record(true, start + Duration::from_millis(500), &c), None);
        assert_eq!(t.record(true, start + Duration::from_millis(999), &c), None);
        assert_eq!(
            t.record(true, start + Duration::from_millis(1000), &c),
            Some(true)
        );
        // Going down again is not delayed.
        assert_eq!(
            t.record(false, start + Duration::from_millis(1001), &c),
            Some(false)
        );
    }

    #[test]
    fn a_reload_that_keeps_a_backend_keeps_its_hold_down() {
        let c = config(1, 1, 1000);
        let a = Backend {
            address: Ipv4Addr::new(192, 0, 2, 1),
            state: BackendState::Active,
            healthy: true,
        };
        let view = HealthView::new(&[a]);
        let start = Instant::now();
        view.record_round(a.address, &Err("down".into()), start, &c);
        assert_eq!(view.healthy(a.address), Some(false));
        // A reload tracks the same backend again (the checks restart).
        view.track(&[a]);
        view.record_round(a.address, &Ok(()), start + Duration::from_millis(500), &c);
        assert_eq!(view.healthy(a.address), Some(false), "still held down");
        view.record_round(a.address, &Ok(()), start + Duration::from_millis(1000), &c);
        assert_eq!(view.healthy(a.address), Some(true));
    }

    #[test]
    fn the_view_applies_health_to_the_backends_and_tells_subscribers() {
        let a = Backend {
            address: Ipv4Addr::new(192, 0, 2, 1),
            state: BackendState::Active,
            healthy: true,
        };
        let view = HealthView::new(&[a]);
        let rx = view.subscribe();
        view.record(a.address, &Err("down".into()), Some(false));
        assert_eq!(
            rx.try_recv(),
            Ok(HealthChange {
                address: a.address,
                healthy: false
            })
        );
        assert!(!view.apply(&[a], Instant::now(), Duration::ZERO)[0].healthy);
        let h = &view.snapshot()[&a.address];
        assert_eq!((h.checks_failed, h.went_down), (1, 1));
        assert_eq!(h.last_error.as_deref(), Some("down"));
    }

    #[test]
    fn a_backend_back_from_unhealthy_is_built_as_filling_until_it_has_settled() {
        let backend = |last: u8, state: BackendState| Backend {
            address: Ipv4Addr::new(192, 0, 2, last),
            state,
            healthy: true,
        };
        let (a, b, c) = (
            backend(1, BackendState::Active),
            backend(2, BackendState::Active),
            backend(3, BackendState::Draining),
        );
        let view = HealthView::new(&[a, b, c]);
        let settle = Duration::from_secs(10);
        for x in [a, b, c] {
            view.record(x.address, &Err("down".into()), Some(false));
        }
        let states = |now: Instant| -> Vec<(bool, BackendState)> {
            view.apply(&[a, b, c], now, settle)
                .iter()
                .map(|x| (x.healthy, x.state))
                .collect()
        };
        let now = Instant::now();
        assert_eq!(
            states(now),
            [
                (false, BackendState::Active),
                (false, BackendState::Active),
                (false, BackendState::Draining)
            ]
        );
        assert_eq!(view.settling_until(now, settle), None);
        view.record(a.address, &Ok(()), Some(true));
        view.record(c.address, &Ok(()), Some(true));
        let back = Instant::now();
        assert_eq!(
            states(back),
            [
                (true, BackendState::Filling),
                (false, BackendState::Active),
                (true, BackendState::Draining)
            ],
            "an active backend comes back as filling; other states are the file's"
        );
        let until = view
            .settling_until(back, settle)
            .expect("a backend is settling");
        assert!(until > back && until <= back + settle);
        assert_eq!(
            states(until)[0],
            (true, BackendState::Active),
            "active again once settled"
        );
        assert_eq!(view.settling_until(back + settle, settle), None);
        view.record(a.address, &Err("down".into()), Some(false));
        view.record(c.address, &Err("down".into()), Some(false));
        assert_eq!(
            view.settling_until(back, settle),
            None,
            "a backend down again is not settling"
        );
    }
}
