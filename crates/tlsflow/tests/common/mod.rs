//! Helpers shared by the test files that talk to real peers: certificate fixtures and
//! child processes that never outlive a test.

// Each test file uses a different part of these helpers.
#![allow(dead_code)]

pub(crate) mod pki;
pub(crate) mod process;
