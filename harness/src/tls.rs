//! TLS material for test servers: a CA and a server certificate signed by
//! it, made at test time with the `openssl` command (Debian's redis-server
//! links OpenSSL, so the tool is there wherever the server is; `cargo xtask
//! test` installs it when missing).
//!
//! The keys are P-256 (fast to make), valid for two days, and live in the
//! caller's dir. A missing `openssl` is a loud panic, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The names a server certificate is made for by default: what
/// [`RedisServer::tls_url`](crate::RedisServer::tls_url) connects to, and
/// `localhost`.
pub const DEFAULT_NAMES: &[&str] = &["IP:127.0.0.1", "DNS:localhost"];

/// Numbers the CAs this process makes.
static CAS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A CA and a server certificate (with its key) signed by it, as PEM files.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA certificate: what a client must trust.
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
}

impl Certificates {
    /// Makes a fresh CA and a server certificate for `names` (subject
    /// alternative names as openssl writes them: `IP:127.0.0.1`,
    /// `DNS:localhost`) in `dir`, as `ca.crt`, `server.crt` and
    /// `server.key`.
    ///
    /// # Panics
    ///
    /// When `openssl` is missing or fails; the message holds its output.
    pub fn generate(dir: &Path, names: &[&str]) -> Certificates {
        std::fs::create_dir_all(dir).expect("create the certificates' dir");
        std::fs::write(
            dir.join("ext.cnf"),
            format!("subjectAltName={}\n", names.join(",")),
        )
        .expect("write ext.cnf");
        // A name of its own: a client given another test CA must find
        // this one's issuer unknown, not merely misnamed.
        let ca_subject = format!(
            "/CN=baton test CA {}-{}",
            std::process::id(),
            CAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let steps: [Vec<&str>; 3] = [
            [
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
                &["-subj", &ca_subject],
            ]
            .concat(),
            [
                &["req"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr"],
                &["-subj", "/CN=baton test server"],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(dir)
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "openssl makes the TLS tests' certificates and could not be run ({e}): \
                         install it (apt-get install openssl); tests never skip"
                    )
                });
            assert!(
                out.status.success(),
                "openssl {args:?} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Certificates {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }

    /// The CA certificate's PEM text.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).expect("read ca.crt")
    }
}
