//! A kadm5 admin session with the remote kadmind, authenticated with the broker's own admin
//! principal and keytab, used to read a principal's current keys without changing them
//! (`kadm5_get_principal_keys`, the call behind `ktadd -norandkey`; needs the `e` privilege).
//!
//! All `unsafe` for libkadm5 lives in this module and [`ffi`]; the krb5 side (context, principals,
//! errors and their messages) is the krb5 crate's. A session owns one krb5 context and one kadm5
//! handle; neither is thread-safe, so a session is `Send` but not `Sync` and callers serialize
//! access (see `keysource::Kadm5KeySource`).

mod ffi;

use ktbroker_krb5::{Context, Krb5Error};
use std::ffi::CString;
use std::os::raw::c_int;
use std::path::Path;
use zeroize::Zeroizing;

/// A failed libkrb5/kadm5 call: the krb5 crate's error, whose code may be a kadm5 one.
pub type Kadm5Error = Krb5Error;

/// What a kadm5 failure means, decided by its code (`<kadm5/kadm_err.h>`).
pub trait Kadm5Verdict {
    fn is_unknown_principal(&self) -> bool;
    fn is_duplicate(&self) -> bool;
    /// kadmind refused for lack of privilege (one of the `KADM5_AUTH_*` codes): reconnecting
    /// will not help.
    fn is_not_authorized(&self) -> bool;
}

impl Kadm5Verdict for Krb5Error {
    fn is_unknown_principal(&self) -> bool {
        self.code == ffi::KADM5_UNK_PRINC
    }

    fn is_duplicate(&self) -> bool {
        self.code == ffi::KADM5_DUP
    }

    fn is_not_authorized(&self) -> bool {
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
}

/// Points libkrb5 and libkadm5 at `krb5_config`: MIT 1.20's kadm5 reads KRB5_CONFIG from the
/// environment itself, not from the context it is given. Changing the environment is sound only
/// while no other thread can read it, so this refuses once the process has a second thread.
pub fn use_krb5_config(krb5_config: &std::path::Path) -> std::io::Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(std::io::Error::other(format!(
            "the process already runs {threads} threads"
        )));
    }
    // SAFETY: this is the process's only thread (checked above; only it could start another),
    // so nothing reads or writes the environment meanwhile.
    unsafe { std::env::set_var("KRB5_CONFIG", krb5_config) };
    Ok(())
}

/// A kadm5.acl privilege (kadm5.acl(5)) the broker may need or should not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Privilege {
    Add,
    Delete,
    Modify,
    Inquire,
    List,
    ChangePassword,
    Extract,
}

impl Privilege {
    pub const ALL: [Self; 7] = [
        Self::Add,
        Self::Delete,
        Self::Modify,
        Self::Inquire,
        Self::List,
        Self::ChangePassword,
        Self::Extract,
    ];

    /// Its letter in kadm5.acl.
    pub fn letter(self) -> char {
        match self {
            Self::Add => 'a',
            Self::Delete => 'd',
            Self::Modify => 'm',
            Self::Inquire => 'i',
            Self::List => 'l',
            Self::ChangePassword => 'c',
            Self::Extract => 'e',
        }
    }

    /// The kadm5 call its probe makes.
    fn call(self) -> &'static str {
        match self {
            Self::Add => "kadm5_create_principal",
            Self::Delete => "kadm5_delete_principal",
            Self::Modify => "kadm5_modify_principal",
            Self::Inquire => "kadm5_get_principal",
            Self::List => "kadm5_get_principals",
            Self::ChangePassword => "kadm5_randkey_principal",
            Self::Extract => "kadm5_get_principal_keys",
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
    // Declared first, dropped last: the handle is destroyed (in Drop) before the context goes.
    context: Context,
    handle: ffi::kadm5_handle,
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
        let context = Context::new()?;
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
                context.as_ptr(),
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
        session.check(code, "kadm5_init_with_skey")?; // on failure, drop skips the null handle
        if session.handle.is_null() {
            return Err(Krb5Error::local("kadm5_init_with_skey", "no handle returned"));
        }
        Ok(session)
    }

    /// Creates `principal` with a random key (kadmind generates it: a NULL password) and
    /// `+requires_preauth`. Needs the `a` privilege.
    pub fn create_principal(&mut self, principal: &str) -> Result<(), Kadm5Error> {
        let parsed = self.context.parse_name(principal)?;
        // SAFETY: all-zero is a valid "empty" entry; we set the two fields the mask names.
        let mut entry: ffi::kadm5_principal_ent_rec = unsafe { std::mem::zeroed() };
        entry.principal = parsed.as_ptr();
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
        self.check(code, "kadm5_create_principal")
    }

    /// Gives `principal` new random keys (the kvno goes up); the keys are not returned. Needs
    /// the `c` privilege.
    pub fn randomize_key(&mut self, principal: &str) -> Result<(), Kadm5Error> {
        let parsed = self.context.parse_name(principal)?;
        // SAFETY: handle and principal are live; NULL keyblocks/n_keys ask for no key copies.
        let code = unsafe {
            ffi::kadm5_randkey_principal(self.handle, parsed.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut())
        };
        drop(parsed);
        self.check(code, "kadm5_randkey_principal")
    }

    /// All current keys of `principal` (every kvno the KDC holds), unchanged.
    pub fn principal_keys(&mut self, principal: &str) -> Result<Vec<KeyData>, Kadm5Error> {
        let parsed = self.context.parse_name(principal)?;
        let mut keys: *mut ffi::kadm5_key_data = std::ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: handle and parsed are live; kvno 0 asks for all kvnos; keys/count receive an
        // array that kadm5 allocated and that we free below with kadm5_free_kadm5_key_data.
        let code = unsafe { ffi::kadm5_get_principal_keys(self.handle, parsed.as_ptr(), 0, &mut keys, &mut count) };
        drop(parsed);
        self.check(code, "kadm5_get_principal_keys")?;
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
            unsafe { ffi::kadm5_free_kadm5_key_data(self.context.as_ptr(), count, keys) };
        }
        Ok(out)
    }

    /// Whether kadmind's ACL grants this session `privilege` on `target`, a principal that must
    /// not exist (a random name shaped like the served ones): kadmind checks the ACL before it
    /// looks the target up, so a missing privilege answers `KADM5_AUTH_*` and a granted one
    /// "unknown principal". The add probe names a field no one may set, so kadmind refuses it
    /// after the ACL and nothing is created; nothing else changes anything that does not exist.
    pub fn has_privilege(&mut self, privilege: Privilege, target: &str) -> Result<bool, Kadm5Error> {
        let parsed = self.context.parse_name(target)?;
        let principal = parsed.as_ptr();
        // SAFETY: all-zero is a valid "empty" entry; the probes set only `principal`.
        let mut entry: ffi::kadm5_principal_ent_rec = unsafe { std::mem::zeroed() };
        entry.principal = principal;
        let code = match privilege {
            Privilege::Extract => {
                let mut keys: *mut ffi::kadm5_key_data = std::ptr::null_mut();
                let mut count: c_int = 0;
                // SAFETY: handle and principal are live; keys/count receive an array (only if the
                // target exists after all) that is freed right below.
                let code = unsafe { ffi::kadm5_get_principal_keys(self.handle, principal, 0, &mut keys, &mut count) };
                if !keys.is_null() {
                    // SAFETY: exactly the array the call returned, freed (and zeroed) once.
                    unsafe { ffi::kadm5_free_kadm5_key_data(self.context.as_ptr(), count, keys) };
                }
                code
            }
            Privilege::Inquire => {
                // SAFETY: handle and principal are live; on success kadm5 fills `entry`, whose
                // contents are freed right below (its principal is then kadm5's copy).
                let code =
                    unsafe { ffi::kadm5_get_principal(self.handle, principal, &mut entry, ffi::KADM5_PRINCIPAL) };
                if code == 0 {
                    // SAFETY: `entry` was filled by the successful call and is freed once.
                    unsafe { ffi::kadm5_free_principal_ent(self.handle, &mut entry) };
                }
                code
            }
            Privilege::List => {
                let expression = c_string(target, "list expression")?;
                let mut names: *mut *mut std::os::raw::c_char = std::ptr::null_mut();
                let mut count: c_int = 0;
                // SAFETY: handle is live; the expression is a C string that outlives the call;
                // names/count receive a list freed right below.
                let code = unsafe {
                    ffi::kadm5_get_principals(self.handle, expression.as_ptr().cast_mut(), &mut names, &mut count)
                };
                if !names.is_null() {
                    // SAFETY: exactly the list the call returned, freed once.
                    unsafe { ffi::kadm5_free_name_list(self.handle, names, count) };
                }
                code
            }
            Privilege::Add => {
                // SAFETY: handle is live; entry names the (live) target; the mask includes a
                // field kadmind never accepts from a caller, so it answers BAD_MASK, not a new
                // principal, once the ACL allowed the add.
                unsafe {
                    ffi::kadm5_create_principal(
                        self.handle,
                        &mut entry,
                        ffi::KADM5_PRINCIPAL | ffi::KADM5_LAST_PWD_CHANGE,
                        std::ptr::null_mut(),
                    )
                }
            }
            Privilege::Modify => {
                // SAFETY: handle is live; entry names the (live) target that does not exist.
                unsafe { ffi::kadm5_modify_principal(self.handle, &mut entry, ffi::KADM5_ATTRIBUTES) }
            }
            Privilege::Delete => {
                // SAFETY: handle and principal are live; the target does not exist.
                unsafe { ffi::kadm5_delete_principal(self.handle, principal) }
            }
            Privilege::ChangePassword => {
                // SAFETY: handle and principal are live; NULL keyblocks/n_keys ask for no copies.
                unsafe {
                    ffi::kadm5_randkey_principal(self.handle, principal, std::ptr::null_mut(), std::ptr::null_mut())
                }
            }
        };
        drop(parsed);
        let code = i32::try_from(code).unwrap_or(i32::MIN);
        match code {
            0 | ffi::KADM5_UNK_PRINC | ffi::KADM5_BAD_MASK => Ok(true),
            _ => match self.context.check(code, privilege.call()) {
                Ok(()) => Ok(true),
                Err(error) if error.is_not_authorized() => Ok(false),
                Err(error) => Err(error),
            },
        }
    }

    /// kadm5 returns a `kadm5_ret_t` (a C long) holding a 32-bit com_err code.
    fn check(&self, code: ffi::kadm5_ret_t, during: &'static str) -> Result<(), Kadm5Error> {
        let code = i32::try_from(code).unwrap_or(i32::MIN);
        self.context.check(code, during)
    }
}

impl Drop for Kadm5Session {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            // SAFETY: the handle came from kadm5_init_with_skey and is destroyed once, while the
            // context it was made with is still alive (it is dropped after this).
            unsafe { ffi::kadm5_destroy(self.handle) };
        }
    }
}

fn c_string(text: &str, what: &'static str) -> Result<CString, Kadm5Error> {
    CString::new(text).map_err(|_| Krb5Error::local("preparing a kadm5 call", &format!("{what} contains a NUL byte")))
}
