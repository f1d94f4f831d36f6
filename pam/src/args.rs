//! The module's arguments from the PAM service file. Parsing never fails: an unknown argument is
//! reported (and ignored), a malformed value keeps the safe default.

use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_HELPER: &str = "/usr/bin/ktbroker-kinit";
pub const DEFAULT_CCACHE: &str = "FILE:/tmp/krb5cc_%u_XXXXXX";
pub const DEFAULT_SESSIONS_DIR: &str = "/run/ktbroker-sessions";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// client.toml for the helper (`config=`).
    pub config: Option<PathBuf>,
    /// The helper binary (`helper=`).
    pub helper: PathBuf,
    /// krb5.conf for the helper (`krb5_config=`); the host process's KRB5_CONFIG is never passed on.
    pub krb5_config: Option<PathBuf>,
    pub minimum_uid: u32,
    pub ignore_unknown_user: bool,
    pub ignore_root: bool,
    pub debug: bool,
    /// The whole helper run, broker and KDC included (`timeout=` seconds).
    pub timeout: Duration,
    /// Session cache template: `%u` is the uid, a trailing `XXXXXX` becomes random (`ccache=`).
    pub ccache: String,
    /// Where the ticket waits between `auth` and the session (`ccache_dir=`, as pam-krb5's).
    pub ccache_dir: PathBuf,
    /// Where each open session's cache is recorded for the renewal unit (`sessions_dir=`).
    pub sessions_dir: PathBuf,
    pub use_first_pass: bool,
    pub try_first_pass: bool,
    pub retain_after_close: bool,
    pub no_ccache: bool,
    /// Sign in at the tenant's identity provider (`sso`): no password; the address and code are
    /// shown and the module waits up to `sso_wait=` seconds for the person.
    pub sso: bool,
    pub sso_wait: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            config: None,
            helper: PathBuf::from(DEFAULT_HELPER),
            krb5_config: None,
            minimum_uid: 0,
            ignore_unknown_user: false,
            ignore_root: false,
            debug: false,
            timeout: DEFAULT_TIMEOUT,
            ccache: DEFAULT_CCACHE.to_owned(),
            ccache_dir: PathBuf::from("/tmp"),
            sessions_dir: PathBuf::from(DEFAULT_SESSIONS_DIR),
            use_first_pass: false,
            try_first_pass: false,
            retain_after_close: false,
            no_ccache: false,
            sso: false,
            sso_wait: Duration::from_secs(300),
        }
    }
}

/// Parses the arguments; returns them with a list of complaints to log.
pub fn parse<'a>(raw: impl IntoIterator<Item = &'a str>) -> (Args, Vec<String>) {
    let mut args = Args::default();
    let mut complaints = Vec::new();
    for arg in raw {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (arg, None),
        };
        let mut bad = |why: &str| complaints.push(format!("ignoring argument {:?}: {why}", truncate(arg)));
        match (key, value) {
            ("config", Some(v)) if v.starts_with('/') => args.config = Some(PathBuf::from(v)),
            ("helper", Some(v)) if v.starts_with('/') => args.helper = PathBuf::from(v),
            ("krb5_config", Some(v)) if v.starts_with('/') => args.krb5_config = Some(PathBuf::from(v)),
            ("ccache_dir", Some(v)) if v.starts_with('/') && !v.contains("..") => args.ccache_dir = PathBuf::from(v),
            ("sessions_dir", Some(v)) if v.starts_with('/') && !v.contains("..") => {
                args.sessions_dir = PathBuf::from(v);
            }
            ("config" | "helper" | "krb5_config" | "ccache_dir" | "sessions_dir", _) => bad("needs an absolute path"),
            ("minimum_uid", Some(v)) => match v.parse() {
                Ok(uid) => args.minimum_uid = uid,
                Err(_) => bad("not a uid"),
            },
            ("timeout", Some(v)) => match v.parse::<u64>() {
                Ok(secs) if (1..=MAX_TIMEOUT.as_secs()).contains(&secs) => args.timeout = Duration::from_secs(secs),
                _ => bad("not a number of seconds between 1 and 120"),
            },
            ("ccache", Some(v)) if v.starts_with("FILE:/") && !v.contains("..") => args.ccache = v.to_owned(),
            ("ccache", _) => bad("only FILE:/absolute/path templates are supported"),
            ("ignore_unknown_user", None) => args.ignore_unknown_user = true,
            ("ignore_root", None) => args.ignore_root = true,
            ("debug", None) => args.debug = true,
            ("use_first_pass", None) => args.use_first_pass = true,
            ("try_first_pass", None) => args.try_first_pass = true,
            ("retain_after_close", None) => args.retain_after_close = true,
            ("no_ccache", None) => args.no_ccache = true,
            ("sso", None) => args.sso = true,
            ("sso_wait", Some(v)) => match v.parse::<u64>() {
                Ok(secs) if (30..=900).contains(&secs) => args.sso_wait = Duration::from_secs(secs),
                _ => bad("not a number of seconds between 30 and 900"),
            },
            _ => bad("unknown"),
        }
    }
    (args, complaints)
}

/// Arguments end up in logs: keep a hostile one short.
fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Every argument, with a value where it takes one: what pam_ktbroker(8) documents.
pub const EXAMPLES: [&str; 17] = [
    "config=/etc/ktbroker/client.toml",
    "helper=/usr/bin/ktbroker-kinit",
    "krb5_config=/etc/krb5.conf",
    "timeout=15",
    "ccache=FILE:/tmp/krb5cc_%u_XXXXXX",
    "ccache_dir=/tmp",
    "sessions_dir=/run/ktbroker-sessions",
    "minimum_uid=1000",
    "ignore_root",
    "ignore_unknown_user",
    "use_first_pass",
    "try_first_pass",
    "retain_after_close",
    "no_ccache",
    "sso",
    "sso_wait=300",
    "debug",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_argument_is_accepted_and_in_the_man_page() {
        let page = include_str!("../pam_ktbroker.8");
        for example in EXAMPLES {
            let (_, complaints) = parse([example]);
            assert!(complaints.is_empty(), "{example}: {complaints:?}");
            let documented = match example.split_once('=') {
                Some((name, _)) => page.contains(&format!(".BI {name}= ")),
                None => page.contains(&format!(".B {example}\n")),
            };
            assert!(documented, "pam_ktbroker.8 does not describe {example}");
        }
        // And nothing else is accepted: an unknown name is complained about.
        assert_eq!(parse(["krb5_ccname=FILE:/tmp/x"]).1.len(), 1);
    }

    #[test]
    fn known_arguments_are_read() {
        let (args, complaints) = parse([
            "config=/etc/ktbroker/client.toml",
            "minimum_uid=1000",
            "timeout=5",
            "ccache=FILE:/run/user/%u/krb5cc_XXXXXX",
            "use_first_pass",
            "retain_after_close",
            "debug",
        ]);
        assert!(complaints.is_empty(), "{complaints:?}");
        assert_eq!(
            args.config.as_deref(),
            Some(std::path::Path::new("/etc/ktbroker/client.toml"))
        );
        assert_eq!(args.minimum_uid, 1000);
        assert_eq!(args.timeout, Duration::from_secs(5));
        assert!(args.use_first_pass && args.retain_after_close && args.debug);
    }

    #[test]
    fn garbage_keeps_safe_defaults_and_is_reported() {
        let huge = "x".repeat(1 << 20);
        let (args, complaints) = parse([
            "timeout=0",
            "timeout=-3",
            "timeout=99999999999999999999",
            "minimum_uid=abc",
            "helper=relative/path",
            "ccache=KEYRING:persistent",
            "ccache=FILE:/tmp/../etc/x",
            "frobnicate",
            "debug=yes",
            "",
            "=",
            huge.as_str(),
        ]);
        assert_eq!(args, Args::default());
        assert_eq!(complaints.len(), 12);
        assert!(complaints.iter().all(|c| c.len() < 200), "complaints stay short");
    }
}

#[cfg(test)]
mod profile_tests {
    /// The pam-auth-update profile (installed as /usr/share/pam-configs/ktbroker) uses only
    /// arguments this module understands, and has the fields pam-auth-update reads.
    #[test]
    fn the_pam_auth_update_profile_is_well_formed() {
        let profile = include_str!("../pam-configs/ktbroker");
        for field in [
            "Name:",
            "Default: no",
            "Priority:",
            "Auth-Type: Primary",
            "Auth:",
            "Auth-Initial:",
            "Session:",
        ] {
            assert!(profile.lines().any(|l| l.starts_with(field)), "missing {field}");
        }
        let module_lines: Vec<&str> = profile.lines().filter(|l| l.contains("pam_ktbroker.so")).collect();
        assert_eq!(module_lines.len(), 4);
        for line in module_lines {
            assert!(line.starts_with('\t'), "module lines are indented: {line:?}");
            let args = line.split_once("pam_ktbroker.so").unwrap().1.split_whitespace();
            let (_, complaints) = super::parse(args);
            assert!(complaints.is_empty(), "{line}: {complaints:?}");
        }
    }
}
