//! Raw declarations for the part of MIT's libkrb5 and libkadm5clnt_mit the broker uses, matching
//! `<krb5/krb5.h>` and `<kadm5/admin.h>` of MIT krb5 1.20 (x86_64 and other LP64 Linux targets).
//! Only [`super`] calls these; every call there carries a `// SAFETY:` comment.

#![allow(non_camel_case_types)]

pub use ktbroker_krb5::ffi::{krb5_context, krb5_data, krb5_error_code, krb5_keyblock, krb5_principal};
use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};

pub type kadm5_ret_t = c_long;

ktbroker_krb5::opaque!(kadm5_server_handle);
/// The `void *server_handle` of every kadm5 call, as its own type.
pub type kadm5_handle = *mut kadm5_server_handle;
pub type krb5_kvno = c_uint;

/// `KADM5_STRUCT_VERSION_1`.
pub const KADM5_STRUCT_VERSION: u32 = 0x1234_5601;
/// `KADM5_API_VERSION_4`: the version that has `kadm5_get_principal_keys`.
pub const KADM5_API_VERSION_4: u32 = 0x1234_5704;
/// `KADM5_ADMIN_SERVICE`.
pub const KADM5_ADMIN_SERVICE: &std::ffi::CStr = c"kadmin/admin";

/// Error codes from `<kadm5/kadm_err.h>` that the broker treats specially.
pub const KADM5_AUTH_GET: krb5_error_code = 43_787_521;
pub const KADM5_AUTH_ADD: krb5_error_code = 43_787_522;
pub const KADM5_AUTH_MODIFY: krb5_error_code = 43_787_523;
pub const KADM5_AUTH_DELETE: krb5_error_code = 43_787_524;
pub const KADM5_AUTH_INSUFFICIENT: krb5_error_code = 43_787_525;
pub const KADM5_AUTH_LIST: krb5_error_code = 43_787_564;
pub const KADM5_DUP: krb5_error_code = 43_787_527;
pub const KADM5_UNK_PRINC: krb5_error_code = 43_787_532;
pub const KADM5_AUTH_CHANGEPW: krb5_error_code = 43_787_565;
pub const KADM5_AUTH_SETKEY: krb5_error_code = 43_787_570;
/// "Operation requires ``extract-keys'' privilege": what kadmind answers a reader without `e`.
pub const KADM5_AUTH_EXTRACT: krb5_error_code = 43_787_580;
pub const KADM5_AUTH_INITIAL: krb5_error_code = 43_787_582;
/// "Invalid field mask for operation": what a privilege probe's deliberately bad mask earns once
/// kadmind has let the caller past the ACL (see `Kadm5Session::has_privilege`).
pub const KADM5_BAD_MASK: krb5_error_code = 43_787_534;

/// `KADM5_CONFIG_REALM`: `params.realm` is set.
pub const KADM5_CONFIG_REALM: c_long = 0x1;
/// `KADM5_PRINCIPAL` and `KADM5_ATTRIBUTES` masks for `kadm5_create_principal`.
pub const KADM5_PRINCIPAL: c_long = 0x1;
pub const KADM5_ATTRIBUTES: c_long = 0x10;
/// `KADM5_LAST_PWD_CHANGE`: a field no caller may set, so a create naming it is refused.
pub const KADM5_LAST_PWD_CHANGE: c_long = 0x8;
/// `KRB5_KDB_REQUIRES_PRE_AUTH` from `<kdb.h>`.
pub const KRB5_KDB_REQUIRES_PRE_AUTH: i32 = 0x80;

/// `kadm5_config_params` (`<kadm5/admin.h>`); the broker sets only `mask` and `realm`.
#[repr(C)]
pub struct kadm5_config_params {
    pub mask: c_long,
    pub realm: *mut c_char,
    pub kadmind_port: c_int,
    pub kpasswd_port: c_int,
    pub admin_server: *mut c_char,
    pub dbname: *mut c_char,
    pub acl_file: *mut c_char,
    pub dict_file: *mut c_char,
    pub mkey_from_kbd: c_int,
    pub stash_file: *mut c_char,
    pub mkey_name: *mut c_char,
    pub enctype: i32,
    pub max_life: i32,
    pub max_rlife: i32,
    pub expiration: i32,
    pub flags: i32,
    pub keysalts: *mut c_void,
    pub num_keysalts: i32,
    pub kvno: c_uint,
    pub iprop_enabled: c_int,
    pub iprop_ulogsize: u32,
    pub iprop_poll_time: i32,
    pub iprop_logfile: *mut c_char,
    pub iprop_port: c_int,
    pub iprop_resync_timeout: c_int,
    pub kadmind_listen: *mut c_char,
    pub kpasswd_listen: *mut c_char,
    pub iprop_listen: *mut c_char,
}

/// `kadm5_principal_ent_rec`; the broker sets only `principal` and `attributes`.
#[repr(C)]
pub struct kadm5_principal_ent_rec {
    pub principal: krb5_principal,
    pub princ_expire_time: i32,
    pub last_pwd_change: i32,
    pub pw_expiration: i32,
    pub max_life: i32,
    pub mod_name: krb5_principal,
    pub mod_date: i32,
    pub attributes: i32,
    pub kvno: c_uint,
    pub mkvno: c_uint,
    pub policy: *mut c_char,
    pub aux_attributes: c_long,
    pub max_renewable_life: i32,
    pub last_success: i32,
    pub last_failed: i32,
    pub fail_auth_count: c_uint,
    pub n_key_data: i16,
    pub n_tl_data: i16,
    pub tl_data: *mut c_void,
    pub key_data: *mut c_void,
}

#[repr(C)]
pub struct krb5_keysalt {
    pub type_: i16,
    pub data: krb5_data,
}

#[repr(C)]
pub struct kadm5_key_data {
    pub kvno: krb5_kvno,
    pub key: krb5_keyblock,
    pub salt: krb5_keysalt,
}

unsafe extern "C" {

    pub fn kadm5_init_with_skey(
        context: krb5_context,
        client_name: *mut c_char,
        keytab: *mut c_char,
        service_name: *mut c_char,
        params: *mut kadm5_config_params,
        struct_version: u32,
        api_version: u32,
        db_args: *mut *mut c_char,
        server_handle: *mut kadm5_handle,
    ) -> kadm5_ret_t;
    pub fn kadm5_destroy(server_handle: kadm5_handle) -> kadm5_ret_t;
    pub fn kadm5_get_principal_keys(
        server_handle: kadm5_handle,
        principal: krb5_principal,
        kvno: krb5_kvno,
        key_data: *mut *mut kadm5_key_data,
        n_key_data: *mut c_int,
    ) -> kadm5_ret_t;
    pub fn kadm5_create_principal(
        server_handle: kadm5_handle,
        entry: *mut kadm5_principal_ent_rec,
        mask: c_long,
        password: *mut c_char,
    ) -> kadm5_ret_t;
    pub fn kadm5_randkey_principal(
        server_handle: kadm5_handle,
        principal: krb5_principal,
        keyblocks: *mut *mut krb5_keyblock,
        n_keys: *mut c_int,
    ) -> kadm5_ret_t;
    pub fn kadm5_get_principal(
        server_handle: kadm5_handle,
        principal: krb5_principal,
        entry: *mut kadm5_principal_ent_rec,
        mask: c_long,
    ) -> kadm5_ret_t;
    pub fn kadm5_free_principal_ent(server_handle: kadm5_handle, entry: *mut kadm5_principal_ent_rec) -> kadm5_ret_t;
    pub fn kadm5_get_principals(
        server_handle: kadm5_handle,
        expression: *mut c_char,
        names: *mut *mut *mut c_char,
        count: *mut c_int,
    ) -> kadm5_ret_t;
    pub fn kadm5_free_name_list(server_handle: kadm5_handle, names: *mut *mut c_char, count: c_int) -> kadm5_ret_t;
    pub fn kadm5_modify_principal(
        server_handle: kadm5_handle,
        entry: *mut kadm5_principal_ent_rec,
        mask: c_long,
    ) -> kadm5_ret_t;
    pub fn kadm5_delete_principal(server_handle: kadm5_handle, principal: krb5_principal) -> kadm5_ret_t;
    pub fn kadm5_free_kadm5_key_data(
        context: krb5_context,
        n_key_data: c_int,
        key_data: *mut kadm5_key_data,
    ) -> kadm5_ret_t;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes and offsets of the C structs on LP64 (checked against `offsetof` in MIT's headers).
    #[test]
    fn struct_layout_matches_the_c_headers() {
        // krb5_keyblock and krb5_data are checked in ktbroker-krb5.
        assert_eq!(std::mem::size_of::<krb5_keysalt>(), 24);
        assert_eq!(std::mem::size_of::<kadm5_key_data>(), 56);
        assert_eq!(std::mem::offset_of!(kadm5_key_data, key), 8);
        assert_eq!(std::mem::offset_of!(kadm5_key_data, salt), 32);
        // From a C program printing sizeof/offsetof with MIT 1.20's <kadm5/admin.h>.
        assert_eq!(std::mem::size_of::<kadm5_principal_ent_rec>(), 104);
        assert_eq!(std::mem::offset_of!(kadm5_principal_ent_rec, attributes), 36);
        assert_eq!(std::mem::offset_of!(kadm5_principal_ent_rec, policy), 48);
        assert_eq!(std::mem::offset_of!(kadm5_principal_ent_rec, aux_attributes), 56);
        assert_eq!(std::mem::offset_of!(kadm5_principal_ent_rec, n_key_data), 80);
        assert_eq!(std::mem::offset_of!(kadm5_principal_ent_rec, key_data), 96);
        assert_eq!(std::mem::size_of::<kadm5_config_params>(), 176);
        assert_eq!(std::mem::offset_of!(kadm5_config_params, realm), 8);
        assert_eq!(std::mem::offset_of!(kadm5_config_params, admin_server), 24);
        assert_eq!(std::mem::offset_of!(kadm5_config_params, iprop_listen), 168);
    }
}
