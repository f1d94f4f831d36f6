//! Raw declarations for the part of MIT libkrb5 ktbroker uses, matching `<krb5/krb5.h>` of MIT
//! krb5 1.20 on LP64 Linux. Only the safe wrappers in this crate (and the broker's kadm5 module)
//! call these; every call carries a `// SAFETY:` comment.

#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};

pub type krb5_error_code = i32;

/// Declares an opaque C struct: a distinct type per handle kind, so that a keytab can never be
/// passed where a credential cache is wanted (the nomicon's pattern for opaque C types). Also
/// used by the GSSAPI declarations and the broker's kadm5 ones.
#[macro_export]
macro_rules! opaque {
    ($($name:ident),*) => {$(
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
        }
    )*};
}
crate::opaque!(
    _krb5_context,
    krb5_principal_data,
    _krb5_kt,
    _krb5_ccache,
    krb5_get_init_creds_opt,
    _krb5_cc_cursor,
    _krb5_kt_cursor,
    _profile_t,
    _krb5_auth_context
);

/// A relative time in seconds (`krb5_deltat`).
pub type krb5_deltat = i32;
pub type krb5_preauthtype = i32;
/// `profile_init_flags`: honour `module` directives, as libkrb5's own contexts do.
pub const PROFILE_INIT_ALLOW_MODULE: c_int = 0x0001;
/// PA-ENC-TIMESTAMP (RFC 4120 §5.2.7.2).
pub const KRB5_PADATA_ENC_TIMESTAMP: krb5_preauthtype = 2;
/// libkrb5's configuration profile (`profile_t`).
pub type profile_t = *mut _profile_t;

pub type krb5_context = *mut _krb5_context;
pub type krb5_principal = *mut krb5_principal_data;
pub type krb5_keytab = *mut _krb5_kt;
pub type krb5_ccache = *mut _krb5_ccache;
pub type krb5_cc_cursor = *mut _krb5_cc_cursor;
pub type krb5_kt_cursor = *mut _krb5_kt_cursor;
pub type krb5_auth_context = *mut _krb5_auth_context;

// Error codes from <krb5/krb5.h> (com_err table krb5, base -1765328384).
/// The KDC answered that the client does not exist.
pub const KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN: krb5_error_code = -1_765_328_378;
/// The KDC refuses the client: disabled, locked out or expired in the KDC database.
pub const KRB5KDC_ERR_CLIENT_REVOKED: krb5_error_code = -1_765_328_366;
/// The client's password (key) has expired in the KDC.
pub const KRB5KDC_ERR_KEY_EXP: krb5_error_code = -1_765_328_361;
/// Pre-authentication failed: the key does not match the KDC's (a stale keytab).
pub const KRB5KDC_ERR_PREAUTH_FAILED: krb5_error_code = -1_765_328_360;
pub const KRB5_PREAUTH_FAILED: krb5_error_code = -1_765_328_174;
/// Decrypting the KDC's answer failed: again a key that is not the KDC's.
pub const KRB5KRB_AP_ERR_BAD_INTEGRITY: krb5_error_code = -1_765_328_353;
/// The clocks of this host and the KDC differ by more than the allowed skew.
pub const KRB5KRB_AP_ERR_SKEW: krb5_error_code = -1_765_328_347;
pub const KRB5_CC_NOTFOUND: krb5_error_code = -1_765_328_243;
/// The end of a keytab's entries.
pub const KRB5_KT_END: krb5_error_code = -1_765_328_202;
/// krb5.conf names no KDC for the realm, and DNS gives none.
pub const KRB5_REALM_UNKNOWN: krb5_error_code = -1_765_328_230;
/// No KDC of the realm answered.
pub const KRB5_KDC_UNREACH: krb5_error_code = -1_765_328_228;
pub const KRB5_FCC_NOFILE: krb5_error_code = -1_765_328_189;
/// The realm's KDC host names do not resolve.
pub const KRB5_REALM_CANT_RESOLVE: krb5_error_code = -1_765_328_164;
/// krb5.conf has no default realm.
pub const KRB5_CONFIG_NODEFREALM: krb5_error_code = -1_765_328_160;

#[repr(C)]
pub struct krb5_keyblock {
    pub magic: i32,
    pub enctype: i32,
    pub length: c_uint,
    pub contents: *mut u8,
}

/// One keytab entry, as `krb5_kt_add_entry` takes it (libkrb5 copies the key).
#[repr(C)]
pub struct krb5_keytab_entry {
    pub magic: i32,
    pub principal: krb5_principal,
    pub timestamp: i32,
    pub vno: c_uint,
    pub key: krb5_keyblock,
}

#[repr(C)]
pub struct krb5_data {
    pub magic: i32,
    pub length: c_uint,
    pub data: *mut c_char,
}

#[repr(C)]
pub struct krb5_ticket_times {
    pub authtime: i32,
    pub starttime: i32,
    pub endtime: i32,
    pub renew_till: i32,
}

#[repr(C)]
pub struct krb5_creds {
    pub magic: i32,
    pub client: krb5_principal,
    pub server: krb5_principal,
    pub keyblock: krb5_keyblock,
    pub times: krb5_ticket_times,
    pub is_skey: u32,
    pub ticket_flags: i32,
    pub addresses: *mut c_void,
    pub ticket: krb5_data,
    pub second_ticket: krb5_data,
    pub authdata: *mut c_void,
}

unsafe extern "C" {
    pub fn krb5_init_context(context: *mut krb5_context) -> krb5_error_code;
    pub fn krb5_free_context(context: krb5_context);
    pub fn krb5_get_error_message(context: krb5_context, code: krb5_error_code) -> *const c_char;
    pub fn krb5_free_error_message(context: krb5_context, message: *const c_char);

    pub fn krb5_parse_name(
        context: krb5_context,
        name: *const c_char,
        principal: *mut krb5_principal,
    ) -> krb5_error_code;
    pub fn krb5_free_principal(context: krb5_context, principal: krb5_principal);
    pub fn krb5_principal_compare(context: krb5_context, a: krb5_principal, b: krb5_principal) -> u32;

    pub fn krb5_kt_resolve(context: krb5_context, name: *const c_char, keytab: *mut krb5_keytab) -> krb5_error_code;
    pub fn krb5_kt_close(context: krb5_context, keytab: krb5_keytab) -> krb5_error_code;
    pub fn krb5_kt_add_entry(
        context: krb5_context,
        keytab: krb5_keytab,
        entry: *mut krb5_keytab_entry,
    ) -> krb5_error_code;
    pub fn krb5_kt_get_entry(
        context: krb5_context,
        keytab: krb5_keytab,
        principal: krb5_principal,
        vno: c_uint,
        enctype: i32,
        entry: *mut krb5_keytab_entry,
    ) -> krb5_error_code;
    pub fn krb5_free_keytab_entry_contents(context: krb5_context, entry: *mut krb5_keytab_entry) -> krb5_error_code;
    pub fn krb5_kt_start_seq_get(
        context: krb5_context,
        keytab: krb5_keytab,
        cursor: *mut krb5_kt_cursor,
    ) -> krb5_error_code;
    pub fn krb5_kt_next_entry(
        context: krb5_context,
        keytab: krb5_keytab,
        entry: *mut krb5_keytab_entry,
        cursor: *mut krb5_kt_cursor,
    ) -> krb5_error_code;
    pub fn krb5_kt_end_seq_get(
        context: krb5_context,
        keytab: krb5_keytab,
        cursor: *mut krb5_kt_cursor,
    ) -> krb5_error_code;
    pub fn krb5_kt_remove_entry(
        context: krb5_context,
        keytab: krb5_keytab,
        entry: *mut krb5_keytab_entry,
    ) -> krb5_error_code;

    pub fn krb5_cc_resolve(context: krb5_context, name: *const c_char, ccache: *mut krb5_ccache) -> krb5_error_code;
    pub fn krb5_cc_default(context: krb5_context, ccache: *mut krb5_ccache) -> krb5_error_code;
    pub fn krb5_cc_close(context: krb5_context, ccache: krb5_ccache) -> krb5_error_code;
    pub fn krb5_cc_get_principal(
        context: krb5_context,
        ccache: krb5_ccache,
        principal: *mut krb5_principal,
    ) -> krb5_error_code;

    pub fn krb5_cc_destroy(context: krb5_context, ccache: krb5_ccache) -> krb5_error_code;
    pub fn krb5_cc_new_unique(
        context: krb5_context,
        kind: *const c_char,
        hint: *const c_char,
        ccache: *mut krb5_ccache,
    ) -> krb5_error_code;
    /// Replaces `dst`'s contents with `src`'s (atomically for FILE caches: a new file renamed over
    /// the old one) and, on success only, destroys `src`.
    pub fn krb5_cc_move(context: krb5_context, src: krb5_ccache, dst: krb5_ccache) -> krb5_error_code;
    pub fn krb5_cc_initialize(context: krb5_context, ccache: krb5_ccache, principal: krb5_principal)
    -> krb5_error_code;
    pub fn krb5_cc_store_cred(context: krb5_context, ccache: krb5_ccache, creds: *mut krb5_creds) -> krb5_error_code;
    pub fn krb5_cc_get_name(context: krb5_context, ccache: krb5_ccache) -> *const c_char;
    pub fn krb5_cc_get_type(context: krb5_context, ccache: krb5_ccache) -> *const c_char;
    pub fn krb5_cc_start_seq_get(
        context: krb5_context,
        ccache: krb5_ccache,
        cursor: *mut krb5_cc_cursor,
    ) -> krb5_error_code;
    pub fn krb5_cc_next_cred(
        context: krb5_context,
        ccache: krb5_ccache,
        cursor: *mut krb5_cc_cursor,
        creds: *mut krb5_creds,
    ) -> krb5_error_code;
    pub fn krb5_cc_end_seq_get(
        context: krb5_context,
        ccache: krb5_ccache,
        cursor: *mut krb5_cc_cursor,
    ) -> krb5_error_code;
    pub fn krb5_unparse_name(
        context: krb5_context,
        principal: krb5_principal,
        name: *mut *mut c_char,
    ) -> krb5_error_code;
    pub fn krb5_free_unparsed_name(context: krb5_context, name: *mut c_char);
    pub fn krb5_get_renewed_creds(
        context: krb5_context,
        creds: *mut krb5_creds,
        client: krb5_principal,
        ccache: krb5_ccache,
        in_tkt_service: *const c_char,
    ) -> krb5_error_code;

    pub fn krb5_get_default_realm(context: krb5_context, realm: *mut *mut c_char) -> krb5_error_code;
    pub fn krb5_free_default_realm(context: krb5_context, realm: *mut c_char);
    pub fn krb5_get_init_creds_password(
        context: krb5_context,
        creds: *mut krb5_creds,
        client: krb5_principal,
        password: *const c_char,
        prompter: *mut c_void,
        data: *mut c_void,
        start_time: i32,
        in_tkt_service: *const c_char,
        options: *mut krb5_get_init_creds_opt,
    ) -> krb5_error_code;

    pub fn krb5_get_init_creds_opt_alloc(
        context: krb5_context,
        opt: *mut *mut krb5_get_init_creds_opt,
    ) -> krb5_error_code;
    pub fn krb5_get_init_creds_opt_free(context: krb5_context, opt: *mut krb5_get_init_creds_opt);
    pub fn krb5_get_init_creds_opt_set_tkt_life(opt: *mut krb5_get_init_creds_opt, tkt_life: krb5_deltat);
    pub fn krb5_get_init_creds_opt_set_renew_life(opt: *mut krb5_get_init_creds_opt, renew_life: krb5_deltat);
    pub fn krb5_timestamp_to_sfstring(
        timestamp: i32,
        buffer: *mut c_char,
        buflen: usize,
        pad: *mut c_char,
    ) -> krb5_error_code;
    pub fn krb5_string_to_deltat(string: *mut c_char, deltat: *mut krb5_deltat) -> krb5_error_code;
    pub fn krb5_get_profile(context: krb5_context, profile: *mut profile_t) -> krb5_error_code;
    pub fn profile_get_string(
        profile: profile_t,
        name: *const c_char,
        subname: *const c_char,
        subsubname: *const c_char,
        def_val: *const c_char,
        ret_string: *mut *mut c_char,
    ) -> std::os::raw::c_long;
    pub fn profile_release_string(string: *mut c_char);
    pub fn profile_release(profile: profile_t);
    /// Releases a profile without writing anything back to its files.
    pub fn profile_abandon(profile: profile_t);
    pub fn profile_init_flags(files: *const *const c_char, flags: c_int, profile: *mut profile_t) -> c_long;
    /// The profile files a default context reads (KRB5_CONFIG, else the built-in path).
    pub fn krb5_get_default_config_files(filenames: *mut *mut *mut c_char) -> krb5_error_code;
    pub fn krb5_free_config_files(filenames: *mut *mut c_char);
    pub fn krb5_init_context_profile(profile: profile_t, flags: i32, context: *mut krb5_context) -> krb5_error_code;
    pub fn krb5_get_init_creds_opt_set_out_ccache(
        context: krb5_context,
        opt: *mut krb5_get_init_creds_opt,
        ccache: krb5_ccache,
    ) -> krb5_error_code;
    pub fn krb5_get_init_creds_keytab(
        context: krb5_context,
        creds: *mut krb5_creds,
        client: krb5_principal,
        keytab: krb5_keytab,
        start_time: i32,
        in_tkt_service: *const c_char,
        options: *mut krb5_get_init_creds_opt,
    ) -> krb5_error_code;
    pub fn krb5_free_cred_contents(context: krb5_context, creds: *mut krb5_creds);
    pub fn krb5_init_creds_init(
        context: krb5_context,
        client: krb5_principal,
        prompter: *mut c_void,
        data: *mut c_void,
        start_time: i32,
        options: *mut krb5_get_init_creds_opt,
        ctx: *mut *mut c_void,
    ) -> krb5_error_code;
    pub fn krb5_init_creds_free(context: krb5_context, ctx: *mut c_void);
    pub fn krb5_init_creds_set_service(
        context: krb5_context,
        ctx: *mut c_void,
        service: *const c_char,
    ) -> krb5_error_code;
    /// Stores the pointer, not a copy: the list must outlive the options.
    pub fn krb5_get_init_creds_opt_set_preauth_list(
        opt: *mut krb5_get_init_creds_opt,
        preauth_list: *mut krb5_preauthtype,
        preauth_list_length: std::os::raw::c_int,
    );
    pub fn krb5_get_init_creds_opt_set_forwardable(opt: *mut krb5_get_init_creds_opt, forwardable: i32);
    pub fn krb5_get_init_creds_opt_set_address_list(opt: *mut krb5_get_init_creds_opt, addresses: *mut *mut c_void);
    pub fn krb5_auth_con_init(context: krb5_context, auth_context: *mut krb5_auth_context) -> krb5_error_code;
    pub fn krb5_auth_con_free(context: krb5_context, auth_context: krb5_auth_context) -> krb5_error_code;
    pub fn krb5_auth_con_setflags(
        context: krb5_context,
        auth_context: krb5_auth_context,
        flags: i32,
    ) -> krb5_error_code;
    /// `rdata_out` is a `krb5_replay_data *`; ktbroker always passes NULL.
    pub fn krb5_mk_1cred(
        context: krb5_context,
        auth_context: krb5_auth_context,
        creds: *mut krb5_creds,
        der_out: *mut *mut krb5_data,
        rdata_out: *mut c_void,
    ) -> krb5_error_code;
    pub fn krb5_rd_cred(
        context: krb5_context,
        auth_context: krb5_auth_context,
        creddata: *mut krb5_data,
        creds_out: *mut *mut *mut krb5_creds,
        rdata_out: *mut c_void,
    ) -> krb5_error_code;
    pub fn krb5_free_data(context: krb5_context, data: *mut krb5_data);
    pub fn krb5_free_tgt_creds(context: krb5_context, creds: *mut *mut krb5_creds);
    pub fn krb5_is_config_principal(context: krb5_context, principal: krb5_principal) -> u32;
    pub fn krb5_cc_set_config(
        context: krb5_context,
        ccache: krb5_ccache,
        principal: krb5_principal,
        key: *const c_char,
        data: *mut krb5_data,
    ) -> krb5_error_code;
    pub fn krb5_cc_get_config(
        context: krb5_context,
        ccache: krb5_ccache,
        principal: krb5_principal,
        key: *const c_char,
        data: *mut krb5_data,
    ) -> krb5_error_code;
    pub fn krb5_free_data_contents(context: krb5_context, data: *mut krb5_data);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes and offsets of the C structs on LP64 (checked against `offsetof` in MIT's headers).
    #[test]
    fn struct_layout_matches_the_c_headers() {
        assert_eq!(std::mem::size_of::<krb5_keyblock>(), 24);
        assert_eq!(std::mem::offset_of!(krb5_keyblock, contents), 16);
        assert_eq!(std::mem::size_of::<krb5_data>(), 16);
        assert_eq!(std::mem::size_of::<krb5_creds>(), 120);
        assert_eq!(std::mem::offset_of!(krb5_creds, times), 48);
        assert_eq!(std::mem::offset_of!(krb5_creds, ticket), 80);
        assert_eq!(std::mem::offset_of!(krb5_creds, authdata), 112);
    }
}
