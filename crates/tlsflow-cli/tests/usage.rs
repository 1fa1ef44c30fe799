//! The command line itself: help with an example for every command, usage errors with exit
//! status 2, sizes with units, and `cert`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{run, TempDir};

#[test]
fn every_command_has_help_with_an_example() {
    for command in ["bench", "serve", "connect", "tunnel", "cert"] {
        let out = run(&[command, "--help"], None);
        out.assert_code(0);
        let text = out.stdout_text();
        assert!(text.contains("Usage: tlsflow"), "{command}: {text}");
        assert!(
            text.contains("Example"),
            "{command} --help has no example:\n{text}"
        );
        assert!(
            text.contains(&format!("tlsflow {command}")),
            "{command} --help's example does not use the command:\n{text}"
        );
    }
    let top = run(&["--help"], None);
    top.assert_code(0);
    for command in ["bench", "serve", "connect", "tunnel", "cert"] {
        assert!(top.stdout_text().contains(command));
    }
}

/// Usage mistakes: exit status 2, a message naming the problem, no panic.
#[test]
fn usage_errors_exit_with_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["bench", "--size", "12XB"], "invalid size \"12XB\""),
        (&["bench", "--size", "lots"], "invalid size"),
        (&["bench", "--write-size", "0"], "at least 1 byte"),
        (&["bench", "--io", "threads"], "threads"),
        (&["bench", "--connections", "0"], "--connections"),
        (&["connect", "localhost"], "expected HOST:PORT"),
        (&["connect", "localhost:99999"], "expected HOST:PORT"),
        (&["serve", "--sink", "--echo"], "cannot be used with"),
        (&["serve", "--cert", "cert.pem"], "--key"),
        (
            &["serve", "--handshake-timeout", "soon"],
            "invalid duration",
        ),
        (&["tunnel", "--listen", "127.0.0.1:0"], "--to"),
        (&["cert"], "--name"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, words) in cases {
        let out = run(args, None);
        out.assert_code(2);
        assert!(
            out.stderr.contains(words),
            "{args:?}: stderr lacks {words:?}:\n{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

#[test]
fn sizes_accept_units() {
    let out = run(&["bench", "--size", "500KB", "--io", "blocking"], None);
    out.assert_code(0);
    let last = out
        .stdout_text()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(last.starts_with("intact: 500000 bytes, sha256 "), "{last}");
}

#[test]
fn cert_writes_a_pair_and_refuses_to_overwrite() {
    let dir = TempDir::new("cert");
    let out_dir = dir.join("out");
    let out_arg = out_dir.to_str().unwrap();
    let out = run(
        &[
            "cert",
            "--name",
            "localhost",
            "--name",
            "127.0.0.1",
            "--out",
            out_arg,
        ],
        None,
    );
    out.assert_code(0);
    assert!(out.stdout_text().contains("SHA-256 fingerprint"));
    let cert = std::fs::read_to_string(out_dir.join("cert.pem")).unwrap();
    let key = std::fs::read_to_string(out_dir.join("key.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(key.contains("PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out_dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
    }

    let again = run(&["cert", "--name", "other", "--out", out_arg], None);
    again.assert_error(1, &["refusing to overwrite", "cert.pem", "--force"]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("cert.pem")).unwrap(),
        cert
    );

    run(
        &["cert", "--name", "other", "--out", out_arg, "--force"],
        None,
    )
    .assert_code(0);
    assert_ne!(
        std::fs::read_to_string(out_dir.join("cert.pem")).unwrap(),
        cert
    );
}

#[test]
fn cert_rejects_an_unusable_name() {
    let dir = TempDir::new("cert-name");
    let out = run(
        &[
            "cert",
            "--name",
            "not a name!",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    out.assert_error(2, &["invalid --name \"not a name!\"", "DNS name"]);
}

/// `--engine openssl` runs where the OpenSSL engine is built in; where it is not, the help
/// does not offer it and choosing it is a usage mistake (exit status 2).
#[test]
fn openssl_engine_is_either_available_or_a_usage_error() {
    let out = run(&["bench", "--engine", "openssl", "--size", "1MiB"], None);
    let help = run(&["serve", "--help"], None);
    if cfg!(feature = "openssl") {
        out.assert_code(0);
        assert!(out.stdout_text().contains("OpenSSL engine"));
        assert!(out.stdout_text().contains("intact: 1048576 bytes"));
        assert!(help.stdout_text().contains("openssl"));
    } else {
        out.assert_code(2);
        assert!(
            out.stderr.contains("invalid value 'openssl'"),
            "{}",
            out.stderr
        );
        assert!(!help.stdout_text().contains("openssl:"));
    }
}
