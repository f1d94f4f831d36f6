//! The initiator half of GSSAPI, enough for HTTP Negotiate (SPNEGO, RFC 4559): one token for one
//! service on one host, from a ticket in a named credential cache. Never delegates credentials.
//! Declarations match MIT `<gssapi/gssapi.h>` 1.20 on LP64 Linux.

use std::ffi::{CString, c_char, c_int, c_void};
use std::ptr;

#[allow(non_camel_case_types)]
type OM_uint32 = u32;

#[repr(C)]
struct gss_buffer_desc {
    length: usize,
    value: *mut c_void,
}

#[repr(C)]
struct gss_OID_desc {
    length: OM_uint32,
    elements: *mut c_void,
}

#[repr(C)]
struct gss_key_value_element_desc {
    key: *const c_char,
    value: *const c_char,
}

#[repr(C)]
struct gss_key_value_set_desc {
    count: OM_uint32,
    elements: *mut gss_key_value_element_desc,
}

crate::opaque!(gss_name_struct, gss_cred_id_struct, gss_ctx_id_struct);
type GssName = *mut gss_name_struct;
type GssCred = *mut gss_cred_id_struct;
type GssCtx = *mut gss_ctx_id_struct;

const GSS_C_INDEFINITE: OM_uint32 = 0xffff_ffff;
const GSS_C_INITIATE: c_int = 1;
const GSS_C_GSS_CODE: c_int = 1;
const GSS_C_MECH_CODE: c_int = 2;
/// Routine and calling errors live in the upper 16 bits; supplementary info below.
const GSS_ERROR_MASK: OM_uint32 = 0xffff_0000;
/// SPNEGO, 1.3.6.1.5.5.2.
const SPNEGO_OID: [u8; 6] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

#[link(name = "gssapi_krb5")]
unsafe extern "C" {
    static GSS_C_NT_HOSTBASED_SERVICE: *mut gss_OID_desc;
    fn gss_import_name(
        minor: *mut OM_uint32,
        input: *mut gss_buffer_desc,
        name_type: *mut gss_OID_desc,
        output: *mut GssName,
    ) -> OM_uint32;
    fn gss_release_name(minor: *mut OM_uint32, name: *mut GssName) -> OM_uint32;
    fn gss_acquire_cred_from(
        minor: *mut OM_uint32,
        desired_name: GssName,
        time_req: OM_uint32,
        desired_mechs: *mut c_void,
        cred_usage: c_int,
        cred_store: *const gss_key_value_set_desc,
        output_cred: *mut GssCred,
        actual_mechs: *mut *mut c_void,
        time_rec: *mut OM_uint32,
    ) -> OM_uint32;
    fn gss_release_cred(minor: *mut OM_uint32, cred: *mut GssCred) -> OM_uint32;
    fn gss_init_sec_context(
        minor: *mut OM_uint32,
        cred: GssCred,
        context: *mut GssCtx,
        target: GssName,
        mech: *mut gss_OID_desc,
        req_flags: OM_uint32,
        time_req: OM_uint32,
        bindings: *mut c_void,
        input_token: *mut gss_buffer_desc,
        actual_mech: *mut *mut gss_OID_desc,
        output_token: *mut gss_buffer_desc,
        ret_flags: *mut OM_uint32,
        time_rec: *mut OM_uint32,
    ) -> OM_uint32;
    fn gss_delete_sec_context(minor: *mut OM_uint32, context: *mut GssCtx, output: *mut gss_buffer_desc) -> OM_uint32;
    fn gss_release_buffer(minor: *mut OM_uint32, buffer: *mut gss_buffer_desc) -> OM_uint32;
    fn gss_display_status(
        minor: *mut OM_uint32,
        status: OM_uint32,
        status_type: c_int,
        mech: *mut gss_OID_desc,
        message_context: *mut OM_uint32,
        output: *mut gss_buffer_desc,
    ) -> OM_uint32;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GSSAPI {during}: {message}")]
pub struct GssError {
    pub during: &'static str,
    pub message: String,
}

/// The first (and for Kerberos, only) SPNEGO token for `HTTP@host`, from the ticket in `ccache`
/// (a full name such as `FILE:/tmp/krb5cc_1000`). The KDC is asked for the service ticket if the
/// cache does not hold one yet.
pub fn negotiate_token(host: &str, ccache: &str) -> Result<Vec<u8>, GssError> {
    let service = format!("HTTP@{host}");
    let name = Name::import_hostbased(&service)?;
    let cred = Cred::from_ccache(ccache)?;
    let mut context: GssCtx = ptr::null_mut();
    let mut mech = gss_OID_desc {
        length: SPNEGO_OID.len() as OM_uint32,
        elements: SPNEGO_OID.as_ptr() as *mut c_void,
    };
    let mut output = gss_buffer_desc {
        length: 0,
        value: ptr::null_mut(),
    };
    let mut minor = 0;
    // SAFETY: every pointer is valid for the call: `cred.0` and `name.0` are live handles, the
    // context starts as GSS_C_NO_CONTEXT, `mech` points at a static OID, no input token or
    // channel bindings (NULL), and the library fills `output`, which is released below. No
    // delegation flag is requested.
    let major = unsafe {
        gss_init_sec_context(
            &mut minor,
            cred.0,
            &mut context,
            name.0,
            &mut mech,
            0,
            GSS_C_INDEFINITE,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut output,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    let token = if output.value.is_null() {
        Vec::new()
    } else {
        // SAFETY: on return `output` describes `length` bytes the library allocated.
        unsafe { std::slice::from_raw_parts(output.value as *const u8, output.length) }.to_vec()
    };
    // SAFETY: releases what the library allocated; both are no-ops for empty handles.
    unsafe {
        let mut ignored = 0;
        gss_release_buffer(&mut ignored, &mut output);
        if !context.is_null() {
            gss_delete_sec_context(&mut ignored, &mut context, ptr::null_mut());
        }
    }
    check(major, minor, "init_sec_context")?;
    if token.is_empty() {
        return Err(GssError {
            during: "init_sec_context",
            message: format!("no token for {service}"),
        });
    }
    // GSS_S_CONTINUE_NEEDED is normal here: SPNEGO would finish with the server's reply (its
    // mechListMIC), which HTTP Negotiate does not need; the first token is complete and sendable.
    Ok(token)
}

struct Name(GssName);

impl Name {
    fn import_hostbased(service: &str) -> Result<Self, GssError> {
        let mut buffer = gss_buffer_desc {
            length: service.len(),
            value: service.as_ptr() as *mut c_void,
        };
        let mut name: GssName = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: `buffer` points at `service`'s bytes for the call (gss_import_name copies
        // them); GSS_C_NT_HOSTBASED_SERVICE is the library's own static OID.
        let major = unsafe { gss_import_name(&mut minor, &mut buffer, GSS_C_NT_HOSTBASED_SERVICE, &mut name) };
        check(major, minor, "import_name")?;
        Ok(Self(name))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: a handle gss_import_name returned, released once.
        unsafe { gss_release_name(&mut minor, &mut self.0) };
    }
}

struct Cred(GssCred);

impl Cred {
    /// Initiator credentials from the ticket in `ccache`, leaving the process's default alone.
    fn from_ccache(ccache: &str) -> Result<Self, GssError> {
        let bad = |_| GssError {
            during: "acquire_cred_from",
            message: "a NUL byte in the ccache name".into(),
        };
        let key = CString::new("ccache").map_err(bad)?;
        let value = CString::new(ccache).map_err(bad)?;
        let mut element = gss_key_value_element_desc {
            key: key.as_ptr(),
            value: value.as_ptr(),
        };
        let store = gss_key_value_set_desc {
            count: 1,
            elements: &mut element,
        };
        let mut cred: GssCred = ptr::null_mut();
        let mut minor = 0;
        // SAFETY: `store` and the strings it points at outlive the call; no desired name or
        // mechanism set (NULL: the cache's principal, default mechanisms); the library writes a
        // credential handle, released in Drop.
        let major = unsafe {
            gss_acquire_cred_from(
                &mut minor,
                ptr::null_mut(),
                GSS_C_INDEFINITE,
                ptr::null_mut(),
                GSS_C_INITIATE,
                &store,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        check(major, minor, "acquire_cred_from")?;
        Ok(Self(cred))
    }
}

impl Drop for Cred {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: a handle gss_acquire_cred_from returned, released once.
        unsafe { gss_release_cred(&mut minor, &mut self.0) };
    }
}

fn check(major: OM_uint32, minor: OM_uint32, during: &'static str) -> Result<(), GssError> {
    if major & GSS_ERROR_MASK == 0 {
        return Ok(());
    }
    let mut message = status_text(major, GSS_C_GSS_CODE);
    let mech = status_text(minor, GSS_C_MECH_CODE);
    if minor != 0 && !mech.is_empty() {
        message = format!("{message}: {mech}");
    }
    Err(GssError { during, message })
}

/// The library's text for a major or minor status code.
fn status_text(code: OM_uint32, kind: c_int) -> String {
    let mut parts = Vec::new();
    let mut context = 0;
    loop {
        let mut minor = 0;
        let mut buffer = gss_buffer_desc {
            length: 0,
            value: ptr::null_mut(),
        };
        // SAFETY: the library fills `buffer` (released below) and advances `context`.
        let major = unsafe { gss_display_status(&mut minor, code, kind, ptr::null_mut(), &mut context, &mut buffer) };
        if major & GSS_ERROR_MASK != 0 {
            break;
        }
        if !buffer.value.is_null() {
            // SAFETY: `buffer` describes `length` bytes from the library.
            let text = unsafe { std::slice::from_raw_parts(buffer.value as *const u8, buffer.length) };
            parts.push(String::from_utf8_lossy(text).into_owned());
            // SAFETY: released once, as the API requires.
            unsafe { gss_release_buffer(&mut minor, &mut buffer) };
        }
        if context == 0 || parts.len() > 8 {
            break;
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_without_tickets_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("ktbroker-gss-test-{}", std::process::id()));
        let error = negotiate_token("localhost", &format!("FILE:{}", dir.display())).unwrap_err();
        assert_eq!(error.during, "acquire_cred_from");
        assert!(!error.message.is_empty());
    }
}
