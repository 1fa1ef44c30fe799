//! `tlsflow cert`: a self-signed certificate and key as PEM files, for local servers and tests.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use tlsflow::SelfSigned;

use crate::cli::CertArgs;
use crate::failure::{Context, Failure, Outcome};

/// Writes `cert.pem` and `key.pem` into `--out`.
pub(crate) fn run(args: &CertArgs) -> Outcome {
    for name in &args.names {
        if !is_certificate_name(name) {
            return Err(Failure::usage(format!(
                "invalid --name {name:?}: expected a DNS name (such as localhost or \
                 *.example.com) or an IP address"
            )));
        }
    }
    let cert_path = args.out.join("cert.pem");
    let key_path = args.out.join("key.pem");
    if !args.force {
        // Check both before writing either, so a refusal leaves nothing half-written.
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(Failure::runtime(format!(
                    "refusing to overwrite {} (use --force)",
                    path.display()
                )));
            }
        }
    }
    let cert = SelfSigned::generate(&args.names)
        .map_err(|e| Failure::usage(format!("cannot make a certificate: {e}")))?;
    fs::create_dir_all(&args.out)
        .context(|| format!("cannot create directory {}", args.out.display()))?;
    write_file(&cert_path, cert.cert_pem(), 0o644, args.force)?;
    // The key is a secret: only its owner may read it.
    write_file(&key_path, cert.key_pem(), 0o600, args.force)?;
    println!("wrote {} and {}", cert_path.display(), key_path.display());
    println!("names: {}", args.names.join(", "));
    println!("SHA-256 fingerprint: {}", cert.fingerprint_sha256());
    Ok(())
}

/// A DNS name (optionally a leading `*.` wildcard) or an IP address: what a subject
/// alternative name can hold and a client can match.
fn is_certificate_name(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn write_file(path: &Path, text: &str, mode: u32, overwrite: bool) -> Outcome {
    let mut options = OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        // create_new closes the race between the check above and the write.
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::runtime(format!(
                "refusing to overwrite {} (use --force)",
                path.display()
            ))
        } else {
            Failure::runtime(format!(
                "cannot write {}: {}",
                path.display(),
                crate::failure::describe_io(&e)
            ))
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_names_or_addresses() {
        for good in [
            "localhost",
            "a.example.com",
            "*.example.com",
            "127.0.0.1",
            "::1",
            "xn--bcher-kva.de",
        ] {
            assert!(is_certificate_name(good), "{good}");
        }
        for bad in [
            "",
            "not a name!",
            "-x.com",
            "a..b",
            "*",
            "x_y.com",
            "*.*.com",
        ] {
            assert!(!is_certificate_name(bad), "{bad}");
        }
    }
}
