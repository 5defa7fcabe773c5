#!/bin/sh
# preremove of the spotmax-agent package. Arguments: deb prerm "remove" or "upgrade NEW-VERSION"
# (or "deconfigure"/"failed-upgrade"), rpm %preun "0" on erase, "1" on upgrade.
#
# On removal the agent is stopped and disabled. Stopping is SIGTERM, and SIGTERM is not a notice:
# the agent finishes a mount in progress and exits; it does not unmount the data volume, and
# nothing here touches a mount. On an upgrade the agent keeps running until postinstall restarts
# it on the new binary.
set -e
unit=spotmax-agent.service
case "$1" in
  remove|0) ;;
  *) exit 0 ;;
esac
command -v systemctl >/dev/null 2>&1 || exit 0
if [ -d /run/systemd/system ]; then
  systemctl stop "$unit" || true
fi
# Offline too (a chroot): removes the multi-user.target.wants link.
systemctl disable "$unit" || true
