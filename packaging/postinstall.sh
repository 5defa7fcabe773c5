#!/bin/sh
# postinstall of the spotmax-agent package. Arguments: deb "configure [OLD-VERSION]"
# ("abort-upgrade"/"abort-remove" after a failed step), rpm %post "1" on install, "2" or more on
# upgrade.
#
# A first install enables the unit and, when systemd runs, starts it. An upgrade enables nothing
# (an operator's `systemctl disable` stands) and restarts the agent only if it runs, to run the
# new binary: SIGTERM is not a notice, so the agent finishes a mount in progress and exits without
# unmounting the data volume; the new one finds it mounted and leaves it so.
set -e
unit=spotmax-agent.service
upgrade=0
case "$1" in
  configure) [ -z "$2" ] || upgrade=1 ;;
  abort-*) upgrade=1 ;;
  [0-9]*) [ "$1" -lt 2 ] || upgrade=1 ;;
  *) echo "spotmax-agent postinstall: unknown argument '$1'" >&2; exit 0 ;;
esac
command -v systemctl >/dev/null 2>&1 || exit 0
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$upgrade" = 1 ]; then
    systemctl try-restart "$unit"
  else
    systemctl enable --now "$unit"
  fi
elif [ "$upgrade" = 0 ]; then
  # No running systemd (an image build in a chroot or container): `systemctl enable` works
  # offline and only links the unit into multi-user.target.wants; it starts at the next boot.
  systemctl enable "$unit"
fi
