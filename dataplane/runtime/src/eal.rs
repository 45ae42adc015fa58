//! The EAL: initialisation (once per process), cleanup, lcore ids and non-EAL thread registration.
//!
//! DPDK allows `rte_eal_init` once per process, even after `rte_eal_cleanup`. [`Eal::init`]
//! enforces that before calling into DPDK, so a second call is a clean
//! [`EalError::AlreadyInitialized`], never undefined behaviour. In `cargo test`, use one
//! integration-test binary per EAL configuration.
//!
//! [`Eal`] is a cheap, clonable handle. Every DPDK object of this crate holds one, and
//! `rte_eal_cleanup` runs when the last handle is dropped (or through [`Eal::cleanup`]).

use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::errno::Errno;

/// Errors of the EAL wrappers.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// `rte_eal_init` failed.
    #[error("rte_eal_init failed: {errno}; argv: {argv:?}")]
    Init {
        /// `rte_errno` and its message.
        errno: Errno,
        /// The argv that was passed (program name first).
        argv: Vec<String>,
    },
    /// `Eal::init` was called a second time in this process.
    #[error(
        "rte_eal_init was already called in this process: it runs only once per process, even \
         after a failure or rte_eal_cleanup (use one process, e.g. one test binary, per EAL \
         configuration)"
    )]
    AlreadyInitialized,
    /// An operation needs an initialised EAL, and there is none (yet, or any more).
    #[error("the EAL is not initialised (call Eal::init first) or was cleaned up")]
    NotInitialized,
    /// An argument contains a NUL byte.
    #[error("EAL argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    /// [`Eal::cleanup`] was called while other handles are alive.
    #[error(
        "rte_eal_cleanup deferred: {0} other handle(s) (Eal clones, mempools, rings, ports, \
         lcore tasks) still use the EAL; it runs when the last one is dropped"
    )]
    InUse(usize),
    /// `rte_eal_cleanup` failed.
    #[error("rte_eal_cleanup failed: {0}")]
    Cleanup(Errno),
    /// `rte_thread_register` failed.
    #[error("rte_thread_register failed: {0}")]
    ThreadRegister(Errno),
}

const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;
const CLEANED: u8 = 3;
const FAILED: u8 = 4;

/// Where the process is in the EAL's one-shot life cycle.
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// The live EAL, for the objects created without an explicit `&Eal`.
static CURRENT: Mutex<Weak<EalToken>> = Mutex::new(Weak::new());

/// Owns the initialised EAL; `rte_eal_cleanup` runs when it is dropped.
#[derive(Debug)]
struct EalToken {
    /// Set once `rte_eal_cleanup` ran explicitly, so that `Drop` does not run it twice.
    cleaned: bool,
}

impl EalToken {
    fn cleanup_now(&mut self) -> Result<(), EalError> {
        if self.cleaned {
            return Ok(());
        }
        self.cleaned = true;
        // SAFETY: the EAL was initialised (a token exists only after a successful rte_eal_init)
        // and this is the last handle: every mempool, ring, port and lcore task holds an `Eal`,
        // so no DPDK object of this crate is alive any more. It runs at most once (`cleaned`).
        let rc = unsafe { dpdk_sys::rte_eal_cleanup() };
        STATE.store(CLEANED, Ordering::Release);
        if rc < 0 {
            let errno = Errno::last();
            tracing::error!(%errno, "rte_eal_cleanup failed");
            return Err(EalError::Cleanup(errno));
        }
        tracing::debug!("rte_eal_cleanup done");
        Ok(())
    }
}

impl Drop for EalToken {
    fn drop(&mut self) {
        let _ = self.cleanup_now();
    }
}

/// A handle on the initialised EAL. Clones share it; `rte_eal_cleanup` runs when the last
/// handle (including the ones held by mempools, rings, ports and lcore tasks) is dropped.
#[derive(Clone, Debug)]
pub struct Eal {
    token: Arc<EalToken>,
}

impl Eal {
    /// Initialises the EAL with `args`, the EAL options *without* the program name (for
    /// example `["-l", "0-1", "--no-pci", "--vdev=net_null0"]`); the program name is prepended.
    /// The calling thread becomes the main lcore. The final argv is logged at info level.
    ///
    /// Arguments left over by `rte_eal_init` (after a `--`) are logged and otherwise ignored.
    ///
    /// # Errors
    ///
    /// [`EalError::Init`] with `rte_errno` when `rte_eal_init` fails;
    /// [`EalError::AlreadyInitialized`] on any call after the first one, successful or not
    /// (DPDK cannot initialise twice per process, nor retry after a failure, nor after cleanup).
    pub fn init(args: &[String]) -> Result<Eal, EalError> {
        let mut argv: Vec<String> = Vec::with_capacity(args.len() + 1);
        argv.push(program_name());
        argv.extend(args.iter().cloned());
        let cstrings = argv
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| EalError::NulInArgument(a.clone())))
            .collect::<Result<Vec<CString>, EalError>>()?;

        if STATE
            .compare_exchange(UNINIT, INITIALIZING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(EalError::AlreadyInitialized);
        }

        tracing::info!(argv = ?argv, "rte_eal_init");
        // rte_eal_init may keep pointers into argv, and permutes the array: leak both (once
        // per process, a few hundred bytes).
        let argc = i32::try_from(cstrings.len()).expect("fewer than 2^31 EAL arguments");
        let mut cargs: Vec<*mut c_char> = cstrings.into_iter().map(CString::into_raw).collect();
        cargs.push(std::ptr::null_mut());
        let cargs: &'static mut [*mut c_char] = cargs.leak();
        // SAFETY: `argc` NUL-terminated strings followed by a NULL, all leaked so they stay valid
        // for the life of the process; the STATE transition above guarantees this is the only
        // call of rte_eal_init in the process.
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, cargs.as_mut_ptr()) };
        if rc < 0 {
            let errno = Errno::last();
            // No retry: DPDK 22.11 keeps option state from the failed attempt (a second `-l`
            // is "ignored, because (-l) is set"), and some failures leave the EAL half set up.
            STATE.store(FAILED, Ordering::Release);
            return Err(EalError::Init { errno, argv });
        }
        let parsed = usize::try_from(rc).unwrap_or(0);
        if parsed + 1 < argv.len() {
            tracing::warn!(unparsed = ?&argv[parsed + 1..], "arguments not consumed by rte_eal_init");
        }
        let token = Arc::new(EalToken { cleaned: false });
        *CURRENT.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(&token);
        STATE.store(READY, Ordering::Release);
        Ok(Eal { token })
    }

    /// Runs `rte_eal_cleanup` now if this is the last handle.
    ///
    /// # Errors
    ///
    /// [`EalError::InUse`] if other handles are alive (this one is dropped, and the cleanup
    /// runs with the last of them); [`EalError::Cleanup`] if `rte_eal_cleanup` fails.
    pub fn cleanup(self) -> Result<(), EalError> {
        match Arc::try_unwrap(self.token) {
            Ok(mut token) => token.cleanup_now(),
            Err(shared) => {
                let others = Arc::strong_count(&shared) - 1;
                Err(EalError::InUse(others))
            }
        }
    }

    /// The id of the main lcore (the thread that called [`Eal::init`]).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: reads the EAL configuration, which is initialised (we hold a handle).
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// The number of lcores: the ones enabled by `-l`/`--lcores` (main included), plus the
    /// non-EAL threads currently registered with [`thread_register`] (`rte_lcore_count`).
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: reads the EAL configuration, which is initialised (we hold a handle).
        unsafe { dpdk_sys::rte_lcore_count() }
    }

    /// The enabled worker lcores (every enabled lcore but the main one), in increasing order
    /// (`RTE_LCORE_FOREACH_WORKER`).
    pub fn worker_lcores(&self) -> WorkerLcores {
        WorkerLcores {
            prev: u32::MAX,
            _eal: self.clone(),
        }
    }

    /// The NUMA socket of `lcore` (`rte_lcore_to_socket_id`), or `None` for an invalid lcore.
    pub fn lcore_socket(&self, lcore: u32) -> Option<u32> {
        if lcore >= dpdk_sys::RTE_MAX_LCORE {
            return None;
        }
        // SAFETY: the id is below RTE_MAX_LCORE and the EAL is initialised.
        Some(unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) })
    }

    /// The EAL's runtime directory (`rte_eal_get_runtime_dir`, e.g. `/var/run/dpdk/<prefix>`).
    /// DPDK leaves it behind, empty with `--no-shconf`: tests may remove it.
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        // SAFETY: returns a pointer to a NUL-terminated static buffer filled by rte_eal_init.
        let dir = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
        std::path::PathBuf::from(dir.to_string_lossy().into_owned())
    }

    /// The live EAL, if any: the handle the objects created without an explicit `&Eal` keep.
    pub(crate) fn current() -> Result<Eal, EalError> {
        CURRENT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
            .map(|token| Eal { token })
            .ok_or(EalError::NotInitialized)
    }
}

/// Iterator over the worker lcores; see [`Eal::worker_lcores`].
#[derive(Debug)]
pub struct WorkerLcores {
    prev: u32,
    _eal: Eal,
}

impl Iterator for WorkerLcores {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        // SAFETY: rte_get_next_lcore only reads the EAL configuration, initialised since we
        // hold a handle; `prev` is u32::MAX (start) or a value it returned.
        let next = unsafe { dpdk_sys::rte_get_next_lcore(self.prev, 1, 0) };
        if next >= dpdk_sys::RTE_MAX_LCORE {
            self.prev = dpdk_sys::RTE_MAX_LCORE;
            return None;
        }
        self.prev = next;
        Some(next)
    }
}

/// The DPDK release chance was built against (`22.11.0`), from the headers' `RTE_VER_*`.
pub fn dpdk_version() -> String {
    format!(
        "{}.{:02}.{}",
        dpdk_sys::RTE_VER_YEAR,
        dpdk_sys::RTE_VER_MONTH,
        dpdk_sys::RTE_VER_MINOR
    )
}

/// True when DPDK is linked statically (the `static` feature), false for the shared libraries.
pub const DPDK_STATIC: bool = cfg!(feature = "static");

/// The program name passed as argv[0] (the executable's file name, or `chance`).
fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "chance".to_string())
}

fn is_ready() -> bool {
    STATE.load(Ordering::Acquire) == READY
}

/// The calling thread's lcore id, or `None` for a thread that is neither an EAL thread nor
/// registered with [`thread_register`] (`rte_lcore_id() == LCORE_ID_ANY`).
pub fn lcore_id() -> Option<u32> {
    // SAFETY: rte_lcore_id reads a thread-local initialised to LCORE_ID_ANY; no precondition.
    let id = unsafe { dpdk_sys::rte_lcore_id() };
    (id != dpdk_sys::LCORE_ID_ANY).then_some(id)
}

/// Registers the calling (non-EAL) thread as an lcore (`rte_thread_register`), so that it gets
/// an lcore id, mempool caches and the per-lcore APIs. Returns the lcore id. A thread that
/// already has one (an EAL thread, or a registered one) keeps it.
///
/// Ids are not released when a thread exits: call [`thread_unregister`] before it does.
///
/// # Errors
///
/// [`EalError::NotInitialized`] before `Eal::init`/after cleanup; [`EalError::ThreadRegister`]
/// when DPDK refuses (no free lcore id, multi-process in use).
pub fn thread_register() -> Result<u32, EalError> {
    if let Some(id) = lcore_id() {
        return Ok(id);
    }
    let _eal = Eal::current()?;
    // SAFETY: the EAL is initialised (we hold a handle) and this thread has no lcore id.
    let rc = unsafe { dpdk_sys::rte_thread_register() };
    if rc < 0 {
        return Err(EalError::ThreadRegister(Errno::last()));
    }
    lcore_id().ok_or_else(|| EalError::ThreadRegister(Errno::from_code(ENOMEM)))
}

/// Releases the lcore id of a thread registered with [`thread_register`]
/// (`rte_thread_unregister`). A no-op on EAL threads (main and workers) and unregistered ones.
pub fn thread_unregister() {
    let Some(id) = lcore_id() else { return };
    if !is_ready() {
        return;
    }
    // SAFETY: `id` < RTE_MAX_LCORE (it is a valid lcore id) and the EAL is initialised.
    let role = unsafe { dpdk_sys::rte_eal_lcore_role(id) };
    if role != dpdk_sys::rte_lcore_role_t_ROLE_NON_EAL {
        return;
    }
    // SAFETY: this thread was registered with rte_thread_register (its role is NON_EAL).
    unsafe { dpdk_sys::rte_thread_unregister() };
}

const ENOMEM: i32 = 12;
