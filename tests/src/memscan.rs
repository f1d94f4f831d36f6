//! Counts the copies of given byte strings in another process's memory, through
//! `/proc/PID/maps` and `/proc/PID/mem` (root, or the same user with ptrace access): how many
//! copies of a password or key a process keeps after using it.

use std::io::{BufRead, Read, Seek, SeekFrom};

/// For each needle, how many times it occurs in the process's readable private memory (heap,
/// stacks, anonymous mappings, writable data). Mapped files and the kernel's pages are skipped.
pub fn count_copies(pid: u32, needles: &[&[u8]]) -> std::io::Result<Vec<usize>> {
    let maps = std::io::BufReader::new(std::fs::File::open(format!("/proc/{pid}/maps"))?);
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut counts = vec![0; needles.len()];
    for line in maps.lines() {
        let line = line?;
        let Some((start, end, readable)) = private_memory(&line) else {
            continue;
        };
        if !readable {
            continue;
        }
        let mut region = vec![0u8; end - start];
        if mem.seek(SeekFrom::Start(start as u64)).is_err() || mem.read_exact(&mut region).is_err() {
            continue; // unmapped meanwhile, or a guard page
        }
        for (count, needle) in counts.iter_mut().zip(needles) {
            *count += occurrences(&region, needle);
        }
    }
    Ok(counts)
}

/// `(start, end, readable)` of a maps line for anonymous or writable private memory.
fn private_memory(line: &str) -> Option<(usize, usize, bool)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let (_offset, _device, _inode) = (fields.next()?, fields.next()?, fields.next()?);
    let path = fields.next().unwrap_or("");
    if matches!(path, "[vvar]" | "[vsyscall]" | "[vdso]" | "[vvar_vclock]") {
        return None;
    }
    // File-backed and not writable: the binary's and libraries' code and constants.
    if path.starts_with('/') && !perms.contains('w') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    Some((start, end, perms.starts_with('r')))
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_every_copy_in_this_process() {
        let needle = b"memscan-needle-6f1c2a".to_vec();
        let copies: Vec<Vec<u8>> = (0..3).map(|_| needle.clone()).collect();
        let counts = super::count_copies(std::process::id(), &[&needle]).unwrap();
        // The three copies and the original (the literal in the binary is file-backed, skipped);
        // the scan's own buffer may hold one more.
        assert!(counts[0] >= 4, "{counts:?}");
        drop(copies);
    }
}
