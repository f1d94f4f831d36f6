//! A kadm5 admin session with the remote kadmind, authenticated with the broker's own admin
//! principal and keytab, used to read a principal's current keys without changing them
//! (`kadm5_get_principal_keys`, the call behind `ktadd -norandkey`; needs the `e` privilege).
//!
//! All `unsafe` for libkrb5/libkadm5 lives in this module and [`ffi`]. A session owns one krb5
//! context and one kadm5 handle; neither is thread-safe, so a session is `Send` but not `Sync`
//! and callers serialize access (see `keysource::Kadm5KeySource`).

mod ffi;

use std::ffi::CString;
use std::os::raw::{c_int, c_long};
use std::path::Path;
use zeroize::Zeroizing;

/// A failed libkrb5/kadm5 call: the code and MIT's own message for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{during}: {message} (code {code})")]
pub struct Kadm5Error {
    /// A krb5 or kadm5 error code (`kadm5_ret_t`, a C long).
    pub code: c_long,
    pub message: String,
    pub during: &'static str,
}

impl Kadm5Error {
    pub fn is_unknown_principal(&self) -> bool {
        self.code == ffi::KADM5_UNK_PRINC
    }

    pub fn is_duplicate(&self) -> bool {
        self.code == ffi::KADM5_DUP
    }

    /// kadmind refused for lack of privilege (one of the `KADM5_AUTH_*` codes of kadm_err.h):
    /// reconnecting will not help.
    pub fn is_not_authorized(&self) -> bool {
        matches!(
            self.code,
            ffi::KADM5_AUTH_GET
                | ffi::KADM5_AUTH_ADD
                | ffi::KADM5_AUTH_MODIFY
                | ffi::KADM5_AUTH_DELETE
                | ffi::KADM5_AUTH_INSUFFICIENT
                | ffi::KADM5_AUTH_LIST
                | ffi::KADM5_AUTH_CHANGEPW
                | ffi::KADM5_AUTH_SETKEY
                | ffi::KADM5_AUTH_EXTRACT
                | ffi::KADM5_AUTH_INITIAL
        )
    }

    fn local(during: &'static str, message: &str) -> Self {
        Self {
            code: -1,
            message: message.to_owned(),
            during,
        }
    }
}

/// One key as read from the KDC.
pub struct KeyData {
    pub kvno: u32,
    pub enctype: i32,
    pub contents: Zeroizing<Vec<u8>>,
}

pub struct Kadm5Session {
    context: ffi::krb5_context,
    handle: *mut std::os::raw::c_void,
}

// SAFETY: the krb5 context and kadm5 handle have no thread affinity; they must only not be used
// from two threads at once, which `&mut self` on every method guarantees.
unsafe impl Send for Kadm5Session {}

impl Kadm5Session {
    /// Authenticates as `client` with the keys in `keytab` and opens the RPC session to the admin
    /// server of `realm` (from the krb5 configuration in `KRB5_CONFIG`).
    pub fn open(client: &str, keytab: &Path, realm: &str) -> Result<Self, Kadm5Error> {
        let client = c_string(client, "admin principal")?;
        let realm = c_string(realm, "realm")?;
        let keytab = c_string(&keytab.to_string_lossy(), "admin keytab path")?;
        let mut context: ffi::krb5_context = std::ptr::null_mut();
        // SAFETY: krb5_init_context writes a new context to the pointer we pass, or leaves it null
        // and returns an error.
        let code = unsafe { ffi::krb5_init_context(&mut context) };
        if code != 0 || context.is_null() {
            return Err(Kadm5Error {
                code: code.into(),
                message: "cannot create a krb5 context".into(),
                during: "krb5_init_context",
            });
        }
        let mut handle = std::ptr::null_mut();
        // SAFETY: an all-zero kadm5_config_params is "nothing set" (mask 0, null pointers), which
        // is what kadm5 expects for the fields we leave alone.
        let mut params: ffi::kadm5_config_params = unsafe { std::mem::zeroed() };
        params.mask = ffi::KADM5_CONFIG_REALM;
        params.realm = realm.as_ptr().cast_mut();
        // SAFETY: every string is a valid NUL-terminated C string that outlives the call; kadm5
        // copies what it needs (params included). db_args may be NULL. On success the handle is
        // written; on failure we still own and free the context.
        let code = unsafe {
            ffi::kadm5_init_with_skey(
                context,
                client.as_ptr().cast_mut(),
                keytab.as_ptr().cast_mut(),
                ffi::KADM5_ADMIN_SERVICE.as_ptr().cast_mut(),
                &mut params,
                ffi::KADM5_STRUCT_VERSION,
                ffi::KADM5_API_VERSION_4,
                std::ptr::null_mut(),
                &mut handle,
            )
        };
        let session = Self { context, handle };
        if code != 0 || handle.is_null() {
            let error = session.error(code, "kadm5_init_with_skey");
            return Err(error); // drop frees the context; the null handle is skipped
        }
        Ok(session)
    }

    /// Parses a principal name into a krb5_principal this session's context owns.
    fn parse(&self, principal: &str) -> Result<ParsedPrincipal<'_>, Kadm5Error> {
        let name = c_string(principal, "principal")?;
        let mut parsed: ffi::krb5_principal = std::ptr::null_mut();
        // SAFETY: context is live; name is a valid C string; parsed receives a new principal.
        let code = unsafe { ffi::krb5_parse_name(self.context, name.as_ptr(), &mut parsed) };
        if code != 0 {
            return Err(self.error(code.into(), "krb5_parse_name"));
        }
        Ok(ParsedPrincipal {
            session: self,
            raw: parsed,
        })
    }

    /// Creates `principal` with a random key (kadmind generates it: a NULL password) and
    /// `+requires_preauth`. Needs the `a` privilege.
    pub fn create_principal(&mut self, principal: &str) -> Result<(), Kadm5Error> {
        let parsed = self.parse(principal)?;
        // SAFETY: all-zero is a valid "empty" entry; we set the two fields the mask names.
        let mut entry: ffi::kadm5_principal_ent_rec = unsafe { std::mem::zeroed() };
        entry.principal = parsed.raw;
        entry.attributes = ffi::KRB5_KDB_REQUIRES_PRE_AUTH;
        // SAFETY: handle is live; entry points at our initialized struct whose principal lives
        // until `parsed` drops after the call; a NULL password asks kadmind for random keys.
        let code = unsafe {
            ffi::kadm5_create_principal(
                self.handle,
                &mut entry,
                ffi::KADM5_PRINCIPAL | ffi::KADM5_ATTRIBUTES,
                std::ptr::null_mut(),
            )
        };
        drop(parsed);
        if code != 0 {
            return Err(self.error(code, "kadm5_create_principal"));
        }
        Ok(())
    }

    /// Gives `principal` new random keys (the kvno goes up); the keys are not returned. Needs
    /// the `c` privilege.
    pub fn randomize_key(&mut self, principal: &str) -> Result<(), Kadm5Error> {
        let parsed = self.parse(principal)?;
        // SAFETY: handle and principal are live; NULL keyblocks/n_keys ask for no key copies.
        let code = unsafe {
            ffi::kadm5_randkey_principal(self.handle, parsed.raw, std::ptr::null_mut(), std::ptr::null_mut())
        };
        drop(parsed);
        if code != 0 {
            return Err(self.error(code, "kadm5_randkey_principal"));
        }
        Ok(())
    }

    /// All current keys of `principal` (every kvno the KDC holds), unchanged.
    pub fn principal_keys(&mut self, principal: &str) -> Result<Vec<KeyData>, Kadm5Error> {
        let parsed = self.parse(principal)?;
        let mut keys: *mut ffi::kadm5_key_data = std::ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: handle and parsed are live; kvno 0 asks for all kvnos; keys/count receive an
        // array that kadm5 allocated and that we free below with kadm5_free_kadm5_key_data.
        let code = unsafe { ffi::kadm5_get_principal_keys(self.handle, parsed.raw, 0, &mut keys, &mut count) };
        drop(parsed);
        if code != 0 {
            return Err(self.error(code, "kadm5_get_principal_keys"));
        }
        let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        if !keys.is_null() && count > 0 {
            // SAFETY: on success kadm5 returns `count` initialized elements at `keys`.
            let slice = unsafe { std::slice::from_raw_parts(keys, count as usize) };
            for key in slice {
                let contents = if key.key.contents.is_null() || key.key.length == 0 {
                    Zeroizing::new(Vec::new())
                } else {
                    // SAFETY: the keyblock's contents point at `length` bytes owned by the array.
                    Zeroizing::new(
                        unsafe { std::slice::from_raw_parts(key.key.contents, key.key.length as usize) }.to_vec(),
                    )
                };
                out.push(KeyData {
                    kvno: key.kvno,
                    enctype: key.key.enctype,
                    contents,
                });
            }
        }
        if !keys.is_null() {
            // SAFETY: frees (and zeroes) exactly the array kadm5_get_principal_keys returned.
            unsafe { ffi::kadm5_free_kadm5_key_data(self.context, count, keys) };
        }
        Ok(out)
    }

    fn error(&self, code: c_long, during: &'static str) -> Kadm5Error {
        // krb5 error codes are 32-bit; kadm5_ret_t is a C long holding one.
        // SAFETY: the session's context is live and, with `&self`, used by this thread only.
        let message = unsafe { ktbroker_krb5::error_message(self.context, code as i32) };
        Kadm5Error { code, message, during }
    }
}

/// A krb5_principal freed when dropped.
struct ParsedPrincipal<'a> {
    session: &'a Kadm5Session,
    raw: ffi::krb5_principal,
}

impl Drop for ParsedPrincipal<'_> {
    fn drop(&mut self) {
        // SAFETY: raw came from krb5_parse_name on this session's live context; freed once.
        unsafe { ffi::krb5_free_principal(self.session.context, self.raw) };
    }
}

impl Drop for Kadm5Session {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            // SAFETY: the handle came from kadm5_init_with_skey and is destroyed once.
            unsafe { ffi::kadm5_destroy(self.handle) };
        }
        // SAFETY: the context came from krb5_init_context, outlived the handle, and is freed once.
        unsafe { ffi::krb5_free_context(self.context) };
    }
}

fn c_string(text: &str, what: &'static str) -> Result<CString, Kadm5Error> {
    CString::new(text).map_err(|_| Kadm5Error::local("preparing a kadm5 call", &format!("{what} contains a NUL byte")))
}
