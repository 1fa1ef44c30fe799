//! Whether the running kernel offers TLS offload (kTLS): the `tls` upper-layer protocol
//! (ULP) of TCP, which tlsflow does not use yet (see docs/ktls.md). Reported beside the
//! machine's other facts, so a reader knows whether a kTLS contender could have run.

use serde::Serialize;

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct KernelTls {
    /// Whether a TCP socket accepted the `tls` ULP.
    pub(crate) offered: bool,
    /// What happened, in words.
    pub(crate) detail: String,
}

impl std::fmt::Display for KernelTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.offered {
            "offered"
        } else {
            "not offered"
        };
        write!(f, "{verdict} ({})", self.detail)
    }
}

/// Asks the kernel to attach the `tls` ULP to an established loopback TCP socket (the only
/// kind it attaches to; the kernel loads the `tls` module on demand where it may). Never
/// fails: whatever goes wrong is the answer.
pub(crate) fn probe() -> KernelTls {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        linux::probe()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        KernelTls {
            offered: false,
            detail: "kernel TLS is a Linux facility".to_owned(),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::net::{TcpListener, TcpStream};

    use nix::errno::Errno;
    use nix::sys::socket::{setsockopt, sockopt::TcpUlp};

    use super::KernelTls;

    fn no(detail: String) -> KernelTls {
        KernelTls {
            offered: false,
            detail,
        }
    }

    pub(super) fn probe() -> KernelTls {
        let pair = TcpListener::bind("127.0.0.1:0").and_then(|listener| {
            let client = TcpStream::connect(listener.local_addr()?)?;
            let (server, _) = listener.accept()?;
            Ok((client, server))
        });
        let (client, _server) = match pair {
            Ok(pair) => pair,
            Err(e) => return no(format!("no loopback TCP connection to probe with: {e}")),
        };
        let available = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        match setsockopt(&client, TcpUlp::default(), &b"tls".to_vec()) {
            Ok(()) => KernelTls {
                offered: true,
                detail: "a loopback TCP socket accepted the `tls` upper-layer protocol".to_owned(),
            },
            Err(Errno::ENOENT) => no(format!(
                "this kernel has no `tls` upper-layer protocol (CONFIG_TLS off, or the tls \
                 module cannot be loaded); it offers: {available}"
            )),
            Err(e) => no(format!(
                "attaching the `tls` upper-layer protocol failed: {e}; the kernel offers: \
                 {available}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe answers cleanly, and agrees with the kernel's own list of upper-layer
    /// protocols when the `tls` module is already loaded (then it must be offered) or the
    /// kernel cannot load modules at all.
    #[test]
    fn the_probe_answers_cleanly() {
        let found = probe();
        assert!(!found.detail.is_empty());
        let text = found.to_string();
        assert!(
            text.starts_with("offered (") || text.starts_with("not offered ("),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        {
            let listed =
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
            if listed.split_whitespace().any(|ulp| ulp == "tls") {
                assert!(found.offered, "{text}");
            }
            if !found.offered {
                assert!(text.contains("upper-layer protocol"), "{text}");
            }
        }
    }
}
