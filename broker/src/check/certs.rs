//! Certificates as `check-config` sees them: the broker's own (parses, matches its key, in its
//! validity period) and the CA bundles it trusts (parse, none expired).

use super::Report;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A certificate that ends sooner than this is worth a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// The server certificate and key: parsed and matched as `run` does, then the leaf's dates.
pub fn check_server_certificate(report: &mut Report, cert: &Path, key: &Path, now: SystemTime) {
    match crate::tls::ReloadableCert::load(cert, key) {
        Ok(_) => {}
        Err(crate::config::ConfigError::Invalid { key, problem }) => return report.error(&key, problem),
        Err(other) => return report.error("server.tls_cert", other.to_string()),
    }
    let Some(leaf) = pem_certificates(cert).ok().and_then(|chain| chain.into_iter().next()) else {
        return;
    };
    check_dates(report, "server.tls_cert", cert, &leaf, now, "the broker's certificate");
}

/// A CA bundle: at least one certificate, each parsed; an expired one is an error (nothing it
/// signed verifies any more), one ending soon a warning.
pub fn check_ca_bundle(report: &mut Report, key: &str, path: &Path, now: SystemTime) {
    let certs = match pem_certificates(path) {
        Ok(certs) if certs.is_empty() => {
            return report.error(key, format!("{}: no certificate in the file", path.display()));
        }
        Ok(certs) => certs,
        Err(e) => return report.error(key, format!("{}: {e}", path.display())),
    };
    for cert in &certs {
        check_dates(report, key, path, cert, now, "a CA certificate");
    }
}

fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())
}

fn check_dates(report: &mut Report, key: &str, path: &Path, der: &[u8], now: SystemTime, what: &str) {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(e) => return report.error(key, format!("{}: {what} does not parse: {e}", path.display())),
    };
    let subject = cert.subject().to_string();
    let validity = cert.validity();
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let not_after = validity.not_after.timestamp();
    if validity.not_before.timestamp() > now_secs {
        report.error(
            key,
            format!(
                "{}: {what} ({subject}) is not valid before {}",
                path.display(),
                validity.not_before
            ),
        );
    } else if not_after < now_secs {
        report.error(
            key,
            format!(
                "{}: {what} ({subject}) expired on {}",
                path.display(),
                validity.not_after
            ),
        );
    } else if not_after - now_secs < EXPIRY_WARNING.as_secs() as i64 {
        let days = (not_after - now_secs) / 86_400;
        report.warning(
            key,
            format!(
                "{}: {what} ({subject}) expires on {} (in {days} days)",
                path.display(),
                validity.not_after
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::check::Severity;

    /// A self-signed certificate valid for 2026 only, and its key, written into `dir`.
    fn certificate_of_2026(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let mut params = rcgen::CertificateParams::new(vec!["broker.example".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2027, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.join("tls.pem"), dir.join("tls.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (cert_path, key_path)
    }

    fn at(year: i32, month: u8, day: u8) -> SystemTime {
        let secs = rcgen::date_time_ymd(year, month, day).unix_timestamp();
        UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
    }

    fn findings(cert: &Path, key: &Path, now: SystemTime) -> Vec<(Severity, String)> {
        let mut report = Report::default();
        check_server_certificate(&mut report, cert, key, now);
        report.findings.into_iter().map(|f| (f.severity, f.message)).collect()
    }

    #[test]
    fn a_certificate_is_checked_against_its_dates_with_a_warning_30_days_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate_of_2026(dir.path());
        assert_eq!(findings(&cert, &key, at(2026, 6, 1)), vec![]);
        let soon = findings(&cert, &key, at(2026, 12, 15));
        assert!(
            matches!(&soon[..], [(Severity::Warning, m)] if m.contains("expires on") && m.contains("in 17 days")),
            "{soon:?}"
        );
        let expired = findings(&cert, &key, at(2027, 2, 1));
        assert!(
            matches!(&expired[..], [(Severity::Error, m)] if m.contains("expired on")),
            "{expired:?}"
        );
        let early = findings(&cert, &key, at(2025, 12, 1));
        assert!(
            matches!(&early[..], [(Severity::Error, m)] if m.contains("not valid before")),
            "{early:?}"
        );
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_an_error() {
        let (one, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (cert, _) = certificate_of_2026(one.path());
        let (_, key) = certificate_of_2026(other.path());
        let mismatched = findings(&cert, &key, at(2026, 6, 1));
        assert!(matches!(&mismatched[..], [(Severity::Error, _)]), "{mismatched:?}");
        let mut report = Report::default();
        check_ca_bundle(&mut report, "server.client_ca_file", &key, at(2026, 6, 1));
        assert!(
            report.findings[0].message.contains("no certificate in the file"),
            "{:?}",
            report.findings
        );
    }
}
