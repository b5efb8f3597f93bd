#!/usr/bin/env bash
# Builds the Debian package of Sluice with dpkg-deb from a binary already
# built (no compilation here):
#
#   cargo build --release --locked --bin sluice
#   packaging/build-deb.sh target/release/sluice target/debian
#
# The package installs
#   /usr/bin/sluice                     the agent
#   /lib/systemd/system/sluice.service  its unit (packaging/sluice.service,
#                                       with /usr/bin/sluice); not enabled
#   /etc/sluice/pipeline.yaml           the pipeline it runs (a conffile:
#                                       upgrades keep local changes)
#   /var/lib/sluice                     its state directory
#   /usr/share/doc/sluice               README, docs/, copyright
#
#   DEB_VERSION      the package version (default: the workspace version)
#   DEB_COMPRESSION  dpkg-deb's -Z (default xz; `none` for a quick build)
# Prints the path of the .deb.
set -euo pipefail

bin=${1:?usage: build-deb.sh BINARY OUT_DIR}
out=${2:?usage: build-deb.sh BINARY OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
version=${DEB_VERSION:-$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")}
arch=$(dpkg --print-architecture)
compression=${DEB_COMPRESSION:-xz}

if [ ! -x "$bin" ]; then
  echo "build-deb.sh: no executable at $bin (cargo build --release --bin sluice)" >&2
  exit 2
fi
mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$bin" "$stage/usr/bin/sluice"
install -d -m 0755 "$stage/lib/systemd/system"
sed 's|/usr/local/bin/sluice|/usr/bin/sluice|g' "$here/sluice.service" \
  > "$stage/lib/systemd/system/sluice.service"
chmod 0644 "$stage/lib/systemd/system/sluice.service"
install -D -m 0644 "$here/pipeline.yaml" "$stage/etc/sluice/pipeline.yaml"
install -d -m 0755 "$stage/var/lib/sluice"
doc="$stage/usr/share/doc/sluice"
install -D -m 0644 "$root/README.md" "$doc/README.md"
install -d -m 0755 "$doc/docs"
install -m 0644 "$root"/docs/*.md "$doc/docs/"
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sluice
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

install -d -m 0755 "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: sluice
Version: $version
Architecture: $arch
Maintainer: Sluice maintainers <sluice@localhost>
Installed-Size: $size
Depends: libc6, zlib1g
Section: admin
Priority: optional
Description: pipeline agent: sources, bounded channels, processors and sinks in YAML
 Sluice reads logs and events from files, sockets, HTTP, Kafka and other
 agents, moves them through bounded memory or disk channels and processors,
 and delivers them to files, indexes, PostgreSQL, Kafka or other agents.
 The sluice service runs /etc/sluice/pipeline.yaml; enable it with
 systemctl enable --now sluice.
CONTROL
echo /etc/sluice/pipeline.yaml > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
# A new or changed unit: let systemd read it (the service is not enabled).
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
POSTINST
chmod 0755 "$stage/DEBIAN/postinst"

deb="$out/sluice_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compression" --build "$stage" "$deb" >/dev/null
echo "$deb"
