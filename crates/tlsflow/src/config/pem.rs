//! Certificates and keys from PEM files, PEM text and certificate directories.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// Reads every certificate in a PEM file; an empty or unreadable file is an error naming it.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::config(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "no certificate found in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first certificates in PEM text.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::config(format!("cannot parse PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config("no certificate found in the PEM text"));
    }
    Ok(certs)
}

/// Reads a private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        Error::config(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

/// Reads a private key from PEM text.
pub fn parse_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::config(format!("cannot parse the PEM private key: {e}")))
}

pub(crate) enum Identity {
    Files { cert: PathBuf, key: PathBuf },
    Der(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        match self {
            Identity::Files { cert, key } => Identity::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            Identity::Der(chain, key) => Identity::Der(chain.clone(), key.clone_key()),
        }
    }
}

impl Identity {
    /// Where the identity came from, for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Identity::Files { cert, key } => {
                format!(" ({} with {})", cert.display(), key.display())
            }
            Identity::Der(..) => String::new(),
        }
    }

    /// The chain and key, decrypting the key with `password` when it is protected.
    pub(crate) fn load(
        self,
        password: Option<&str>,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
        match self {
            Identity::Files { cert, key } => {
                Ok((load_certs(&cert)?, load_key_with(&key, password)?))
            }
            Identity::Der(chain, key) => Ok((chain, key)),
        }
    }
}

/// Reads a private key from a PEM file, decrypting a password-protected (encrypted PKCS#8)
/// key with `password`.
pub(crate) fn load_key_with(
    path: &Path,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = std::fs::read(path).map_err(|e| {
        Error::config(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })?;
    let encrypted = pem.windows(9).any(|w| w == b"ENCRYPTED");
    match (encrypted, password) {
        (false, _) => PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            Error::config(format!(
                "cannot read a private key from {}: {e}",
                path.display()
            ))
        }),
        (true, None) => Err(Error::config(format!(
            "the private key in {} is password-protected: give its password",
            path.display()
        ))),
        (true, Some(password)) => decrypt_key(&pem, password, path),
    }
}

#[cfg(feature = "openssl")]
fn decrypt_key(pem: &[u8], password: &str, path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let key = ::openssl::pkey::PKey::private_key_from_pem_passphrase(pem, password.as_bytes())
        .map_err(|_| {
            Error::config(format!(
                "cannot decrypt the private key in {}: wrong password, or a damaged key",
                path.display()
            ))
        })?;
    let der = key.private_key_to_pkcs8().map_err(|e| {
        Error::config(format!(
            "cannot use the private key in {}: {e}",
            path.display()
        ))
    })?;
    Ok(PrivateKeyDer::Pkcs8(der.into()))
}

#[cfg(not(feature = "openssl"))]
fn decrypt_key(_pem: &[u8], _password: &str, path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    Err(Error::config(format!(
        "the private key in {} is password-protected; decrypting it needs tlsflow's `openssl` feature",
        path.display()
    )))
}

/// Reads every certificate in the files of a directory (PEM, any file name), as
/// `openssl rehash` directories and `/etc/ssl/certs` hold them.
pub(crate) fn load_ca_dir(dir: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::config(format!(
            "cannot read the CA directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut certs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if let Ok(pem) = std::fs::read(&path) {
            certs.extend(CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok));
        }
    }
    if certs.is_empty() {
        return Err(Error::config(format!(
            "no certificate found in the CA directory {}",
            dir.display()
        )));
    }
    Ok(certs)
}

/// A rustls root store from PEM files, directories and DER certificates; `what` names the
/// certificates in errors ("CA", "client CA").
pub(crate) fn root_store(
    files: &[PathBuf],
    dirs: &[PathBuf],
    ders: Vec<CertificateDer<'static>>,
    what: &str,
) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let sources = files
        .iter()
        .map(|path| load_certs(path).map(|certs| (path, certs)))
        .chain(
            dirs.iter()
                .map(|dir| load_ca_dir(dir).map(|certs| (dir, certs))),
        );
    for source in sources {
        let (path, certs) = source?;
        for cert in certs {
            roots.add(cert).map_err(|e| {
                Error::config(format!(
                    "unusable {what} certificate in {}: {e}",
                    path.display()
                ))
            })?;
        }
    }
    for cert in ders {
        roots
            .add(cert)
            .map_err(|e| Error::config(format!("unusable {what} certificate: {e}")))?;
    }
    Ok(roots)
}
