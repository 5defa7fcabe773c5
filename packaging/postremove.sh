#!/bin/sh
# postremove of the spotmax-agent package. Arguments: deb postrm "remove", "purge", "upgrade"
# (and others), rpm %postun "0" on erase, "1" on upgrade.
#
# After a removal systemd forgets the unit. A purge (deb) or erase (rpm) also deletes the agent's
# notice state in /run/spotmax-agent (RuntimeDirectoryPreserve=yes keeps it across restarts).
# The package's files, /etc/spotmax/agent.env on a purge, are removed by dpkg/rpm. Mounts — the
# data volume under its mount path — are never touched.
set -e
case "$1" in
  remove|purge|0)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      systemctl daemon-reload || true
    fi ;;
esac
case "$1" in
  purge|0) rm -rf /run/spotmax-agent ;;
esac
exit 0
