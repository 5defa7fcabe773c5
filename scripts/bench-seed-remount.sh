#!/bin/bash
# The baseline for the agent's remount latency: the original product's remount loop from the
# seed (../shared/seed/aws-example.zh.md), verbatim except that the membership check (a
# DescribeTags call through the AWS CLI) is left out, as it runs once before the loop.
# It polls lsblk every 3 s for a new disk of the placeholder's type, unmounts the placeholder,
# waits 1 s and mounts the new disk. BenchmarkRemount/seed-loop in pkg/agent runs it side by side
# with the agent on the same loop devices.
#
#   bench-seed-remount.sh MOUNT_PATH
MOUNT_PATH=$1
OLD_DEV=`lsblk|grep $MOUNT_PATH|awk '{print $1}'`
DEV_TYPE=`lsblk|grep $MOUNT_PATH|awk '{print $6}'`
while true
do
	NEW_DEV=`lsblk|grep $DEV_TYPE |grep -Ev "xvda|${OLD_DEV}|nvme0n1"|awk '{print $1}'`
	if [ ! -z $NEW_DEV ] ;then
		umount $MOUNT_PATH &>/dev/null
		sleep 1
		mount /dev/$NEW_DEV $MOUNT_PATH && break
	else
		sleep 3
	fi
done
