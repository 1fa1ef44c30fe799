//! Inner plaintexts of the fuzzer's choosing, sealed under real traffic keys: the receiver
//! (the first byte picks its engine) delivers only application data, in order, and every
//! failure it detects reaches the peer as its alert; nothing panics.
//!
//! ```sh
//! cargo fuzz run -O -s none crafted -- -max_total_time=1800
//! ```

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tlsflow::{ClientConfig, EngineKind, Limits, ServerConfig};

fn configs(server: EngineKind) -> &'static (ClientConfig, ServerConfig) {
    static RUSTLS: OnceLock<(ClientConfig, ServerConfig)> = OnceLock::new();
    static OPENSSL: OnceLock<(ClientConfig, ServerConfig)> = OnceLock::new();
    let cell = match server {
        EngineKind::Openssl => &OPENSSL,
        _ => &RUSTLS,
    };
    cell.get_or_init(|| {
        tlsflow::testing::self_signed_configs_on(EngineKind::Rustls, server, Limits::default())
            .expect("certificate generation")
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    let server = if first & 1 == 0 {
        EngineKind::Rustls
    } else {
        EngineKind::Openssl
    };
    if let Err(e) = tlsflow::testing::crafted_records(configs(server), rest) {
        panic!("{e}");
    }
});
