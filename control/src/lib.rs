//! chance control plane.
