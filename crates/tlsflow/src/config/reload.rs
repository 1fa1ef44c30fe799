//! Server certificates that can be replaced while the server runs: new handshakes use the
//! new ones, connections already open keep what they negotiated.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::pki_types::CertificateDer;

use super::Identity;
use crate::Error;

/// What a server configuration can do with its certificates, whatever the engine.
pub(crate) trait Reload: Send + Sync + std::fmt::Debug {
    /// Loads every certificate and key again from where they came from (files are read
    /// anew); all of them or none replace the ones served.
    fn reload(&self) -> Result<(), Error>;

    /// The leaf of the default certificate chain served now.
    fn leaf(&self) -> CertificateDer<'static>;
}

/// Turns an identity into what an engine serves (a rustls `CertifiedKey`, an OpenSSL
/// context), with the chain's leaf.
pub(crate) type Loader<C> =
    Box<dyn Fn(&Identity) -> Result<(C, CertificateDer<'static>), Error> + Send + Sync>;

/// The certificates served now: the default one, and one per SNI name.
#[derive(Debug)]
pub(crate) struct Served<C> {
    default: C,
    by_name: HashMap<String, C>,
    leaf: CertificateDer<'static>,
}

impl<C> Served<C> {
    /// What to serve to a client asking for `name` (SNI), or the default.
    pub(crate) fn for_name(&self, name: Option<&str>) -> &C {
        name.and_then(|name| self.by_name.get(&name.to_ascii_lowercase()))
            .unwrap_or(&self.default)
    }
}

/// The certificates of a server configuration, with where they came from.
pub(crate) struct Certificates<C> {
    default: Identity,
    sni: Vec<(String, Identity)>,
    load: Loader<C>,
    served: RwLock<Arc<Served<C>>>,
}

impl<C> std::fmt::Debug for Certificates<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("default", &self.default.describe())
            .field(
                "sni",
                &self.sni.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<C> Certificates<C> {
    /// Loads the certificates for the first time.
    pub(crate) fn new(
        default: Identity,
        sni: Vec<(String, Identity)>,
        load: Loader<C>,
    ) -> Result<Certificates<C>, Error> {
        let served = Self::load_all(&default, &sni, &load)?;
        Ok(Certificates {
            default,
            sni,
            load,
            served: RwLock::new(Arc::new(served)),
        })
    }

    fn load_all(
        default: &Identity,
        sni: &[(String, Identity)],
        load: &Loader<C>,
    ) -> Result<Served<C>, Error> {
        let (default, leaf) = load(default)?;
        let mut by_name = HashMap::new();
        for (name, identity) in sni {
            by_name.insert(name.to_ascii_lowercase(), load(identity)?.0);
        }
        Ok(Served {
            default,
            by_name,
            leaf,
        })
    }

    /// The certificates served now.
    pub(crate) fn current(&self) -> Arc<Served<C>> {
        // A panic elsewhere cannot leave the pointer half-written: keep serving it.
        self.served
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl<C: Send + Sync> Reload for Certificates<C> {
    fn reload(&self) -> Result<(), Error> {
        let fresh = Self::load_all(&self.default, &self.sni, &self.load)?;
        *self
            .served
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }

    fn leaf(&self) -> CertificateDer<'static> {
        self.current().leaf.clone()
    }
}
