//! The PAM module's argument parser (the words after the module in a PAM service file): never
//! fails, keeps the safe default for anything malformed, and reports every word it did not use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_ktbroker::args::{MAX_TIMEOUT, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let words: Vec<&str> = text.split(['\0', ' ']).collect();
    let (args, complaints) = parse(words.iter().copied());
    assert!(!args.timeout.is_zero() && args.timeout <= MAX_TIMEOUT);
    for path in [
        Some(&args.helper),
        args.config.as_ref(),
        args.krb5_config.as_ref(),
        Some(&args.ccache_dir),
    ]
    .into_iter()
    .flatten()
    {
        assert!(path.is_absolute(), "{path:?}");
    }
    assert!(args.ccache.starts_with("FILE:/") && !args.ccache.contains(".."));
    assert!(!args.ccache_dir.to_string_lossy().contains(".."));
    assert!(complaints.len() <= words.len());
    // A complaint quotes at most 64 characters of its word (escaped for the log).
    assert!(complaints.iter().all(|c| c.len() <= 1024), "{complaints:?}");
});
