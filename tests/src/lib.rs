//! Frame builders for tests.
