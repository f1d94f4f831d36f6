//! Every call into libpam and the C library the module makes; all the crate's `unsafe` is here.
//! Memory libpam hands out stays libpam's: strings are copied and never freed by us.

#![allow(non_camel_case_types)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use zeroize::Zeroizing;

pub use ktbroker_accounts::{Account, account, identity};

/// libpam's `pam_handle_t`: opaque, only ever behind a pointer.
#[repr(C)]
pub struct pam_handle_t {
    _data: [u8; 0],
    _marker: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_SERVICE_ERR: c_int = 3;
pub const PAM_AUTH_ERR: c_int = 7;
pub const PAM_AUTHINFO_UNAVAIL: c_int = 9;
pub const PAM_USER_UNKNOWN: c_int = 10;
pub const PAM_SESSION_ERR: c_int = 14;
pub const PAM_CRED_ERR: c_int = 17;
pub const PAM_IGNORE: c_int = 25;
const PAM_AUTHTOK: c_int = 6;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
pub const PAM_ESTABLISH_CRED: c_int = 0x0002;
pub const PAM_REINITIALIZE_CRED: c_int = 0x0008;
pub const PAM_REFRESH_CRED: c_int = 0x0010;

pub const LOG_ERR: c_int = libc::LOG_ERR;
pub const LOG_WARNING: c_int = libc::LOG_WARNING;
pub const LOG_NOTICE: c_int = libc::LOG_NOTICE;
pub const LOG_DEBUG: c_int = libc::LOG_DEBUG;

unsafe extern "C" {
    fn pam_get_user(pamh: *mut pam_handle_t, user: *mut *const c_char, prompt: *const c_char) -> c_int;
    fn pam_get_authtok(
        pamh: *mut pam_handle_t,
        item: c_int,
        authtok: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
    fn pam_set_data(
        pamh: *mut pam_handle_t,
        name: *const c_char,
        data: *mut c_void,
        cleanup: Option<unsafe extern "C" fn(*mut pam_handle_t, *mut c_void, c_int)>,
    ) -> c_int;
    fn pam_get_item(pamh: *const pam_handle_t, item: c_int, value: *mut *const c_void) -> c_int;
    fn pam_set_item(pamh: *mut pam_handle_t, item: c_int, value: *const c_void) -> c_int;
    fn pam_get_data(pamh: *const pam_handle_t, name: *const c_char, data: *mut *const c_void) -> c_int;
    fn pam_putenv(pamh: *mut pam_handle_t, name_value: *const c_char) -> c_int;
    fn pam_getenv(pamh: *mut pam_handle_t, name: *const c_char) -> *const c_char;
    fn pam_syslog(pamh: *const pam_handle_t, priority: c_int, fmt: *const c_char, ...);
    fn pam_prompt(pamh: *mut pam_handle_t, style: c_int, response: *mut *mut c_char, fmt: *const c_char, ...) -> c_int;
}

/// The handle and the module arguments of a hook call; `None` for a null handle.
///
/// Only the `pam_sm_*` entry points call this, with the arguments libpam passed them: a live
/// handle and `argc` C strings at `argv`.
pub fn enter(pamh: *mut pam_handle_t, argc: c_int, argv: *const *const c_char) -> Option<(Pam, Vec<String>)> {
    if pamh.is_null() {
        return None;
    }
    // SAFETY: libpam's own hook arguments (see above): a live handle, argc strings at argv.
    Some(unsafe { (Pam::from_hook(pamh), argv_strings(argc, argv)) })
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The PAM handle of one call, borrowed for the call's duration.
pub struct Pam {
    handle: *mut pam_handle_t,
}

impl Pam {
    /// # Safety
    /// `handle` must be the live handle libpam passed to the current hook.
    unsafe fn from_hook(handle: *mut pam_handle_t) -> Self {
        Self { handle }
    }

    /// The user being authenticated (asking the application if it has not said yet).
    pub fn user(&self) -> Result<String, c_int> {
        let mut user: *const c_char = std::ptr::null();
        // SAFETY: the handle is live; libpam writes a pointer to a string it owns.
        let code = unsafe { pam_get_user(self.handle, &mut user, std::ptr::null()) };
        if code != PAM_SUCCESS || user.is_null() {
            return Err(if code == PAM_SUCCESS { PAM_USER_UNKNOWN } else { code });
        }
        // SAFETY: a NUL-terminated string owned by libpam, valid until the next item change; copied.
        let user = unsafe { CStr::from_ptr(user) };
        user.to_str().map(str::to_owned).map_err(|_| PAM_USER_UNKNOWN)
    }

    /// The password, by libpam's own rules: with `use_first_pass`/`try_first_pass` among the
    /// module's arguments it takes a password an earlier module got, otherwise it prompts (and
    /// stores the answer for later modules). The copy is wiped on drop.
    pub fn password(&self) -> Result<Zeroizing<Vec<u8>>, c_int> {
        let mut token: *const c_char = std::ptr::null();
        // SAFETY: the handle is live; libpam writes a pointer to a string it owns (the stored item).
        let code = unsafe { pam_get_authtok(self.handle, PAM_AUTHTOK, &mut token, std::ptr::null()) };
        if code != PAM_SUCCESS || token.is_null() {
            return Err(if code == PAM_SUCCESS { PAM_AUTH_ERR } else { code });
        }
        // SAFETY: a NUL-terminated string owned by libpam; we copy it into our own wiped buffer.
        let bytes = unsafe { CStr::from_ptr(token) }.to_bytes();
        Ok(Zeroizing::new(bytes.to_vec()))
    }

    /// Whether an earlier module left a password (PAM_AUTHTOK) in the transaction.
    pub fn has_stored_password(&self) -> bool {
        let mut value: *const c_void = std::ptr::null();
        // SAFETY: the handle is live; libpam writes a pointer it owns, or null.
        let code = unsafe { pam_get_item(self.handle, PAM_AUTHTOK, &mut value) };
        code == PAM_SUCCESS && !value.is_null()
    }

    /// Forgets the stored password, so the next [`Self::password`] prompts (try_first_pass retry).
    pub fn forget_password(&self) -> Result<(), c_int> {
        // SAFETY: the handle is live; a null item clears it (libpam wipes and frees the old one).
        let code = unsafe { pam_set_item(self.handle, PAM_AUTHTOK, std::ptr::null()) };
        if code == PAM_SUCCESS { Ok(()) } else { Err(code) }
    }

    /// Keeps `value` with the transaction under `name` until pam_end (then dropped).
    pub fn set_data<T: 'static>(&self, name: &CStr, value: T) -> Result<(), c_int> {
        unsafe extern "C" fn cleanup<T>(_pamh: *mut pam_handle_t, data: *mut c_void, _status: c_int) {
            let dropped = std::panic::catch_unwind(|| {
                // SAFETY: data is the Box<T> leaked by set_data below, handed back once by libpam.
                drop(unsafe { Box::from_raw(data.cast::<T>()) });
            });
            let _ = dropped; // a panicking destructor must not unwind into libpam
        }
        let data = Box::into_raw(Box::new(value));
        // SAFETY: the handle is live; name is a valid C string libpam copies; data stays valid
        // until libpam calls cleanup::<T> with it (on replacement or pam_end).
        let code = unsafe { pam_set_data(self.handle, name.as_ptr(), data.cast(), Some(cleanup::<T>)) };
        if code != PAM_SUCCESS {
            // SAFETY: libpam did not take the data; we still own the box.
            drop(unsafe { Box::from_raw(data) });
            return Err(code);
        }
        Ok(())
    }

    /// Runs `f` on the value stored under `name` by [`Self::set_data`] with the same `T`.
    pub fn with_data<T: 'static, R>(&self, name: &CStr, f: impl FnOnce(&T) -> R) -> Option<R> {
        let mut data: *const c_void = std::ptr::null();
        // SAFETY: the handle is live; libpam writes the pointer stored under name, if any.
        let code = unsafe { pam_get_data(self.handle, name.as_ptr(), &mut data) };
        if code != PAM_SUCCESS || data.is_null() {
            return None;
        }
        // SAFETY: only set_data::<T> stores under our names, so data points at a live T that
        // libpam keeps until it calls the cleanup (not during this call).
        Some(f(unsafe { &*data.cast::<T>() }))
    }

    /// `NAME=value` into the PAM environment (the session's environment).
    pub fn putenv(&self, name_value: &str) -> Result<(), c_int> {
        let text = CString::new(name_value).map_err(|_| PAM_SESSION_ERR)?;
        // SAFETY: the handle is live; libpam copies the string.
        let code = unsafe { pam_putenv(self.handle, text.as_ptr()) };
        if code == PAM_SUCCESS { Ok(()) } else { Err(code) }
    }

    /// The value of `name` in the PAM environment, if set.
    pub fn getenv(&self, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        // SAFETY: the handle is live; libpam returns a string it owns (or null), copied at once.
        let value = unsafe { pam_getenv(self.handle, name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string owned by libpam, valid until the environment changes.
        Some(unsafe { CStr::from_ptr(value) }.to_string_lossy().into_owned())
    }

    /// Removes `name` from the PAM environment (pam_putenv with a bare name); absent is fine.
    pub fn unsetenv(&self, name: &str) {
        if self.getenv(name).is_some() {
            let _ = self.putenv(name);
        }
    }

    /// Asks the user for a secret through the application's conversation (no echo). The answer
    /// is copied into a wiped buffer; libpam's copy is wiped and freed here.
    pub fn prompt_secret(&self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, c_int> {
        self.prompt(PAM_PROMPT_ECHO_OFF, prompt)
    }

    /// Asks the user something that is no secret (the answer is echoed): e.g. to press Enter.
    /// Over ssh's keyboard-interactive this is also what gets `prompt`'s text to the user at
    /// once (sshd holds mere messages back until the next prompt).
    pub fn prompt_visible(&self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, c_int> {
        self.prompt(PAM_PROMPT_ECHO_ON, prompt)
    }

    fn prompt(&self, style: c_int, prompt: &str) -> Result<Zeroizing<Vec<u8>>, c_int> {
        let text = CString::new(prompt.replace('\0', "?")).unwrap_or_default();
        let mut response: *mut c_char = std::ptr::null_mut();
        // SAFETY: the handle is live; "%s" with one valid C string; libpam writes a malloc'd
        // string (or null) to `response`, which becomes ours to free.
        let code = unsafe { pam_prompt(self.handle, style, &mut response, c"%s".as_ptr(), text.as_ptr()) };
        if response.is_null() {
            return Err(if code == PAM_SUCCESS { PAM_AUTH_ERR } else { code });
        }
        // SAFETY: a NUL-terminated string libpam allocated for us: copied, then wiped and freed.
        let answer = unsafe {
            let bytes = CStr::from_ptr(response).to_bytes();
            let copy = Zeroizing::new(bytes.to_vec());
            std::ptr::write_bytes(response, 0, bytes.len());
            libc::free(response.cast());
            copy
        };
        if code == PAM_SUCCESS { Ok(answer) } else { Err(code) }
    }

    /// Shows the user a line through the conversation: an error, or else information.
    pub fn tell(&self, error: bool, message: &str) {
        let text = CString::new(message.replace('\0', "?")).unwrap_or_default();
        let style = if error { PAM_ERROR_MSG } else { PAM_TEXT_INFO };
        let mut response: *mut c_char = std::ptr::null_mut();
        // SAFETY: as in prompt_secret; a message needs no answer, but one given is freed.
        unsafe {
            pam_prompt(self.handle, style, &mut response, c"%s".as_ptr(), text.as_ptr());
            if !response.is_null() {
                libc::free(response.cast());
            }
        }
    }

    /// One line to syslog/journald through libpam (tagged with the service); never a secret.
    pub fn log(&self, priority: c_int, message: &str) {
        let text = CString::new(message.replace('\0', "?")).unwrap_or_default();
        // SAFETY: the handle is live; "%s" with one valid C string argument.
        unsafe { pam_syslog(self.handle, priority, c"%s".as_ptr(), text.as_ptr()) };
    }
}

/// The module's arguments as strings (lossy UTF-8; null entries skipped).
///
/// # Safety
/// `argv` must point at `argc` C strings (or be null when `argc` is 0), as libpam passes them.
unsafe fn argv_strings(argc: c_int, argv: *const *const c_char) -> Vec<String> {
    if argv.is_null() || argc <= 0 {
        return Vec::new();
    }
    // SAFETY: the caller guarantees argc valid entries at argv.
    let entries = unsafe { std::slice::from_raw_parts(argv, argc as usize) };
    entries
        .iter()
        .filter(|entry| !entry.is_null())
        // SAFETY: each non-null entry is a NUL-terminated string owned by libpam for this call.
        .map(|entry| unsafe { CStr::from_ptr(*entry) }.to_string_lossy().into_owned())
        .collect()
}

/// Makes `command`'s child, between fork and exec, close every inherited descriptor above stderr
/// and take on the account's supplementary groups, gid and uid, in that order (the only order
/// that works when starting as root). A process that already is the user (a screen locker
/// unlocking the user's own session) keeps its identity: it could not change it anyway.
pub fn become_user_before_exec(command: &mut std::process::Command, account: &Account) {
    use std::os::unix::process::CommandExt;
    let (uid, gid, groups) = (account.uid, account.gid, account.groups.clone());
    let already_the_user = euid() == uid && euid() != 0;
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // syscalls (close_range, setgroups, setgid, setuid) on data prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            close_inherited_descriptors()?;
            if already_the_user {
                return Ok(());
            }
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// In a forked child before exec: closes every descriptor above stderr, so nothing the host
/// process (sshd, login) holds open reaches a process that runs as the user.
fn close_inherited_descriptors() -> std::io::Result<()> {
    // SAFETY: close_range is an async-signal-safe syscall; it only closes descriptors.
    if unsafe { libc::close_range(3, libc::c_uint::MAX, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Writes all of `bytes` to a socket without SIGPIPE (a signal would kill the host process when
/// the peer is gone; we get EPIPE instead).
pub fn send_all(socket: &std::os::unix::net::UnixStream, mut bytes: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    while !bytes.is_empty() {
        // SAFETY: sends at most bytes.len() bytes from our buffer on a socket we own.
        let n = unsafe {
            libc::send(
                socket.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Fills `buffer` with random bytes from the kernel.
pub fn random(buffer: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        // SAFETY: writes at most len - filled bytes into our buffer.
        let n = unsafe { libc::getrandom(buffer[filled..].as_mut_ptr().cast(), buffer.len() - filled, 0) };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        filled += n as usize;
    }
    Ok(())
}

/// Whether a process with this pid exists (in this pid namespace). Pid 0 and pids beyond
/// `pid_t` count as alive: nothing is ever removed on their account.
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled; nothing is sent.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Takes an fcntl write lock on the whole of `file` (the kind libkrb5 takes on a FILE cache),
/// trying without blocking until `patience` has passed. Closing the file releases it.
pub fn lock_for_writing(file: &std::fs::File, patience: std::time::Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + patience;
    loop {
        // SAFETY: flock is a plain C struct; all-zero is valid before the fields are set.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: F_SETLK on a descriptor we own, with a valid flock; it never blocks.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        let busy = matches!(error.raw_os_error(), Some(libc::EACCES | libc::EAGAIN | libc::EINTR));
        if !busy || std::time::Instant::now() >= deadline {
            return Err(error);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until `child` exits or `deadline` passes (then `None`, the child still running and
/// unreaped, for the caller to kill). Wakes the moment it exits, through a pidfd (Linux 5.3+):
/// a login waits for the helper, not for the next tick of a polling loop. Without pidfds it polls
/// every millisecond, then less often. An error of `wait` (a host that reaps its own children
/// behind our back) counts as `None` too.
pub fn wait_for_exit(
    child: &mut std::process::Child,
    deadline: std::time::Instant,
) -> Option<std::process::ExitStatus> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let pid = libc::pid_t::try_from(child.id()).ok()?;
    // SAFETY: pidfd_open takes a pid and flags 0 and returns a new descriptor or -1; nothing is
    // passed by pointer.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let pidfd = c_int::try_from(raw).ok().filter(|fd| *fd >= 0).map(|fd| {
        // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return None;
        }
        let left = deadline - now;
        match &pidfd {
            Some(pidfd) => {
                let mut ready = libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let millis = c_int::try_from(left.as_millis() + 1).unwrap_or(c_int::MAX);
                // SAFETY: one valid pollfd for a descriptor we own; poll only writes its revents.
                // Readable means exited; a timeout or EINTR goes round the loop again.
                unsafe { libc::poll(&mut ready, 1, millis) };
            }
            None => {
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(std::time::Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wait_for_exit;
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn an_exited_child_is_reaped_with_its_status() {
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let status = wait_for_exit(&mut child, Instant::now() + Duration::from_secs(30));
        assert_eq!(status.and_then(|s| s.code()), Some(3));
    }

    #[test]
    fn a_child_still_running_at_the_deadline_is_left_to_the_caller() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let started = Instant::now();
        assert_eq!(wait_for_exit(&mut child, started + Duration::from_millis(100)), None);
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(child.try_wait().unwrap().is_none(), "still running, not reaped");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_deadline_already_past_returns_at_once() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert_eq!(wait_for_exit(&mut child, Instant::now()), None);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
