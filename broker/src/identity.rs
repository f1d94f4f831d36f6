//! A tenant's identity source, as the service sees it: the directory (LDAP), an OpenID Connect
//! provider, or both (passwords checked at the directory, sign-ins at the provider). They answer
//! the same questions through [`Directory`].

use crate::config::IdentityConfig;
use crate::directory::{AuthError, Directory, LdapDirectory, VerifiedUser};
use crate::oidc::{DeviceLogin, OidcSource, SignedIn};
use crate::policy::Username;

pub struct IdentitySource {
    /// Where passwords are checked when there is one; else at the provider (its password grant,
    /// or without it nowhere).
    directory: Option<LdapDirectory>,
    /// Where people sign in, if anywhere.
    provider: Option<OidcSource>,
}

impl IdentitySource {
    /// The source `config` describes (the directory's servers must be known already: see
    /// `directory::discover`).
    pub fn new(config: IdentityConfig) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let directory = |d| LdapDirectory::new(d).context("setting up the directory client");
        let provider = |o| {
            OidcSource::new(o)
                .map_err(anyhow::Error::msg)
                .context("setting up the identity provider client")
        };
        Ok(match config {
            IdentityConfig::Directory(d) => Self {
                directory: Some(directory(d)?),
                provider: None,
            },
            IdentityConfig::Oidc(o) => Self {
                directory: None,
                provider: Some(provider(o)?),
            },
            IdentityConfig::DirectoryAndProvider(d, o) => Self {
                directory: Some(directory(d)?),
                provider: Some(provider(o)?),
            },
        })
    }

    fn no_provider() -> AuthError {
        AuthError::Unavailable("this tenant has no identity provider".into())
    }
}

impl Directory for IdentitySource {
    async fn verify(&self, user: &Username, password: &str) -> Result<VerifiedUser, AuthError> {
        match (&self.directory, &self.provider) {
            (Some(d), _) => d.verify(user, password).await,
            (None, Some(o)) => o.verify(user, password).await,
            (None, None) => Err(Self::no_provider()),
        }
    }

    async fn change_password(&self, user: &Username, old: &str, new: &str) -> Result<VerifiedUser, AuthError> {
        match (&self.directory, &self.provider) {
            (Some(d), _) => d.change_password(user, old, new).await,
            (None, Some(o)) => o.change_password(user, old, new).await,
            (None, None) => Err(Self::no_provider()),
        }
    }

    fn names_principals(&self) -> bool {
        self.directory.as_ref().is_some_and(LdapDirectory::names_principals)
    }

    /// Either source's keytab groups: ServerInfo offers keytabs where some may get them.
    fn has_keytab_groups(&self) -> bool {
        self.directory.as_ref().is_some_and(LdapDirectory::has_keytab_groups)
            || self.provider.as_ref().is_some_and(OidcSource::has_keytab_groups)
    }

    /// The source of password logins (sign-ins are always `oidc`).
    fn kind(&self) -> &'static str {
        self.directory.as_ref().map_or("oidc", LdapDirectory::kind)
    }

    fn offers_password_login(&self) -> bool {
        self.directory.is_some() || self.provider.as_ref().is_some_and(OidcSource::offers_password_login)
    }

    fn offers_device_login(&self) -> bool {
        self.provider.as_ref().is_some_and(OidcSource::offers_device_login)
    }

    async fn start_device_login(&self) -> Result<DeviceLogin, AuthError> {
        match &self.provider {
            Some(o) => o.start_device_login().await,
            None => Err(Self::no_provider()),
        }
    }

    async fn finish_device_login(&self, login: &DeviceLogin) -> Result<SignedIn, AuthError> {
        match &self.provider {
            Some(o) => o.finish_device_login(login).await,
            None => Err(Self::no_provider()),
        }
    }
}
