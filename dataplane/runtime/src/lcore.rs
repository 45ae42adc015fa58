//! Running a closure on a worker lcore (`rte_eal_remote_launch`) and joining it.
//!
//! The closure runs under `catch_unwind`: a panicking worker logs the panic, returns a failure
//! code to DPDK and is reported by [`LcoreHandle::join`] as [`LcoreError::Panicked`]; it never
//! aborts the process. `join` sleep-polls the lcore's state instead of spinning in
//! `rte_eal_mp_wait_lcore`, which would steal a core from the workers on small machines.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::eal::{Eal, EalError};
use crate::errno::Errno;

/// Errors of [`launch`] and [`LcoreHandle::join`].
#[derive(Debug, thiserror::Error)]
pub enum LcoreError {
    /// No EAL.
    #[error(transparent)]
    Eal(#[from] EalError),
    /// The lcore is not an enabled worker lcore of this EAL (the main lcore, a registered
    /// non-EAL thread, or one outside `-l`).
    #[error("lcore {0} is not an enabled worker lcore")]
    NotAWorker(u32),
    /// The lcore is still running a previous task.
    #[error("lcore {0} is busy")]
    Busy(u32),
    /// `rte_eal_remote_launch` failed.
    #[error("rte_eal_remote_launch on lcore {lcore} failed: {errno}")]
    Launch {
        /// The lcore.
        lcore: u32,
        /// The error.
        errno: Errno,
    },
    /// The closure panicked.
    #[error("the task on lcore {lcore} panicked: {message}")]
    Panicked {
        /// The lcore.
        lcore: u32,
        /// The panic message.
        message: String,
    },
}

/// What the worker leaves for `join`.
struct Slot<R> {
    result: Mutex<Option<Result<R, String>>>,
    done: AtomicBool,
}

/// What goes through `rte_eal_remote_launch`'s `void *arg`.
struct Task<F, R> {
    f: F,
    slot: Arc<Slot<R>>,
}

const EBUSY: c_int = 16;

/// Serialises launches: DPDK's check-then-set of the lcore state is not atomic.
static LAUNCH: Mutex<()> = Mutex::new(());

/// Runs `f` on worker lcore `lcore` and returns a handle to [`join`](LcoreHandle::join) it.
///
/// # Errors
///
/// [`LcoreError::Eal`] without an EAL, [`LcoreError::NotAWorker`], [`LcoreError::Busy`], or
/// [`LcoreError::Launch`].
pub fn launch<F, R>(lcore: u32, f: F) -> Result<LcoreHandle<R>, LcoreError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let eal = Eal::current()?;
    if lcore >= dpdk_sys::RTE_MAX_LCORE
        || lcore == eal.main_lcore()
        // SAFETY: lcore < RTE_MAX_LCORE; reads the initialised EAL configuration.
        || unsafe { dpdk_sys::rte_eal_lcore_role(lcore) } != dpdk_sys::rte_lcore_role_t_ROLE_RTE
    {
        return Err(LcoreError::NotAWorker(lcore));
    }
    let slot = Arc::new(Slot {
        result: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let task = Box::into_raw(Box::new(Task {
        f,
        slot: Arc::clone(&slot),
    }));
    let _serial = LAUNCH.lock().unwrap_or_else(PoisonError::into_inner);
    if state(lcore) != dpdk_sys::rte_lcore_state_t_WAIT {
        // SAFETY: `task` came from Box::into_raw above and was not handed to DPDK.
        drop(unsafe { Box::from_raw(task) });
        return Err(LcoreError::Busy(lcore));
    }
    // SAFETY: `lcore` is an enabled worker in WAIT state (launches are serialised); the
    // trampoline matches `lcore_function_t` and takes ownership of `task` exactly once.
    let rc = unsafe {
        dpdk_sys::rte_eal_remote_launch(Some(trampoline::<F, R>), task.cast::<c_void>(), lcore)
    };
    if rc != 0 {
        // SAFETY: the launch failed, so the worker never received `task`: it is still ours.
        drop(unsafe { Box::from_raw(task) });
        return Err(if rc == -EBUSY {
            LcoreError::Busy(lcore)
        } else {
            LcoreError::Launch {
                lcore,
                errno: Errno::from_code(rc),
            }
        });
    }
    Ok(LcoreHandle {
        lcore,
        slot,
        eal: Some(eal),
    })
}

fn state(lcore: u32) -> dpdk_sys::rte_lcore_state_t {
    // SAFETY: lcore < RTE_MAX_LCORE (checked by the callers); reads the lcore's state.
    unsafe { dpdk_sys::rte_eal_get_lcore_state(lcore) }
}

/// Runs on the worker lcore.
extern "C" fn trampoline<F, R>(arg: *mut c_void) -> c_int
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    // SAFETY: `arg` is the Box<Task<F, R>> leaked by `launch`, handed over exactly once.
    let Task { f, slot } = *unsafe { Box::from_raw(arg.cast::<Task<F, R>>()) };
    let outcome = catch_unwind(AssertUnwindSafe(f));
    let (rc, result) = match outcome {
        Ok(v) => (0, Ok(v)),
        Err(payload) => {
            let message = panic_message(&*payload);
            // Dropping the payload could itself panic: do it under catch_unwind too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            let lcore = crate::eal::lcore_id().unwrap_or(u32::MAX);
            tracing::error!(lcore, message, "lcore task panicked");
            (-1, Err(message))
        }
    };
    *slot.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
    slot.done.store(true, Ordering::Release);
    rc
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// A task running on a worker lcore. Dropping it without joining detaches the task; the EAL
/// then stays initialised for the rest of the process.
#[derive(Debug)]
pub struct LcoreHandle<R> {
    lcore: u32,
    slot: Arc<Slot<R>>,
    eal: Option<Eal>,
}

impl<R> std::fmt::Debug for Slot<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("done", &self.done.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<R> LcoreHandle<R> {
    /// The lcore the task runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// True once the task returned (or panicked) and the lcore is free again.
    pub fn is_finished(&self) -> bool {
        self.slot.done.load(Ordering::Acquire)
            && state(self.lcore) == dpdk_sys::rte_lcore_state_t_WAIT
    }

    /// Waits for the task (sleep-polling, from 50 µs up to 5 ms between checks) and returns its
    /// value. When it returns, the lcore accepts a new [`launch`].
    ///
    /// # Errors
    ///
    /// [`LcoreError::Panicked`] with the panic message if the closure panicked.
    pub fn join(mut self) -> Result<R, LcoreError> {
        let mut pause = Duration::from_micros(50);
        while !self.is_finished() {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
        // The task is over: its EAL reference can go.
        drop(self.eal.take());
        let result = self
            .slot
            .result
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .expect("a finished task left its result");
        result.map_err(|message| LcoreError::Panicked {
            lcore: self.lcore,
            message,
        })
    }
}

impl<R> Drop for LcoreHandle<R> {
    fn drop(&mut self) {
        if let Some(eal) = self.eal.take() {
            if !self.is_finished() {
                // Detached while running: the task may still use DPDK, keep the EAL forever.
                std::mem::forget(eal);
            }
        }
    }
}
