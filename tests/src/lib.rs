//! The test harness and sandbox: real MIT Kerberos, real OpenLDAP slapd and a real ktbrokerd,
//! each started in a temporary directory on loopback ports chosen at run time (the k5test way).
//! Children are isolated only through their environment (KRB5_CONFIG, KRB5_KDC_PROFILE,
//! KRB5CCNAME, ...); nothing under /etc is touched. README command 1 (the sandbox) and the
//! end-to-end tests use this same code.

pub mod accounts;
pub mod active_directory;
pub mod bench;
pub mod bins;
pub mod broker;
pub mod client;
pub mod cluster;
pub mod daemon;
pub mod directory;
pub mod dns;
pub mod hdfs;
pub mod idp;
pub mod memscan;
pub mod pam_stack;
pub mod pki;
pub mod proxy;
pub mod realm;
pub mod sandbox;
pub mod shared;
pub mod sshd;
pub mod standin;
pub mod templates;
pub mod user_manager;

pub use sandbox::{DemoUser, Sandbox, start_sandbox};
