//! Is the user in one of the allowed groups? Four ways, chosen by the configuration
//! ([`GroupCheck`]); every value that goes into a filter is RFC 4515-escaped.
//!
//! The recursive check walks up from the user: the groups under `base` that list the user, then
//! the groups that list those, one search per level, until an allowed group turns up, no new group
//! does, or `depth` levels were searched. Each group is visited once (membership loops end), and
//! at most [`MAX_VISITED`] groups are followed, so a huge or cyclic group tree costs a bounded
//! number of searches.

use super::{AuthError, Budget, LdapDirectory, Via};
use crate::config::{GroupCheck, normalized_dn};
use crate::policy::Username;
use ldap3::{Scope, ldap_escape};
use std::collections::HashSet;

/// AD's LDAP_MATCHING_RULE_IN_CHAIN: matches through any number of nested groups.
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// The most groups the recursive check follows for one login.
pub const MAX_VISITED: usize = 1024;

/// Groups per search filter in the recursive check (one level may take several searches).
const DNS_PER_FILTER: usize = 64;

impl LdapDirectory {
    /// `Ok(true)` when `dn` (login name `user`) is in an allowed group.
    pub(super) async fn in_allowed_group(
        &self,
        via: &mut Via<'_>,
        dn: &str,
        user: &Username,
        budget: Budget,
    ) -> Result<bool, AuthError> {
        let groups = &self.config.groups;
        match &self.config.group_check {
            GroupCheck::GroupEntries => {
                let filter = listed_filter(&[dn], Some(user));
                for group in groups {
                    if !self
                        .search_dns(via, group, Scope::Base, &filter, budget)
                        .await?
                        .is_empty()
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            GroupCheck::MemberOf | GroupCheck::InChain => {
                let in_chain = self.config.group_check == GroupCheck::InChain;
                let filter = member_of_filter(groups, in_chain);
                Ok(!self.search_dns(via, dn, Scope::Base, &filter, budget).await?.is_empty())
            }
            GroupCheck::Recursive { base, depth } => {
                let allowed: HashSet<String> = groups.iter().map(|g| normalized_dn(g)).collect();
                let mut visited: HashSet<String> = HashSet::new();
                let mut frontier = vec![dn.to_owned()];
                for level in 0..*depth {
                    let mut next = Vec::new();
                    for chunk in frontier.chunks(DNS_PER_FILTER) {
                        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
                        let login = (level == 0).then_some(user);
                        let filter = listed_filter(&chunk, login);
                        for group in self.search_dns(via, base, Scope::Subtree, &filter, budget).await? {
                            let key = normalized_dn(&group);
                            if allowed.contains(&key) {
                                return Ok(true);
                            }
                            if visited.insert(key) {
                                next.push(group);
                            }
                        }
                    }
                    if next.is_empty() {
                        return Ok(false);
                    }
                    if visited.len() > MAX_VISITED {
                        tracing::warn!(user = %user, visited = visited.len(),
                            "the user's groups exceed the recursive check's bound; not authorized");
                        return Ok(false);
                    }
                    frontier = next;
                }
                Ok(false)
            }
        }
    }
}

/// Groups that list one of `dns` as a member (groupOfNames `member`, groupOfUniqueNames
/// `uniqueMember`), or the login name (posixGroup `memberUid`).
pub fn listed_filter(dns: &[&str], login: Option<&Username>) -> String {
    let mut filter = String::from("(|");
    for dn in dns {
        let dn = ldap_escape(*dn);
        filter.push_str(&format!("(member={dn})(uniqueMember={dn})"));
    }
    if let Some(login) = login {
        filter.push_str(&format!("(memberUid={})", ldap_escape(login.as_str())));
    }
    filter.push(')');
    filter
}

/// The user's entry, if its `memberOf` names one of `groups` (through nesting with `in_chain`).
pub fn member_of_filter(groups: &[String], in_chain: bool) -> String {
    let attribute = if in_chain {
        format!("memberOf:{IN_CHAIN}:")
    } else {
        "memberOf".to_owned()
    };
    let mut filter = String::from("(|");
    for group in groups {
        filter.push_str(&format!("({attribute}={})", ldap_escape(group.as_str())));
    }
    filter.push(')');
    filter
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::validate_username;

    #[test]
    fn filters_have_a_fixed_shape_and_escaped_values() {
        let alice = validate_username("alice").unwrap();
        let dn = "uid=a*b,ou=people\\, x (y),dc=example,dc=com";
        assert_eq!(
            listed_filter(&[dn], Some(&alice)),
            "(|(member=uid=a\\2ab,ou=people\\5c, x \\28y\\29,dc=example,dc=com)\
             (uniqueMember=uid=a\\2ab,ou=people\\5c, x \\28y\\29,dc=example,dc=com)(memberUid=alice))"
        );
        assert_eq!(
            listed_filter(&["cn=a,dc=x", "cn=b,dc=x"], None),
            "(|(member=cn=a,dc=x)(uniqueMember=cn=a,dc=x)(member=cn=b,dc=x)(uniqueMember=cn=b,dc=x))"
        );
        let groups = vec!["CN=hadoop-users,CN=Users,DC=ad".to_owned(), "CN=a*(b),DC=ad".to_owned()];
        assert_eq!(
            member_of_filter(&groups, true),
            "(|(memberOf:1.2.840.113556.1.4.1941:=CN=hadoop-users,CN=Users,DC=ad)\
             (memberOf:1.2.840.113556.1.4.1941:=CN=a\\2a\\28b\\29,DC=ad))"
        );
        assert_eq!(
            member_of_filter(&groups[..1], false),
            "(|(memberOf=CN=hadoop-users,CN=Users,DC=ad))"
        );
    }
}
