//! `ktbroker-pam-driver CONFDIR SERVICE USER OP...`: drives a real PAM stack through real libpam
//! (`pam_start_confdir`, so the service file lives in a temp dir, not /etc/pam.d), the way a login
//! program would. Answers every password prompt with the next line of stdin and counts prompts.
//!
//! OPs: authenticate setcred refresh reinitialize open_session close_session acct_mgmt (refresh and
//! reinitialize are setcred with PAM_REFRESH_CRED / PAM_REINITIALIZE_CRED), and three probes: `cache` prints
//! owner, mode and existence of the FILE cache KRB5CCNAME names, `klist` runs klist on it, and
//! `pending=DIR` how many files DIR holds.
//! Prints one `OP rc=N` line per operation and `prompts=N` at the end. USER `-` leaves the user
//! unset, so the stack asks for it (the first stdin line). Test code only.

// A libpam application: FFI throughout; test code, where a failed unwrap is a failed test.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_open_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
    fn pam_getenv(pamh: *mut c_void, name: *const c_char) -> *const c_char;
}

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ESTABLISH_CRED: c_int = 0x2;
const PAM_REINITIALIZE_CRED: c_int = 0x8;
const PAM_REFRESH_CRED: c_int = 0x10;

static PROMPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The conversation: prompts get the next stdin line; messages go to stderr.
unsafe extern "C" fn converse(
    count: c_int,
    messages: *mut *const PamMessage,
    responses: *mut *mut PamResponse,
    _appdata: *mut c_void,
) -> c_int {
    let count = count.max(0) as usize;
    // SAFETY: calloc'ed array of `count` responses; libpam frees it (and each resp) with free().
    let answers = unsafe { libc::calloc(count, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if answers.is_null() {
        return 5; // PAM_BUF_ERR
    }
    for i in 0..count {
        // SAFETY: Linux-PAM passes an array of `count` message pointers.
        let message = unsafe { &**messages.add(i) };
        // SAFETY: each message text is a C string owned by libpam.
        let text = unsafe { CStr::from_ptr(message.msg) }.to_string_lossy();
        if message.msg_style == PAM_PROMPT_ECHO_OFF || message.msg_style == PAM_PROMPT_ECHO_ON {
            PROMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Shown before the answer is read, as a terminal would show it.
            eprintln!("pam prompt: {text}");
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            // What a C program could pass: the answer up to the first NUL.
            let answer = line.trim_end_matches('\n').split('\0').next().unwrap_or("");
            let line = CString::new(answer).unwrap_or_default();
            // SAFETY: strdup allocates with malloc, as libpam expects to free it.
            unsafe { (*answers.add(i)).resp = libc::strdup(line.as_ptr()) };
        } else {
            eprintln!("pam message: {text}");
        }
    }
    // SAFETY: libpam takes ownership of the array.
    unsafe { *responses = answers };
    0
}

fn main() {
    let started = std::time::Instant::now();
    // KTBROKER_PAM_DRIVER_TIMES set: each step's wall time on stderr (for bench/login-latency's
    // PAM numbers, when they need taking apart).
    let times = std::env::var_os("KTBROKER_PAM_DRIVER_TIMES").is_some();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [confdir, service, user, ops @ ..] = args.as_slice() else {
        eprintln!("usage: ktbroker-pam-driver CONFDIR SERVICE USER OP...");
        std::process::exit(2);
    };
    let (confdir, service) = (
        CString::new(confdir.as_str()).unwrap(),
        CString::new(service.as_str()).unwrap(),
    );
    // "-" starts without a user: the modules then ask for it through the conversation.
    let user = (user != "-").then(|| CString::new(user.as_str()).expect("no NUL in an argument"));
    let conv = PamConv {
        conv: converse,
        appdata_ptr: std::ptr::null_mut(),
    };
    let mut pamh: *mut c_void = std::ptr::null_mut();
    let user_ptr = user.as_ref().map_or(std::ptr::null(), |u| u.as_ptr());
    // SAFETY: valid C strings and a conversation that lives until pam_end.
    let code = unsafe { pam_start_confdir(service.as_ptr(), user_ptr, &conv, confdir.as_ptr(), &mut pamh) };
    if code != 0 {
        eprintln!("pam_start_confdir failed: {code}");
        std::process::exit(1);
    }
    if times {
        eprintln!("time pam_start {} us", started.elapsed().as_micros());
    }
    let mut last = 0;
    for op in ops {
        let op_started = std::time::Instant::now();
        // SAFETY: pamh is the live handle from pam_start_confdir.
        let code = unsafe {
            match op.as_str() {
                "authenticate" => pam_authenticate(pamh, 0),
                "setcred" => pam_setcred(pamh, PAM_ESTABLISH_CRED),
                // What a screen locker calls after the user typed the password again.
                "refresh" => pam_setcred(pamh, PAM_REFRESH_CRED),
                "reinitialize" => pam_setcred(pamh, PAM_REINITIALIZE_CRED),
                "acct_mgmt" => pam_acct_mgmt(pamh, 0),
                "open_session" => pam_open_session(pamh, 0),
                "close_session" => pam_close_session(pamh, 0),
                "cache" | "klist" => {
                    probe(pamh, op);
                    continue;
                }
                // `pending=DIR`: how many files DIR holds now (the module's tickets between steps).
                other if other.starts_with("pending=") => {
                    let dir = &other["pending=".len()..];
                    let count = std::fs::read_dir(dir).map_or(0, |entries| entries.count());
                    println!("pending {count}");
                    continue;
                }
                other => {
                    eprintln!("unknown op {other}");
                    std::process::exit(2);
                }
            }
        };
        println!("{op} rc={code}");
        if times {
            eprintln!("time {op} {} us", op_started.elapsed().as_micros());
        }
        last = code;
    }
    println!("prompts={}", PROMPTS.load(std::sync::atomic::Ordering::Relaxed));
    // SAFETY: ends the transaction started above, once.
    unsafe { pam_end(pamh, last) };
    if times {
        eprintln!("time total {} us", started.elapsed().as_micros());
    }
}

/// Prints what KRB5CCNAME in the PAM environment names.
fn probe(pamh: *mut c_void, op: &str) {
    // SAFETY: pamh is live; the result is a string owned by libpam (or null).
    let value = unsafe { pam_getenv(pamh, c"KRB5CCNAME".as_ptr()) };
    let name = if value.is_null() {
        String::new()
    } else {
        // SAFETY: a C string owned by libpam, copied right away.
        unsafe { CStr::from_ptr(value) }.to_string_lossy().into_owned()
    };
    println!("KRB5CCNAME={name}");
    let path = name.strip_prefix("FILE:").unwrap_or("");
    if op == "cache" {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => println!("cache exists uid={} mode={:o}", meta.uid(), meta.mode() & 0o7777),
            Err(_) => println!("cache missing"),
        }
    } else {
        let out = std::process::Command::new("klist")
            .args(["-c", &name])
            .env("LC_ALL", "C")
            .env_remove("LANGUAGE")
            .output();
        if let Ok(out) = out {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}
