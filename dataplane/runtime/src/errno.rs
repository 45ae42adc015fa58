//! DPDK error codes with their message.

use std::ffi::CStr;
use std::fmt;

/// A DPDK error code (`rte_errno`, or the negated return value of an ethdev call) with its
/// message from `rte_strerror`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errno {
    /// The positive error code (an `errno` value, or one of DPDK's `E_RTE_*`).
    pub code: i32,
    /// `rte_strerror(code)`.
    pub message: String,
}

impl Errno {
    /// The calling thread's `rte_errno`.
    pub fn last() -> Self {
        Self::from_code(dpdk_sys::rte_errno())
    }

    /// The error for `code`; a negative code (ethdev's `-EINVAL` style) is negated first.
    pub fn from_code(code: i32) -> Self {
        let code = code.saturating_abs();
        // SAFETY: rte_strerror accepts any value and returns a pointer to a NUL-terminated
        // string, either static or in a per-lcore (thread-local) buffer that stays valid until
        // the next call on this thread; it is copied out right away.
        let message = unsafe {
            let p = dpdk_sys::rte_strerror(code);
            if p.is_null() {
                format!("error {code}")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        Self { code, message }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.message, self.code)
    }
}

impl std::error::Error for Errno {}
