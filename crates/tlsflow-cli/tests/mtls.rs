//! Mutual TLS: `serve --client-ca` rejects a `connect` without a certificate (or with one
//! from elsewhere) and accepts one with a certificate it trusts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{make_cert, random_file, run, sha256_hex, Server, TempDir};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn client_certificates_are_required_and_checked() {
    let dir = TempDir::new("mtls");
    let (server_cert, server_key) = make_cert(&dir.join("server"), &["localhost"]);
    let (client_cert, client_key) = make_cert(&dir.join("client"), &["client.example"]);
    let (stranger_cert, stranger_key) = make_cert(&dir.join("stranger"), &["client.example"]);
    let data = dir.join("data.bin");
    let expected = random_file(&data, 1 << 20, 7);
    let mut server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        s(&server_cert),
        "--key",
        s(&server_key),
        "--client-ca",
        s(&client_cert),
    ]);
    let target = format!("localhost:{}", server.port());

    // No certificate: a TLS 1.3 client learns it from the server's alert after the
    // handshake, or (when its write meets the closed socket first) from a hint.
    let without = run(&["connect", &target, "--ca", s(&server_cert)], Some(&data));
    without.assert_error(1, &[&target, "client certificate", "--cert"]);
    server.proc.wait_for_stderr("the server's refusal", |line| {
        line.contains("client certificate required").then_some(())
    });

    // A certificate the server does not trust.
    let stranger = run(
        &[
            "connect",
            &target,
            "--ca",
            s(&server_cert),
            "--cert",
            s(&stranger_cert),
            "--key",
            s(&stranger_key),
        ],
        Some(&data),
    );
    stranger.assert_code(1);

    // The trusted certificate: the echo comes back whole.
    let with = run(
        &[
            "connect",
            &target,
            "--ca",
            s(&server_cert),
            "--cert",
            s(&client_cert),
            "--key",
            s(&client_key),
        ],
        Some(&data),
    );
    with.assert_code(0);
    assert_eq!(sha256_hex(&with.stdout), expected);
}

#[test]
fn tls12_client_learns_of_the_requirement_during_the_handshake() {
    let dir = TempDir::new("mtls12");
    let (server_cert, server_key) = make_cert(&dir.join("server"), &["localhost"]);
    let (client_cert, _) = make_cert(&dir.join("client"), &["client.example"]);
    let server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        s(&server_cert),
        "--key",
        s(&server_key),
        "--client-ca",
        s(&client_cert),
        "--tls-version",
        "1.2",
    ]);
    let target = format!("localhost:{}", server.port());
    run(&["connect", &target, "--ca", s(&server_cert)], None)
        .assert_error(1, &[&target, "client certificate required"]);
}
