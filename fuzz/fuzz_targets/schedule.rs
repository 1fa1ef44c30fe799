//! A client and a server over the hostile transport, with every read and write size, every
//! `WouldBlock` and `Interrupted`, and every choice of the next call taken from the
//! fuzzer's bytes: every byte arrives once and in order, and nothing hangs or panics.
//!
//! ```sh
//! cargo fuzz run -O -s none schedule -- -max_total_time=1800
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
    if let Err(e) = tlsflow::testing::scripted_pair(configs(), input) {
        panic!("{e}");
    }
});
