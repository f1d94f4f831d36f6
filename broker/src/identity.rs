//! A tenant's identity source, as the service sees it: the directory (LDAP) or an OpenID
//! Connect provider. Both answer the same question through [`Directory`].

use crate::config::IdentityConfig;
use crate::directory::{AuthError, Directory, LdapDirectory, VerifiedUser};
use crate::oidc::{DeviceLogin, OidcSource, SignedIn};
use crate::policy::Username;

pub enum IdentitySource {
    Directory(LdapDirectory),
    Oidc(OidcSource),
}

impl IdentitySource {
    /// The source `config` describes (the directory's servers must be known already: see
    /// `directory::discover`).
    pub fn new(config: IdentityConfig) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        Ok(match config {
            IdentityConfig::Directory(directory) => {
                Self::Directory(LdapDirectory::new(directory).context("setting up the directory client")?)
            }
            IdentityConfig::Oidc(oidc) => Self::Oidc(
                OidcSource::new(oidc)
                    .map_err(anyhow::Error::msg)
                    .context("setting up the identity provider client")?,
            ),
        })
    }
}

impl Directory for IdentitySource {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        match self {
            Self::Directory(d) => d.verify(user, password).await,
            Self::Oidc(o) => o.verify(user, password).await,
        }
    }

    async fn change_password(&self, user: &Username, old: &str, new: &str) -> Result<VerifiedUser, AuthError> {
        match self {
            Self::Directory(d) => d.change_password(user, old, new).await,
            Self::Oidc(o) => o.change_password(user, old, new).await,
        }
    }

    fn names_principals(&self) -> bool {
        match self {
            Self::Directory(d) => d.names_principals(),
            Self::Oidc(o) => o.names_principals(),
        }
    }

    fn has_keytab_groups(&self) -> bool {
        match self {
            Self::Directory(d) => d.has_keytab_groups(),
            Self::Oidc(o) => o.has_keytab_groups(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Directory(d) => d.kind(),
            Self::Oidc(o) => o.kind(),
        }
    }

    fn offers_password_login(&self) -> bool {
        match self {
            Self::Directory(d) => d.offers_password_login(),
            Self::Oidc(o) => o.offers_password_login(),
        }
    }

    fn offers_device_login(&self) -> bool {
        match self {
            Self::Directory(d) => d.offers_device_login(),
            Self::Oidc(o) => o.offers_device_login(),
        }
    }

    async fn start_device_login(&self) -> Result<DeviceLogin, AuthError> {
        match self {
            Self::Directory(d) => d.start_device_login().await,
            Self::Oidc(o) => o.start_device_login().await,
        }
    }

    async fn finish_device_login(&self, login: &DeviceLogin) -> Result<SignedIn, AuthError> {
        match self {
            Self::Directory(d) => d.finish_device_login(login).await,
            Self::Oidc(o) => o.finish_device_login(login).await,
        }
    }
}
