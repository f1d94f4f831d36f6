//! ktbrokerd: checks a person's directory password and streams back their own Kerberos keytab.
//!
//! The request path, one module a step:
//! [`policy`] (which principal may this user get) → [`directory`] (is the password right, is the
//! user in the group) → [`keysource`] (read the keys from the KDC without changing them) →
//! [`service`] (stream them back, then wipe). [`audit`] records every attempt.

pub mod audit;
pub mod check;
pub mod cli;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod directory;
pub mod hosts;
pub mod identity;
// The one FFI module of the broker (libkadm5); `unsafe` is denied everywhere else.
#[allow(unsafe_code)]
pub mod kadm5;
pub mod keysource;
pub mod limits;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod refusal;
pub mod server;
pub mod service;
pub mod systemd;
pub mod tls;
