//! In-process MIT Kerberos for ktbroker: a context and the few operations built on it — get a TGT
//! with the keys in a keytab into a credential cache (what `kinit -k -t KEYTAB -c CCACHE PRINCIPAL`
//! does, without starting a process), read what a cache holds (`klist`), renew its TGT
//! (`kinit -R`) and destroy it (`kdestroy`).
//!
//! All `unsafe` lives here, in [`ffi`] and in [`gss`]: this crate is where ktbroker's client
//! side meets libkrb5. A [`Context`] is `Send` but not `Sync`: libkrb5 contexts must not be used
//! from two threads at once.

// The FFI crate: the workspace denies `unsafe` everywhere else.
#![allow(unsafe_code)]

pub mod ffi;
pub mod gss;
mod krbcred;
mod without_spake;
pub use krbcred::{DELIVERY_CONFIG_KEY, TicketRequest};

use std::ffi::{CStr, CString};
use std::marker::PhantomData;

/// A failed libkrb5 call: its code and MIT's own message for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{during}: {message} (code {code})")]
pub struct Krb5Error {
    pub code: i32,
    pub message: String,
    pub during: &'static str,
}

/// What a libkrb5 failure means, decided by its `krb5_error_code` alone (as SSSD's krb5_child
/// maps them): MIT's message is translated into the user's language and is only for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// This host's clock is too far from the KDC's.
    ClockSkew,
    /// No KDC of the realm answered.
    KdcUnreachable,
    /// The configuration (krb5.conf, DNS) does not say where the realm's KDCs are.
    RealmUnknown,
    /// The KDC does not accept the key (a stale keytab, a key changed since).
    KeyRejected,
    /// The KDC refuses the principal: unknown, disabled, locked or expired there.
    PrincipalRefused,
    /// The credential cache does not exist.
    NoCache,
    Other,
}

impl FailureKind {
    pub fn of(code: ffi::krb5_error_code) -> Self {
        match code {
            ffi::KRB5KRB_AP_ERR_SKEW => Self::ClockSkew,
            ffi::KRB5_KDC_UNREACH => Self::KdcUnreachable,
            ffi::KRB5_REALM_UNKNOWN | ffi::KRB5_REALM_CANT_RESOLVE | ffi::KRB5_CONFIG_NODEFREALM => Self::RealmUnknown,
            ffi::KRB5KDC_ERR_PREAUTH_FAILED | ffi::KRB5KRB_AP_ERR_BAD_INTEGRITY => Self::KeyRejected,
            ffi::KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN | ffi::KRB5KDC_ERR_CLIENT_REVOKED | ffi::KRB5KDC_ERR_KEY_EXP => {
                Self::PrincipalRefused
            }
            ffi::KRB5_CC_NOTFOUND | ffi::KRB5_FCC_NOFILE => Self::NoCache,
            _ => Self::Other,
        }
    }
}

impl Krb5Error {
    pub fn kind(&self) -> FailureKind {
        FailureKind::of(self.code)
    }

    /// An AS exchange that found no pre-authentication mechanism it could use for what the KDC
    /// asked: the KDC wants one this context did not load (see [`Context::for_known_keys`]).
    pub fn needs_another_preauth(&self) -> bool {
        self.code == ffi::KRB5_PREAUTH_FAILED
    }

    /// A context that could not be created.
    fn no_context(code: ffi::krb5_error_code, during: &'static str) -> Self {
        Self {
            code,
            message: "cannot create a krb5 context (is the krb5 configuration readable?)".into(),
            during,
        }
    }

    /// A failure found before libkrb5 was called (code -1).
    pub fn local(during: &'static str, message: &str) -> Self {
        Self {
            code: -1,
            message: message.to_owned(),
            during,
        }
    }
}

/// One keytab entry as libkrb5 read it (see [`Context::keytab_entries`]); the key is wiped on drop.
pub struct KeytabEntry {
    pub principal: String,
    pub kvno: u32,
    pub enctype: i32,
    pub key: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for KeytabEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeytabEntry {{ {} kvno {} enctype {}, key: <redacted> }}",
            self.principal, self.kvno, self.enctype
        )
    }
}

/// Ticket lifetimes to ask the KDC for (it grants at most its own limits); `None` leaves the
/// choice to krb5.conf's `[libdefaults]` and libkrb5's defaults, as a plain `kinit` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetimes {
    /// `kinit -l`.
    pub ticket: Option<std::time::Duration>,
    /// `kinit -r`: the ticket is renewable until this long after it starts.
    pub renewable: Option<std::time::Duration>,
}

/// A ticket time (seconds since the epoch) in local time, formatted as klist prints it (libkrb5's
/// `krb5_timestamp_to_sfstring`, in the locale's short date format).
pub fn local_time(timestamp: i64) -> String {
    let mut buffer = [0 as std::os::raw::c_char; 64];
    // Kerberos timestamps are 32-bit; libkrb5 reads values past 2038 as unsigned.
    let raw = timestamp as u32 as i32;
    // SAFETY: buffer is writable for its whole length, which is passed; a NULL pad means no padding.
    let code = unsafe { ffi::krb5_timestamp_to_sfstring(raw, buffer.as_mut_ptr(), buffer.len(), std::ptr::null_mut()) };
    if code != 0 {
        return timestamp.to_string();
    }
    // SAFETY: on success the buffer holds a NUL-terminated string within its length.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// A duration as `kinit -l`/`-r` and krb5.conf write them ("10h", "7d", "1h30m", "3600"), read by
/// libkrb5's own `krb5_string_to_deltat`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, Krb5Error> {
    let text = c_string(text, "duration")?;
    let mut seconds: ffi::krb5_deltat = 0;
    // SAFETY: text is a NUL-terminated string libkrb5 only reads (the parameter is not const in
    // the prototype); seconds is ours to write.
    let code = unsafe { ffi::krb5_string_to_deltat(text.as_ptr().cast_mut(), &mut seconds) };
    if code != 0 {
        return Err(Krb5Error {
            code,
            message: "not a duration (write it as kinit -l does: 10h, 7d, 1h30m, or seconds)".into(),
            during: "krb5_string_to_deltat",
        });
    }
    u64::try_from(seconds)
        .map(std::time::Duration::from_secs)
        .map_err(|_| Krb5Error::local("krb5_string_to_deltat", "a negative duration"))
}

/// One key for [`Context::kinit_with_keys`]. The caller owns (and wipes) the bytes; libkrb5
/// copies them into its memory keytab for the length of one exchange.
pub struct KeyEntry<'a> {
    pub kvno: u32,
    pub enctype: i32,
    pub contents: &'a [u8],
}

impl std::fmt::Debug for KeyEntry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyEntry {{ kvno: {}, enctype: {}, contents: <redacted> }}",
            self.kvno, self.enctype
        )
    }
}

/// What an AS exchange asks the KDC for, beyond krb5.conf's defaults.
#[derive(Debug, Clone, Copy, Default)]
struct ExchangeOptions {
    lifetimes: Lifetimes,
    forwardable: Option<bool>,
    /// No client addresses in the ticket, whatever krb5.conf's `noaddresses` says: a ticket made
    /// for another host (ticket delivery) must not be bound to this one's addresses.
    addressless: bool,
}

/// A name no other memory keytab of this process has (MEMORY: keytabs are process-local).
fn memory_keytab_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("MEMORY:ktbroker-{}-{n}", std::process::id())
}

/// The entries added to a memory keytab; dropping it removes every one of them. (MIT keeps a
/// MEMORY: keytab's contents until its entries are removed, even after the last close; removing
/// an entry frees it with krb5_free_keytab_entry_contents, which zeroes the key.)
struct MemoryKeys<'k, 'c> {
    keytab: &'k Keytab<'c>,
    client: &'k Principal<'c>,
    added: Vec<(u32, i32)>,
}

impl MemoryKeys<'_, '_> {
    fn add(&mut self, key: &KeyEntry<'_>) -> Result<(), Krb5Error> {
        let context = self.keytab.context;
        let length = u32::try_from(key.contents.len())
            .map_err(|_| Krb5Error::local("krb5_kt_add_entry", "key longer than 4 GiB"))?;
        let mut entry = self.entry(key.kvno, key.enctype);
        entry.key.length = length;
        // libkrb5 takes the key as non-const but only copies it (krb5_copy_keyblock_contents).
        entry.key.contents = key.contents.as_ptr().cast_mut();
        // SAFETY: keytab and principal are live handles of this context; the entry points at the
        // caller's key bytes for the duration of the call only, and libkrb5 copies what it keeps.
        let code = unsafe { ffi::krb5_kt_add_entry(context.raw, self.keytab.raw, &mut entry) };
        context.check(code, "krb5_kt_add_entry")?;
        self.added.push((key.kvno, key.enctype));
        Ok(())
    }

    /// The entry that names (principal, kvno, enctype), without key bytes.
    fn entry(&self, kvno: u32, enctype: i32) -> ffi::krb5_keytab_entry {
        ffi::krb5_keytab_entry {
            magic: 0,
            principal: self.client.raw,
            timestamp: 0,
            vno: kvno,
            key: ffi::krb5_keyblock {
                magic: 0,
                enctype,
                length: 0,
                contents: std::ptr::null_mut(),
            },
        }
    }
}

impl Drop for MemoryKeys<'_, '_> {
    fn drop(&mut self) {
        let context = self.keytab.context;
        for (kvno, enctype) in std::mem::take(&mut self.added) {
            let mut entry = self.entry(kvno, enctype);
            // SAFETY: keytab and principal are live; the memory keytab matches entries by
            // principal, kvno and enctype, and frees (zeroing) its own copy of the key.
            unsafe { ffi::krb5_kt_remove_entry(context.raw, self.keytab.raw, &mut entry) };
        }
    }
}

/// Validity of a ticket, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketTimes {
    pub end: i64,
    pub renew_till: i64,
}

/// What a credential cache holds, as far as a login cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    /// `TYPE:residual`, e.g. `FILE:/tmp/krb5cc_1000`.
    pub cache: String,
    pub principal: String,
    /// The TGT for the principal's own realm, if the cache holds one (expired or not).
    pub tgt: Option<TicketTimes>,
}

pub struct Context {
    raw: ffi::krb5_context,
    /// Set for a context made by [`Context::for_known_keys`]: the profile fragment it reads.
    without_spake: Option<std::os::fd::OwnedFd>,
    /// Not Sync: one thread at a time.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

// SAFETY: a krb5 context has no thread affinity; `PhantomData<Cell>` keeps it from being shared
// between threads, so it is only ever used by one at a time.
unsafe impl Send for Context {}

impl Context {
    /// A context configured from the environment (KRB5_CONFIG, else /etc/krb5.conf).
    pub fn new() -> Result<Self, Krb5Error> {
        let mut raw: ffi::krb5_context = std::ptr::null_mut();
        // SAFETY: krb5_init_context writes a new context to the pointer, or returns an error.
        let code = unsafe { ffi::krb5_init_context(&mut raw) };
        if code != 0 || raw.is_null() {
            return Err(Krb5Error::no_context(code, "krb5_init_context"));
        }
        Ok(Self {
            raw,
            without_spake: None,
            _not_sync: PhantomData,
        })
    }

    /// A context for an AS exchange with keys at hand: configured as [`Context::new`], except
    /// that it never loads the SPAKE module (see `without_spake.rs`). Should the exchange fail
    /// with [`Krb5Error::needs_another_preauth`], a realm that insists on SPAKE, the caller tries
    /// once more with a default context.
    pub fn for_known_keys() -> Result<Self, Krb5Error> {
        let (raw, fragment) = without_spake::new_context()?;
        Ok(Self {
            raw,
            without_spake: Some(fragment),
            _not_sync: PhantomData,
        })
    }

    /// Whether this context leaves SPAKE out ([`Context::for_known_keys`]).
    pub fn lacks_spake(&self) -> bool {
        self.without_spake.is_some()
    }

    /// Gets initial credentials (a TGT) for `principal` with `keys` (what `kinit -k` does) and
    /// stores them in `ccache` (a ccache name; `None` is the default cache: KRB5CCNAME, else
    /// krb5.conf's), which is (re)initialized for `principal`, with the configuration entry that
    /// records a keytab delivery (see [`Context::cache_delivery`]).
    ///
    /// The keys live only in libkrb5's own memory meanwhile: a `MEMORY:` keytab private to this
    /// process (as SSSD's krb5_child loads them), whose entries are removed again, which makes
    /// libkrb5 zero its copies, as soon as the exchange is over, whatever its outcome.
    pub fn kinit_with_keys(
        &self,
        principal: &str,
        keys: &[KeyEntry<'_>],
        ccache: Option<&str>,
        lifetimes: Lifetimes,
    ) -> Result<TicketTimes, Krb5Error> {
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
        let times = self.initial_creds(&client, &keytab, ccache, lifetimes);
        drop(loaded);
        times
    }

    /// The AS exchange, its ticket staged in a `MEMORY:` cache and then moved over `ccache` (as MIT
    /// kinit does): a failed login leaves whatever ticket the cache held before.
    fn initial_creds(
        &self,
        client: &Principal<'_>,
        keytab: &Keytab<'_>,
        ccache: Option<&str>,
        lifetimes: Lifetimes,
    ) -> Result<TicketTimes, Krb5Error> {
        let cache = self.resolve_ccache(ccache)?;
        let staged = self.new_memory_ccache()?;
        let exchange = ExchangeOptions {
            lifetimes,
            ..ExchangeOptions::default()
        };
        let times = self
            .initial_creds_into(client, keytab, &staged, exchange)
            .and_then(|times| self.set_delivery(&staged, krbcred::KEYTAB_DELIVERY).map(|()| times));
        match times {
            Ok(times) => self.move_into(staged, &cache, "storing the ticket").map(|()| times),
            Err(e) => {
                // Dropping only closes a MEMORY cache: destroy it, and whatever it holds, instead.
                let _ = self.destroy(staged);
                Err(e)
            }
        }
    }

    /// Destroys a cache and what it holds (krb5_cc_destroy also releases the handle).
    fn destroy(&self, cache: Ccache<'_>) -> Result<(), Krb5Error> {
        let raw = cache.raw;
        std::mem::forget(cache);
        // SAFETY: raw is a live cache handle of this context, consumed exactly once here.
        let code = unsafe { ffi::krb5_cc_destroy(self.raw, raw) };
        self.check(code, "krb5_cc_destroy")
    }

    fn initial_creds_into(
        &self,
        client: &Principal<'_>,
        keytab: &Keytab<'_>,
        cache: &Ccache<'_>,
        exchange: ExchangeOptions,
    ) -> Result<TicketTimes, Krb5Error> {
        let lifetimes = exchange.lifetimes;
        let options = self.init_creds_options()?;
        // The keys are at hand, so the first AS-REQ carries an encrypted timestamp already: a KDC
        // that requires pre-authentication (AD always, MIT with +requires_preauth) then answers
        // at once instead of first with PREAUTH_REQUIRED. If libkrb5 cannot make it (no key of
        // the enctype it guesses) it sends the request without, as it would have anyway.
        // SAFETY: options is live; the list is a static, so it outlives the options, and
        // libkrb5 only reads it.
        unsafe {
            ffi::krb5_get_init_creds_opt_set_preauth_list(
                options.raw,
                OPTIMISTIC_PREAUTH.as_ptr().cast_mut(),
                OPTIMISTIC_PREAUTH.len() as std::os::raw::c_int,
            )
        };
        if let Some(forwardable) = exchange.forwardable {
            // SAFETY: options is live; the setter only records the value.
            unsafe { ffi::krb5_get_init_creds_opt_set_forwardable(options.raw, i32::from(forwardable)) };
        }
        if exchange.addressless {
            // SAFETY: options is live; NULL means an empty address list.
            unsafe { ffi::krb5_get_init_creds_opt_set_address_list(options.raw, std::ptr::null_mut()) };
        }
        let seconds = |d: std::time::Duration| ffi::krb5_deltat::try_from(d.as_secs()).unwrap_or(ffi::krb5_deltat::MAX);
        if let Some(ticket) = lifetimes.ticket {
            // SAFETY: options is live; the setter only records the value.
            unsafe { ffi::krb5_get_init_creds_opt_set_tkt_life(options.raw, seconds(ticket)) };
        }
        if let Some(renewable) = lifetimes.renewable {
            // SAFETY: as above.
            unsafe { ffi::krb5_get_init_creds_opt_set_renew_life(options.raw, seconds(renewable)) };
        }
        // SAFETY: context, options and cache are live; the option only records the cache.
        let code = unsafe { ffi::krb5_get_init_creds_opt_set_out_ccache(self.raw, options.raw, cache.raw) };
        self.check(code, "krb5_get_init_creds_opt_set_out_ccache")?;
        // SAFETY: an all-zero krb5_creds is the empty value libkrb5 fills in and later frees.
        let mut creds: ffi::krb5_creds = unsafe { std::mem::zeroed() };
        // SAFETY: every handle is live for the call; creds is ours to be filled; start time 0
        // means now; a NULL service means the realm's TGS.
        let code = unsafe {
            ffi::krb5_get_init_creds_keytab(
                self.raw,
                &mut creds,
                client.raw,
                keytab.raw,
                0,
                std::ptr::null(),
                options.raw,
            )
        };
        self.check(code, "krb5_get_init_creds_keytab")?;
        let times = TicketTimes::of(&creds);
        // SAFETY: creds was filled by the successful call above and is freed once (this zeroes the
        // session key it holds).
        unsafe { ffi::krb5_free_cred_contents(self.raw, &mut creds) };
        Ok(times)
    }

    /// Every entry of the keytab `name` as libkrb5 itself reads it (`klist -k -K`), in file order:
    /// the reference the project's own keytab codec is tested against.
    pub fn keytab_entries(&self, name: &str) -> Result<Vec<KeytabEntry>, Krb5Error> {
        let keytab = self.resolve_keytab(name)?;
        let mut cursor: ffi::krb5_kt_cursor = std::ptr::null_mut();
        // SAFETY: context and keytab are live; cursor receives an iterator ended below.
        let code = unsafe { ffi::krb5_kt_start_seq_get(self.raw, keytab.raw, &mut cursor) };
        self.check(code, "krb5_kt_start_seq_get")?;
        let mut entries = Vec::new();
        let ended = loop {
            // SAFETY: an all-zero entry is the empty value next_entry fills in.
            let mut entry: ffi::krb5_keytab_entry = unsafe { std::mem::zeroed() };
            // SAFETY: cursor came from start_seq_get on this keytab; entry is ours to fill.
            let code = unsafe { ffi::krb5_kt_next_entry(self.raw, keytab.raw, &mut entry, &mut cursor) };
            if code != 0 {
                break code;
            }
            let key = if entry.key.contents.is_null() {
                Vec::new()
            } else {
                // SAFETY: libkrb5 filled `length` bytes at `contents`.
                unsafe { std::slice::from_raw_parts(entry.key.contents, entry.key.length as usize) }.to_vec()
            };
            let principal = self.unparse(entry.principal);
            entries.push((principal, entry.vno, entry.key.enctype, zeroize::Zeroizing::new(key)));
            // SAFETY: filled by next_entry; freed once (this zeroes libkrb5's copy of the key).
            unsafe { ffi::krb5_free_keytab_entry_contents(self.raw, &mut entry) };
        };
        // SAFETY: ends the iteration started above, once.
        unsafe { ffi::krb5_kt_end_seq_get(self.raw, keytab.raw, &mut cursor) };
        if ended != ffi::KRB5_KT_END {
            self.check(ended, "krb5_kt_next_entry")?;
        }
        entries
            .into_iter()
            .map(|(principal, kvno, enctype, key)| {
                Ok(KeytabEntry {
                    principal: principal?,
                    kvno,
                    enctype,
                    key,
                })
            })
            .collect()
    }

    /// Whether `ccache` (or the default cache) belongs to `principal`.
    pub fn ccache_belongs_to(&self, ccache: Option<&str>, principal: &str) -> Result<bool, Krb5Error> {
        let cache = self.resolve_ccache(ccache)?;
        let expected = self.parse_name(principal)?;
        let mut raw: ffi::krb5_principal = std::ptr::null_mut();
        // SAFETY: context and cache are live; raw receives a principal we free below.
        let code = unsafe { ffi::krb5_cc_get_principal(self.raw, cache.raw, &mut raw) };
        self.check(code, "krb5_cc_get_principal")?;
        let owner = Principal { context: self, raw };
        // SAFETY: both principals are live and belong to this context.
        Ok(unsafe { ffi::krb5_principal_compare(self.raw, owner.raw, expected.raw) } != 0)
    }

    /// The cache's principal and its TGT's times (`klist`).
    pub fn cache_status(&self, ccache: Option<&str>) -> Result<CacheStatus, Krb5Error> {
        let cache = self.resolve_ccache(ccache)?;
        let owner = self.cache_principal(&cache)?;
        let principal = self.unparse(owner.raw)?;
        let realm = principal.rsplit_once('@').map_or("", |(_, r)| r);
        let tgt_name = format!("krbtgt/{realm}@{realm}");
        let mut tgt: Option<TicketTimes> = None;
        let mut cursor: ffi::krb5_cc_cursor = std::ptr::null_mut();
        // SAFETY: context and cache are live; cursor receives an iterator ended below.
        let code = unsafe { ffi::krb5_cc_start_seq_get(self.raw, cache.raw, &mut cursor) };
        self.check(code, "krb5_cc_start_seq_get")?;
        loop {
            // SAFETY: an all-zero krb5_creds is the empty value next_cred fills in.
            let mut creds: ffi::krb5_creds = unsafe { std::mem::zeroed() };
            // SAFETY: cursor came from start_seq_get on this cache; creds is ours to fill.
            let code = unsafe { ffi::krb5_cc_next_cred(self.raw, cache.raw, &mut cursor, &mut creds) };
            if code != 0 {
                break; // KRB5_CC_END, or a cache that cannot be read further: what we have stands
            }
            let server = self.unparse(creds.server).unwrap_or_default();
            if server == tgt_name {
                let times = TicketTimes::of(&creds);
                if tgt.is_none_or(|t| times.end > t.end) {
                    tgt = Some(times);
                }
            }
            // SAFETY: creds was filled by next_cred and is freed once.
            unsafe { ffi::krb5_free_cred_contents(self.raw, &mut creds) };
        }
        // SAFETY: ends the iteration started above, once.
        unsafe { ffi::krb5_cc_end_seq_get(self.raw, cache.raw, &mut cursor) };
        Ok(CacheStatus {
            cache: self.cache_name(&cache),
            principal,
            tgt,
        })
    }

    /// The default realm from the krb5 configuration.
    pub fn default_realm(&self) -> Result<String, Krb5Error> {
        let mut raw: *mut std::os::raw::c_char = std::ptr::null_mut();
        // SAFETY: context is live; raw receives a string freed right after copying.
        let code = unsafe { ffi::krb5_get_default_realm(self.raw, &mut raw) };
        self.check(code, "krb5_get_default_realm")?;
        // SAFETY: raw is a NUL-terminated string from libkrb5, freed once.
        let realm = unsafe {
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            ffi::krb5_free_default_realm(self.raw, raw);
            text
        };
        Ok(realm)
    }

    /// Whether the KDC of `realm` answers: asks for a ticket for a principal that does not exist
    /// (no password is sent; the KDC refuses before any key is involved). `Ok` when the KDC said
    /// "client not found", the error otherwise (e.g. "Cannot contact any KDC").
    pub fn probe_kdc(&self, realm: &str) -> Result<(), Krb5Error> {
        let client = self.parse_name(&format!("ktbroker-doctor-probe-no-such-user@{realm}"))?;
        let options = self.init_creds_options()?;
        // SAFETY: an all-zero krb5_creds is the empty value libkrb5 fills in (on success only).
        let mut creds: ffi::krb5_creds = unsafe { std::mem::zeroed() };
        let password = c"-";
        // SAFETY: every handle is live for the call; no prompter; the password is a valid C string.
        let code = unsafe {
            ffi::krb5_get_init_creds_password(
                self.raw,
                &mut creds,
                client.raw,
                password.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
                options.raw,
            )
        };
        if code == 0 {
            // SAFETY: filled by the successful call; freed once. (A principal by that name exists.)
            unsafe { ffi::krb5_free_cred_contents(self.raw, &mut creds) };
            return Ok(());
        }
        if code == ffi::KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN {
            return Ok(());
        }
        self.check(code, "asking the KDC")
    }

    /// The full name (`TYPE:residual`) of `ccache`, or of the default cache when `None`.
    pub fn cache_full_name(&self, ccache: Option<&str>) -> Result<String, Krb5Error> {
        let cache = self.resolve_ccache(ccache)?;
        Ok(self.cache_name(&cache))
    }

    /// Renews the cache's TGT with the KDC and puts the renewed ticket in its place (`kinit -R`):
    /// built in a `MEMORY:` cache and moved over the old one, as MIT kinit does, so that a failed
    /// store leaves the old TGT where it was and no reader ever sees a half-written cache.
    pub fn renew(&self, ccache: Option<&str>) -> Result<TicketTimes, Krb5Error> {
        let cache = self.resolve_ccache(ccache)?;
        let owner = self.cache_principal(&cache)?;
        // SAFETY: an all-zero krb5_creds is the empty value libkrb5 fills in.
        let mut creds: ffi::krb5_creds = unsafe { std::mem::zeroed() };
        // SAFETY: context, cache and principal are live; NULL service means the TGT.
        let code = unsafe { ffi::krb5_get_renewed_creds(self.raw, &mut creds, owner.raw, cache.raw, std::ptr::null()) };
        self.check(code, "krb5_get_renewed_creds")?;
        let times = TicketTimes::of(&creds);
        let staged = self.new_memory_ccache().and_then(|staged| {
            // SAFETY: the staging cache and the principal are live; initialize empties it.
            let code = unsafe { ffi::krb5_cc_initialize(self.raw, staged.raw, owner.raw) };
            self.check(code, "krb5_cc_initialize")?;
            // SAFETY: creds was filled above; store copies it into the staging cache.
            let code = unsafe { ffi::krb5_cc_store_cred(self.raw, staged.raw, &mut creds) };
            self.check(code, "krb5_cc_store_cred")?;
            Ok(staged)
        });
        // SAFETY: creds was filled by get_renewed_creds and is freed once (zeroing its key).
        unsafe { ffi::krb5_free_cred_contents(self.raw, &mut creds) };
        self.move_into(staged?, &cache, "storing the renewed ticket")?;
        Ok(times)
    }

    /// A new, empty `MEMORY:` cache only this process can see.
    fn new_memory_ccache(&self) -> Result<Ccache<'_>, Krb5Error> {
        let mut raw: ffi::krb5_ccache = std::ptr::null_mut();
        // SAFETY: context is live; the type is a valid C string; NULL hint; raw receives a handle.
        let code = unsafe { ffi::krb5_cc_new_unique(self.raw, c"MEMORY".as_ptr(), std::ptr::null(), &mut raw) };
        self.check(code, "krb5_cc_new_unique")?;
        Ok(Ccache { context: self, raw })
    }

    /// Replaces `target`'s contents with `staged`'s in one step; `staged` is gone afterwards
    /// either way (moved on success, destroyed with what it held on failure).
    fn move_into(&self, staged: Ccache<'_>, target: &Ccache<'_>, during: &'static str) -> Result<(), Krb5Error> {
        let raw = staged.raw;
        // krb5_cc_move consumes the source on success: the handle must not be closed again.
        std::mem::forget(staged);
        // SAFETY: both handles are live caches of this context.
        let code = unsafe { ffi::krb5_cc_move(self.raw, raw, target.raw) };
        if code != 0 {
            // On failure the source is still ours: destroy it, and the ticket in it.
            let _ = self.destroy(Ccache { context: self, raw });
        }
        self.check(code, during)
    }

    /// Destroys the cache and everything in it (`kdestroy`).
    pub fn destroy_ccache(&self, ccache: Option<&str>) -> Result<(), Krb5Error> {
        let cache = self.resolve_ccache(ccache)?;
        self.destroy(cache)
    }

    fn cache_principal(&self, cache: &Ccache<'_>) -> Result<Principal<'_>, Krb5Error> {
        let mut raw: ffi::krb5_principal = std::ptr::null_mut();
        // SAFETY: context and cache are live; raw receives a principal freed by the wrapper.
        let code = unsafe { ffi::krb5_cc_get_principal(self.raw, cache.raw, &mut raw) };
        self.check(code, "krb5_cc_get_principal")?;
        Ok(Principal { context: self, raw })
    }

    fn cache_name(&self, cache: &Ccache<'_>) -> String {
        // SAFETY: both strings belong to the live cache handle and are copied before it closes.
        unsafe {
            let kind = ffi::krb5_cc_get_type(self.raw, cache.raw);
            let name = ffi::krb5_cc_get_name(self.raw, cache.raw);
            let text = |p: *const std::os::raw::c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            format!("{}:{}", text(kind), text(name))
        }
    }

    fn unparse(&self, principal: ffi::krb5_principal) -> Result<String, Krb5Error> {
        if principal.is_null() {
            return Err(Krb5Error::local("krb5_unparse_name", "no principal"));
        }
        let mut raw: *mut std::os::raw::c_char = std::ptr::null_mut();
        // SAFETY: principal is live; raw receives a string freed right after copying.
        let code = unsafe { ffi::krb5_unparse_name(self.raw, principal, &mut raw) };
        self.check(code, "krb5_unparse_name")?;
        // SAFETY: raw is a NUL-terminated string from libkrb5, freed once.
        let name = unsafe {
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            ffi::krb5_free_unparsed_name(self.raw, raw);
            text
        };
        Ok(name)
    }

    /// The raw context, for the broker's kadm5 calls (which take a krb5 context). It stays
    /// owned by `self`: never free it, never use it from another thread.
    pub fn as_ptr(&self) -> ffi::krb5_context {
        self.raw
    }

    /// A principal parsed by this context, freed when dropped.
    pub fn parse_name(&self, name: &str) -> Result<Principal<'_>, Krb5Error> {
        let name = c_string(name, "principal")?;
        let mut raw: ffi::krb5_principal = std::ptr::null_mut();
        // SAFETY: context is live; name is a valid C string; raw receives a new principal.
        let code = unsafe { ffi::krb5_parse_name(self.raw, name.as_ptr(), &mut raw) };
        self.check(code, "krb5_parse_name")?;
        Ok(Principal { context: self, raw })
    }

    /// Loads libkrb5's pre-authentication modules into this context now. A context loads them
    /// on its first AS exchange otherwise, and that is the slow part of it (the SPAKE module and
    /// libcrypto with it: about 1.5 ms), so a caller that will make one can do this while it
    /// waits for something else. It only starts an exchange for a placeholder client (in a realm
    /// of its own: no default realm is needed) and abandons it: nothing is sent. Best effort: a
    /// failure is ignored (the exchange loads them as usual).
    pub fn load_preauth_modules(&self) {
        let Ok(client) = self.parse_name("ktbroker-warm-up@KTBROKER.INVALID") else {
            return;
        };
        let mut exchange: *mut std::os::raw::c_void = std::ptr::null_mut();
        // SAFETY: context and client are live; NULL prompter, data and options are allowed (the
        // defaults); exchange receives a context we free below.
        let code = unsafe {
            ffi::krb5_init_creds_init(
                self.raw,
                client.raw,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                &mut exchange,
            )
        };
        if code != 0 || exchange.is_null() {
            return;
        }
        // Setting the service (re)builds the request, and with it the modules' per-request
        // state: the first time, that loads them.
        // SAFETY: exchange is live; the service name is a valid C string libkrb5 copies.
        unsafe { ffi::krb5_init_creds_set_service(self.raw, exchange, c"krbtgt/KTBROKER.INVALID".as_ptr()) };
        // SAFETY: exchange came from krb5_init_creds_init on this context, freed once.
        unsafe { ffi::krb5_init_creds_free(self.raw, exchange) };
    }

    fn resolve_keytab(&self, name: &str) -> Result<Keytab<'_>, Krb5Error> {
        let name = c_string(name, "keytab name")?;
        let mut raw: ffi::krb5_keytab = std::ptr::null_mut();
        // SAFETY: context is live; name is a valid C string that libkrb5 copies.
        let code = unsafe { ffi::krb5_kt_resolve(self.raw, name.as_ptr(), &mut raw) };
        self.check(code, "krb5_kt_resolve")?;
        Ok(Keytab { context: self, raw })
    }

    fn resolve_ccache(&self, name: Option<&str>) -> Result<Ccache<'_>, Krb5Error> {
        let mut raw: ffi::krb5_ccache = std::ptr::null_mut();
        let code = match name {
            Some(name) => {
                let name = c_string(name, "ccache name")?;
                // SAFETY: context is live; name is a valid C string that libkrb5 copies.
                unsafe { ffi::krb5_cc_resolve(self.raw, name.as_ptr(), &mut raw) }
            }
            // SAFETY: context is live; raw receives the default cache handle.
            None => unsafe { ffi::krb5_cc_default(self.raw, &mut raw) },
        };
        self.check(code, "resolving the credential cache")?;
        Ok(Ccache { context: self, raw })
    }

    /// The value of `[libdefaults] name` in the profile this context read, if it sets one.
    pub fn libdefault(&self, name: &str) -> Result<Option<String>, Krb5Error> {
        self.profile_value(&["libdefaults", name])
    }

    /// Whether the profile names KDCs for `realm` (`[realms] REALM kdc`), or lets libkrb5 look them
    /// up in DNS (`dns_lookup_kdc`, on unless set to false): whether a login to `realm` can know
    /// where to go.
    pub fn knows_kdcs_of(&self, realm: &str) -> Result<bool, Krb5Error> {
        if self.realm_relation(realm, "kdc")?.is_some() {
            return Ok(true);
        }
        let dns = self.libdefault("dns_lookup_kdc")?;
        Ok(!dns.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "false" | "no" | "off" | "0" | "nil")))
    }

    /// The value of `[realms] REALM name` (e.g. `kdc`, `admin_server`) in the profile this context
    /// read, if it sets one.
    pub fn realm_relation(&self, realm: &str, name: &str) -> Result<Option<String>, Krb5Error> {
        self.profile_value(&["realms", realm, name])
    }

    /// The first value of the relation at `path` (section, then names; at most three parts) in
    /// the profile this context read.
    fn profile_value(&self, path: &[&str]) -> Result<Option<String>, Krb5Error> {
        let parts = path
            .iter()
            .map(|part| c_string(part, "profile path"))
            .collect::<Result<Vec<_>, _>>()?;
        let part = |n: usize| parts.get(n).map_or(std::ptr::null(), |p| p.as_ptr());
        let mut profile: ffi::profile_t = std::ptr::null_mut();
        // SAFETY: context is live; profile receives a copy of its profile, released below.
        let code = unsafe { ffi::krb5_get_profile(self.raw, &mut profile) };
        self.check(code, "krb5_get_profile")?;
        let mut value: *mut std::os::raw::c_char = std::ptr::null_mut();
        // SAFETY: profile is live; the names are NUL-terminated or NULL (unused levels); a NULL
        // default yields NULL when the relation is absent; value receives a string released below.
        let code = unsafe { ffi::profile_get_string(profile, part(0), part(1), part(2), std::ptr::null(), &mut value) };
        let found = if code == 0 && !value.is_null() {
            // SAFETY: on success value is a NUL-terminated string owned by us until released.
            let text = unsafe { CStr::from_ptr(value) }.to_string_lossy().into_owned();
            // SAFETY: value came from profile_get_string and is released once.
            unsafe { ffi::profile_release_string(value) };
            Some(text)
        } else {
            None
        };
        // SAFETY: profile came from krb5_get_profile and is released once.
        unsafe { ffi::profile_release(profile) };
        Ok(found)
    }

    fn init_creds_options(&self) -> Result<InitCredsOptions<'_>, Krb5Error> {
        let mut raw: *mut ffi::krb5_get_init_creds_opt = std::ptr::null_mut();
        // SAFETY: context is live; raw receives an options object we free on drop. Allocated
        // (not zeroed) options read krb5.conf's defaults, as kinit's do.
        let code = unsafe { ffi::krb5_get_init_creds_opt_alloc(self.raw, &mut raw) };
        self.check(code, "krb5_get_init_creds_opt_alloc")?;
        Ok(InitCredsOptions { context: self, raw })
    }

    /// `Ok` for 0, else the error with MIT's message for `code` (krb5 and, once libkadm5 is
    /// loaded, kadm5 codes).
    pub fn check(&self, code: ffi::krb5_error_code, during: &'static str) -> Result<(), Krb5Error> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: our context is live.
        let message = unsafe { error_message(self.raw, code) };
        Err(Krb5Error { code, message, during })
    }
}

/// Lets libkrb5 speak the user's language, as `kinit` does: its messages go through gettext,
/// which follows the locale only once the program has adopted the environment's. Nothing in
/// ktbroker reads those messages; they are shown to people.
///
/// Call it first thing in `main`, before any other thread exists (setlocale is not thread-safe).
pub fn use_environment_locale() {
    // SAFETY: the empty string is a valid C string; the caller calls this before starting threads,
    // so no other thread reads the locale meanwhile.
    unsafe { libc::setlocale(libc::LC_ALL, c"".as_ptr()) };
}

/// MIT's message for `code` (also for kadm5 codes, whose tables libkrb5 knows once kadm5 loaded).
///
/// # Safety
/// `context` must be a live krb5 context not used by another thread during the call.
pub unsafe fn error_message(context: ffi::krb5_context, code: ffi::krb5_error_code) -> String {
    // SAFETY: the caller guarantees the context; the message is a C string freed right after copying.
    unsafe {
        let raw = ffi::krb5_get_error_message(context, code);
        if raw.is_null() {
            return format!("error {code}");
        }
        let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
        ffi::krb5_free_error_message(context, raw);
        text
    }
}

impl TicketTimes {
    /// The times of filled-in credentials (krb5 timestamps are unsigned 32-bit seconds past 2038).
    fn of(creds: &ffi::krb5_creds) -> Self {
        Self {
            end: i64::from(creds.times.endtime as u32),
            renew_till: i64::from(creds.times.renew_till as u32),
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context came from krb5_init_context, every handle borrowing it is gone (they
        // hold `&Context`), and it is freed once.
        unsafe { ffi::krb5_free_context(self.raw) };
    }
}

pub struct Principal<'a> {
    context: &'a Context,
    raw: ffi::krb5_principal,
}

impl Principal<'_> {
    /// The raw principal; it stays owned by `self`.
    pub fn as_ptr(&self) -> ffi::krb5_principal {
        self.raw
    }
}

impl Drop for Principal<'_> {
    fn drop(&mut self) {
        // SAFETY: raw came from this context (parse or cc_get_principal) and is freed once.
        unsafe { ffi::krb5_free_principal(self.context.raw, self.raw) };
    }
}

struct Keytab<'a> {
    context: &'a Context,
    raw: ffi::krb5_keytab,
}

impl Drop for Keytab<'_> {
    fn drop(&mut self) {
        // SAFETY: raw came from krb5_kt_resolve on this context and is closed once.
        unsafe { ffi::krb5_kt_close(self.context.raw, self.raw) };
    }
}

struct Ccache<'a> {
    context: &'a Context,
    raw: ffi::krb5_ccache,
}

impl Drop for Ccache<'_> {
    fn drop(&mut self) {
        // SAFETY: raw came from krb5_cc_resolve/default on this context and is closed once
        // (closing keeps the cache's contents; it only releases the handle).
        unsafe { ffi::krb5_cc_close(self.context.raw, self.raw) };
    }
}

struct InitCredsOptions<'a> {
    context: &'a Context,
    raw: *mut ffi::krb5_get_init_creds_opt,
}

impl Drop for InitCredsOptions<'_> {
    fn drop(&mut self) {
        // SAFETY: raw came from krb5_get_init_creds_opt_alloc on this context; freed once.
        unsafe { ffi::krb5_get_init_creds_opt_free(self.context.raw, self.raw) };
    }
}

fn c_string(text: &str, what: &'static str) -> Result<CString, Krb5Error> {
    CString::new(text).map_err(|_| Krb5Error::local("preparing a krb5 call", &format!("{what} contains a NUL byte")))
}

/// What the first AS-REQ of an exchange with known keys carries (see `initial_creds_into`).
static OPTIMISTIC_PREAUTH: [ffi::krb5_preauthtype; 1] = [ffi::KRB5_PADATA_ENC_TIMESTAMP];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_kinit_reads_them() {
        for (text, secs) in [("10h", 36_000), ("7d", 604_800), ("1h30m", 5_400), ("3600", 3_600)] {
            assert_eq!(
                parse_duration(text).unwrap(),
                std::time::Duration::from_secs(secs),
                "{text}"
            );
        }
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1h\0").is_err());
    }

    const KEY: [u8; 32] = [7; 32];

    fn keys() -> [KeyEntry<'static>; 2] {
        [
            KeyEntry {
                kvno: 3,
                enctype: 18,
                contents: &KEY,
            },
            KeyEntry {
                kvno: 3,
                enctype: 17,
                contents: &KEY[..16],
            },
        ]
    }

    #[test]
    fn names_with_nul_bytes_are_refused_before_libkrb5() {
        let context = Context::new().unwrap();
        let err = context
            .kinit_with_keys("alice\0@R", &keys(), Some("MEMORY:x"), Lifetimes::default())
            .unwrap_err();
        assert_eq!(err.code, -1);
        assert!(err.message.contains("NUL"), "{err}");
    }

    #[test]
    fn a_failed_exchange_is_an_error_with_its_code() {
        let context = Context::new().unwrap();
        let err = context
            .kinit_with_keys(
                "alice@EXAMPLE.COM",
                &keys(),
                Some("NO-SUCH-TYPE:x"),
                Lifetimes::default(),
            )
            .unwrap_err();
        assert_ne!(err.code, 0);
        assert!(!err.message.is_empty());
        let err = context
            .ccache_belongs_to(Some("MEMORY:empty"), "alice@EXAMPLE.COM")
            .unwrap_err();
        assert_eq!(err.during, "krb5_cc_get_principal");
        assert_eq!(err.kind(), FailureKind::NoCache);
    }

    /// Whether the memory keytab `name` holds a key for (alice, kvno 3, `enctype`).
    fn holds(context: &Context, keytab: &Keytab<'_>, client: &Principal<'_>, enctype: i32) -> bool {
        // SAFETY: an all-zero entry is the empty value get_entry fills in.
        let mut entry: ffi::krb5_keytab_entry = unsafe { std::mem::zeroed() };
        // SAFETY: all handles are live; entry is filled on success and freed once below.
        let code = unsafe { ffi::krb5_kt_get_entry(context.raw, keytab.raw, client.raw, 3, enctype, &mut entry) };
        if code == 0 {
            // SAFETY: filled by the successful call; freed once.
            unsafe { ffi::krb5_free_keytab_entry_contents(context.raw, &mut entry) };
        }
        code == 0
    }

    #[test]
    fn keys_stay_in_the_memory_keytab_only_while_loaded() {
        let context = Context::new().unwrap();
        let client = context.parse_name("alice@EXAMPLE.COM").unwrap();
        let keytab = context.resolve_keytab(&memory_keytab_name()).unwrap();
        let mut loaded = MemoryKeys {
            keytab: &keytab,
            client: &client,
            added: Vec::new(),
        };
        for key in &keys() {
            loaded.add(key).unwrap();
        }
        assert!(holds(&context, &keytab, &client, 18) && holds(&context, &keytab, &client, 17));
        drop(loaded);
        assert!(!holds(&context, &keytab, &client, 18), "removed on drop");
        assert!(!holds(&context, &keytab, &client, 17), "removed on drop");
        assert_ne!(memory_keytab_name(), memory_keytab_name(), "one keytab per exchange");
        assert!(!format!("{:?}", keys()[0]).contains('7'), "Debug redacts the key");
    }
}
