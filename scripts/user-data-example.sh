#!/bin/bash
# Example EC2 user data for an instance of a spotmax group that keeps a data volume
# (spotmax:persistence_dev=/dev/sdf, spotmax:persistence_mount_path=/data). It bakes nothing
# into the image: it formats the group's fresh data volume on a first launch only, mounts it,
# then installs spotmax-agent, which mounts the retained volume on a replacement instead.
#
# Launch template: enable instance metadata tags (MetadataOptions.InstanceMetadataTags=enabled)
# and IMDSv2 (HttpTokens=required); give the instance profile the agent's IAM policy
# (docs/agent.md). Replace AGENT_URL with where you publish the binary (an S3 bucket, an
# artifact server), or build the agent into your image and drop the download.
set -euo pipefail
AGENT_URL=${AGENT_URL:-https://artifacts.example.com/spotmax/spotmax-agent-linux-amd64}
MOUNT_PATH=/data

# 1. The data volume of a first launch: the launch template's fresh volume at /dev/sdf. On a
#    replacement the launch has no volume there (spotmax moves the old one in and the agent
#    mounts it), so nothing is formatted or mounted here. A device that already holds a file
#    system is never formatted. Only the names EC2's attachment gives the device are used:
#    /dev/sdf, its Xen name /dev/xvdf, or on Nitro the /dev/sdf link that Amazon Linux's udev
#    rules (amazon-ec2-utils) make to the NVMe device. Any other disk is never guessed: without
#    such a name nothing is formatted or mounted here.
mkdir -p "$MOUNT_PATH"
dev=""
for d in /dev/sdf /dev/xvdf; do
  [ -e "$d" ] || continue
  real=$(readlink -f "$d")
  [ "$(lsblk -ndo TYPE "$real")" = disk ] || continue          # not a partition
  [ "$(lsblk -nro NAME "$real" | wc -l)" = 1 ] || continue     # no partitions (the root disk has)
  findmnt -rno TARGET -S "$real" >/dev/null && continue          # already mounted
  dev=$real; break
done
if [ -n "$dev" ]; then
  if [ -z "$(blkid -p -o value -s TYPE "$dev" 2>/dev/null)" ]; then
    mkfs.ext4 -q "$dev"
  fi
  mount "$dev" "$MOUNT_PATH"
fi

# 2. The agent.
tmp=$(mktemp -d)
curl -fsSL -o "$tmp/spotmax-agent" "$AGENT_URL"
chmod +x "$tmp/spotmax-agent"
curl -fsSL -o "$tmp/install-agent.sh" "${AGENT_URL%/*}/install-agent.sh"
curl -fsSL -o "$tmp/spotmax-agent.service" "${AGENT_URL%/*}/spotmax-agent.service"
# Optional metrics (docs/agent.md, Metrics): add SPOTMAX_METRICS_ADDR=:9109 for a Prometheus
# /metrics endpoint (open the port to your Prometheus servers only), SPOTMAX_CLOUDWATCH=true to
# publish the agent's events to CloudWatch (namespace SpotMax).
bash "$tmp/install-agent.sh" --binary "$tmp/spotmax-agent" \
  SPOTMAX_CONSUL_MODE=deregister \
  SPOTMAX_HANDLE_REBALANCE=false
rm -rf "$tmp"
