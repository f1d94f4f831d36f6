//! Remote paths: relative ones resolve against the person's home, `~` is the home, and `.` and
//! `..` are folded so what reaches the cluster is always an absolute, normal path.

use crate::error::{NetdiskError, Result};

/// The person's home directory from a template such as `/user/{user}`.
pub fn home(template: &str, user: &str) -> Result<String> {
    if user.is_empty() || user.contains('/') {
        return Err(NetdiskError::usage(format!(
            "cannot make a home directory for user {user:?}"
        )));
    }
    let home = template.replace("{user}", user);
    if !home.starts_with('/') {
        return Err(NetdiskError::usage(format!("home {home:?} is not an absolute path")));
    }
    Ok(normalize(&home))
}

/// `path` as an absolute, normal path: relative to `home`, `~` and `~/x` under it.
pub fn resolve(home: &str, path: &str) -> Result<String> {
    if path.is_empty() {
        return Err(NetdiskError::usage("empty path"));
    }
    if path.contains('\0') {
        return Err(NetdiskError::usage("a path may not contain NUL"));
    }
    let joined = if path == "~" {
        home.to_owned()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("{home}/{rest}")
    } else if path.starts_with('/') {
        path.to_owned()
    } else if path.starts_with("hdfs://") || path.starts_with("webhdfs://") || path.starts_with("swebhdfs://") {
        return Err(NetdiskError::usage(format!(
            "{path}: give a path, not a URL (the cluster comes from the configuration)"
        )));
    } else {
        format!("{home}/{path}")
    };
    Ok(normalize(&joined))
}

/// Folds `.`, `..` and repeated slashes; `..` at the root stays at the root.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The last component of a path ("" for the root).
pub fn file_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// The directory holding `path` (the root for the root).
pub fn parent(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_owned(),
        Some((dir, _)) => dir.to_owned(),
    }
}

/// `dir/name` without doubling the slash at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_under_home() {
        let home = home("/user/{user}", "alice").unwrap();
        assert_eq!(home, "/user/alice");
        for (given, expected) in [
            ("docs/a.txt", "/user/alice/docs/a.txt"),
            (".", "/user/alice"),
            ("~", "/user/alice"),
            ("~/x", "/user/alice/x"),
            ("/tmp//x/./y/", "/tmp/x/y"),
            ("../bob", "/user/bob"),
            ("../../../..", "/"),
            ("/", "/"),
        ] {
            assert_eq!(resolve(&home, given).unwrap(), expected, "{given}");
        }
        assert!(resolve(&home, "").is_err());
        assert!(resolve(&home, "hdfs://nn:8020/x").is_err());
        assert!(resolve(&home, "a\0b").is_err());
    }

    #[test]
    fn homes_come_from_the_template() {
        assert_eq!(home("/tenants/corp/{user}/", "bob").unwrap(), "/tenants/corp/bob");
        assert!(home("user/{user}", "bob").is_err());
        assert!(home("/user/{user}", "a/b").is_err());
        assert!(home("/user/{user}", "").is_err());
    }

    #[test]
    fn names_and_parents() {
        assert_eq!(file_name("/user/alice/a.txt"), "a.txt");
        assert_eq!(file_name("/"), "");
        assert_eq!(parent("/user/alice/a.txt"), "/user/alice");
        assert_eq!(parent("/user"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/user", "x"), "/user/x");
    }
}
