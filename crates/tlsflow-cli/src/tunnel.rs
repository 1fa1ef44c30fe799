//! `tlsflow tunnel`: plain TCP in, TLS out (the client side of stunnel). Each local
//! connection gets its own TLS connection to the server, with the same trust options as
//! `connect`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tlsflow::ClientConfig;
use tokio::net::TcpStream;

use crate::acceptor::{self, Admission};
use crate::cli::{HostPort, TunnelArgs};
use crate::failure::{describe_io, Context, Outcome};
use crate::net;
use crate::relay::{relay, RelayError};
use crate::trust;
use crate::units::human_bytes;

/// After Ctrl-C, how long open tunnels may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

struct Route {
    config: ClientConfig,
    to: HostPort,
    server_name: String,
    timeout: Duration,
}

/// Runs `tunnel` until Ctrl-C.
pub(crate) fn run(args: &TunnelArgs) -> Outcome {
    let config = trust::client_config(&args.tls)?;
    let server_name = trust::server_name(&args.tls, &args.to).to_owned();
    // An unusable server name is a mistake to report now, not at the first connection.
    config
        .session(&server_name)
        .context(|| format!("cannot use server name {server_name:?}"))?;
    let route = Arc::new(Route {
        config,
        to: args.to.clone(),
        server_name,
        timeout: args.tls.timeout,
    });
    let runtime = net::runtime()?;
    let result = runtime.block_on(async {
        let listener = net::listen(&args.listen, args.backlog, "tlsflow tunnel").await?;
        eprintln!(
            "carrying each connection over TLS to {} (server name {})",
            route.to, route.server_name
        );
        // Clients here speak plain TCP: nothing of theirs is pending.
        let admission = Admission {
            max_connections: args.max_connections,
            max_handshakes: args.max_connections,
        };
        acceptor::accept_until_stopped(
            listener,
            admission,
            SHUTDOWN_GRACE,
            |plain, peer, pending| {
                pending.done();
                carry(route.clone(), plain, peer)
            },
        )
        .await
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// One local connection: connect and handshake within the timeout, then relay.
async fn carry(route: Arc<Route>, plain: TcpStream, peer: SocketAddr) {
    let _ = plain.set_nodelay(true);
    let tcp = match net::dial(&route.to, route.timeout).await {
        Ok(tcp) => tcp,
        Err(failure) => {
            tracing::warn!("{peer}: {failure}");
            return;
        }
    };
    let handshake = route.config.connect_tokio(&route.server_name, tcp);
    let tls = match tokio::time::timeout(route.timeout, handshake).await {
        Err(_) => {
            tracing::warn!(
                "{peer}: {}",
                net::timed_out(
                    &format!("waiting for the TLS handshake with {}", route.to),
                    route.timeout
                )
            );
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(
                "{peer}: TLS handshake with {} failed: {}",
                route.to,
                describe_io(&e)
            );
            return;
        }
        Ok(Ok(tls)) => tls,
    };
    match relay(tls, plain, &crate::chunks::Activity::new()).await {
        Ok(moved) => tracing::info!(
            "{peer}: carried {} to {}, {} back",
            human_bytes(moved.to_tls),
            route.to,
            human_bytes(moved.from_tls)
        ),
        Err(RelayError::Tls(e)) => {
            tracing::warn!(
                "{peer}: TLS connection to {} failed: {}",
                route.to,
                describe_io(&e)
            );
        }
        Err(RelayError::Plain(e)) => {
            tracing::warn!("{peer}: local connection failed: {}", describe_io(&e));
        }
    }
}
