//! How entries and sizes print: `ls -l` lines in Hadoop's shape, `stat` blocks, human sizes.

use crate::fs::Entry;

/// `rwxr-x---` from 0o750 (sticky bit as `t`/`T` in the last place, as Hadoop shows it).
pub fn permission_string(mode: u16) -> String {
    let mut text: String = (0..9)
        .map(|i| {
            let bit = 1 << (8 - i);
            if mode & bit == 0 { '-' } else { ['r', 'w', 'x'][i % 3] }
        })
        .collect();
    if mode & 0o1000 != 0 {
        let last = if mode & 0o001 != 0 { "t" } else { "T" };
        text.replace_range(8..9, last);
    }
    text
}

/// Milliseconds since the epoch as local `YYYY-MM-DD HH:MM`.
pub fn time_minutes(ms: u64) -> String {
    local(ms).format("%Y-%m-%d %H:%M").to_string()
}

/// Milliseconds since the epoch as local RFC 3339 with seconds.
pub fn time_full(ms: u64) -> String {
    local(ms).format("%Y-%m-%d %H:%M:%S %z").to_string()
}

fn local(ms: u64) -> chrono::DateTime<chrono::Local> {
    let utc = chrono::DateTime::from_timestamp_millis(ms as i64).unwrap_or_default();
    utc.with_timezone(&chrono::Local)
}

/// Bytes, or with `human` 1024-based units to one decimal (`3.0M`).
pub fn size(bytes: u64, human: bool) -> String {
    if !human || bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64;
    for unit in ["K", "M", "G", "T", "P", "E"] {
        value /= 1024.0;
        if value < 1024.0 {
            return format!("{value:.1}{unit}");
        }
    }
    format!("{value:.1}Z")
}

/// One `ls -l` line, in the shape `hadoop fs -ls` prints.
pub fn long_line(entry: &Entry, human: bool) -> String {
    let kind = if entry.is_dir() { 'd' } else { '-' };
    let replication = entry.replication.map_or("-".to_owned(), |r| r.to_string());
    format!(
        "{kind}{} {replication:>3} {:<10} {:<12} {:>10} {} {}",
        permission_string(entry.permission),
        entry.owner,
        entry.group,
        size(entry.length, human),
        time_minutes(entry.modified_ms),
        entry.path
    )
}

/// The `stat` block.
pub fn stat_block(entry: &Entry) -> String {
    let mut lines = vec![
        format!("path:        {}", entry.path),
        format!("type:        {}", if entry.is_dir() { "directory" } else { "file" }),
        format!("size:        {}", entry.length),
        format!(
            "permission:  {} ({:o})",
            permission_string(entry.permission),
            entry.permission
        ),
        format!("owner:       {}", entry.owner),
        format!("group:       {}", entry.group),
        format!("modified:    {}", time_full(entry.modified_ms)),
    ];
    if !entry.is_dir() {
        lines.push(format!("accessed:    {}", time_full(entry.accessed_ms)));
    }
    if let Some(replication) = entry.replication {
        lines.push(format!("replication: {replication}"));
    }
    if let Some(block_size) = entry.block_size {
        lines.push(format!("block size:  {block_size}"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::EntryKind;

    #[test]
    fn permissions_read_like_ls() {
        assert_eq!(permission_string(0o755), "rwxr-xr-x");
        assert_eq!(permission_string(0o640), "rw-r-----");
        assert_eq!(permission_string(0o1777), "rwxrwxrwt");
        assert_eq!(permission_string(0o1770), "rwxrwx--T");
    }

    #[test]
    fn sizes_in_bytes_or_human_units() {
        assert_eq!(size(3_145_851, false), "3145851");
        assert_eq!(size(1023, true), "1023");
        assert_eq!(size(3 << 20, true), "3.0M");
        assert_eq!(size(1536, true), "1.5K");
    }

    #[test]
    fn long_lines_have_hadoops_columns() {
        let entry = Entry {
            path: "/user/alice/a".into(),
            kind: EntryKind::File,
            length: 42,
            permission: 0o644,
            owner: "alice".into(),
            group: "supergroup".into(),
            modified_ms: 0,
            accessed_ms: 0,
            replication: Some(1),
            block_size: Some(1 << 20),
        };
        let line = long_line(&entry, false);
        assert!(line.starts_with("-rw-r--r--   1 alice      supergroup"), "{line}");
        assert!(line.ends_with(" /user/alice/a"), "{line}");
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["permission"], "644");
        assert_eq!(json["type"], "file");
        assert!(stat_block(&entry).contains("block size:  1048576"));
    }
}
