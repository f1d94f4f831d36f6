//! What netdisk needs from a cluster, whatever the transport: [`Filesystem`]. Paths given to it
//! are absolute and normal (see [`crate::paths`]); errors come back already classified.

use crate::error::{Kind, NetdiskError, Result};
use crate::progress::Progress;
use serde::Serialize;

/// One file or directory, as `ls` and `stat` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Absolute path.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub length: u64,
    /// Permission bits, e.g. 0o755.
    #[serde(serialize_with = "octal")]
    pub permission: u16,
    pub owner: String,
    pub group: String,
    /// Milliseconds since the epoch.
    pub modified_ms: u64,
    pub accessed_ms: u64,
    /// Files only.
    pub replication: Option<u32>,
    pub block_size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Directory,
}

fn octal<S: serde::Serializer>(mode: &u16, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:o}"))
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Directory
    }
}

/// Sizes under a path (`du`, and the quota half of `df`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub length: u64,
    pub files: u64,
    pub directories: u64,
    /// Bytes used counting replicas.
    pub space_consumed: u64,
    /// Name quota (files + directories), if one is set.
    pub name_quota: Option<u64>,
    /// Space quota in bytes counting replicas, if one is set.
    pub space_quota: Option<u64>,
}

/// The whole cluster's space (`df`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub total: u64,
    pub used: u64,
    pub remaining: u64,
}

/// A quota of -1 (or 0 in some answers) means none.
pub fn quota(value: i64) -> Option<u64> {
    (value > 0).then_some(value as u64)
}

/// One cluster, reached one way. Each call has its own deadline (the transport's timeout).
#[allow(async_fn_in_trait, reason = "used with static dispatch only; no Send bound needed")]
pub trait Filesystem {
    async fn stat(&self, path: &str) -> Result<Entry>;
    /// The entries of a directory (or the file itself), not recursive.
    async fn list(&self, path: &str) -> Result<Vec<Entry>>;
    async fn mkdir(&self, path: &str, parents: bool) -> Result<()>;
    /// Creates `remote` (which must not exist) from the local file, reporting bytes to `progress`.
    async fn upload(&self, local: &mut tokio::fs::File, remote: &str, progress: &Progress) -> Result<()>;
    /// Writes the remote file's bytes to `out`; returns how many.
    async fn download(
        &self,
        remote: &str,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin),
        progress: &Progress,
    ) -> Result<u64>;
    /// Renames; if `to` exists, fails unless `overwrite` (a file replacing a file).
    async fn rename(&self, from: &str, to: &str, overwrite: bool) -> Result<()>;
    async fn delete(&self, path: &str, recursive: bool) -> Result<()>;
    async fn summary(&self, path: &str) -> Result<Summary>;
    async fn chmod(&self, path: &str, mode: u16) -> Result<()>;
    /// The cluster's capacity, if this transport can ask for it.
    async fn capacity(&self) -> Result<Option<Capacity>>;
}

/// Copies a download's chunks to `out`, each chunk due within `timeout`; returns the byte count.
pub async fn copy_chunks(
    mut chunks: impl futures::Stream<Item = Result<bytes::Bytes>> + Unpin,
    out: &mut (dyn tokio::io::AsyncWrite + Unpin),
    progress: &Progress,
    timeout: std::time::Duration,
) -> Result<u64> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let writing = |e: std::io::Error| NetdiskError::new(Kind::Other, format!("writing: {e}"));
    let mut written = 0u64;
    loop {
        let next = tokio::time::timeout(timeout, chunks.next())
            .await
            .map_err(|_| NetdiskError::new(Kind::Unavailable, format!("a DataNode sent nothing for {timeout:?}")))?;
        let Some(chunk) = next else { break };
        let chunk = chunk?;
        out.write_all(&chunk).await.map_err(writing)?;
        written += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
    }
    out.flush().await.map_err(writing)?;
    Ok(written)
}
