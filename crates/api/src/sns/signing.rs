//! Message signatures: every notification and confirmation message is signed as SNS signs them
//! (the fields of the message in a fixed order, each as `Name\nvalue\n`), with this server's RSA
//! key and SHA256 (`SignatureVersion` 2), and the certificate to verify them with is served at
//! `SigningCertURL`. The key and its self-signed certificate are made once per data directory
//! (the key readable by the server only) and kept, so messages stay verifiable across restarts.

use std::path::Path;

use base64::Engine;
use rcgen::{CertificateParams, KeyPair, SigningKey};
use sha2::Digest;

/// This server's signing key and certificate.
pub struct Signer {
    key: KeyPair,
    cert_pem: String,
    /// `SimpleNotificationService-<hash>.pem`: the certificate's file name in `SigningCertURL`.
    pub cert_name: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert_name", &self.cert_name)
            .finish()
    }
}

/// Why the signing key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The directory or its files could not be read or written.
    #[error("cannot read or write the SNS signing key in {}: {source}", path.display())]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The key or certificate could not be made or parsed.
    #[error("the SNS signing key in {} is unusable ({why}); remove the directory to make a new one", path.display())]
    Key {
        /// What is wrong.
        why: String,
        /// The directory.
        path: std::path::PathBuf,
    },
}

impl Signer {
    /// Reads the key and certificate in `dir`, making them the first time.
    pub fn open(dir: &Path) -> Result<Self, SignerError> {
        let io = |source| SignerError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let bad = |e: rcgen::Error| SignerError::Key {
            why: e.to_string(),
            path: dir.to_path_buf(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let (key_path, cert_path) = (dir.join("signing-key.pem"), dir.join("signing-cert.pem"));
        let (key, cert_pem) = match (
            std::fs::read_to_string(&key_path),
            std::fs::read_to_string(&cert_path),
        ) {
            (Ok(k), Ok(c)) => (KeyPair::from_pem(&k).map_err(bad)?, c),
            _ => {
                let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(bad)?;
                let mut params =
                    CertificateParams::new(vec!["sns.lamina.local".to_string()]).map_err(bad)?;
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "sns.lamina.local");
                params.not_after = rcgen::date_time_ymd(2125, 1, 1);
                let cert = params.self_signed(&key).map_err(bad)?;
                crate::write_private(&key_path, key.serialize_pem()).map_err(io)?;
                crate::write_private(&cert_path, cert.pem()).map_err(io)?;
                (key, cert.pem())
            }
        };
        let hash = hex::encode(sha2::Sha256::digest(cert_pem.as_bytes()));
        Ok(Self {
            key,
            cert_name: format!("SimpleNotificationService-{}.pem", &hash[..32]),
            cert_pem,
        })
    }

    /// The certificate, PEM.
    pub fn certificate(&self) -> &str {
        &self.cert_pem
    }

    /// The Base64 signature of a message's fields (given in SNS's order, present ones only).
    pub fn sign(&self, fields: &[(&str, &str)]) -> String {
        let text: String = fields
            .iter()
            .map(|(name, value)| format!("{name}\n{value}\n"))
            .collect();
        match self.key.sign(text.as_bytes()) {
            Ok(sig) => base64::engine::general_purpose::STANDARD.encode(sig),
            Err(e) => {
                tracing::error!(error = %e, "signing an SNS message failed");
                String::new()
            }
        }
    }
}

/// The version of every signature this server makes (SHA256withRSA).
pub const SIGNATURE_VERSION: &str = "2";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_signatures_verify_with_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::open(dir.path()).unwrap();
        let b = Signer::open(dir.path()).unwrap();
        assert_eq!(a.cert_name, b.cert_name);
        let mode = std::fs::metadata(dir.path().join("signing-key.pem"))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap();
        assert_eq!(mode, 0o600);
        let fields = [
            ("Message", "hi"),
            ("MessageId", "1"),
            ("Type", "Notification"),
        ];
        let sig = base64::engine::general_purpose::STANDARD
            .decode(a.sign(&fields))
            .unwrap();
        // Verify with the public key of the certificate, as a client would.
        let (_, pem) = x509_public_key(a.certificate());
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            pem,
        );
        public
            .verify(b"Message\nhi\nMessageId\n1\nType\nNotification\n", &sig)
            .unwrap();
        assert!(public.verify(b"Message\nho\n", &sig).is_err());
    }

    /// The RSA public key (PKCS#1) inside a certificate's SubjectPublicKeyInfo, found the simple
    /// way: the BIT STRING after the rsaEncryption OID.
    fn x509_public_key(pem: &str) -> ((), Vec<u8>) {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        let at = der.windows(oid.len()).position(|w| w == oid).unwrap() + oid.len();
        // NULL params, then BIT STRING: 03 <len> 00 <key>.
        let rest = &der[at..];
        let bit = rest.iter().position(|b| *b == 0x03).unwrap();
        let (len, skip) = match rest[bit + 1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (rest[bit + 2] as usize, 3),
            _ => (((rest[bit + 2] as usize) << 8) | rest[bit + 3] as usize, 4),
        };
        ((), rest[bit + skip + 1..bit + skip + len].to_vec())
    }
}
