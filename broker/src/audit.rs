//! The audit trail: one record per authentication attempt, written as a tracing event (target
//! `ktbroker::audit`) and, when `[audit] file` is configured, as one JSON line in an append-only
//! file. Each JSON line carries in `prev` the SHA-256 of the line before it, so editing, deleting
//! or reordering lines breaks the chain; `ktbrokerd audit-verify FILE` finds the first broken line.
//!
//! A record holds who, from where, what, the outcome and timings; never a password or key.
//!
//! The chain detects changes by anyone who cannot also rewrite every later line (it is not a
//! signature), and a rotated file starts from the last hash of the previous one: `audit-verify`
//! prints that anchor so files can be joined.

use serde::Serialize;
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How an attempt ended, as the audit records it (the caller may see less).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    InvalidUsername,
    PrincipalNotAllowed,
    EmptyPassword,
    PasswordTooLong,
    InvalidCredentials,
    UnknownUser,
    NotInGroup,
    /// The identity provider's ID token did not verify (signature, issuer, audience, expiry, replay).
    TokenRejected,
    /// The identity provider authenticated the person without the required `acr`/`amr`.
    AuthContextInsufficient,
    /// The person refused the sign-in at the identity provider.
    SsoDenied,
    /// Nobody signed in at the identity provider before the wait ended.
    SsoExpired,
    /// LoginWithProvider for a tenant that offers no sign-in at a provider.
    SsoNotOffered,
    /// FetchKeytab for a tenant whose people sign in only at its provider.
    PasswordLoginNotOffered,
    DirectoryUnavailable,
    NoPrincipal,
    KeySourceFailed,
    UserLocked,
    SourceLocked,
    NoUsableEnctype,
    /// The directory's password policy (ppolicy) reports the account locked.
    AccountLocked,
    /// The directory disabled the account (AD `userAccountControl`, bind data 533).
    AccountDisabled,
    /// The account itself is past its expiry date (AD `accountExpires`, bind data 701).
    AccountExpired,
    /// Not at this hour or from this workstation (AD logon hours or workstations, data 530/531).
    LogonRestricted,
    /// The right password, reset by an administrator: the directory wants it changed first.
    PasswordMustChange,
    /// The right password, expired (or on a grace login).
    PasswordExpired,
    /// The password had to change: the directory took the new one and the login went on with it.
    PasswordChanged,
    /// The directory refused the new password (its policy).
    NewPasswordRejected,
    /// The password must change, but the directory gives the broker no way to change it.
    PasswordChangeElsewhere,
    UnknownTenant,
    HostNotAllowed,
    /// The delivery asked for (keytab or ticket) is not one the tenant allows.
    DeliveryNotAllowed,
    Busy,
    DeadlineExceeded,
    /// A missing principal was created (first-login provisioning) and then served.
    Provisioned,
    ProvisionFailed,
    /// The caller hung up before the request reached a verdict (nothing was decided or sent).
    Abandoned,
    /// Admin RPC: a key was randomized.
    Rotated,
    /// A summary: this many RotateKey calls without an admin certificate were refused in the last
    /// window beyond those audited one by one (see `suppressed`).
    NotAdminSuppressed,
    RotateRefused,
    RotateFailed,
}

impl Outcome {
    /// The detailed reason, for the audit only.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::InvalidUsername => "invalid_username",
            Self::PrincipalNotAllowed => "principal_not_allowed",
            Self::EmptyPassword => "empty_password",
            Self::PasswordTooLong => "password_too_long",
            Self::InvalidCredentials => "invalid_credentials",
            Self::UnknownUser => "unknown_user",
            Self::NotInGroup => "not_in_group",
            Self::TokenRejected => "token_rejected",
            Self::AuthContextInsufficient => "auth_context_insufficient",
            Self::SsoDenied => "sso_denied",
            Self::SsoExpired => "sso_expired",
            Self::SsoNotOffered => "sso_not_offered",
            Self::PasswordLoginNotOffered => "password_login_not_offered",
            Self::DirectoryUnavailable => "directory_unavailable",
            Self::NoPrincipal => "no_principal",
            Self::KeySourceFailed => "key_source_failed",
            Self::UserLocked => "user_locked",
            Self::SourceLocked => "source_locked",
            Self::NoUsableEnctype => "no_usable_enctype",
            Self::AccountLocked => "account_locked",
            Self::AccountDisabled => "account_disabled",
            Self::AccountExpired => "account_expired",
            Self::LogonRestricted => "logon_restricted",
            Self::PasswordMustChange => "password_must_change",
            Self::PasswordExpired => "password_expired",
            Self::PasswordChanged => "password_changed",
            Self::NewPasswordRejected => "new_password_rejected",
            Self::PasswordChangeElsewhere => "password_change_elsewhere",
            Self::UnknownTenant => "unknown_tenant",
            Self::HostNotAllowed => "host_not_allowed",
            Self::DeliveryNotAllowed => "delivery_not_allowed",
            Self::Busy => "busy",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Provisioned => "provisioned",
            Self::Abandoned => "abandoned",
            Self::ProvisionFailed => "provision_failed",
            Self::Rotated => "rotated",
            Self::NotAdminSuppressed => "not_admin_suppressed",
            Self::RotateRefused => "rotate_refused",
            Self::RotateFailed => "rotate_failed",
        }
    }

    /// Granted, refused (the caller was told no) or error (something on our side failed).
    pub fn class(self) -> OutcomeClass {
        match self {
            Self::Granted | Self::Provisioned | Self::Rotated | Self::PasswordChanged => OutcomeClass::Granted,
            Self::DirectoryUnavailable
            | Self::KeySourceFailed
            | Self::Busy
            | Self::DeadlineExceeded
            | Self::ProvisionFailed
            | Self::RotateFailed => OutcomeClass::Error,
            _ => OutcomeClass::Refused,
        }
    }
}

/// The three kinds of outcome, as the audit's `outcome` field and the metrics' label name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeClass {
    Granted,
    Refused,
    Error,
}

impl OutcomeClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }
}

/// One authentication attempt.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub request_id: u64,
    /// The tenant the request was for (`-` when it named none that exists).
    pub tenant: &'a str,
    pub peer: Option<SocketAddr>,
    /// Subject of the verified client certificate, when the client presented one.
    pub client_cert: Option<&'a str>,
    pub username: &'a str,
    pub principal: Option<&'a str>,
    pub outcome: Outcome,
    pub kvno: Option<u32>,
    /// FetchKeytab: what was asked for and, when granted, delivered (`keytab` or `ticket`).
    pub delivery: Option<&'static str>,
    /// FetchKeytab: which kind of identity source checked the person (`directory`, `oidc`).
    pub identity: Option<&'static str>,
    pub latency: Duration,
    /// The caller hung up before it got the answer (the outcome is still the real one).
    pub cancelled: bool,
    /// For a summary line: how many refusals it stands for.
    pub suppressed: u64,
}

/// The JSON line. Field order is fixed by the struct, so lines are reproducible.
#[derive(Serialize)]
struct AuditLine<'a> {
    time: String,
    request_id: u64,
    tenant: &'a str,
    username: std::borrow::Cow<'a, str>,
    principal: Option<std::borrow::Cow<'a, str>>,
    peer: Option<String>,
    client_cert: Option<&'a str>,
    outcome: &'static str,
    reason: &'static str,
    kvno: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<&'static str>,
    latency_ms: f64,
    cancelled: bool,
    #[serde(skip_serializing_if = "is_zero")]
    suppressed: u64,
    prev: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Records attempts to tracing and, if configured, to the hash-chained file.
pub struct Auditor {
    file: Option<Mutex<ChainedFile>>,
}

impl Auditor {
    /// Audit to tracing only.
    pub fn tracing_only() -> Self {
        Self { file: None }
    }

    /// Audit to tracing and to `path` (created 0600 if missing; an existing chain is continued).
    pub fn with_file(path: &Path) -> io::Result<Self> {
        Self::with_keyed_file(path, None)
    }

    /// As [`Auditor::with_file`], and with `key` every line also carries `mac`, an HMAC-SHA256
    /// of the line: a chain recomputed after an edit then fails `audit-verify --key`.
    pub fn with_keyed_file(path: &Path, key: Option<&[u8]>) -> io::Result<Self> {
        let mut file = ChainedFile::open(path)?;
        file.key = key.map(|k| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k));
        Ok(Self {
            file: Some(Mutex::new(file)),
        })
    }

    /// Logs the chain's head (the SHA-256 of the last line), a copy of it outside the file for
    /// `audit-verify --expect-head`. The broker logs it every [`HEAD_EVERY`] records and at stop.
    pub fn log_head(&self) {
        let Some(file) = &self.file else { return };
        let file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tracing::info!(target: "ktbroker::audit", head = %hex(&file.prev), written = file.written,
            "audit chain head");
    }

    /// Records one attempt. `Err` only when the file write failed: the caller must then not hand
    /// out a keytab (a grant that cannot be audited does not happen).
    pub fn record(&self, attempt: &Attempt) -> io::Result<()> {
        let peer = attempt.peer.map(|p| p.to_string());
        let latency_ms = (attempt.latency.as_secs_f64() * 10_000.0).round() / 10.0;
        let request_id = attempt.request_id;
        let peer_text = peer.as_deref().unwrap_or("-");
        // What the caller sent is capped: a hostile request must not make each line kilobytes long.
        let username = capped(attempt.username);
        let principal_sent = attempt.principal.map(capped);
        let principal = principal_sent.as_deref().unwrap_or("-");
        let tenant = attempt.tenant;
        let client_cert = attempt.client_cert.unwrap_or("-");
        if attempt.outcome.class() == OutcomeClass::Granted {
            tracing::info!(target: "ktbroker::audit", request_id, tenant, peer = peer_text, client_cert,
                username = ?username, principal, outcome = attempt.outcome.as_str(), delivery = attempt.delivery.unwrap_or("-"), latency_ms, cancelled = attempt.cancelled, "audit record");
        } else {
            tracing::warn!(target: "ktbroker::audit", request_id, tenant, peer = peer_text, client_cert,
                username = ?username, principal, outcome = attempt.outcome.as_str(), delivery = attempt.delivery.unwrap_or("-"), latency_ms, cancelled = attempt.cancelled, "audit record");
        }
        let Some(file) = &self.file else { return Ok(()) };
        let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let line = AuditLine {
            time: rfc3339(SystemTime::now()),
            request_id,
            tenant: attempt.tenant,
            username,
            principal: principal_sent,
            peer,
            client_cert: attempt.client_cert,
            outcome: attempt.outcome.class().as_str(),
            reason: attempt.outcome.as_str(),
            kvno: attempt.kvno,
            delivery: attempt.delivery,
            identity: attempt.identity,
            latency_ms,
            cancelled: attempt.cancelled,
            suppressed: attempt.suppressed,
            prev: hex(&file.prev),
        };
        let mut text = serde_json::to_string(&line).map_err(io::Error::other)?;
        if let Some(key) = &file.key {
            // The last field, so that a verifier strips exactly it to recompute it.
            let mac = hex(ring::hmac::sign(key, text.as_bytes()).as_ref());
            text.pop(); // the closing brace
            text.push_str(&format!(",\"mac\":\"{mac}\"}}"));
        }
        file.append(&text).inspect_err(|e| {
            crate::metrics::audit_write_failed();
            tracing::error!(error = %e, "cannot write the audit file: grants are refused until it can be written");
        })?;
        if file.written % HEAD_EVERY == 0 {
            tracing::info!(target: "ktbroker::audit", head = %hex(&file.prev), written = file.written,
                "audit chain head");
        }
        Ok(())
    }
}

/// How many records between two `audit chain head` log lines.
pub const HEAD_EVERY: u64 = 100;

/// The audit file and the hash of its last line.
struct ChainedFile {
    file: File,
    prev: [u8; 32],
    key: Option<ring::hmac::Key>,
    /// Lines written since the broker started.
    written: u64,
}

impl ChainedFile {
    fn open(path: &Path) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let prev = match last_line(&mut file)? {
            Some(line) => sha256(line.as_bytes()),
            None => [0; 32],
        };
        Ok(Self {
            file,
            prev,
            key: None,
            written: 0,
        })
    }

    /// Appends one line whole or not at all: a write cut short (a full disk) is cut back off, so
    /// the chain stays intact and the next append, once there is room, continues it.
    fn append(&mut self, line: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let before = self.file.metadata()?.len();
        if let Err(e) = self.file.write_all(&bytes).and_then(|()| self.file.flush()) {
            let _ = self.file.set_len(before);
            return Err(e);
        }
        self.prev = sha256(line.as_bytes());
        self.written += 1;
        Ok(())
    }
}

/// The last complete line of a file (audit lines are far shorter than the 64 KiB read).
fn last_line(file: &mut File) -> io::Result<Option<String>> {
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)?;
    Ok(tail.lines().rfind(|l| !l.is_empty()).map(str::to_owned))
}

/// Why a chain did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("line {line}: not an audit record ({why})")]
    NotARecord { line: usize, why: String },
    #[error("line {line}: prev does not match the SHA-256 of line {previous} (edited, removed or reordered)")]
    Broken { line: usize, previous: usize },
    #[error("cannot read the audit file: {0}")]
    Io(String),
    #[error("line {line}: its mac does not match (edited, or the chain recomputed without the key)")]
    BadMac { line: usize },
    #[error("line {line}: no mac, but a key was given")]
    NoMac { line: usize },
    #[error("no line has the expected head {head} (lines cut off the end, or the last ones edited)")]
    HeadNotFound { head: String },
    #[error("the chain starts from {found}, not from the expected anchor {expected} (lines cut off the start)")]
    AnchorMismatch { found: String, expected: String },
}

/// What `audit-verify` checks beyond the chain itself.
#[derive(Default)]
pub struct VerifyOptions {
    /// The HMAC key the broker wrote with (`[audit] key_file`).
    pub key: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// Heads logged by the broker (`audit chain head`): each must be the hash of some line.
    pub expect_heads: Vec<String>,
    /// The anchor the file must start from: zeros for the first file of a chain.
    pub expect_anchor: Option<String>,
}

/// What a verified file holds.
#[derive(Debug, PartialEq, Eq)]
pub struct ChainSummary {
    pub lines: usize,
    /// `prev` of the first line: zeros for a file that starts the chain, else the last hash of
    /// the file before it (rotation).
    pub anchor: String,
    /// SHA-256 of the last line, the anchor the next file must start from.
    pub head: String,
}

/// Checks every line's `prev` against the SHA-256 of the line before it.
pub fn verify_chain(reader: impl BufRead) -> Result<ChainSummary, ChainError> {
    verify_chain_with(reader, &VerifyOptions::default())
}

/// [`verify_chain`], and the mac of every line, the expected heads and the expected anchor.
pub fn verify_chain_with(reader: impl BufRead, options: &VerifyOptions) -> Result<ChainSummary, ChainError> {
    let key = options
        .key
        .as_ref()
        .map(|k| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k));
    let mut unseen: Vec<&String> = options.expect_heads.iter().collect();
    let mut expected: Option<[u8; 32]> = None;
    let mut anchor = String::new();
    let mut lines = 0;
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| ChainError::Io(e.to_string()))?;
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| ChainError::NotARecord {
            line: number,
            why: e.to_string(),
        })?;
        let prev = value
            .get("prev")
            .and_then(|p| p.as_str())
            .ok_or_else(|| ChainError::NotARecord {
                line: number,
                why: "no prev field".into(),
            })?;
        match expected {
            None => anchor = prev.to_owned(),
            Some(hash) if prev == hex(&hash) => {}
            Some(_) => {
                return Err(ChainError::Broken {
                    line: number,
                    previous: number - 1,
                });
            }
        }
        if let Some(key) = &key {
            check_mac(key, &line, number)?;
        }
        let hash = sha256(line.as_bytes());
        let hash_hex = hex(&hash);
        unseen.retain(|head| **head != hash_hex);
        expected = Some(hash);
        lines = number;
    }
    if let Some(head) = unseen.first() {
        return Err(ChainError::HeadNotFound { head: (*head).clone() });
    }
    if let Some(want) = &options.expect_anchor
        && *want != anchor
    {
        return Err(ChainError::AnchorMismatch {
            found: anchor,
            expected: want.clone(),
        });
    }
    Ok(ChainSummary {
        lines,
        anchor,
        head: expected.map(|h| hex(&h)).unwrap_or_else(|| hex(&[0; 32])),
    })
}

/// A keyed line ends in `,"mac":"<64 hex>"}`; the mac is over the line without that field.
fn check_mac(key: &ring::hmac::Key, line: &str, number: usize) -> Result<(), ChainError> {
    const SUFFIX_LEN: usize = ",\"mac\":\"\"}".len() + 64;
    let split = line
        .len()
        .checked_sub(SUFFIX_LEN)
        .filter(|at| line.is_char_boundary(*at));
    let Some((body, suffix)) = split.map(|at| line.split_at(at)) else {
        return Err(ChainError::NoMac { line: number });
    };
    let Some(mac) = suffix.strip_prefix(",\"mac\":\"").and_then(|m| m.strip_suffix("\"}")) else {
        return Err(ChainError::NoMac { line: number });
    };
    let unsigned = format!("{body}}}");
    let mac = (0..mac.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(mac.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| ChainError::BadMac { line: number })?;
    ring::hmac::verify(key, unsigned.as_bytes(), &mac).map_err(|_| ChainError::BadMac { line: number })
}

/// Longest value the caller sent that an audit line holds as it is.
const MAX_AUDITED_FIELD: usize = 256;

/// `text`, or its first bytes with its length and SHA-256 prefix when it is longer than
/// [`MAX_AUDITED_FIELD`] (still telling one long value from another).
fn capped(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_AUDITED_FIELD {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut cut = 128;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = hex(&sha256(text.as_bytes()));
    std::borrow::Cow::Owned(format!(
        "{}...({} bytes, sha256 {})",
        &text[..cut],
        text.len(),
        &digest[..16]
    ))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2026-11-22T12:00:00.123Z` (UTC, milliseconds).
pub fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
