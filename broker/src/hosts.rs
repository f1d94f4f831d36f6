//! Host binding: a tenant may accept requests only from registered client hosts, named by a
//! source CIDR, by the identity in a verified client TLS certificate (mTLS), or both. With no rule
//! a tenant accepts any host; with rules, a request must match at least one rule in full.

use std::fmt;
use std::net::IpAddr;

/// An address block such as `10.1.0.0/16` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or address/prefix"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length outside 0..={max}"))?,
        };
        if mask(network, prefix) != network {
            return Err(format!("{text:?} has host bits set below the prefix"));
        }
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        address.is_ipv4() == self.network.is_ipv4() && mask(address, self.prefix) == self.network
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// One registered host (or block of hosts): every part given must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRule {
    pub cidr: Option<Cidr>,
    /// A DNS name (or CN) the client certificate must carry.
    pub cert: Option<String>,
}

/// What the broker knows about the calling host.
#[derive(Debug, Clone, Default)]
pub struct ClientHost {
    pub address: Option<IpAddr>,
    /// Identities from a client certificate the TLS layer verified: DNS SANs, then the CN.
    pub cert_names: Vec<String>,
    /// The certificate's subject, for the audit.
    pub cert_subject: Option<String>,
}

impl ClientRule {
    fn matches(&self, host: &ClientHost) -> bool {
        let cidr_ok = self
            .cidr
            .is_none_or(|cidr| host.address.is_some_and(|a| cidr.contains(a)));
        let cert_ok = self
            .cert
            .as_ref()
            .is_none_or(|name| host.cert_names.iter().any(|n| n.eq_ignore_ascii_case(name)));
        cidr_ok && cert_ok
    }
}

/// The names a verified client certificate vouches for (its DNS SANs, or its CN if it has none) and its
/// subject for the audit. A certificate that does not parse yields no identity.
pub fn certificate_identity(der: &[u8]) -> ClientHost {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return ClientHost::default();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    // As for server names (RFC 6125): the CN counts only when there is no DNS SAN.
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(text) = cn.as_str() {
                names.push(text.to_owned());
            }
        }
    }
    ClientHost {
        address: None,
        cert_names: names,
        cert_subject: Some(cert.subject().to_string()),
    }
}

/// True when `rules` is empty or one rule matches the host.
pub fn host_allowed(rules: &[ClientRule], host: &ClientHost) -> bool {
    rules.is_empty() || rules.iter().any(|rule| rule.matches(host))
}

/// Whether the host is one of `trusted` (`[limits] trusted_sources`: an address range or a
/// client-certificate name each). An empty list trusts no one.
pub fn host_trusted(trusted: &[ClientRule], host: &ClientHost) -> bool {
    trusted.iter().any(|rule| rule.matches(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(ip("2001:db8::1")));
        assert!(!Cidr::parse("2001:db8::/32").unwrap().contains(ip("10.0.0.1")));
        for bad in ["10.1.0.1/16", "10.0.0.0/33", "host/8", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    fn certificate(sans: &[&str], cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn certificate_identity_is_the_dns_sans_or_else_the_cn() {
        let host = certificate_identity(&certificate(&["edge1.example.com", "edge1"], "ignored-cn"));
        assert_eq!(host.cert_names, ["edge1.example.com", "edge1"]);
        assert_eq!(host.cert_subject.as_deref(), Some("CN=ignored-cn"));
        let host = certificate_identity(&certificate(&[], "ops-admin"));
        assert_eq!(host.cert_names, ["ops-admin"]);
        let garbage = certificate_identity(b"not a certificate");
        assert!(garbage.cert_names.is_empty() && garbage.cert_subject.is_none());
    }

    #[test]
    fn a_rule_needs_every_part_and_no_rules_allow_all() {
        let rules = vec![ClientRule {
            cidr: Some(Cidr::parse("10.0.0.0/8").unwrap()),
            cert: Some("edge1.example.com".into()),
        }];
        let host = |address: &str, names: &[&str]| ClientHost {
            address: Some(ip(address)),
            cert_names: names.iter().map(|n| n.to_string()).collect(),
            cert_subject: None,
        };
        assert!(host_allowed(&rules, &host("10.0.0.5", &["EDGE1.example.com"])));
        assert!(!host_allowed(&rules, &host("10.0.0.5", &[])), "no certificate");
        assert!(
            !host_allowed(&rules, &host("192.168.0.5", &["edge1.example.com"])),
            "wrong network"
        );
        assert!(!host_allowed(&rules, &host("10.0.0.5", &["edge2.example.com"])));
        assert!(host_allowed(&[], &host("192.168.0.5", &[])));
    }
}
