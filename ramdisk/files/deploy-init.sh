#!/bin/busybox sh
# /init of metalcubed's deploy ramdisk: drivers, DHCP, then the agent (restarted if it dies).
PREFIX=METALCUBED-AGENT
. /etc/common.sh
until dhcp; do say "no DHCP lease yet"; sleep 3; done
export PYTHONHOME=/usr PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/root
while true; do
    /usr/bin/python3 /usr/share/metalcubed/agent.py
    say "agent exited ($?); restarting"
    sleep 2
done
