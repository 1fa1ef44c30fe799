//! Damaged TLS records must never yield plaintext that was not sent, nor panic.
//!
//! ```sh
//! cargo +nightly fuzz run records -- -max_total_time=600
//! ```

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tlsflow::{ClientConfig, Limits, ServerConfig};

fn configs() -> &'static (ClientConfig, ServerConfig) {
    static CONFIGS: OnceLock<(ClientConfig, ServerConfig)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        tlsflow::testing::self_signed_configs(Limits::default()).expect("certificate generation")
    })
}

fuzz_target!(|input: &[u8]| {
    if let Err(e) = tlsflow::testing::damaged_records(configs(), input) {
        panic!("{e}");
    }
});
