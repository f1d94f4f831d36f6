//! A throwaway CA and a server certificate for `localhost` / `127.0.0.1`, made at run time.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

pub struct TestPki {
    dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

/// A client certificate and its key (0600) on disk.
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    /// Writes `ca.pem`, `server.pem` and `server.key` (0600) into `dir`.
    pub fn create(dir: &Path, ca_name: &str) -> anyhow::Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, ca_name);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;

        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))?;

        std::fs::create_dir_all(dir)?;
        let pki = Self {
            dir: dir.to_owned(),
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            ca_params,
            ca_key,
        };
        std::fs::write(&pki.ca_cert, ca.pem())?;
        std::fs::write(&pki.server_cert, cert.pem())?;
        crate::daemon::write_private(&pki.server_key, key.serialize_pem())?;
        Ok(pki)
    }

    /// A client certificate for `name` (CN and DNS SAN), signed by this CA: `NAME.pem`, `NAME.key`.
    pub fn client(&self, name: &str) -> anyhow::Result<ClientCert> {
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &Issuer::from_params(&self.ca_params, &self.ca_key))?;
        let out = ClientCert {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&out.cert, cert.pem())?;
        crate::daemon::write_private(&out.key, key.serialize_pem())?;
        Ok(out)
    }
}
