//! `pam_ktbroker.so`: at login, turns the directory password into a Kerberos ticket in the
//! session's credential cache.
//!
//! A thin shim ([`child`]): no async runtime, no network and no TLS in the host process (sshd,
//! login, su). `auth` runs `ktbroker-kinit` as the user in a child process with a deadline and
//! keeps the ticket in a temporary cache; `setcred`/`open_session` move it to the session's cache
//! and export KRB5CCNAME; `close_session` removes it. Every hook is wrapped in `catch_unwind`: no
//! panic reaches C. All `unsafe` is in [`ffi`].

pub mod args;
mod child;
// All FFI with libpam and libc; `unsafe` is denied everywhere else in the module.
#[allow(unsafe_code)]
mod ffi;
mod pending;
mod registry;
mod session;

use args::Args;
use child::{HelperOutcome, Secrets};
use ffi::{
    LOG_DEBUG, LOG_ERR, LOG_NOTICE, LOG_WARNING, PAM_AUTH_ERR, PAM_AUTHINFO_UNAVAIL, PAM_CRED_ERR, PAM_ESTABLISH_CRED,
    PAM_IGNORE, PAM_REFRESH_CRED, PAM_REINITIALIZE_CRED, PAM_SERVICE_ERR, PAM_SESSION_ERR, PAM_SUCCESS,
    PAM_USER_UNKNOWN, Pam, pam_handle_t,
};
use session::{PendingTicket, SessionCache};
use std::ffi::{CStr, c_char, c_int};
use std::path::PathBuf;

const PENDING: &CStr = c"ktbroker-pending-ticket";
const SESSION: &CStr = c"ktbroker-session-cache";

// The broker refuses longer passwords too; refusing them here spares a child process.
use ktbroker_codes::{HelperExit, MAX_PASSWORD_LEN};

/// Runs a hook: parse the arguments, call `f`, and turn a panic into PAM_SERVICE_ERR.
fn hook(
    pamh: *mut pam_handle_t,
    argc: c_int,
    argv: *const *const c_char,
    f: impl FnOnce(&Pam, &Args) -> c_int,
) -> c_int {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some((pam, raw)) = ffi::enter(pamh, argc, argv) else {
            return PAM_SERVICE_ERR;
        };
        let (args, complaints) = args::parse(raw.iter().map(String::as_str));
        for complaint in complaints {
            pam.log(LOG_WARNING, &complaint);
        }
        f(&pam, &args)
    }))
    .unwrap_or(PAM_SERVICE_ERR)
}

/// Defines one exported hook with libpam's signature that runs `$body(pam, args, flags)` inside
/// [`hook`] (argument parsing, panic guard).
macro_rules! pam_hook {
    ($name:ident, $body:expr) => {
        // An exported symbol libpam looks up by name: the crate's one use of `unsafe` outside ffi.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(
            pamh: *mut pam_handle_t,
            flags: c_int,
            argc: c_int,
            argv: *const *const c_char,
        ) -> c_int {
            hook(pamh, argc, argv, |pam, args| ($body)(pam, args, flags))
        }
    };
}

pam_hook!(pam_sm_authenticate, |pam, args, _| authenticate(pam, args));
pam_hook!(pam_sm_setcred, |pam, args, flags: c_int| {
    if flags & PAM_ESTABLISH_CRED != 0 {
        establish(pam, args, PAM_CRED_ERR)
    } else if flags & (PAM_REINITIALIZE_CRED | PAM_REFRESH_CRED) != 0 {
        refresh(pam, args)
    } else {
        PAM_SUCCESS // PAM_DELETE_CRED: close_session removes the cache
    }
});
pam_hook!(pam_sm_acct_mgmt, |_, _, _| PAM_IGNORE);
pam_hook!(pam_sm_open_session, |pam, args, _| establish(
    pam,
    args,
    PAM_SESSION_ERR
));
pam_hook!(pam_sm_close_session, |pam, args, _| close_session(pam, args));
// A password the directory wants changed is changed during authentication (see change_password);
// passwd(1) is not the way to change a directory password here.
pam_hook!(pam_sm_chauthtok, |_, _, _| PAM_IGNORE);

fn authenticate(pam: &Pam, args: &Args) -> c_int {
    let user = match pam.user() {
        Ok(user) => user,
        Err(code) => return code,
    };
    let Some(account) = ffi::account(&user) else {
        pam.log(LOG_NOTICE, &format!("ktbroker: no local account {:?}", short(&user)));
        return if args.ignore_unknown_user {
            PAM_IGNORE
        } else {
            PAM_USER_UNKNOWN
        };
    };
    if (args.ignore_root && account.uid == 0) || account.uid < args.minimum_uid {
        return PAM_IGNORE;
    }
    if ffi::euid() == 0 {
        let swept = pending::sweep_orphans(&args.ccache_dir, ffi::process_exists);
        if swept > 0 {
            pam.log(
                LOG_NOTICE,
                &format!("ktbroker: removed {swept} ticket(s) left by logins that ended before their session"),
            );
        }
    }
    if args.sso {
        let (code, temporary) = match attempt_sign_in(pam, args, &account) {
            Ok(done) => done,
            Err(code) => return code,
        };
        return keep_pending(pam, args, &user, &account, code, temporary);
    }
    let reused = pam.has_stored_password();
    let (mut code, mut temporary) = match attempt(pam, args, &account) {
        Ok(done) => done,
        Err(code) => return code,
    };
    // try_first_pass: a password an earlier module took that fails here earns one prompt of ours.
    if code == PAM_AUTH_ERR && reused && args.try_first_pass && !args.use_first_pass && pam.forget_password().is_ok() {
        (code, temporary) = match attempt(pam, args, &account) {
            Ok(done) => done,
            Err(code) => return code,
        };
    }
    keep_pending(pam, args, &user, &account, code, temporary)
}

/// After a successful helper run: the ticket waits in `temporary` for setcred or the session.
fn keep_pending(pam: &Pam, args: &Args, user: &str, account: &ffi::Account, code: c_int, temporary: PathBuf) -> c_int {
    if code != PAM_SUCCESS {
        return code;
    }
    pam.log(LOG_NOTICE, &format!("ktbroker: ticket obtained for {user}"));
    let pending = PendingTicket {
        path: temporary,
        uid: account.uid,
    };
    if args.no_ccache {
        return PAM_SUCCESS; // dropping `pending` removes the cache
    }
    // The environment carries the name to a setcred in another process (see `pending`).
    let carried = format!("{}={}", pending::ENV_NAME, pending.path.display());
    match pam.set_data(PENDING, pending) {
        Ok(()) if pam.putenv(&carried).is_ok() => PAM_SUCCESS,
        _ => PAM_SERVICE_ERR,
    }
}

/// One password and one helper run: the PAM code, and the temporary cache (filled on success).
fn attempt(pam: &Pam, args: &Args, account: &ffi::Account) -> Result<(c_int, PathBuf), c_int> {
    let user = &account.name;
    let password = pam.password()?;
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        pam.log(
            LOG_NOTICE,
            &format!("ktbroker: refusing an empty or over-long password for {user}"),
        );
        return Ok((PAM_AUTH_ERR, PathBuf::new()));
    }
    let temporary = session::temporary_path(&args.ccache_dir, account.uid).map_err(|e| {
        pam.log(LOG_ERR, &format!("ktbroker: no randomness for a cache name: {e}"));
        PAM_SERVICE_ERR
    })?;
    let ccache = format!("FILE:{}", temporary.display());
    let mut outcome = child::run_helper(args, account, &ccache, Secrets::Password(&password));
    if exit_of(&outcome) == Some(HelperExit::PasswordChangeRequired) {
        outcome = change_password(pam, args, account, &ccache, &password)?;
    } else if let HelperOutcome::Exited { last_line, .. } = &outcome
        && last_line.contains("[password-change-elsewhere]")
    {
        pam.tell(
            true,
            "Your directory password has expired and cannot be changed here: change it where your organization says, then log in again.",
        );
    }
    drop(password);
    Ok((concluded(pam, args, account, &temporary, outcome), temporary))
}

/// The sign-in at the identity provider (`sso`): no password; the person is shown where to sign
/// in, in a prompt (over ssh only a prompt reaches them while the module waits), and the module
/// waits for the helper.
fn attempt_sign_in(pam: &Pam, args: &Args, account: &ffi::Account) -> Result<(c_int, PathBuf), c_int> {
    let temporary = session::temporary_path(&args.ccache_dir, account.uid).map_err(|e| {
        pam.log(LOG_ERR, &format!("ktbroker: no randomness for a cache name: {e}"));
        PAM_SERVICE_ERR
    })?;
    let ccache = format!("FILE:{}", temporary.display());
    let outcome = child::run_sign_in(args, account, &ccache, |url, code| {
        pam.prompt_visible(&format!(
            "To log in, open {url} in a browser and enter the code {code}.\nPress Enter once you have signed in: "
        ))
        .map(|_| ())
    })?;
    Ok((concluded(pam, args, account, &temporary, outcome), temporary))
}

/// The PAM code for how the helper ended; the temporary cache is removed unless it succeeded.
fn concluded(
    pam: &Pam,
    args: &Args,
    account: &ffi::Account,
    temporary: &std::path::Path,
    outcome: HelperOutcome,
) -> c_int {
    let user = &account.name;
    let code = match &outcome {
        HelperOutcome::Exited { code: Some(code), .. } => match HelperExit::from_code(*code) {
            Some(HelperExit::Success) => PAM_SUCCESS,
            Some(HelperExit::AuthFailed | HelperExit::Refused | HelperExit::PasswordChangeRequired) => PAM_AUTH_ERR,
            Some(HelperExit::BrokerUnavailable | HelperExit::Kerberos) => PAM_AUTHINFO_UNAVAIL,
            _ => PAM_SERVICE_ERR,
        },
        HelperOutcome::TimedOut => PAM_AUTHINFO_UNAVAIL,
        HelperOutcome::Exited { code: None, .. } | HelperOutcome::CannotStart(_) => PAM_SERVICE_ERR,
    };
    if code != PAM_SUCCESS {
        session::remove_users_file(temporary, account.uid);
        let why = match outcome {
            HelperOutcome::Exited { code, last_line } => format!("exit {code:?}: {last_line}"),
            HelperOutcome::TimedOut if args.sso => format!("no answer within sso_wait {:?}", args.sso_wait),
            HelperOutcome::TimedOut => format!("no answer within {:?}", args.timeout),
            HelperOutcome::CannotStart(why) => why,
        };
        pam.log(LOG_NOTICE, &format!("ktbroker: no ticket for {user} ({why})"));
    }
    code
}

fn exit_of(outcome: &HelperOutcome) -> Option<HelperExit> {
    match outcome {
        HelperOutcome::Exited { code: Some(code), .. } => HelperExit::from_code(*code),
        _ => None,
    }
}

/// The directory wants the password changed: the new one twice through the conversation, then
/// the helper again with old, new, new. A refusal is told in the directory's terms (the helper's
/// words) and the user may try again, three tries in all.
fn change_password(
    pam: &Pam,
    args: &Args,
    account: &ffi::Account,
    ccache: &str,
    password: &[u8],
) -> Result<HelperOutcome, c_int> {
    pam.tell(
        false,
        "Your directory password has expired or was reset; choose a new one.",
    );
    let mut outcome = HelperOutcome::CannotStart("no new password was given".into());
    for _ in 0..3 {
        let new = pam.prompt_secret("New password: ")?;
        let again = pam.prompt_secret("New password (again): ")?;
        if new.is_empty() || new.len() > MAX_PASSWORD_LEN {
            pam.tell(true, "No new password was given; the password was not changed.");
            return Ok(outcome);
        }
        if new != again {
            pam.tell(true, "The two new passwords differ; nothing was changed.");
            continue;
        }
        outcome = child::run_helper(
            args,
            account,
            ccache,
            Secrets::Change {
                old: password,
                new: &new,
            },
        );
        match (&outcome, exit_of(&outcome)) {
            (HelperOutcome::Exited { last_line, .. }, Some(HelperExit::Refused))
                if last_line.contains("[new-password-rejected]") =>
            {
                let said = last_line.split_once("] ").map_or(last_line.as_str(), |(_, rest)| rest);
                pam.tell(true, &format!("{said}."));
            }
            (_, Some(HelperExit::Success)) => {
                pam.log(
                    LOG_NOTICE,
                    &format!("ktbroker: directory password changed for {}", account.name),
                );
                pam.tell(false, "Your directory password was changed.");
                return Ok(outcome);
            }
            _ => return Ok(outcome),
        }
    }
    Ok(outcome)
}

/// setcred and open_session: the pending ticket becomes the session's cache (once), and
/// KRB5CCNAME names it. PAM_IGNORE when this module obtained no ticket in this transaction.
fn establish(pam: &Pam, args: &Args, failure: c_int) -> c_int {
    if let Some(session) = pam.with_data(SESSION, |s: &SessionCache| s.clone()) {
        return export(pam, &session.path, failure);
    }
    let Some((from, uid, gid)) = take_pending(pam, args) else {
        return PAM_IGNORE;
    };
    let installed = session::session_path(&args.ccache, uid)
        .map_err(|e| format!("session cache name: {e}"))
        .and_then(|target| session::install_ticket(&from, &target, uid).map(|()| target));
    let target = match installed {
        Ok(target) => target,
        Err(why) => {
            session::remove_users_file(&from, uid);
            pam.log(LOG_ERR, &format!("ktbroker: cannot set up the session cache: {why}"));
            return failure;
        }
    };
    // The pending file is gone; its entry now names nothing and the session entry takes over.
    let moved = PendingTicket {
        path: PathBuf::new(),
        uid,
    };
    if pam.set_data(PENDING, moved).is_err()
        || pam
            .set_data(
                SESSION,
                SessionCache {
                    path: target.clone(),
                    uid,
                },
            )
            .is_err()
    {
        return failure;
    }
    if args.debug {
        pam.log(LOG_DEBUG, &format!("ktbroker: session cache {}", target.display()));
    }
    // Renewal outside the session is a convenience: a failure here is logged, not fatal.
    if ffi::euid() == 0
        && let Err(why) = registry::register(&args.sessions_dir, uid, gid, &target)
    {
        pam.log(
            LOG_WARNING,
            &format!("ktbroker: the session cache is not findable for renewal: {why}"),
        );
    }
    export(pam, &target, failure)
}

/// The ticket this transaction's `auth` left: from pam_set_data when `auth` ran in this
/// process, else (sshd's keyboard-interactive) from the PAM environment, adopted so that pam_end
/// removes it if no session takes it. Either way the environment entry is taken out, so it
/// never reaches the session. `(path, uid, gid)`.
fn take_pending(pam: &Pam, args: &Args) -> Option<(PathBuf, u32, u32)> {
    let carried = pam.getenv(pending::ENV_NAME);
    pam.unsetenv(pending::ENV_NAME);
    let (uid, gid) = ffi::identity(&pam.user().ok()?)?;
    if let Some(path) = pam
        .with_data(PENDING, |p: &PendingTicket| p.path.clone())
        .filter(|path| !path.as_os_str().is_empty())
    {
        return Some((path, uid, gid));
    }
    let path = pending::from_environment(&carried?, &args.ccache_dir, uid)?;
    let adopted = PendingTicket {
        path: path.clone(),
        uid,
    };
    pam.set_data(PENDING, adopted).ok()?;
    if args.debug {
        pam.log(
            LOG_DEBUG,
            &format!(
                "ktbroker: took the ticket from another process's auth: {}",
                path.display()
            ),
        );
    }
    Some((path, uid, gid))
}

/// setcred with PAM_REFRESH_CRED or PAM_REINITIALIZE_CRED (a screen unlock): the session's own
/// cache, named by KRB5CCNAME, is brought up to date in place. With a password given to `auth`
/// (a pending ticket), that ticket replaces the cache's contents; without one, the ticket in it
/// is renewed. Never creates a cache: with none to refresh, PAM_IGNORE.
fn refresh(pam: &Pam, args: &Args) -> c_int {
    let Ok(user) = pam.user() else {
        return PAM_IGNORE;
    };
    let Some(account) = ffi::account(&user) else {
        return PAM_IGNORE;
    };
    let pending = take_pending(pam, args);
    let Some(target) = session_cache_of(pam).filter(|path| session::is_users_file(path, account.uid)) else {
        if let Some((from, uid, _)) = &pending {
            session::remove_users_file(from, *uid);
        }
        pam.log(
            LOG_NOTICE,
            &format!("ktbroker: no session cache of {user} to refresh (KRB5CCNAME names none of theirs)"),
        );
        return PAM_IGNORE;
    };
    let refreshed = match &pending {
        Some((from, uid, _)) => {
            let done = session::refresh_in_place(from, &target, *uid);
            session::remove_users_file(from, *uid);
            done
        }
        None => match child::run_helper(args, &account, &format!("FILE:{}", target.display()), Secrets::Renewal) {
            HelperOutcome::Exited { code: Some(0), .. } => Ok(()),
            HelperOutcome::Exited { last_line, .. } => Err(format!("renewal failed: {last_line}")),
            HelperOutcome::TimedOut => Err(format!("no renewal within {:?}", args.timeout)),
            HelperOutcome::CannotStart(why) => Err(why),
        },
    };
    match refreshed {
        Ok(()) => {
            let how = if pending.is_some() { "new ticket" } else { "renewed" };
            pam.log(
                LOG_NOTICE,
                &format!("ktbroker: session cache of {user} refreshed ({how})"),
            );
            PAM_SUCCESS
        }
        Err(why) => {
            pam.log(
                LOG_NOTICE,
                &format!("ktbroker: session cache of {user} not refreshed: {why}"),
            );
            PAM_CRED_ERR
        }
    }
}

/// The session's cache: this transaction's, else KRB5CCNAME from the PAM environment, else from
/// the process's own (a screen locker runs inside the session). FILE caches only.
fn session_cache_of(pam: &Pam) -> Option<PathBuf> {
    if let Some(session) = pam.with_data(SESSION, |s: &SessionCache| s.path.clone()) {
        return Some(session);
    }
    let name = pam.getenv("KRB5CCNAME").or_else(|| std::env::var("KRB5CCNAME").ok())?;
    let path = name.strip_prefix("FILE:").unwrap_or(&name);
    (path.starts_with('/') && !path.contains("/../")).then(|| PathBuf::from(path))
}

fn export(pam: &Pam, path: &std::path::Path, failure: c_int) -> c_int {
    match pam.putenv(&format!("KRB5CCNAME=FILE:{}", path.display())) {
        Ok(()) => PAM_SUCCESS,
        Err(_) => failure,
    }
}

fn close_session(pam: &Pam, args: &Args) -> c_int {
    let Some(session) = pam.with_data(SESSION, |s: &SessionCache| s.clone()) else {
        return PAM_IGNORE;
    };
    if args.retain_after_close {
        return PAM_SUCCESS;
    }
    if ffi::euid() == 0 {
        registry::unregister(&args.sessions_dir, session.uid, &session.path);
    }
    if !session::remove_users_file(&session.path, session.uid) {
        pam.log(
            LOG_WARNING,
            &format!("ktbroker: could not remove {}", session.path.display()),
        );
    }
    PAM_SUCCESS
}

/// A user name as it may appear in a log line.
fn short(text: &str) -> String {
    text.chars().take(64).collect()
}
