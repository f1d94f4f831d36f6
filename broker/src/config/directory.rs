//! `[tenants.NAME.directory]`: which directory servers, how a person is found in them (a schema
//! profile with overridable parts), and which groups authorize them. Everything is checked here,
//! at load, with the offending key named; the directory code then trusts these values.
//!
//! Profiles (`schema`):
//! - `rfc2307` (the default): people are `posixAccount` entries found by `uid`; groups list their
//!   members by DN (`member`, `uniqueMember`) or by uid (`memberUid`); nesting, when asked for,
//!   is followed by a bounded search up from the user under `group_base`.
//! - `active-directory`: people are `user` objects found by `sAMAccountName`; membership is read
//!   from the user's `memberOf` through AD's in-chain matching rule, so nested groups count.

use super::raw::RawDirectory;
use super::{ConfigError, Paths, Secret, invalid, read_secret_file, secs_in};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How the broker reaches the directory. Plaintext exists only as an explicit opt-in for loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapTransport {
    Ldaps,
    StartTls,
    PlaintextLoopback,
}

/// How the user's DN is found before their bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLookup {
    /// Search as the service account under `user_base` for exactly one entry matching the
    /// tenant's user filter.
    Search {
        bind_dn: String,
        bind_password: Secret,
        bind_password_file: PathBuf,
        user_base: String,
    },
    /// Bind straight to `template` with `{user}` replaced by the RFC 4514-escaped username; the
    /// group check then runs on the user's own connection. No service account needed.
    Template { template: String },
}

/// The directory dialect a tenant's defaults come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schema {
    Rfc2307,
    ActiveDirectory,
}

impl Schema {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rfc2307 => "rfc2307",
            Self::ActiveDirectory => "active-directory",
        }
    }

    /// The attribute a login name is matched against when `login_attribute` is not set.
    pub fn default_login_attribute(self) -> &'static str {
        match self {
            Self::Rfc2307 => "uid",
            Self::ActiveDirectory => "sAMAccountName",
        }
    }

    /// The user filter for a login attribute: `{user}` is where the escaped login name goes.
    pub fn user_filter(self, login_attribute: &str) -> String {
        match self {
            Self::Rfc2307 => format!("(&(objectClass=posixAccount)({login_attribute}={{user}}))"),
            Self::ActiveDirectory => {
                format!("(&(objectCategory=person)(objectClass=user)({login_attribute}={{user}}))")
            }
        }
    }
}

/// How membership of the allowed groups is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupCheck {
    /// Each allowed group's own entry lists the user (`member`/`uniqueMember` by DN, `memberUid`
    /// by login name): direct membership only.
    GroupEntries,
    /// The user's `memberOf` names an allowed group: direct membership only (AD).
    MemberOf,
    /// The user's `memberOf` through AD's in-chain rule (1.2.840.113556.1.4.1941): nested groups.
    InChain,
    /// Groups that list the user, then groups that list those, and so on, found by searching
    /// under `base`, at most `depth` levels, each group visited once.
    Recursive { base: String, depth: u32 },
}

/// Directory servers found in DNS: the SRV records of `_ldap._tcp.DOMAIN`, looked up when the
/// broker starts and at each reload. Reached with StartTLS on the SRV's port with
/// `starttls = true`, else over LDAPS on port 636 of each host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvDiscovery {
    pub domain: String,
    pub dns_server: Option<std::net::SocketAddr>,
    pub starttls: bool,
}

impl SrvDiscovery {
    pub const SERVICE: &'static str = "_ldap._tcp";

    /// The server a discovered host and port stand for.
    pub fn server(&self, host: &str, port: u16) -> DirectoryServer {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        if self.starttls {
            DirectoryServer {
                url: format!("ldap://{host}:{port}/"),
                transport: LdapTransport::StartTls,
            }
        } else {
            DirectoryServer {
                url: format!("ldaps://{host}:636/"),
                transport: LdapTransport::Ldaps,
            }
        }
    }
}

/// One directory server: the URL and how it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryServer {
    pub url: String,
    pub transport: LdapTransport,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// Tried in this order; one that fails is passed over for a while (see `directory`). Empty
    /// until discovered when `discovery` is set.
    pub servers: Vec<DirectoryServer>,
    pub discovery: Option<SrvDiscovery>,
    pub ca_file: Option<PathBuf>,
    /// PEM bundle the directory's certificate must chain to (pinned; no system roots).
    pub ca_pem: Option<Vec<u8>>,
    pub schema: Schema,
    pub lookup: UserLookup,
    /// The search filter for a person, `{user}` standing for the RFC 4515-escaped login name.
    pub user_filter: String,
    /// Where the principal comes from instead of the tenant's template: this attribute of the
    /// user's entry (e.g. `userPrincipalName`, `krbPrincipalName`), still checked against policy.
    pub principal_attribute: Option<String>,
    /// Membership of any one of these authorizes (DNs, as the directory writes them).
    pub groups: Vec<String>,
    /// Members of any of these may get keytabs even where the tenant allows only tickets
    /// (`keytab_groups`); checked the same way as `groups`.
    pub keytab_groups: Vec<String>,
    pub group_check: GroupCheck,
    /// Size of the service account's connection pool (search-then-bind only).
    pub service_connections: usize,
    /// How many open connections wait for users' binds (0: a fresh connection for each).
    pub user_bind_connections: usize,
    pub timeout: Duration,
}

/// Open connections kept for users' binds, by default and at most: enough that a busy replica
/// rarely opens one (each costs the directory and the broker a TLS handshake).
pub const DEFAULT_USER_BIND_CONNECTIONS: usize = 16;
pub const MAX_USER_BIND_CONNECTIONS: usize = 256;

/// Deepest nesting the recursive group check follows, by default and at most.
pub const DEFAULT_GROUP_DEPTH: u32 = 8;
pub const MAX_GROUP_DEPTH: u32 = 32;

impl Paths<'_> {
    pub(super) fn directory(self, tenant: &str, d: RawDirectory) -> Result<DirectoryConfig, ConfigError> {
        let key = |field: &str| format!("tenants.{tenant}.directory.{field}");
        let schema = d.schema.unwrap_or(Schema::Rfc2307);
        let discovery = discovery(&d).map_err(|(field, problem)| invalid(key(field), problem))?;
        let servers = match discovery {
            Some(_) => Vec::new(),
            None => servers(&d).map_err(|(field, problem)| invalid(key(field), problem))?,
        };
        let ca_file = d.ca_file.clone().map(|p| self.path(p));
        let all_plaintext =
            discovery.is_none() && servers.iter().all(|s| s.transport == LdapTransport::PlaintextLoopback);
        let ca_pem = match &ca_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| invalid(key("ca_file"), format!("{}: {e}", path.display())))?)
            }
            None if all_plaintext => None,
            None => return Err(invalid(key("ca_file"), "is required for LDAPS and StartTLS")),
        };
        let lookup = self.lookup(&d, &key)?;
        if schema == Schema::ActiveDirectory && matches!(lookup, UserLookup::Template { .. }) {
            return Err(invalid(
                key("user_dn_template"),
                "does not apply to schema = \"active-directory\" (use a service account: bind_dn, \
                 bind_password_file, user_base)",
            ));
        }
        let user_filter = user_filter(schema, &d).map_err(|(field, problem)| invalid(key(field), problem))?;
        if let Some(attribute) = &d.principal_attribute {
            check_attribute_name(attribute).map_err(|problem| invalid(key("principal_attribute"), problem))?;
        }
        let groups = groups(&d).map_err(|(field, problem)| invalid(key(field), problem))?;
        let keytab_groups = group_dns("keytab_groups", d.keytab_groups.iter().flatten())
            .map_err(|(field, problem)| invalid(key(field), problem))?;
        let group_check = group_check(schema, &d, &groups).map_err(|(field, problem)| invalid(key(field), problem))?;
        let service_connections = match (&lookup, d.service_connections) {
            (_, None) => 4,
            (UserLookup::Template { .. }, Some(_)) => {
                return Err(invalid(
                    key("service_connections"),
                    "applies only to search-then-bind (bind_dn)",
                ));
            }
            (UserLookup::Search { .. }, Some(n @ 1..=64)) => n,
            (UserLookup::Search { .. }, Some(_)) => {
                return Err(invalid(key("service_connections"), "must be between 1 and 64"));
            }
        };
        let user_bind_connections = match d.user_bind_connections {
            None => DEFAULT_USER_BIND_CONNECTIONS,
            Some(n @ 0..=MAX_USER_BIND_CONNECTIONS) => n,
            Some(_) => {
                return Err(invalid(
                    key("user_bind_connections"),
                    format!("must be between 0 and {MAX_USER_BIND_CONNECTIONS}"),
                ));
            }
        };
        Ok(DirectoryConfig {
            servers,
            discovery,
            ca_file,
            ca_pem,
            schema,
            lookup,
            user_filter,
            principal_attribute: d.principal_attribute.clone(),
            groups,
            keytab_groups,
            group_check,
            service_connections,
            user_bind_connections,
            timeout: secs_in(
                d.timeout_secs,
                ktbroker_codes::timeouts::DIRECTORY.as_secs(),
                1..=120,
                &key("timeout_secs"),
            )?,
        })
    }

    fn lookup(self, d: &RawDirectory, key: &dyn Fn(&str) -> String) -> Result<UserLookup, ConfigError> {
        match (&d.user_dn_template, &d.bind_dn, &d.bind_password_file, &d.user_base) {
            (Some(template), None, None, None) => {
                if template.matches("{user}").count() != 1 || !template.contains('=') {
                    return Err(invalid(
                        key("user_dn_template"),
                        "must be a DN with {user} once, e.g. uid={user},ou=people,dc=example,dc=com",
                    ));
                }
                if d.user_filter.is_some() || d.login_attribute.is_some() {
                    return Err(invalid(
                        key(if d.user_filter.is_some() {
                            "user_filter"
                        } else {
                            "login_attribute"
                        }),
                        "applies only to search-then-bind (bind_dn); user_dn_template names the entry itself",
                    ));
                }
                Ok(UserLookup::Template {
                    template: template.clone(),
                })
            }
            (None, Some(bind_dn), Some(password_file), Some(user_base)) => {
                let password_key = key("bind_password_file");
                let bind_password_file = self.secret(password_file.clone(), &password_key)?;
                let bind_password = read_secret_file(&bind_password_file, &password_key)?;
                for (field, value) in [("bind_dn", bind_dn), ("user_base", user_base)] {
                    if value.trim().is_empty() {
                        return Err(invalid(key(field), "must not be empty"));
                    }
                }
                Ok(UserLookup::Search {
                    bind_dn: bind_dn.clone(),
                    bind_password,
                    bind_password_file,
                    user_base: user_base.clone(),
                })
            }
            (Some(_), ..) => Err(invalid(
                key("user_dn_template"),
                "excludes bind_dn, bind_password_file and user_base (DN-template bind needs no service account)",
            )),
            (None, ..) => Err(invalid(
                key("bind_dn"),
                "bind_dn, bind_password_file and user_base are all required for search-then-bind \
                 (or use user_dn_template)",
            )),
        }
    }
}

type FieldProblem = (&'static str, String);

/// `srv_domain` (with its `dns_server`), which excludes `url` and `urls`.
fn discovery(d: &RawDirectory) -> Result<Option<SrvDiscovery>, FieldProblem> {
    let Some(domain) = &d.srv_domain else {
        if d.dns_server.is_some() {
            return Err(("dns_server", "applies only with srv_domain".into()));
        }
        return Ok(None);
    };
    let domain = domain.trim().trim_end_matches('.');
    let label_ok = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !domain.contains('.') || !domain.split('.').all(label_ok) {
        return Err((
            "srv_domain",
            format!("{domain:?} is not a DNS domain (e.g. corp.example.com)"),
        ));
    }
    if d.url.is_some() || d.urls.is_some() {
        return Err(("srv_domain", "excludes url and urls (servers come from DNS)".into()));
    }
    let dns_server = match &d.dns_server {
        Some(text) => Some(
            text.parse()
                .map_err(|e| ("dns_server", format!("is not an address (IP:PORT): {e}")))?,
        ),
        None => None,
    };
    if d.allow_plaintext_loopback {
        return Err(("allow_plaintext_loopback", "does not apply to srv_domain".into()));
    }
    Ok(Some(SrvDiscovery {
        domain: domain.to_owned(),
        dns_server,
        starttls: d.starttls,
    }))
}

/// `url` (one server) or `urls` (several, tried in order), each with its transport.
fn servers(d: &RawDirectory) -> Result<Vec<DirectoryServer>, FieldProblem> {
    let (field, urls): (&'static str, Vec<String>) = match (&d.url, &d.urls) {
        (Some(url), None) => ("url", vec![url.clone()]),
        (None, Some(urls)) if !urls.is_empty() => ("urls", urls.clone()),
        (None, Some(_)) => return Err(("urls", "must name at least one server".into())),
        (Some(_), Some(_)) => return Err(("urls", "excludes url (put every server in urls)".into())),
        (None, None) => return Err(("url", "is required (or urls, for several servers)".into())),
    };
    let mut servers = Vec::with_capacity(urls.len());
    for url in urls {
        if servers.iter().any(|s: &DirectoryServer| s.url == url) {
            return Err((field, format!("names {url} twice")));
        }
        let transport = ldap_transport(&url, d.starttls, d.allow_plaintext_loopback)
            .map_err(|(f, problem)| (if f == "url" { field } else { f }, problem.to_owned()))?;
        servers.push(DirectoryServer { url, transport });
    }
    Ok(servers)
}

/// Decides the LDAP transport from the URL: `ldaps://` is TLS; `ldap://` needs StartTLS, or the
/// explicit plaintext opt-in together with a loopback host.
/// An error is the offending field of `[directory]` and the problem.
pub(super) fn ldap_transport(
    url: &str,
    starttls: bool,
    allow_plaintext_loopback: bool,
) -> Result<LdapTransport, (&'static str, &'static str)> {
    if url.starts_with("ldaps://") {
        return Ok(LdapTransport::Ldaps);
    }
    let Some(rest) = url.strip_prefix("ldap://") else {
        return Err(("url", "must start with ldaps:// or ldap://"));
    };
    if starttls {
        return Ok(LdapTransport::StartTls);
    }
    let host = rest.split('/').next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match (allow_plaintext_loopback, loopback) {
        (true, true) => Ok(LdapTransport::PlaintextLoopback),
        (true, false) => Err(("allow_plaintext_loopback", "applies only to a loopback address")),
        (false, _) => Err(("url", "ldap:// needs starttls = true (plaintext LDAP is refused)")),
    }
}

/// `user_filter` as written, or the schema's filter on `login_attribute` (or its default).
fn user_filter(schema: Schema, d: &RawDirectory) -> Result<String, FieldProblem> {
    match (&d.user_filter, &d.login_attribute) {
        (Some(_), Some(_)) => Err((
            "login_attribute",
            "excludes user_filter (write the attribute into the filter)".into(),
        )),
        (Some(filter), None) => {
            check_filter_template(filter).map_err(|p| ("user_filter", p))?;
            Ok(filter.clone())
        }
        (None, attribute) => {
            let attribute = attribute.as_deref().unwrap_or(schema.default_login_attribute());
            check_attribute_name(attribute).map_err(|p| ("login_attribute", p))?;
            Ok(schema.user_filter(attribute))
        }
    }
}

/// A filter template: parenthesized and balanced, `{user}` at least once and no other braces.
/// The login name goes in RFC 4515-escaped, so it cannot change the filter's shape.
pub fn check_filter_template(filter: &str) -> Result<(), String> {
    let example = "e.g. (&(objectClass=user)(sAMAccountName={user}))";
    if !filter.contains("{user}") {
        return Err(format!("must contain {{user}}, {example}"));
    }
    if filter.replace("{user}", "").contains(['{', '}']) {
        return Err("may use only {user}".into());
    }
    if !(filter.starts_with('(') && filter.ends_with(')')) {
        return Err(format!("must be one parenthesized filter, {example}"));
    }
    // RFC 4515 writes a parenthesis inside a value as \28 or \29, so every raw one is structure.
    let mut depth = 0usize;
    for (i, c) in filter.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "has a ')' without its '('".to_owned())?;
                if depth == 0 && i + 1 != filter.len() {
                    return Err(format!("must be one parenthesized filter, {example}"));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("has a '(' without its ')'".into());
    }
    Ok(())
}

/// An attribute description: a name (letter, then letters, digits, hyphens) or a numeric OID.
pub fn check_attribute_name(name: &str) -> Result<(), String> {
    let descriptor = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !name.is_empty()
        && name
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    if (descriptor || oid) && name.len() <= 128 {
        Ok(())
    } else {
        Err(format!("{name:?} is not an attribute name"))
    }
}

/// `group_dn` (one group) and `groups` (several) together: any one of them authorizes.
fn groups(d: &RawDirectory) -> Result<Vec<String>, FieldProblem> {
    let named = d.group_dn.iter().map(|dn| ("group_dn", dn));
    let listed = d.groups.iter().flatten().map(|dn| ("groups", dn));
    let mut groups = Vec::new();
    for (field, dn) in named.chain(listed) {
        for dn in group_dns(field, [dn])? {
            if !groups.iter().any(|g: &String| same_dn(g, &dn)) {
                groups.push(dn);
            }
        }
    }
    if groups.is_empty() {
        return Err(("groups", "must name at least one group DN (or set group_dn)".into()));
    }
    Ok(groups)
}

/// Group DNs from `field`, trimmed, deduplicated; anything that is not a DN is refused.
fn group_dns<'a>(field: &'static str, dns: impl IntoIterator<Item = &'a String>) -> Result<Vec<String>, FieldProblem> {
    let mut found: Vec<String> = Vec::new();
    for dn in dns {
        let dn = dn.trim();
        if dn.is_empty() || !dn.contains('=') {
            return Err((
                field,
                format!("{dn:?} is not a group DN (e.g. cn=hadoop-users,ou=groups,...)"),
            ));
        }
        if !found.iter().any(|g| same_dn(g, dn)) {
            found.push(dn.to_owned());
        }
    }
    Ok(found)
}

/// DNs compared as directories compare them for these purposes: case-insensitively, ignoring
/// spaces after the separators.
pub fn same_dn(a: &str, b: &str) -> bool {
    normalized_dn(a) == normalized_dn(b)
}

pub fn normalized_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.trim().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

fn group_check(schema: Schema, d: &RawDirectory, groups: &[String]) -> Result<GroupCheck, FieldProblem> {
    let nested = d.nested_groups.unwrap_or(schema == Schema::ActiveDirectory);
    let check = match (schema, nested) {
        (Schema::ActiveDirectory, true) => GroupCheck::InChain,
        (Schema::ActiveDirectory, false) => GroupCheck::MemberOf,
        (Schema::Rfc2307, false) => GroupCheck::GroupEntries,
        (Schema::Rfc2307, true) => {
            let base = match &d.group_base {
                Some(base) if base.contains('=') => base.trim().to_owned(),
                Some(_) => return Err(("group_base", "must be a DN".into())),
                // The parent of the first group: where a site keeps its groups.
                None => groups[0]
                    .split_once(',')
                    .map(|(_, parent)| parent.trim().to_owned())
                    .filter(|p| p.contains('='))
                    .ok_or(("group_base", "is required: the first group DN has no parent".into()))?,
            };
            let depth = d.group_depth.unwrap_or(DEFAULT_GROUP_DEPTH);
            if !(1..=MAX_GROUP_DEPTH).contains(&depth) {
                return Err(("group_depth", format!("must be between 1 and {MAX_GROUP_DEPTH}")));
            }
            GroupCheck::Recursive { base, depth }
        }
    };
    if !matches!(check, GroupCheck::Recursive { .. }) {
        for (field, set) in [
            ("group_base", d.group_base.is_some()),
            ("group_depth", d.group_depth.is_some()),
        ] {
            if set {
                return Err((
                    field,
                    "applies only to schema = \"rfc2307\" with nested_groups = true".into(),
                ));
            }
        }
    }
    Ok(check)
}
