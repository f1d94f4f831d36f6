//! The broker's request validation: a username (with an optional `@tenant`), a tenant field and
//! a requested principal, NUL-separated. Whatever passes must be a portable name whose LDAP filter
//! and DN keep their shape, and must map only to a principal the policy allows: never a KDC
//! service principal, never another realm, never another principal than the one asked for. The
//! third field also stands for a DN in the group filters and for a principal a directory entry
//! names (`principal_attribute`), which must pass the same policy.
#![no_main]

use ktbroker_broker::directory::{listed_filter, member_of_filter, template_dn, user_filter};
use ktbroker_broker::policy::{PrincipalPolicy, split_tenant, validate_username};
use libfuzzer_sys::fuzz_target;

const RESERVED: &[&str] = &["krbtgt", "kadmin", "changepw", "K", "kiprop"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = text.splitn(3, '\0');
    let username = fields.next().unwrap_or_default();
    let tenant = fields.next().filter(|t| !t.is_empty());
    let requested = fields.next();

    let Ok((user, _tenant)) = split_tenant(username, tenant) else {
        return;
    };
    // Escaping holds for any DN value, valid username or not.
    if let Some(dn) = requested {
        let shaped = validate_username("x").expect("a valid name");
        let listed = listed_filter(&[dn], Some(&shaped));
        let value = listed
            .strip_prefix("(|(member=")
            .and_then(|f| f.strip_suffix(")(memberUid=x))"))
            .and_then(|f| f.split_once(")(uniqueMember="))
            .map(|(value, again)| {
                assert_eq!(value, again, "{listed}");
                value
            })
            .expect("the fixed shape");
        assert_escaped(value, &listed);
        let chained = member_of_filter(&[dn.to_owned()], true);
        let value = chained
            .strip_prefix("(|(memberOf:1.2.840.113556.1.4.1941:=")
            .and_then(|f| f.strip_suffix("))"))
            .expect("the fixed shape");
        assert_escaped(value, &chained);
        // A principal a directory entry names: only inside the realm and the policy.
        if let Ok(principal) = PrincipalPolicy::plain("EXAMPLE.COM").accept_from_directory(dn, None) {
            let (component, realm) = principal.rsplit_once('@').expect("a principal has a realm");
            assert_eq!(realm, "EXAMPLE.COM");
            assert!(
                !component.contains('/') && !RESERVED.contains(&component),
                "{principal}"
            );
        }
    }
    let Ok(user) = validate_username(user) else {
        return;
    };
    let name = user.as_str();
    assert!(!name.is_empty() && name.len() <= 256);
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    );
    assert_eq!(
        user_filter("(&(objectClass=posixAccount)(uid={user}))", &user),
        format!("(&(objectClass=posixAccount)(uid={name}))")
    );
    assert_eq!(
        template_dn("uid={user},ou=people,dc=example,dc=com", &user),
        format!("uid={name},ou=people,dc=example,dc=com")
    );

    let policies = [
        PrincipalPolicy::plain("EXAMPLE.COM"),
        PrincipalPolicy::new(
            "EXAMPLE.COM",
            "{user}/netdisk@{realm}",
            vec!["*/netdisk@EXAMPLE.COM".into()],
        )
        .expect("a valid template"),
    ];
    for policy in &policies {
        let Ok(principal) = policy.principal_for(&user, requested) else {
            continue;
        };
        let (component, realm) = principal.rsplit_once('@').expect("a principal has a realm");
        assert_eq!(realm, "EXAMPLE.COM");
        let first = component.split('/').next().unwrap_or_default();
        assert!(
            !RESERVED.contains(&component) && !RESERVED.contains(&first),
            "{principal}"
        );
        assert!(
            !component.contains('/') || component.ends_with("/netdisk"),
            "{principal}"
        );
        if let Some(asked) = requested {
            assert_eq!(asked, principal);
        }
    }
});

/// An assertion value of a group filter carries no unescaped filter syntax.
fn assert_escaped(value: &str, filter: &str) {
    assert!(
        !value.contains(['(', ')', '*', '\0']) && value.split('\\').skip(1).all(|hex| hex.len() >= 2),
        "{filter}"
    );
}
