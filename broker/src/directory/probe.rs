//! `check-config --online`: each configured directory server in turn, as the broker will use it.

use super::{AuthError, Budget, LdapDirectory};
use crate::config::UserLookup;
use ldap3::{Ldap, Scope};

/// What one server answered.
#[derive(Debug)]
pub struct ServerProbe {
    pub url: String,
    pub outcome: Result<(), AuthError>,
    /// Configured group DNs the service account cannot see (a typo authorizes no one).
    pub missing_groups: Vec<String>,
}

impl LdapDirectory {
    /// Connects to every server (TLS or StartTLS with the pinned CA) and, for search-then-bind,
    /// binds as the service account, reads the user base and looks up each configured group.
    /// Each server gets the directory timeout of its own.
    pub async fn probe_servers(&self) -> Vec<ServerProbe> {
        let mut probes = Vec::new();
        for index in 0..self.servers.len() {
            let budget = Budget::of(self.config.timeout);
            let mut missing_groups = Vec::new();
            let outcome = match self.connect_to(index, budget).await {
                Ok(mut ldap) => {
                    let outcome = self.probe_on(&mut ldap, budget, &mut missing_groups).await;
                    // A courtesy to the directory; the connection closes either way.
                    let _ = ldap.unbind().await;
                    outcome
                }
                Err(e) => Err(e),
            };
            probes.push(ServerProbe {
                url: self.servers.get(index).url.clone(),
                outcome,
                missing_groups,
            });
        }
        probes
    }

    async fn probe_on(
        &self,
        ldap: &mut Ldap,
        budget: Budget,
        missing_groups: &mut Vec<String>,
    ) -> Result<(), AuthError> {
        let UserLookup::Search {
            bind_dn,
            bind_password,
            user_base,
            ..
        } = &self.config.lookup
        else {
            // Template binds: there is no service account; the connection was the check.
            return Ok(());
        };
        if !self.bind(ldap, bind_dn, &bind_password.0, budget).await? {
            return Err(AuthError::Unavailable(format!(
                "the service account's bind as {bind_dn} was refused (invalid credentials)"
            )));
        }
        let base = Self::search_entries(
            ldap,
            user_base,
            Scope::Base,
            "(objectClass=*)",
            &["1.1"],
            budget.left()?,
        )
        .await?;
        if base.is_empty() {
            return Err(AuthError::Unavailable(format!(
                "user_base {user_base} is not visible to the service account"
            )));
        }
        let groups = self.config.groups.iter().chain(&self.config.keytab_groups);
        for group in groups {
            let found =
                Self::search_entries(ldap, group, Scope::Base, "(objectClass=*)", &["1.1"], budget.left()?).await;
            if !found.is_ok_and(|entries| !entries.is_empty()) {
                missing_groups.push(group.clone());
            }
        }
        Ok(())
    }
}
