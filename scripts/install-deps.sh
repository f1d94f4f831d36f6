#!/usr/bin/env bash
# Installs what ktbroker needs to build, run its sandbox and run its tests on Debian 12:
# MIT Kerberos (KDC, kadmind, client tools, headers), OpenLDAP (slapd, client tools), Samba's AD DC, pamtester.
# Idempotent: does nothing when everything is present. Needs root (or sudo) only to install.
set -euo pipefail

packages=(krb5-kdc krb5-admin-server krb5-user libkrb5-dev slapd ldap-utils pamtester libpam0g-dev pkg-config
  # MIT's translations: the tests run Kerberos in German to prove nothing depends on its English
  krb5-locales
  # the secure-HDFS tests: Java 17, Jersey 1 for WebHDFS, and a venv to fetch the Hadoop jars
  openjdk-17-jre-headless libjersey1-server-java libjersey1-core-java libjersey1-servlet-java libjersey1-json-java
  python3-venv
  # a KCM credential-cache daemon for the KCM ccache tests (MIT ships none)
  heimdal-kcm
  # a real Active Directory for the AD tests: Samba's AD DC (provisioned by the tests, never as a service)
  samba samba-ad-dc samba-ad-provision python3-samba winbind ldb-tools
  # a real DNS server for the SRV discovery tests
  dnsmasq-base
  # libfaketime, to run the client with a skewed clock in the diagnostics tests
  faketime
  # man and groff, to render the generated man pages in the packaging tests
  man-db groff-base
  # a real sshd for the PAM login tests (password and keyboard-interactive), and sshpass to answer it
  openssh-server sshpass
  # the compose demo's checks without a Docker engine (scripts/check-docker.sh)
  shellcheck docker-compose
  # GNU time: bench/memory's peak RSS of each client login
  time
  # lintian: the Debian packages are checked at error and warning level (scripts/test-packages.sh)
  lintian
  # the SSO tests' browser step: a real headless Chromium, driven through ChromeDriver
  chromium chromium-driver)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  # Debian's postinst scripts would start slapd, the KDC and sshd as services (sshd on port 22);
  # the sandbox and the tests run their own. A policy-rc.d that refuses every start keeps them
  # down, and is removed again unless the machine already had one.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found. ktbroker needs Rust >= 1.88 (rustup's stable toolchain)." >&2
  exit 1
fi
