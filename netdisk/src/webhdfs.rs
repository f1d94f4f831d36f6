//! The WebHDFS transport: Hadoop's REST API over HTTP(S), authenticated with SPNEGO (a GSSAPI
//! token from the person's ticket, see [`ktbroker_krb5::gss`]). Data moves through DataNodes the
//! NameNode redirects to; a redirect is followed only to a host of the configured cluster, and
//! the Negotiate header goes to the NameNode alone (Hadoop CVE-2020-9492: a client that follows a
//! redirect anywhere hands its credentials to whoever the redirect names).

use crate::error::{Kind, NetdiskError, Result, no_ticket_accepted};
use crate::fs::{Capacity, Entry, EntryKind, Filesystem, Summary, copy_chunks, quota};
use crate::progress::Progress;
use base64::Engine;
use futures::StreamExt;
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Upload chunk size.
const CHUNK: usize = 1 << 20;
/// Debian's bundle of trusted CAs, used when netdisk.toml names no `ca_file`.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct WebHdfs {
    http: reqwest::Client,
    /// `http(s)://namenode:port`, no path.
    base: url::Url,
    ccache: String,
    timeout: Duration,
    allowed_hosts: Vec<String>,
}

impl WebHdfs {
    /// A client for the NameNode at `base`. `cluster_hosts` are the host names (or `*.domain`
    /// patterns) a redirect may lead to; empty means the NameNode's host only.
    pub fn connect(
        base: &url::Url,
        ccache: &str,
        timeout: Duration,
        cluster_hosts: &[String],
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .user_agent(concat!("netdisk/", env!("CARGO_PKG_VERSION")));
        // Always our own rustls configuration (ring, TLS 1.2+): reqwest has no provider of its own
        // here. Plain-http NameNodes need no roots.
        let roots = if base.scheme() == "https" {
            trusted_roots(ca_file)?
        } else {
            rustls::RootCertStore::empty()
        };
        builder = builder.use_preconfigured_tls(tls_config(roots)?);
        let http = builder
            .build()
            .map_err(|e| NetdiskError::new(Kind::Other, format!("HTTP client: {e}")))?;
        let nn_host = base.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed_hosts = if cluster_hosts.is_empty() {
            vec![nn_host]
        } else {
            cluster_hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
        };
        Ok(Self {
            http,
            base: base.clone(),
            ccache: ccache.to_owned(),
            timeout,
            allowed_hosts,
        })
    }

    /// `/webhdfs/v1{path}?op=OP&...` on the NameNode.
    fn url(&self, path: &str, op: &str, params: &[(&str, &str)]) -> url::Url {
        let mut url = self.base.clone();
        // Each segment is percent-encoded by the url crate; `path` is absolute and normal.
        {
            let mut segments = url.path_segments_mut().expect("an http(s) URL has a path");
            segments.clear().push("webhdfs").push("v1");
            for part in path.split('/').filter(|p| !p.is_empty()) {
                segments.push(part);
            }
        }
        url.query_pairs_mut().append_pair("op", op).extend_pairs(params);
        url
    }

    /// A request to the NameNode with a fresh Negotiate token.
    async fn namenode(&self, method: Method, url: url::Url) -> Result<reqwest::Response> {
        let host = self.base.host_str().unwrap_or_default().to_owned();
        let ccache = self.ccache.clone();
        let token = tokio::task::spawn_blocking(move || ktbroker_krb5::gss::negotiate_token(&host, &ccache))
            .await
            .map_err(|e| NetdiskError::new(Kind::Other, format!("GSSAPI task: {e}")))?
            .map_err(|e| no_ticket_accepted(&e.to_string()))?;
        let authorization = format!("Negotiate {}", base64::engine::general_purpose::STANDARD.encode(token));
        let response = self
            .http
            .request(method, url)
            .header(header::AUTHORIZATION, authorization)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(unreachable_error)?;
        check_status(response).await
    }

    /// A NameNode call answering JSON.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        op: &str,
        params: &[(&str, &str)],
    ) -> Result<T> {
        let response = self.namenode(method, self.url(path, op, params)).await?;
        response
            .json()
            .await
            .map_err(|e| NetdiskError::new(Kind::Other, format!("{op}: unreadable answer: {e}")))
    }

    /// The DataNode URL a 307 answer names, if it is a host of this cluster.
    fn redirect_target(&self, response: &reqwest::Response) -> Result<url::Url> {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| NetdiskError::new(Kind::Other, "the NameNode redirected without a Location"))?;
        let target = url::Url::parse(location)
            .map_err(|e| NetdiskError::new(Kind::Other, format!("the NameNode redirected to a bad URL: {e}")))?;
        check_redirect(&self.base, &target, &self.allowed_hosts)?;
        Ok(target)
    }
}

/// A redirect may go to an allowed host only, never from https down to http.
pub fn check_redirect(base: &url::Url, target: &url::Url, allowed_hosts: &[String]) -> Result<()> {
    let host = target.host_str().unwrap_or_default().to_ascii_lowercase();
    let downgrade = base.scheme() == "https" && target.scheme() != "https";
    let scheme_ok = matches!(target.scheme(), "http" | "https") && !downgrade;
    if !scheme_ok || !allowed_hosts.iter().any(|pattern| host_matches(pattern, &host)) {
        return Err(NetdiskError::new(
            Kind::Permission,
            format!(
                "refusing the NameNode's redirect to {}://{host}: not a host of this cluster \
                 (netdisk.toml `cluster_hosts`); nothing was sent there",
                target.scheme()
            ),
        ));
    }
    Ok(())
}

/// `host` equals `pattern`, or `pattern` is `*.domain` and `host` ends in `.domain`.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
        None => pattern == host,
    }
}

fn trusted_roots(ca_file: Option<&std::path::Path>) -> Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let path = ca_file.unwrap_or(std::path::Path::new(SYSTEM_CA_BUNDLE));
    let bad = |e: &dyn std::fmt::Display| NetdiskError::usage(format!("CA file {}: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(certificate.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    Ok(roots)
}

fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| NetdiskError::new(Kind::Other, format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A transport failure, without its URL: a DataNode URL carries the delegation token.
fn unreachable_error(error: reqwest::Error) -> NetdiskError {
    let error = error.without_url();
    let what = if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    NetdiskError::new(Kind::Unavailable, format!("WebHDFS: {what}: {error}"))
}

#[derive(Deserialize)]
struct RemoteExceptionBody {
    #[serde(rename = "RemoteException")]
    remote: RemoteException,
}

#[derive(Deserialize)]
struct RemoteException {
    #[serde(rename = "javaClassName", default)]
    class: String,
    #[serde(default)]
    exception: String,
    #[serde(default)]
    message: String,
}

/// Passes 2xx and 307 answers; turns the rest into classified errors.
async fn check_status(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() || status == StatusCode::TEMPORARY_REDIRECT {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    if let Ok(RemoteExceptionBody { remote }) = serde_json::from_str(&body) {
        let class = if remote.class.is_empty() {
            remote.exception
        } else {
            remote.class
        };
        return Err(NetdiskError::from_java(&class, &remote.message));
    }
    Err(match status {
        StatusCode::UNAUTHORIZED => no_ticket_accepted("HTTP 401 from WebHDFS"),
        StatusCode::FORBIDDEN => NetdiskError::new(Kind::Permission, "HTTP 403 from WebHDFS"),
        StatusCode::NOT_FOUND => NetdiskError::new(Kind::NotFound, "HTTP 404 from WebHDFS"),
        other => NetdiskError::new(Kind::Other, format!("WebHDFS answered {other}")),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileStatus {
    #[serde(default)]
    path_suffix: String,
    #[serde(rename = "type")]
    kind: String,
    length: u64,
    permission: String,
    owner: String,
    group: String,
    modification_time: u64,
    access_time: u64,
    replication: u32,
    block_size: u64,
}

impl FileStatus {
    fn entry(self, path: &str) -> Result<Entry> {
        let kind = if self.kind == "DIRECTORY" {
            EntryKind::Directory
        } else {
            EntryKind::File
        };
        let permission = u16::from_str_radix(&self.permission, 8)
            .map_err(|_| NetdiskError::new(Kind::Other, format!("unreadable permission {:?}", self.permission)))?;
        let path = if self.path_suffix.is_empty() {
            path.to_owned()
        } else {
            crate::paths::join(path, &self.path_suffix)
        };
        let file = kind == EntryKind::File;
        Ok(Entry {
            path,
            kind,
            length: self.length,
            permission,
            owner: self.owner,
            group: self.group,
            modified_ms: self.modification_time,
            accessed_ms: self.access_time,
            replication: file.then_some(self.replication),
            block_size: file.then_some(self.block_size),
        })
    }
}

#[derive(Deserialize)]
struct FileStatusAnswer {
    #[serde(rename = "FileStatus")]
    status: FileStatus,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(rename = "FileStatuses")]
    statuses: ListInner,
}

#[derive(Deserialize)]
struct ListInner {
    #[serde(rename = "FileStatus")]
    list: Vec<FileStatus>,
}

#[derive(Deserialize)]
struct BooleanAnswer {
    boolean: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentSummary {
    directory_count: u64,
    file_count: u64,
    length: u64,
    quota: i64,
    space_consumed: u64,
    space_quota: i64,
}

#[derive(Deserialize)]
struct SummaryAnswer {
    #[serde(rename = "ContentSummary")]
    summary: ContentSummary,
}

#[derive(Deserialize)]
struct JmxAnswer {
    beans: Vec<JmxBean>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JmxBean {
    capacity_total: u64,
    capacity_used: u64,
    capacity_remaining: u64,
}

impl Filesystem for WebHdfs {
    async fn stat(&self, path: &str) -> Result<Entry> {
        let answer: FileStatusAnswer = self.json(Method::GET, path, "GETFILESTATUS", &[]).await?;
        answer.status.entry(path)
    }

    async fn list(&self, path: &str) -> Result<Vec<Entry>> {
        let answer: ListAnswer = self.json(Method::GET, path, "LISTSTATUS", &[]).await?;
        answer.statuses.list.into_iter().map(|s| s.entry(path)).collect()
    }

    async fn mkdir(&self, path: &str, _parents: bool) -> Result<()> {
        // WebHDFS always makes parents; the commands check for them when -p is not given.
        let answer: BooleanAnswer = self.json(Method::PUT, path, "MKDIRS", &[("permission", "755")]).await?;
        answer
            .boolean
            .then_some(())
            .ok_or_else(|| NetdiskError::new(Kind::Other, format!("the NameNode did not create {path}")))
    }

    async fn upload(&self, local: &mut tokio::fs::File, remote: &str, progress: &Progress) -> Result<()> {
        let url = self.url(remote, "CREATE", &[("overwrite", "false"), ("permission", "644")]);
        let answer = self.namenode(Method::PUT, url).await?;
        let target = self.redirect_target(&answer)?;
        let file = local
            .try_clone()
            .await
            .map_err(|e| NetdiskError::new(Kind::Other, format!("reading the local file: {e}")))?;
        let progress = progress.clone();
        let chunks = futures::stream::unfold(file, move |mut file| {
            let progress = progress.clone();
            async move {
                let mut buffer = vec![0u8; CHUNK];
                match file.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buffer.truncate(n);
                        progress.advance(n as u64);
                        Some((Ok(bytes::Bytes::from(buffer)), file))
                    }
                    Err(e) => Some((Err(e), file)),
                }
            }
        });
        // The DataNode gets the delegation token in the URL, never our Negotiate header.
        let response = self
            .http
            .put(target)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .map_err(unreachable_error)?;
        let response = check_status(response).await?;
        if response.status() != StatusCode::CREATED {
            return Err(NetdiskError::new(
                Kind::Other,
                format!("the DataNode answered {} to the upload", response.status()),
            ));
        }
        Ok(())
    }

    async fn download(
        &self,
        remote: &str,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin),
        progress: &Progress,
    ) -> Result<u64> {
        let answer = self.namenode(Method::GET, self.url(remote, "OPEN", &[])).await?;
        let target = self.redirect_target(&answer)?;
        let response = self.http.get(target).send().await.map_err(unreachable_error)?;
        let response = check_status(response).await?;
        let chunks = response.bytes_stream().map(|c| c.map_err(unreachable_error));
        copy_chunks(chunks, out, progress, self.timeout).await
    }

    async fn rename(&self, from: &str, to: &str, overwrite: bool) -> Result<()> {
        // WebHDFS (2.x) has no overwriting rename: delete, then rename. In between the name is
        // briefly absent; the caller still has the data (the upload's temporary file).
        if overwrite {
            self.delete(to, false).await?;
        }
        let answer: BooleanAnswer = self.json(Method::PUT, from, "RENAME", &[("destination", to)]).await?;
        answer.boolean.then_some(()).ok_or_else(|| {
            NetdiskError::new(
                Kind::Conflict,
                format!("the NameNode refused to rename {from} to {to} (does the target exist?)"),
            )
        })
    }

    async fn delete(&self, path: &str, recursive: bool) -> Result<()> {
        let recursive = if recursive { "true" } else { "false" };
        let answer: BooleanAnswer = self
            .json(Method::DELETE, path, "DELETE", &[("recursive", recursive)])
            .await?;
        answer
            .boolean
            .then_some(())
            .ok_or_else(|| NetdiskError::new(Kind::NotFound, format!("no such file or directory: {path}")))
    }

    async fn summary(&self, path: &str) -> Result<Summary> {
        let answer: SummaryAnswer = self.json(Method::GET, path, "GETCONTENTSUMMARY", &[]).await?;
        let s = answer.summary;
        Ok(Summary {
            length: s.length,
            files: s.file_count,
            directories: s.directory_count,
            space_consumed: s.space_consumed,
            name_quota: quota(s.quota),
            space_quota: quota(s.space_quota),
        })
    }

    async fn chmod(&self, path: &str, mode: u16) -> Result<()> {
        let mode = format!("{mode:o}");
        let url = self.url(path, "SETPERMISSION", &[("permission", &mode)]);
        self.namenode(Method::PUT, url).await.map(|_| ())
    }

    async fn capacity(&self) -> Result<Option<Capacity>> {
        let mut url = self.base.clone();
        url.set_path("/jmx");
        url.set_query(Some("qry=Hadoop:service=NameNode,name=FSNamesystemState"));
        let response = self.namenode(Method::GET, url).await?;
        let answer: JmxAnswer = response
            .json()
            .await
            .map_err(|e| NetdiskError::new(Kind::Other, format!("unreadable NameNode metrics: {e}")))?;
        Ok(answer.beans.into_iter().next().map(|b| Capacity {
            total: b.capacity_total,
            used: b.capacity_used,
            remaining: b.capacity_remaining,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn redirects_stay_inside_the_cluster() {
        let base = url("https://nn.example.com:9871");
        let allowed = vec!["nn.example.com".to_owned(), "*.dn.example.com".to_owned()];
        for ok in [
            "https://nn.example.com:9865/webhdfs/v1/x",
            "https://dn7.dn.example.com:9865/x",
            "https://DN7.DN.example.com/x",
        ] {
            assert!(check_redirect(&base, &url(ok), &allowed).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example.net/x",
            "https://dn.example.com.evil.net/x",
            "https://xdn.example.com/x",
            "https://dn.example.com/x",
            "http://dn7.dn.example.com/x",
            "ftp://nn.example.com/x",
        ] {
            let error = check_redirect(&base, &url(bad), &allowed).unwrap_err();
            assert_eq!(error.kind, Kind::Permission, "{bad}");
            assert!(error.message.contains("nothing was sent"), "{}", error.message);
        }
    }

    #[test]
    fn urls_escape_each_path_segment() {
        let fs = WebHdfs::connect(
            &url("http://nn:9870"),
            "FILE:/nonexistent",
            Duration::from_secs(1),
            &[],
            None,
        )
        .unwrap();
        let u = fs.url("/user/alice/a b/c?d#e", "OPEN", &[("offset", "0")]);
        assert_eq!(
            u.as_str(),
            "http://nn:9870/webhdfs/v1/user/alice/a%20b/c%3Fd%23e?op=OPEN&offset=0"
        );
        assert_eq!(fs.allowed_hosts, ["nn"]);
    }

    #[test]
    fn remote_exceptions_are_classified() {
        let body = r#"{"RemoteException":{"exception":"AccessControlException","javaClassName":"org.apache.hadoop.security.AccessControlException","message":"Permission denied: user=alice, access=READ_EXECUTE, inode=\"/user/bob\""}}"#;
        let RemoteExceptionBody { remote } = serde_json::from_str(body).unwrap();
        let error = NetdiskError::from_java(&remote.class, &remote.message);
        assert_eq!(error.kind, Kind::Permission);
    }

    #[test]
    fn file_statuses_become_entries() {
        let json = r#"{"accessTime":1,"blockSize":1048576,"childrenNum":0,"fileId":16390,"group":"supergroup","length":3158073,"modificationTime":2,"owner":"alice","pathSuffix":"big.bin","permission":"644","replication":1,"storagePolicy":0,"type":"FILE"}"#;
        let status: FileStatus = serde_json::from_str(json).unwrap();
        let entry = status.entry("/user/alice").unwrap();
        assert_eq!(entry.path, "/user/alice/big.bin");
        assert_eq!(entry.permission, 0o644);
        assert_eq!(entry.block_size, Some(1 << 20));
    }
}
