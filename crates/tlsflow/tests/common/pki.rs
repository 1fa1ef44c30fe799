//! Certificate fixtures made with rcgen: test CAs, intermediates, and leaf certificates with
//! chosen names, purposes and validity, written as PEM files into a directory that is
//! removed on drop. Keys are ECDSA P-256 (rcgen's default), so TLS 1.2 suites are ECDHE-ECDSA.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A fresh directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let unique = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("tlsflow-{tag}-{}-{unique}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to the file `name` in this directory and returns its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its private key, as PEM.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// When a leaf certificate is valid.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Validity {
    /// From a year ago to a year from now.
    Current,
    /// 2020 to 2021.
    Expired,
    /// From 2090 on.
    NotYetValid,
}

/// A certificate authority that can sign leaves and intermediates.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) cert_pem: String,
}

impl Ca {
    /// A self-signed root CA.
    pub(crate) fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let cert_pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
        }
    }

    /// An intermediate CA signed by this one.
    pub(crate) fn intermediate(&self, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let cert_pem = params.signed_by(&key, &self.issuer).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
        }
    }

    /// A leaf certificate for `name` (also its common name), for `usage`.
    pub(crate) fn leaf(
        &self,
        name: &str,
        usage: ExtendedKeyUsagePurpose,
        validity: Validity,
    ) -> Issued {
        let key = KeyPair::generate().unwrap();
        let params = leaf_params(name, usage, validity);
        Issued {
            cert_pem: params.signed_by(&key, &self.issuer).unwrap().pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn leaf_params(
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    validity: Validity,
) -> CertificateParams {
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let year = time_now_year();
    let (from, to) = match validity {
        Validity::Current => ((year - 1, 1), (year + 1, 12)),
        Validity::Expired => ((2020, 1), (2021, 1)),
        Validity::NotYetValid => ((2090, 1), (2091, 1)),
    };
    params.not_before = rcgen::date_time_ymd(from.0, from.1, 1);
    params.not_after = rcgen::date_time_ymd(to.0, to.1, 1);
    params
}

/// The current year, close enough for validity windows a year wide.
fn time_now_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    1970 + i32::try_from(secs / 31_556_952).unwrap()
}

/// A self-signed leaf (not a CA) for `name`: what `SelfSigned` and many dev servers use.
pub(crate) fn self_signed_leaf(name: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    let params = leaf_params(name, ExtendedKeyUsagePurpose::ServerAuth, Validity::Current);
    Issued {
        cert_pem: params.self_signed(&key).unwrap().pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A test CA and a server certificate for `localhost` it signed, as files.
pub(crate) struct ServerPki {
    pub(crate) dir: TempDir,
    pub(crate) ca: Ca,
    pub(crate) ca_file: PathBuf,
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
}

impl ServerPki {
    pub(crate) fn new(tag: &str) -> ServerPki {
        let dir = TempDir::new(tag);
        let ca = Ca::new("tlsflow test CA");
        let leaf = ca.leaf(
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Current,
        );
        ServerPki {
            ca_file: dir.write("ca.pem", &ca.cert_pem),
            cert_file: dir.write("server.pem", &leaf.cert_pem),
            key_file: dir.write("server.key", &leaf.key_pem),
            dir,
            ca,
        }
    }
}
