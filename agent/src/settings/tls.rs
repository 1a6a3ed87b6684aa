//! `agent.tls`: the certificate chain and private key of the HTTPS server, read from PEM files
//! and built into the rustls server configuration the HTTP server hands each connection
//! (ring provider; no OpenSSL). The check builds it, so the pair that passed the check is
//! exactly the pair that is served, and a reload with a bad new pair changes nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Largest certificate or key file read, in bytes (a chain of a few certificates is a few
/// KiB).
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The checked pair: the files it came from and the server configuration built from it.
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of the first certificate.
    pub key_file: PathBuf,
    /// What each HTTPS connection is accepted with.
    pub server: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// Which file of the pair a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    /// `cert_file`.
    Cert,
    /// `key_file` (a key that does not match the certificate included).
    Key,
}

/// Reads `cert_file` and `key_file` and builds the server configuration: the chain must
/// hold at least one certificate, the key file one private key (PKCS#8, PKCS#1 or SEC1),
/// and the key must be the first certificate's. Messages name the files, never a key.
pub fn load(cert_file: &Path, key_file: &Path) -> Result<TlsConfig, (Culprit, String)> {
    let cert_pem = read_pem(cert_file).map_err(|e| (Culprit::Cert, e))?;
    let key_pem = read_pem(key_file).map_err(|e| (Culprit::Key, e))?;
    let cert_shown = cert_file.display();
    let key_shown = key_file.display();
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (Culprit::Cert, format!("{cert_shown}: invalid PEM: {e}")))?;
    if chain.is_empty() {
        return Err((
            Culprit::Cert,
            format!("{cert_shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => (
            Culprit::Key,
            format!(
                "{key_shown} holds no PEM private key (-----BEGIN PRIVATE KEY-----, or an RSA or EC one)"
            ),
        ),
        e => (Culprit::Key, format!("{key_shown}: invalid PEM: {e}")),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (Culprit::Cert, format!("no TLS protocol version: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => (
                Culprit::Key,
                format!(
                    "the private key in {key_shown} does not belong to the first certificate of {cert_shown}"
                ),
            ),
            rustls::Error::InvalidCertificate(why) => (
                Culprit::Cert,
                format!("{cert_shown}: invalid certificate: {why}"),
            ),
            e => (
                Culprit::Key,
                format!("{key_shown}: unusable private key: {e}"),
            ),
        })?;
    // The agent speaks HTTP/1.1 only.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConfig {
        cert_file: cert_file.to_path_buf(),
        key_file: key_file.to_path_buf(),
        server: Arc::new(server),
    })
}

/// The bytes of a PEM file of at most [`MAX_PEM_BYTES`].
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{shown} is larger than {} KiB: not a PEM certificate or key",
            MAX_PEM_BYTES / 1024
        ));
    }
    Ok(bytes)
}
