//! The commands, over any [`Filesystem`]. Paths arrive as the person typed them and are resolved
//! here; what each prints goes to stdout, diagnostics to stderr.

use crate::error::{Kind, NetdiskError, Result};
use crate::format;
use crate::fs::{Entry, Filesystem};
use crate::paths::{self, file_name, join, parent};
use crate::progress::Progress;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Netdisk<F> {
    pub fs: F,
    pub home: String,
    /// No progress bars.
    pub quiet: bool,
}

/// How `ls` prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListStyle {
    pub long: bool,
    pub recursive: bool,
    pub json: bool,
    pub human: bool,
}

fn stdout_error(e: std::io::Error) -> NetdiskError {
    NetdiskError::new(Kind::Other, format!("writing to stdout: {e}"))
}

impl<F: Filesystem> Netdisk<F> {
    fn resolve(&self, path: &str) -> Result<String> {
        paths::resolve(&self.home, path)
    }

    /// The entry at `path`, or None if there is nothing there.
    async fn try_stat(&self, path: &str) -> Result<Option<Entry>> {
        match self.fs.stat(path).await {
            Ok(entry) => Ok(Some(entry)),
            Err(e) if e.kind == Kind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn ls(&self, given: &[String], style: ListStyle, out: &mut impl Write) -> Result<()> {
        let given = if given.is_empty() {
            vec![".".to_owned()]
        } else {
            given.to_vec()
        };
        let mut all = Vec::new();
        for path in &given {
            let path = self.resolve(path)?;
            let top = self.fs.stat(&path).await.map_err(|e| e.context(format!("ls {path}")))?;
            let mut found = Vec::new();
            if top.is_dir() {
                self.collect(&path, style.recursive, &mut found).await?;
            } else {
                found.push(top);
            }
            if !style.json {
                for entry in &found {
                    let line = if style.long {
                        format::long_line(entry, style.human)
                    } else {
                        relative_name(&path, &entry.path)
                    };
                    writeln!(out, "{line}").map_err(stdout_error)?;
                }
            }
            all.extend(found);
        }
        if style.json {
            let text = serde_json::to_string_pretty(&all).map_err(|e| NetdiskError::new(Kind::Other, e.to_string()))?;
            writeln!(out, "{text}").map_err(stdout_error)?;
        }
        Ok(())
    }

    /// The entries under `dir`, depth first when `recursive`.
    async fn collect(&self, dir: &str, recursive: bool, found: &mut Vec<Entry>) -> Result<()> {
        let mut pending = vec![dir.to_owned()];
        while let Some(dir) = pending.pop() {
            let mut entries = self.fs.list(&dir).await.map_err(|e| e.context(format!("ls {dir}")))?;
            entries.sort_by(|a, b| a.path.cmp(&b.path));
            if recursive {
                // Reversed so the stack pops them in name order.
                pending.extend(entries.iter().rev().filter(|e| e.is_dir()).map(|e| e.path.clone()));
            }
            found.extend(entries);
        }
        if recursive {
            found.sort_by(|a, b| a.path.cmp(&b.path));
        }
        Ok(())
    }

    pub async fn stat(&self, given: &[String], json: bool, out: &mut impl Write) -> Result<()> {
        let mut entries = Vec::new();
        for path in given {
            let path = self.resolve(path)?;
            entries.push(
                self.fs
                    .stat(&path)
                    .await
                    .map_err(|e| e.context(format!("stat {path}")))?,
            );
        }
        if json {
            let value = if entries.len() == 1 {
                serde_json::to_string_pretty(&entries[0])
            } else {
                serde_json::to_string_pretty(&entries)
            }
            .map_err(|e| NetdiskError::new(Kind::Other, e.to_string()))?;
            writeln!(out, "{value}").map_err(stdout_error)?;
        } else {
            let blocks: Vec<String> = entries.iter().map(format::stat_block).collect();
            writeln!(out, "{}", blocks.join("\n\n")).map_err(stdout_error)?;
        }
        Ok(())
    }

    pub async fn mkdir(&self, given: &[String], parents: bool) -> Result<()> {
        for path in given {
            let path = self.resolve(path)?;
            let context = |e: NetdiskError| e.context(format!("mkdir {path}"));
            if !parents {
                // HDFS mkdirs succeeds on an existing directory and creates parents regardless of
                // the flag's spirit; check both so `mkdir` without -p behaves like mkdir(1).
                if self.try_stat(&path).await.map_err(context)?.is_some() {
                    return Err(context(NetdiskError::new(Kind::Conflict, "already exists")));
                }
                let dir = parent(&path);
                match self.try_stat(&dir).await.map_err(context)? {
                    None => {
                        return Err(context(NetdiskError::new(
                            Kind::NotFound,
                            format!("no such directory: {dir} (use -p)"),
                        )));
                    }
                    Some(p) if !p.is_dir() => {
                        return Err(context(NetdiskError::new(
                            Kind::Conflict,
                            format!("not a directory: {dir}"),
                        )));
                    }
                    Some(_) => {}
                }
            }
            self.fs.mkdir(&path, parents).await.map_err(context)?;
        }
        Ok(())
    }

    /// Uploads to a hidden temporary name beside the target and renames it into place only when
    /// every byte is written, so an interrupted upload never leaves a partial file under the name.
    /// `local` may be a regular file, a pipe, or `-` for stdin (then `remote` names the file).
    pub async fn put(&self, local: &Path, remote: &str, force: bool) -> Result<String> {
        let from_stdin = local == Path::new("-");
        let source = if from_stdin { Path::new("/dev/stdin") } else { local };
        let mut file = tokio::fs::File::open(source)
            .await
            .map_err(|e| NetdiskError::local(local, &e))?;
        let meta = file.metadata().await.map_err(|e| NetdiskError::local(local, &e))?;
        if meta.is_dir() {
            return Err(NetdiskError::new(
                Kind::Conflict,
                format!("{}: is a directory (netdisk uploads files)", local.display()),
            ));
        }
        let name = if from_stdin {
            None
        } else {
            Some(
                local
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| NetdiskError::usage(format!("{}: the name is not UTF-8", local.display())))?,
            )
        };
        let mut target = self.resolve(remote)?;
        let context = |target: &str, e: NetdiskError| e.context(format!("put {target}"));
        if let Some(existing) = self.try_stat(&target).await.map_err(|e| context(&target, e))?
            && existing.is_dir()
        {
            let name = name.ok_or_else(|| {
                NetdiskError::usage(format!("{target} is a directory; name the file to upload stdin to"))
            })?;
            target = join(&target, name);
        }
        let dir = parent(&target);
        match self.try_stat(&dir).await.map_err(|e| context(&target, e))? {
            Some(d) if d.is_dir() => {}
            Some(_) => {
                return Err(context(
                    &target,
                    NetdiskError::new(Kind::Conflict, format!("not a directory: {dir}")),
                ));
            }
            None => {
                return Err(context(
                    &target,
                    NetdiskError::new(Kind::NotFound, format!("no such directory: {dir}")),
                ));
            }
        }
        let existing = self.try_stat(&target).await.map_err(|e| context(&target, e))?;
        match &existing {
            Some(e) if e.is_dir() => return Err(context(&target, NetdiskError::new(Kind::Conflict, "is a directory"))),
            Some(_) if !force => {
                return Err(context(
                    &target,
                    NetdiskError::new(Kind::Conflict, "already exists (use -f to replace it)"),
                ));
            }
            _ => {}
        }
        let temporary = join(
            &parent(&target),
            &format!(
                ".{}.netdisk-{}-{:08x}.part",
                file_name(&target),
                std::process::id(),
                random_u32()
            ),
        );
        // A pipe has no length: no bar.
        let total = if meta.is_file() { meta.len() } else { 0 };
        let progress = Progress::new(&format!("put {}", file_name(&target)), total, self.quiet);
        let upload = self.fs.upload(&mut file, &temporary, &progress);
        let outcome = until_interrupted(upload).await;
        progress.finish();
        let named = |e: NetdiskError| {
            // Name what the person asked for, not our temporary.
            context(
                &target,
                NetdiskError::new(e.kind, e.message.replace(&temporary, &target)),
            )
        };
        if let Err(e) = outcome {
            self.discard(&temporary).await;
            return Err(named(e));
        }
        let replacing = existing.is_some();
        if let Err(e) = self.fs.rename(&temporary, &target, replacing).await {
            if replacing {
                // The old file may be gone already (WebHDFS has no overwriting rename): keep the
                // complete upload and say where it is.
                return Err(context(
                    &target,
                    e.context(format!("the complete upload is kept as {temporary}")),
                ));
            }
            self.discard(&temporary).await;
            return Err(named(e));
        }
        Ok(target)
    }

    /// Removes a partial upload, if the upload got as far as creating it. Best effort: the name is
    /// hidden, and HDFS recovers the lease of an abandoned file anyway.
    async fn discard(&self, temporary: &str) {
        if let Ok(Some(_)) = self.try_stat(temporary).await
            && let Err(e) = self.fs.delete(temporary, false).await
        {
            tracing::warn!(%temporary, error = %e, "could not remove the partial upload");
        }
    }

    /// Downloads into a temporary file beside the target (mode 0600) and renames it into place.
    pub async fn get(&self, remote: &str, local: &Path, force: bool) -> Result<PathBuf> {
        let remote = self.resolve(remote)?;
        let context = |e: NetdiskError| e.context(format!("get {remote}"));
        let entry = self.fs.stat(&remote).await.map_err(context)?;
        if entry.is_dir() {
            return Err(context(NetdiskError::new(Kind::Conflict, "is a directory")));
        }
        let target = if local.is_dir() {
            local.join(file_name(&remote))
        } else {
            local.to_owned()
        };
        if target.exists() && !force {
            return Err(NetdiskError::new(
                Kind::Conflict,
                format!("{}: already exists (use -f to replace it)", target.display()),
            ));
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let temporary = tempfile::Builder::new()
            .prefix(".netdisk-")
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|e| NetdiskError::local(&dir, &e))?;
        let mut out = tokio::fs::File::from_std(temporary.reopen().map_err(|e| NetdiskError::local(&dir, &e))?);
        let progress = Progress::new(&format!("get {}", file_name(&remote)), entry.length, self.quiet);
        let outcome = until_interrupted(self.fs.download(&remote, &mut out, &progress)).await;
        progress.finish();
        outcome.map_err(context)?;
        out.sync_all().await.map_err(|e| NetdiskError::local(&target, &e))?;
        let persisted = if force {
            temporary.persist(&target)
        } else {
            temporary.persist_noclobber(&target)
        };
        persisted.map_err(|e| NetdiskError::local(&target, &e.error))?;
        Ok(target)
    }

    pub async fn cat(&self, given: &[String]) -> Result<()> {
        let mut stdout = tokio::io::stdout();
        for path in given {
            let path = self.resolve(path)?;
            let context = |e: NetdiskError| e.context(format!("cat {path}"));
            let entry = self.fs.stat(&path).await.map_err(context)?;
            if entry.is_dir() {
                return Err(context(NetdiskError::new(Kind::Conflict, "is a directory")));
            }
            until_interrupted(self.fs.download(&path, &mut stdout, &Progress::hidden()))
                .await
                .map_err(context)?;
        }
        Ok(())
    }

    pub async fn rm(&self, given: &[String], recursive: bool) -> Result<()> {
        for path in given {
            let path = self.resolve(path)?;
            let context = |e: NetdiskError| e.context(format!("rm {path}"));
            if path == "/" || path == self.home {
                return Err(context(NetdiskError::usage(
                    "refusing to remove the root or your home directory",
                )));
            }
            let entry = self.fs.stat(&path).await.map_err(context)?;
            if entry.is_dir() && !recursive {
                return Err(context(NetdiskError::new(Kind::Conflict, "is a directory (use -r)")));
            }
            self.fs.delete(&path, recursive).await.map_err(context)?;
        }
        Ok(())
    }

    pub async fn mv(&self, from: &str, to: &str) -> Result<()> {
        let from = self.resolve(from)?;
        let mut to = self.resolve(to)?;
        let context = |to: &str| format!("mv {from} {to}");
        self.fs.stat(&from).await.map_err(|e| e.context(context(&to)))?;
        if let Some(entry) = self.try_stat(&to).await.map_err(|e| e.context(context(&to)))? {
            if !entry.is_dir() {
                return Err(NetdiskError::new(Kind::Conflict, "the target already exists").context(context(&to)));
            }
            to = join(&to, file_name(&from));
        }
        self.fs
            .rename(&from, &to, false)
            .await
            .map_err(|e| e.context(context(&to)))
    }

    pub async fn du(&self, given: &[String], summarize: bool, human: bool, out: &mut impl Write) -> Result<()> {
        let given = if given.is_empty() {
            vec![".".to_owned()]
        } else {
            given.to_vec()
        };
        for path in &given {
            let path = self.resolve(path)?;
            let context = |e: NetdiskError| e.context(format!("du {path}"));
            let entry = self.fs.stat(&path).await.map_err(context)?;
            let targets = if summarize || !entry.is_dir() {
                vec![entry]
            } else {
                let mut children = self.fs.list(&path).await.map_err(context)?;
                children.sort_by(|a, b| a.path.cmp(&b.path));
                children
            };
            for target in targets {
                let size = if target.is_dir() {
                    self.fs.summary(&target.path).await.map_err(context)?.length
                } else {
                    target.length
                };
                writeln!(out, "{:<12} {}", format::size(size, human), target.path).map_err(stdout_error)?;
            }
        }
        Ok(())
    }

    /// Space for `path` (default: home): its quota if one is set, and the cluster's capacity.
    pub async fn df(&self, path: Option<&str>, human: bool, out: &mut impl Write) -> Result<()> {
        let path = self.resolve(path.unwrap_or("~"))?;
        let context = |e: NetdiskError| e.context(format!("df {path}"));
        let summary = self.fs.summary(&path).await.map_err(context)?;
        let size = |b: u64| format::size(b, human);
        let count = |n: u64| n.to_string();
        let mut lines = vec![df_row(
            "Space",
            ["Size", "Used", "Available"].map(str::to_owned),
            "Use%".into(),
        )];
        lines.push(match summary.space_quota {
            Some(quota) => df_row_of(
                &format!("quota on {path}"),
                quota,
                summary.space_consumed,
                quota.saturating_sub(summary.space_consumed),
                &size,
            ),
            None => df_row(
                &format!("{path} (no quota)"),
                ["-".into(), size(summary.space_consumed), "-".into()],
                "-".into(),
            ),
        });
        if let Some(names) = summary.name_quota {
            let used = summary.files + summary.directories;
            lines.push(df_row_of(
                "name quota (files+dirs)",
                names,
                used,
                names.saturating_sub(used),
                &count,
            ));
        }
        lines.push(match self.fs.capacity().await.map_err(context)? {
            // Used is what HDFS stores; the rest of the disks' use is not ours to count.
            Some(c) => df_row_of("cluster", c.total, c.used, c.remaining, &size),
            None => "cluster capacity: unknown (set `webhdfs` in netdisk.toml to see it)".into(),
        });
        writeln!(out, "{}", lines.join("\n")).map_err(stdout_error)
    }

    pub async fn chmod(&self, mode: &str, given: &[String], recursive: bool) -> Result<()> {
        let mode = parse_mode(mode)?;
        for path in given {
            let path = self.resolve(path)?;
            let context = |e: NetdiskError| e.context(format!("chmod {path}"));
            let entry = self.fs.stat(&path).await.map_err(context)?;
            self.fs.chmod(&path, mode).await.map_err(context)?;
            if recursive && entry.is_dir() {
                let mut below = Vec::new();
                self.collect(&path, true, &mut below).await?;
                for entry in below {
                    self.fs
                        .chmod(&entry.path, mode)
                        .await
                        .map_err(|e| e.context(format!("chmod {}", entry.path)))?;
                }
            }
        }
        Ok(())
    }
}

/// One `df` line: a label, three amounts, a percentage.
fn df_row(label: &str, amounts: [String; 3], percent: String) -> String {
    let [total, used, available] = amounts;
    format!("{label:<28} {total:>12} {used:>12} {available:>12} {percent:>5}")
}

/// A `df` line from numbers, shown with `units`.
fn df_row_of(label: &str, total: u64, used: u64, available: u64, units: &dyn Fn(u64) -> String) -> String {
    let percent = used.saturating_mul(100).checked_div(total).unwrap_or(0);
    df_row(
        label,
        [units(total), units(used), units(available)],
        format!("{percent}%"),
    )
}

/// `entry` as `ls` prints it without -l: relative to the directory listed.
fn relative_name(listed: &str, entry: &str) -> String {
    entry
        .strip_prefix(listed)
        .map(|rest| rest.trim_start_matches('/'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or_else(|| file_name(entry))
        .to_owned()
}

/// An octal mode such as `750` or `1777`.
pub fn parse_mode(text: &str) -> Result<u16> {
    let valid = (3..=4).contains(&text.len()) && text.chars().all(|c| ('0'..='7').contains(&c));
    if !valid {
        return Err(NetdiskError::usage(format!(
            "mode {text:?}: give three or four octal digits, e.g. 750"
        )));
    }
    u16::from_str_radix(text, 8).map_err(|e| NetdiskError::usage(format!("mode {text:?}: {e}")))
}

/// Runs `work` unless SIGINT, SIGTERM or SIGHUP (the ssh session dropped) comes first; the caller
/// then cleans up (a partial upload is removed) instead of dying with the default action.
async fn until_interrupted<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind| signal(kind).map_err(|e| NetdiskError::new(Kind::Other, e.to_string()));
    let (mut term, mut int, mut hup) = (
        listen(SignalKind::terminate())?,
        listen(SignalKind::interrupt())?,
        listen(SignalKind::hangup())?,
    );
    tokio::select! {
        result = work => result,
        _ = term.recv() => Err(NetdiskError::new(Kind::Interrupted, "interrupted (SIGTERM)")),
        _ = int.recv() => Err(NetdiskError::new(Kind::Interrupted, "interrupted (SIGINT)")),
        _ = hup.recv() => Err(NetdiskError::new(Kind::Interrupted, "interrupted (SIGHUP)")),
    }
}

/// A random number for temporary names (from the kernel; no crate needed).
fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    u32::from_ne_bytes(bytes) ^ std::process::id().rotate_left(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_digits() {
        assert_eq!(parse_mode("750").unwrap(), 0o750);
        assert_eq!(parse_mode("1777").unwrap(), 0o1777);
        for bad in ["u+x", "79", "8000", "12345", ""] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn df_rows_line_up_and_show_percentages() {
        let line = df_row_of("cluster", 200, 50, 150, &|n| n.to_string());
        assert_eq!(
            line,
            format!("{:<28} {:>12} {:>12} {:>12} {:>5}", "cluster", 200, 50, 150, "25%")
        );
        assert!(df_row_of("empty", 0, 0, 0, &|n| n.to_string()).ends_with("   0%"));
    }

    #[test]
    fn plain_ls_names_are_relative_to_the_listed_directory() {
        assert_eq!(relative_name("/user/alice", "/user/alice/docs/a"), "docs/a");
        assert_eq!(relative_name("/user/alice/a", "/user/alice/a"), "a");
        assert_eq!(relative_name("/", "/tmp"), "tmp");
    }
}
