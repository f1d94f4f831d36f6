//! netdisk: a person's HDFS space from the command line, with no Java on the host.
//!
//! [`login`] makes sure there is a ticket (logging in through the broker, as ktbroker-kinit
//! does, if there is none); [`config`] says where the cluster is; a transport ([`native`])
//! implements [`fs::Filesystem`]; [`commands`] are written once over that trait; [`error`]
//! turns Hadoop's exceptions into one-line messages and exit codes.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod format;
pub mod fs;
pub mod login;
pub mod native;
pub mod paths;
pub mod progress;
pub mod reach;
pub mod webhdfs;

pub use error::{Kind, NetdiskError};
