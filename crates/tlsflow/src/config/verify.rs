//! The verifier of servers the client builder installs, and the server's SNI certificate
//! resolver.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// An application check run after standard verification accepted the peer's chain (leaf
/// first); an `Err` fails the handshake with a certificate error.
pub(crate) type VerifyCallback =
    Arc<dyn Fn(&[CertificateDer<'_>]) -> Result<(), String> + Send + Sync>;

/// The client's verifier of servers, where rustls's standard one does not do it all: the
/// standard checks of the server's identity (none after
/// [`dangerous_disable_verification`](super::ClientConfigBuilder::dangerous_disable_verification)),
/// then the application's check when it gave one. Signatures are always checked, so the
/// handshake stays sound.
pub(crate) struct ServerVerifier {
    pub(crate) identity: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    pub(crate) callback: Option<VerifyCallback>,
    pub(crate) algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for ServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerVerifier")
            .field("identity", &self.identity.is_some())
            .field("callback", &self.callback.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(identity) = &self.identity {
            identity.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )?;
        }
        if let Some(callback) = &self.callback {
            let mut chain = vec![end_entity.clone()];
            chain.extend(intermediates.iter().cloned());
            callback(&chain).map_err(|reason| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                    rustls::OtherError(Arc::new(crate::error::CallbackRefusal(reason))),
                ))
            })?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Serves the certificate the client names (SNI), or the default one, from the
/// configuration's current certificates.
#[derive(Debug)]
pub(crate) struct SniResolver(
    pub(crate) Arc<super::reload::Certificates<Arc<rustls::sign::CertifiedKey>>>,
);

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(
        &self,
        client_hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(
            self.0
                .current()
                .for_name(client_hello.server_name())
                .clone(),
        )
    }
}
