#!/bin/bash
# Example EC2 user data for an instance of a spotmax group that keeps a data volume
# (spotmax:persistence_dev=/dev/sdf, spotmax:persistence_mount_path=/data) or several (data and
# log: persistence_dev=/dev/sdf,/dev/sdg, persistence_mount_path=/data,/log; set DATA_VOLUMES
# below to "/dev/sdf,/dev/xvdf:/data /dev/sdg,/dev/xvdg:/log"). It bakes nothing
# into the image: it installs spotmax-agent from the release, which mounts the group's data
# volume on a replacement, and offers a blank fresh volume to the group's pool (a volume kept
# from a lost or scaled-in member is swapped in and mounted instead); only when nothing was
# swapped in does it format the fresh volume of a first launch and mount it. Amazon Linux 2023 and Ubuntu (x86-64 or Graviton: the archive for the
# instance's architecture is chosen). For EKS nodes (AL2023, nodeadm) wrap it in the MIME
# multi-part user data of docs/install.md.
#
# Launch template: enable instance metadata tags (MetadataOptions.InstanceMetadataTags=enabled)
# and IMDSv2 (HttpTokens=required); give the instance profile the agent's IAM policy
# (docs/agent.md). RELEASE_URL is where you publish the output of `make dist` (an S3 bucket
# behind HTTPS, an artifact server): SHA256SUMS, the archives and install-agent.sh. Pin
# INSTALLER_SHA256 to install-agent.sh's line in that SHA256SUMS: the installer then checks the
# archive against SHA256SUMS before it installs anything.
set -euo pipefail
RELEASE_URL=${RELEASE_URL:-https://artifacts.example.com/spotmax/v0.1.0}
INSTALLER_SHA256=${INSTALLER_SHA256:-}
MOUNT_PATH=${MOUNT_PATH:-/data}
# The device names EC2's attachment gives spotmax:persistence_dev=/dev/sdf (see step 2).
DATA_DEVICES=${DATA_DEVICES:-/dev/sdf /dev/xvdf}
# One entry per data volume, separated by spaces: its device names (commas) and its mount path
# after a colon, in the order of spotmax:persistence_dev. Default: DATA_DEVICES at MOUNT_PATH.
DATA_VOLUMES=${DATA_VOLUMES:-"${DATA_DEVICES// /,}:$MOUNT_PATH"}
# AGENT_INSTALLED=1: the image already has the agent (the .deb/.rpm baked in); skip step 1.
AGENT_INSTALLED=${AGENT_INSTALLED:-0}

# 1. The agent first: install-agent.sh from the release (checked against the pinned SHA-256 when one is
#    given), which downloads the archive for this architecture and checks it against SHA256SUMS.
if [ "$AGENT_INSTALLED" != 1 ]; then
  tmp=$(mktemp -d)
  curl -fsSL --retry 5 -o "$tmp/install-agent.sh" "$RELEASE_URL/install-agent.sh"
  if [ -n "$INSTALLER_SHA256" ]; then
    echo "$INSTALLER_SHA256  $tmp/install-agent.sh" | sha256sum -c --quiet -
  fi
  # Optional metrics (docs/agent.md, Metrics): add SPOTMAX_METRICS_ADDR=:9109 for a Prometheus
  # /metrics endpoint (open the port to your Prometheus servers only), SPOTMAX_CLOUDWATCH=true to
  # publish the agent's events to CloudWatch (namespace SpotMax).
  bash "$tmp/install-agent.sh" --release "$RELEASE_URL" \
    SPOTMAX_CONSUL_MODE=deregister \
    SPOTMAX_HANDLE_REBALANCE=false
  rm -rf "$tmp"
fi

# 2. The data volumes of a first launch: the launch template's fresh volume at each data device.
#    The agent holds a blank fresh volume for its --blank-hold (2 m) while the group's pool may
#    swap in a kept data volume of that device, which the agent then mounts at its path; while
#    held, mkfs fails on it. So, for each volume: wait for the agent's mount, and format only after
#    the hold (BLANK_HOLD_SECS, a margin over the agent's 2 m) and only a device that still holds
#    no file system. On a replacement the launch has no volume at a device whose data spotmax
#    moves in (the agent mounts it), so nothing is formatted or mounted there. Only the names
#    EC2's attachment gives a device are used: /dev/sdf, its Xen name /dev/xvdf, or on Nitro the
#    /dev/sdf link that Amazon Linux's udev rules (amazon-ec2-utils) make to the NVMe device. Any
#    other disk is never guessed.
BLANK_HOLD_SECS=${BLANK_HOLD_SECS:-150}
fresh_device() {  # $1: the device's names, separated by commas
  local d real
  for d in ${1//,/ }; do
    [ -e "$d" ] || continue
    real=$(readlink -f "$d")
    case "$(lsblk -ndo TYPE "$real")" in disk|loop) ;; *) continue ;; esac  # not a partition
    [ "$(lsblk -nro NAME "$real" | wc -l)" = 1 ] || continue     # no partitions (the root disk has)
    findmnt -rno TARGET -S "$real" >/dev/null && continue          # already mounted
    echo "$real"; return 0
  done
  return 1
}
pending=$DATA_VOLUMES
while [ -n "$pending" ]; do
  left=
  for entry in $pending; do
    names=${entry%%:*} path=${entry#*:}
    mkdir -p "$path"
    findmnt -rno SOURCE --mountpoint "$path" >/dev/null && continue  # mounted (by the agent, or here)
    if [ "$SECONDS" -ge "$BLANK_HOLD_SECS" ] && dev=$(fresh_device "$names"); then
      if [ -z "$(blkid -p -o value -s TYPE "$dev" 2>/dev/null)" ]; then
        mkfs.ext4 -q "$dev" || { left="$left $entry"; continue; }  # still held: try again
      fi
      mount "$dev" "$path" && continue
    fi
    left="$left $entry"
  done
  pending=${left# }
  [ -n "$pending" ] || break
  [ "$SECONDS" -lt $((BLANK_HOLD_SECS + 300)) ] || break          # nothing to mount: done
  sleep 5
done
