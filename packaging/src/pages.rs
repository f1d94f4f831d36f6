//! The man pages: one per program and one per subcommand (the program's page lists them as
//! `PROGRAM-SUB(SECTION)`, so each is shipped), the program's page with the sections an admin looks
//! for that clap knows nothing of (for ktbrokerd: FILES, CONFIGURATION, CREDENTIALS, SIGNALS,
//! ENVIRONMENT, EXIT STATUS, SEE ALSO).

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A section of hand-written text: paragraphs, or terms each with their description.
pub struct Section {
    pub title: &'static str,
    pub paragraphs: &'static [&'static str],
    pub items: &'static [(&'static str, &'static str)],
}

/// Writes the page of `command` and of each of its visible subcommands, recursively, into
/// `dir`; `extra` goes into the top page only, before VERSION. Returns the files written.
pub fn write_pages(
    command: &clap::Command,
    section: &str,
    extra: &[Section],
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut command = command.clone().disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    write_tree(&command, section, extra, dir, &mut written)?;
    Ok(written)
}

fn write_tree(
    command: &clap::Command,
    section: &str,
    extra: &[Section],
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let man = Man::new(command.clone()).section(section);
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    render(&man, command, extra, &mut page)?;
    std::fs::write(&path, page)?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub, section, &[], dir, written)?;
    }
    Ok(())
}

/// clap_mangen's sections in its order, with `extra` between the generated ones and VERSION.
fn render(man: &Man, command: &clap::Command, extra: &[Section], out: &mut dyn Write) -> std::io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if command.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    if command.get_after_long_help().is_some() || command.get_after_help().is_some() {
        man.render_extra_section(out)?;
    }
    let mut roff = Roff::default();
    if !extra.is_empty() {
        // No hyphenation in the hand-written sections: they are full of paths and key names.
        roff.control("nh", []);
    }
    for section in extra {
        roff.control("SH", [section.title]);
        for paragraph in section.paragraphs {
            roff.control("PP", []);
            roff.text([roman(*paragraph)]);
        }
        for (term, description) in section.items {
            roff.control("TP", []);
            roff.text([bold(*term)]);
            roff.text([roman(*description)]);
        }
    }
    roff.to_writer(out)?;
    if command.get_version().is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

/// What ktbrokerd(8) says beyond its options.
pub const KTBROKERD: &[Section] = &[
    Section {
        title: "FILES",
        paragraphs: &[],
        items: &[
            (
                "/etc/ktbroker/broker.toml",
                "The configuration (a conffile of ktbroker-broker, root:_ktbroker 0640).",
            ),
            (
                "/usr/lib/systemd/system/ktbrokerd.service",
                "The unit. Local changes go in a drop-in (systemctl edit ktbrokerd), which package upgrades keep.",
            ),
            (
                "/etc/ktbroker/tls.pem",
                "The broker's certificate chain (PEM), readable by _ktbroker; re-read on SIGHUP.",
            ),
            (
                "/etc/ktbroker/tls.key, /etc/ktbroker/ldap-password, /etc/ktbroker/admin.keytab",
                "The secrets, root's and mode 0600: the unit hands them to the service as credentials (see \
                 CREDENTIALS). The admin keytab can extract every user's keys; dpkg --purge leaves it (and the \
                 others), as files the package did not install.",
            ),
            (
                "/etc/ktbroker/ldap-ca.pem",
                "The CA bundle the directory's certificate must chain to (no system roots).",
            ),
            (
                "/var/log/ktbroker/audit.jsonl",
                "The hash-chained audit log ([audit] file; the unit's LogsDirectory=). Kept on purge: it is \
                 evidence. ktbrokerd audit-verify checks it.",
            ),
            (
                "/etc/krb5.conf",
                "The krb5 profile libkrb5 and libkadm5 read, unless [kerberos] krb5_config names another; it must \
                 list every tenant's realm.",
            ),
        ],
    },
    Section {
        title: "CONFIGURATION",
        paragraphs: &[
            "TOML, version = 1: [server] (listen address, certificate, limits), [kerberos], [auth], [audit], \
             [limits], [metrics], [admin] and one [tenants.NAME] table per tenant with its realm, principal \
             template and policy, its [tenants.NAME.directory] and its [tenants.NAME.keys]. Unknown keys are \
             refused; every invalid value is an error naming its key. Every key is described in \
             /usr/share/doc/ktbroker-broker/README.md (\"The broker\"), the deployment in admin-guide.md beside it.",
            "After an edit, as root: ktbrokerd --config /etc/ktbroker/broker.toml check-config --online && \
             systemctl reload ktbrokerd. See ktbrokerd-check-config(8) for what it checks.",
        ],
        items: &[],
    },
    Section {
        title: "CREDENTIALS",
        paragraphs: &[
            "Secrets are never in broker.toml. A path written credential:NAME is the file NAME in \
             $CREDENTIALS_DIRECTORY, where systemd puts what the unit's LoadCredential=NAME:PATH lines load \
             (readable by the service alone, never on its command line or in its environment). The shipped \
             unit loads tls-key from /etc/ktbroker/tls.key, ldap-password from /etc/ktbroker/ldap-password and \
             admin-keytab from /etc/ktbroker/admin.keytab; each must exist or the start fails. Outside the unit, \
             check-config reads the unit's LoadCredential= lines (or --credentials-dir DIR) instead. A secret \
             file that group or others may read is refused.",
        ],
        items: &[],
    },
    Section {
        title: "SIGNALS",
        paragraphs: &[],
        items: &[
            (
                "SIGHUP",
                "Re-read the configuration and the TLS certificate (systemctl reload ktbrokerd; systemd is told \
                 RELOADING=1, then READY=1). A configuration that does not validate is refused as a whole and the \
                 running one keeps serving. Listen addresses, the audit file, the client CA, the concurrency limit, \
                 the connection caps and the krb5 profile need a restart.",
            ),
            (
                "SIGTERM, SIGINT",
                "Stop accepting connections, let requests in flight finish (at most the request timeout and a \
                 short grace), then exit 0.",
            ),
        ],
    },
    Section {
        title: "ENVIRONMENT",
        paragraphs: &[],
        items: &[
            (
                "KTBROKER_LOG",
                "Log filter in tracing's syntax (info, debug, info,ktbroker=debug); the default is info.",
            ),
            (
                "CREDENTIALS_DIRECTORY",
                "Set by systemd: where credential:NAME paths resolve.",
            ),
            (
                "GLIBC_TUNABLES",
                "The unit sets glibc.malloc.perturb so that freed memory is overwritten; without it ktbrokerd \
                 re-executes itself with that setting.",
            ),
        ],
    },
    Section {
        title: "EXIT STATUS",
        paragraphs: &[],
        items: &[
            (
                "0",
                "run: stopped by a signal after draining. check-config: the configuration would work (warnings \
                 allowed). audit-verify: the chain is intact.",
            ),
            (
                "1",
                "run: it could not start (invalid configuration, address in use, unreadable certificate) or \
                 failed. check-config: it would not work; each reason is an error: line on stderr. \
                 audit-verify: the chain is broken; the first broken line is named.",
            ),
            ("2", "A usage error (unknown option or subcommand)."),
        ],
    },
    Section {
        title: "SEE ALSO",
        paragraphs: &[
            "ktbrokerd-run(8), ktbrokerd-check-config(8), ktbrokerd-audit-verify(8), ktbroker-kinit(1), \
             systemd.exec(5) (LoadCredential=), /usr/share/doc/ktbroker-broker/admin-guide.md",
        ],
        items: &[],
    },
];
