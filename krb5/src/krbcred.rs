//! Ticket delivery: the broker makes the AS exchange with the keys it read and sends back only
//! the resulting credentials (a TGT and its session key) as a KRB-CRED message (RFC 4120 §5.8),
//! which the client stores in the person's cache. The long-term keys never leave libkrb5's memory
//! in the broker.
//!
//! The KRB-CRED's enc-part is left unencrypted (RFC 6448; MIT's `krb5_mk_ncred` with an auth
//! context without a key): there is no key shared with the client to encrypt it in, and the
//! message travels inside the broker's TLS stream.

use crate::{Context, KeyEntry, Krb5Error, Lifetimes, MemoryKeys, TicketTimes, c_string, ffi, memory_keytab_name};
use zeroize::Zeroizing;

/// How the broker asks the KDC for the ticket (bounded by the KDC's own limits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TicketRequest {
    pub lifetimes: Lifetimes,
    /// `None`: krb5.conf's default.
    pub forwardable: Option<bool>,
}

/// The ccache configuration entry that records how a cache's ticket was delivered (`klist -C`
/// shows it; `ktbroker-kinit status` reads it).
pub const DELIVERY_CONFIG_KEY: &str = "ktbroker_delivery";
/// Its values: how the cache's ticket came.
pub(crate) const KEYTAB_DELIVERY: &str = "keytab";
pub(crate) const TICKET_DELIVERY: &str = "ticket";

impl Context {
    /// The AS exchange for `principal` with `keys` (held in a private `MEMORY:` keytab, emptied
    /// again whatever the outcome), and its credentials as a KRB-CRED message. The message holds
    /// the TGT's session key: it is wiped on drop.
    pub fn initial_credentials_message(
        &self,
        principal: &str,
        keys: &[KeyEntry<'_>],
        request: TicketRequest,
    ) -> Result<(Zeroizing<Vec<u8>>, TicketTimes), Krb5Error> {
        let client = self.parse_name(principal)?;
        let keytab = self.resolve_keytab(&memory_keytab_name())?;
        let mut loaded = MemoryKeys {
            keytab: &keytab,
            client: &client,
            added: Vec::new(),
        };
        for key in keys {
            loaded.add(key)?;
        }
        let staged = self.new_memory_ccache()?;
        let exchange = crate::ExchangeOptions {
            lifetimes: request.lifetimes,
            forwardable: request.forwardable,
            addressless: true,
        };
        let obtained = self.initial_creds_into(&client, &keytab, &staged, exchange);
        drop(loaded);
        let message = obtained.and_then(|times| {
            let tgt = self.first_credentials(&staged)?;
            self.krb_cred_of(tgt).map(|message| (message, times))
        });
        let _ = self.destroy(staged);
        message
    }

    /// Stores the credentials of a KRB-CRED message in `ccache` (reinitialized for the client, as
    /// kinit does: staged in memory, then moved over it), after checking that they are
    /// `principal`'s TGT for its own realm; the cache records the delivery as `ticket`.
    pub fn store_credentials_message(
        &self,
        message: &[u8],
        principal: &str,
        ccache: Option<&str>,
    ) -> Result<TicketTimes, Krb5Error> {
        let expected = self.parse_name(principal)?;
        let realm = principal.rsplit_once('@').map_or("", |(_, r)| r);
        let tgs = self.parse_name(&format!("krbtgt/{realm}@{realm}"))?;
        let creds = self.read_krb_cred(message)?;
        let [tgt] = creds.as_slice() else {
            return Err(Krb5Error::local(
                "krb5_rd_cred",
                "the message does not hold exactly one ticket",
            ));
        };
        // SAFETY: the credentials and principals are live for these calls.
        let (right_client, right_server) = unsafe {
            (
                ffi::krb5_principal_compare(self.raw, (**tgt).client, expected.raw) != 0,
                ffi::krb5_principal_compare(self.raw, (**tgt).server, tgs.raw) != 0,
            )
        };
        if !right_client || !right_server {
            return Err(Krb5Error::local(
                "krb5_rd_cred",
                "the ticket is not the expected principal's ticket-granting ticket",
            ));
        }
        // SAFETY: tgt points at credentials filled by rd_cred, alive until `creds` drops.
        let times = TicketTimes::of(unsafe { &**tgt });
        let cache = self.resolve_ccache(ccache)?;
        let staged = self.new_memory_ccache()?;
        let filled = (|| {
            // SAFETY: context, cache and principal are live; initialize empties the cache.
            let code = unsafe { ffi::krb5_cc_initialize(self.raw, staged.raw, expected.raw) };
            self.check(code, "krb5_cc_initialize")?;
            // SAFETY: the credentials are live; store copies them into the staging cache.
            let code = unsafe { ffi::krb5_cc_store_cred(self.raw, staged.raw, *tgt) };
            self.check(code, "krb5_cc_store_cred")?;
            self.set_delivery(&staged, TICKET_DELIVERY)
        })();
        drop(creds);
        if let Err(e) = filled {
            let _ = self.destroy(staged);
            return Err(e);
        }
        self.move_into(staged, &cache, "storing the delivered ticket")?;
        Ok(times)
    }

    /// The `ktbroker_delivery` configuration entry of `ccache`, if it has one.
    pub fn cache_delivery(&self, ccache: Option<&str>) -> Option<String> {
        let cache = self.resolve_ccache(ccache).ok()?;
        let key = c_string(DELIVERY_CONFIG_KEY, "config key").ok()?;
        let mut data = ffi::krb5_data {
            magic: 0,
            length: 0,
            data: std::ptr::null_mut(),
        };
        // SAFETY: context and cache are live; a NULL principal means the cache's own entry;
        // data receives contents we free below.
        let code =
            unsafe { ffi::krb5_cc_get_config(self.raw, cache.raw, std::ptr::null_mut(), key.as_ptr(), &mut data) };
        if code != 0 || data.data.is_null() {
            return None;
        }
        // SAFETY: libkrb5 filled `length` bytes at `data`, copied before they are freed.
        let value = unsafe { std::slice::from_raw_parts(data.data.cast::<u8>(), data.length as usize) }.to_vec();
        // SAFETY: filled by get_config above; freed once.
        unsafe { ffi::krb5_free_data_contents(self.raw, &mut data) };
        String::from_utf8(value).ok()
    }

    /// Records how the ticket in `cache` was delivered (`keytab` or `ticket`) as a ccache
    /// configuration entry, for `status`. The logins write it into the staged cache, so that it
    /// arrives with the ticket.
    pub(crate) fn set_delivery(&self, cache: &crate::Ccache<'_>, delivery: &str) -> Result<(), Krb5Error> {
        let key = c_string(DELIVERY_CONFIG_KEY, "config key")?;
        let mut bytes = delivery.as_bytes().to_vec();
        let mut data = ffi::krb5_data {
            magic: 0,
            length: bytes.len() as u32,
            data: bytes.as_mut_ptr().cast(),
        };
        // SAFETY: context and cache are live; libkrb5 copies key and data; NULL principal: the
        // cache's own entry.
        let code =
            unsafe { ffi::krb5_cc_set_config(self.raw, cache.raw, std::ptr::null_mut(), key.as_ptr(), &mut data) };
        self.check(code, "krb5_cc_set_config")
    }

    /// The first real credentials in `cache` (configuration entries skipped), owned.
    fn first_credentials(&self, cache: &crate::Ccache<'_>) -> Result<OwnedCreds<'_>, Krb5Error> {
        let mut cursor: ffi::krb5_cc_cursor = std::ptr::null_mut();
        // SAFETY: context and cache are live; cursor receives an iterator ended below.
        let code = unsafe { ffi::krb5_cc_start_seq_get(self.raw, cache.raw, &mut cursor) };
        self.check(code, "krb5_cc_start_seq_get")?;
        let found = loop {
            let mut creds = OwnedCreds {
                context: self,
                // SAFETY: an all-zero krb5_creds is the empty value next_cred fills in.
                creds: unsafe { std::mem::zeroed() },
            };
            // SAFETY: cursor came from start_seq_get on this cache; creds is ours to fill.
            let code = unsafe { ffi::krb5_cc_next_cred(self.raw, cache.raw, &mut cursor, &mut creds.creds) };
            if code != 0 {
                break Err(Krb5Error::local("krb5_cc_next_cred", "the exchange left no ticket"));
            }
            // SAFETY: the server principal was filled by next_cred.
            if unsafe { ffi::krb5_is_config_principal(self.raw, creds.creds.server) } == 0 {
                break Ok(creds);
            }
        };
        // SAFETY: ends the iteration started above, once.
        unsafe { ffi::krb5_cc_end_seq_get(self.raw, cache.raw, &mut cursor) };
        found
    }

    /// `creds` as a KRB-CRED message with an unencrypted enc-part.
    fn krb_cred_of(&self, mut creds: OwnedCreds<'_>) -> Result<Zeroizing<Vec<u8>>, Krb5Error> {
        let auth = self.auth_context()?;
        let mut der: *mut ffi::krb5_data = std::ptr::null_mut();
        // SAFETY: context, auth context and creds are live; der receives a message we free.
        let code = unsafe { ffi::krb5_mk_1cred(self.raw, auth.raw, &mut creds.creds, &mut der, std::ptr::null_mut()) };
        self.check(code, "krb5_mk_1cred")?;
        // SAFETY: mk_1cred filled `der` with `length` bytes; copied, then zeroed (it holds the
        // session key in the clear) and freed once.
        unsafe {
            let length = (*der).length as usize;
            let bytes = std::slice::from_raw_parts((*der).data.cast::<u8>(), length);
            let message = Zeroizing::new(bytes.to_vec());
            std::ptr::write_bytes((*der).data, 0, length);
            ffi::krb5_free_data(self.raw, der);
            Ok(message)
        }
    }

    /// The credentials a KRB-CRED message carries.
    fn read_krb_cred(&self, message: &[u8]) -> Result<CredsList<'_>, Krb5Error> {
        let auth = self.auth_context()?;
        let length =
            u32::try_from(message.len()).map_err(|_| Krb5Error::local("krb5_rd_cred", "message longer than 4 GiB"))?;
        let mut data = ffi::krb5_data {
            magic: 0,
            length,
            // libkrb5 only reads the message.
            data: message.as_ptr().cast_mut().cast(),
        };
        let mut list: *mut *mut ffi::krb5_creds = std::ptr::null_mut();
        // SAFETY: context and auth context are live; data points at the caller's bytes for the
        // call; list receives a NULL-terminated array freed by CredsList.
        let code = unsafe { ffi::krb5_rd_cred(self.raw, auth.raw, &mut data, &mut list, std::ptr::null_mut()) };
        self.check(code, "krb5_rd_cred")?;
        let mut entries = Vec::new();
        // SAFETY: list is a NULL-terminated array of credentials from rd_cred.
        unsafe {
            let mut at = list;
            while !at.is_null() && !(*at).is_null() {
                entries.push(*at);
                at = at.add(1);
            }
        }
        Ok(CredsList {
            context: self,
            list,
            entries,
        })
    }

    /// An auth context with no key and no replay or time checks (there is no KRB-CRED sender to
    /// check: the message came over the broker's authenticated TLS stream).
    fn auth_context(&self) -> Result<AuthContext<'_>, Krb5Error> {
        let mut raw: ffi::krb5_auth_context = std::ptr::null_mut();
        // SAFETY: context is live; raw receives an auth context freed on drop.
        let code = unsafe { ffi::krb5_auth_con_init(self.raw, &mut raw) };
        self.check(code, "krb5_auth_con_init")?;
        let auth = AuthContext { context: self, raw };
        // SAFETY: both are live; flags 0 turns off the timestamp and sequence checks.
        let code = unsafe { ffi::krb5_auth_con_setflags(self.raw, auth.raw, 0) };
        self.check(code, "krb5_auth_con_setflags")?;
        Ok(auth)
    }
}

struct AuthContext<'a> {
    context: &'a Context,
    raw: ffi::krb5_auth_context,
}

impl Drop for AuthContext<'_> {
    fn drop(&mut self) {
        // SAFETY: raw came from krb5_auth_con_init and is freed once.
        unsafe { ffi::krb5_auth_con_free(self.context.raw, self.raw) };
    }
}

/// Credentials filled by libkrb5, freed (session key zeroed) on drop.
struct OwnedCreds<'a> {
    context: &'a Context,
    creds: ffi::krb5_creds,
}

impl Drop for OwnedCreds<'_> {
    fn drop(&mut self) {
        // SAFETY: filled by libkrb5 (or all zero), freed once.
        unsafe { ffi::krb5_free_cred_contents(self.context.raw, &mut self.creds) };
    }
}

/// The array krb5_rd_cred returns, freed on drop.
struct CredsList<'a> {
    context: &'a Context,
    list: *mut *mut ffi::krb5_creds,
    entries: Vec<*mut ffi::krb5_creds>,
}

impl CredsList<'_> {
    fn as_slice(&self) -> &[*mut ffi::krb5_creds] {
        &self.entries
    }
}

impl Drop for CredsList<'_> {
    fn drop(&mut self) {
        if !self.list.is_null() {
            // SAFETY: the array came from krb5_rd_cred and is freed once, with every entry.
            unsafe { ffi::krb5_free_tgt_creds(self.context.raw, self.list) };
        }
    }
}
