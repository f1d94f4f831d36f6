//! How a login's credentials leave the broker: the principal's keytab, or (ticket delivery) only
//! the initial credentials of an AS exchange the broker makes itself, so the long-term keys never
//! leave it.

use ktbroker_keytab::Keytab;
use ktbroker_proto::v1::Delivery;
use zeroize::Zeroizing;

/// Which deliveries a tenant allows (`deliveries = ["keytab", "ticket"]`, the default: keytab
/// for existing clients, ticket for those that ask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deliveries {
    pub keytab: bool,
    pub ticket: bool,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            keytab: true,
            ticket: true,
        }
    }
}

impl Deliveries {
    pub fn parse(names: &[String]) -> Result<Self, String> {
        let mut allowed = Self {
            keytab: false,
            ticket: false,
        };
        for name in names {
            match name.as_str() {
                "keytab" => allowed.keytab = true,
                "ticket" => allowed.ticket = true,
                other => return Err(format!("{other:?} is not a delivery; use \"keytab\" and/or \"ticket\"")),
            }
        }
        if !allowed.keytab && !allowed.ticket {
            return Err("allows no delivery at all".into());
        }
        Ok(allowed)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.keytab {
            names.push("keytab".to_owned());
        }
        if self.ticket {
            names.push("ticket".to_owned());
        }
        names
    }

    pub fn allows(&self, wanted: Wanted) -> bool {
        match wanted {
            Wanted::Keytab => self.keytab,
            Wanted::Ticket => self.ticket,
        }
    }

    /// For ServerInfo.
    pub fn offered(&self) -> Vec<i32> {
        let mut offered = Vec::new();
        if self.keytab {
            offered.push(Delivery::Keytab as i32);
        }
        if self.ticket {
            offered.push(Delivery::Ticket as i32);
        }
        offered
    }
}

/// What the request asks for. An unset (or unknown) value is a keytab: what clients from before
/// ticket delivery expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Keytab,
    Ticket,
}

impl Wanted {
    pub fn of(delivery: i32) -> Self {
        if delivery == Delivery::Ticket as i32 {
            Self::Ticket
        } else {
            Self::Keytab
        }
    }

    /// The audit and metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Keytab => "keytab",
            Self::Ticket => "ticket",
        }
    }
}

/// The AS exchange with the keys read, in libkrb5's memory only: the principal's TGT as a
/// KRB-CRED message, and its times. Blocking (a KDC round trip): run off the async threads.
pub fn ticket_for(
    principal: &str,
    keytab: &Keytab,
    request: ktbroker_krb5::TicketRequest,
) -> Result<(Zeroizing<Vec<u8>>, ktbroker_krb5::TicketTimes), ktbroker_krb5::Krb5Error> {
    let keys: Vec<ktbroker_krb5::KeyEntry<'_>> = keytab
        .entries
        .iter()
        .map(|e| ktbroker_krb5::KeyEntry {
            kvno: e.kvno,
            enctype: i32::from(e.key.enctype),
            contents: &e.key.contents,
        })
        .collect();
    let context = ktbroker_krb5::Context::new()?;
    let request = with_default_renewal(&context, request);
    context.initial_credentials_message(principal, &keys, request)
}

/// What ktbroker-kinit asks for in keytab mode when nothing says otherwise: a ticket renewable for
/// seven days (the KDC caps it), so that `renew` works the same for delivered tickets.
pub const DEFAULT_RENEW_LIFETIME: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn with_default_renewal(
    context: &ktbroker_krb5::Context,
    mut request: ktbroker_krb5::TicketRequest,
) -> ktbroker_krb5::TicketRequest {
    if request.lifetimes.renewable.is_none() && context.libdefault("renew_lifetime").ok().flatten().is_none() {
        request.lifetimes.renewable = Some(DEFAULT_RENEW_LIFETIME);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_parse_and_default_to_both() {
        assert_eq!(Deliveries::default().names(), ["keytab", "ticket"]);
        let ticket_only = Deliveries::parse(&["ticket".into()]).unwrap();
        assert!(ticket_only.allows(Wanted::Ticket) && !ticket_only.allows(Wanted::Keytab));
        assert_eq!(ticket_only.offered(), [Delivery::Ticket as i32]);
        assert!(Deliveries::parse(&[]).is_err());
        assert!(Deliveries::parse(&["password".into()]).is_err());
        assert_eq!(Wanted::of(0), Wanted::Keytab, "older clients get what they expect");
        assert_eq!(Wanted::of(Delivery::Keytab as i32), Wanted::Keytab);
        assert_eq!(Wanted::of(Delivery::Ticket as i32), Wanted::Ticket);
    }
}
