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
        self.in_any_of(&self.config.groups, via, dn, user, budget).await
    }

    /// Whether the user is in one of the `keytab_groups` (false when there are none).
    pub(super) async fn in_keytab_group(
        &self,
        via: &mut Via<'_>,
        dn: &str,
        user: &Username,
        budget: Budget,
    ) -> Result<bool, AuthError> {
        if self.config.keytab_groups.is_empty() {
            return Ok(false);
        }
        self.in_any_of(&self.config.keytab_groups, via, dn, user, budget).await
    }

    /// Membership of any of `groups`, decided as the tenant's group check says.
    async fn in_any_of(
        &self,
        groups: &[String],
        via: &mut Via<'_>,
        dn: &str,
        user: &Username,
        budget: Budget,
    ) -> Result<bool, AuthError> {
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
                let mut listing = DirectoryListing {
                    directory: self,
                    via,
                    base,
                    budget,
                };
                walk_up(&mut listing, dn, user, groups, *depth).await
            }
        }
    }
}

/// Answers which groups a filter finds: the directory under the group base, or a test's fake.
pub(super) trait GroupListing {
    async fn groups_matching(&mut self, filter: &str) -> Result<Vec<String>, AuthError>;
}

struct DirectoryListing<'a, 'v> {
    directory: &'a LdapDirectory,
    via: &'a mut Via<'v>,
    base: &'a str,
    budget: Budget,
}

impl GroupListing for DirectoryListing<'_, '_> {
    async fn groups_matching(&mut self, filter: &str) -> Result<Vec<String>, AuthError> {
        self.directory
            .search_dns(self.via, self.base, Scope::Subtree, filter, self.budget)
            .await
    }
}

/// The recursive check (see the module documentation): `Ok(true)` when an allowed group turns up
/// within `depth` levels up from `dn`.
pub(super) async fn walk_up(
    listing: &mut impl GroupListing,
    dn: &str,
    user: &Username,
    groups: &[String],
    depth: u32,
) -> Result<bool, AuthError> {
    let allowed: HashSet<String> = groups.iter().map(|g| normalized_dn(g)).collect();
    let mut visited: HashSet<String> = HashSet::new();
    let mut frontier = vec![dn.to_owned()];
    for level in 0..depth {
        let mut next = Vec::new();
        for chunk in frontier.chunks(DNS_PER_FILTER) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let login = (level == 0).then_some(user);
            for group in listing.groups_matching(&listed_filter(&chunk, login)).await? {
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

    /// A group tree: each group with the DNs (or `uid:NAME` login names) it lists; counts searches.
    struct FakeTree {
        members: Vec<(String, Vec<String>)>,
        searches: usize,
    }

    impl FakeTree {
        fn new(edges: &[(&str, &[&str])]) -> Self {
            let members = edges
                .iter()
                .map(|(group, members)| ((*group).to_owned(), members.iter().map(|m| (*m).to_owned()).collect()))
                .collect();
            Self { members, searches: 0 }
        }
    }

    impl GroupListing for FakeTree {
        async fn groups_matching(&mut self, filter: &str) -> Result<Vec<String>, AuthError> {
            self.searches += 1;
            // The filter lists `(member=DN)` and maybe `(memberUid=NAME)`: match them literally.
            Ok(self
                .members
                .iter()
                .filter(|(_, members)| {
                    members.iter().any(|m| match m.strip_prefix("uid:") {
                        Some(name) => filter.contains(&format!("(memberUid={name})")),
                        None => filter.contains(&format!("(member={m})")),
                    })
                })
                .map(|(group, _)| group.clone())
                .collect())
        }
    }

    fn walk(tree: &mut FakeTree, allowed: &str, depth: u32) -> bool {
        let alice = validate_username("alice").unwrap();
        let allowed = vec![allowed.to_owned()];
        let walk = walk_up(tree, "uid=alice", &alice, &allowed, depth);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(walk)
            .unwrap()
    }

    #[test]
    fn the_walk_goes_up_to_its_depth_and_no_further() {
        let edges: &[(&str, &[&str])] = &[
            ("cn=team", &["uid=alice"]),
            ("cn=dept", &["cn=team"]),
            ("cn=hadoop", &["cn=dept"]),
        ];
        let mut tree = FakeTree::new(edges);
        assert!(
            walk(&mut tree, "CN=Hadoop", 3),
            "three levels up, names compared case-blind"
        );
        assert_eq!(tree.searches, 3);
        assert!(!walk(&mut FakeTree::new(edges), "cn=hadoop", 2));
        assert!(!walk(&mut FakeTree::new(edges), "cn=elsewhere", 8));
        // The login name counts at the first level only (posixGroup memberUid).
        let by_uid: &[(&str, &[&str])] = &[("cn=posix", &["uid:alice"]), ("cn=hadoop", &["cn=posix"])];
        assert!(walk(&mut FakeTree::new(by_uid), "cn=hadoop", 2));
    }

    #[test]
    fn a_membership_loop_ends_the_walk() {
        let edges: &[(&str, &[&str])] = &[("cn=a", &["uid=alice", "cn=b"]), ("cn=b", &["cn=a"])];
        let mut tree = FakeTree::new(edges);
        assert!(!walk(&mut tree, "cn=hadoop", 32));
        assert!(
            tree.searches <= 3,
            "each group visited once: {} searches",
            tree.searches
        );
    }

    #[test]
    fn a_huge_tree_is_cut_off_at_the_bound() {
        // alice is in 1100 groups, each in cn=hadoop: more than the walk follows.
        let names: Vec<String> = (0..1100).map(|n| format!("cn=g{n}")).collect();
        let mut edges: Vec<(&str, &[&str])> = names.iter().map(|n| (n.as_str(), &["uid=alice"][..])).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        edges.push(("cn=hadoop", &all));
        let mut tree = FakeTree::new(&edges);
        assert!(!walk(&mut tree, "cn=hadoop", 8), "beyond MAX_VISITED the answer is no");
        assert_eq!(tree.searches, 1, "and it stops before searching on");
        // Under the bound, the same shape is followed.
        edges.truncate(1000);
        let keep: Vec<&str> = names[..1000].iter().map(String::as_str).collect();
        edges.push(("cn=hadoop", &keep));
        let mut tree = FakeTree::new(&edges);
        assert!(walk(&mut tree, "cn=hadoop", 8));
        // Found with the first filter of 64 of the 1000 groups: no further search.
        assert_eq!(tree.searches, 2);
    }

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
