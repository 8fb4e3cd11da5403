# Shared by the deploy ramdisk's and the tiny OS's /init (busybox sh): mounts, drivers, DHCP.
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mkdir -p /proc /sys /dev /run /tmp /mnt
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
say() { echo "$PREFIX: $* uptime=$(cut -d' ' -f1 /proc/uptime)"; }
say "init started"
for m in $(cat /lib/modules/load.order); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
ip link set lo up
# NICs appear once their driver probed; wait up to 10 s for the first one.
i=0
while [ $i -lt 50 ]; do
    nics=$(ls /sys/class/net | grep -v '^lo$')
    [ -n "$nics" ] && break
    sleep 0.2; i=$((i + 1))
done
say "modules loaded, NICs: $nics"
dhcp() {
    for nic in $nics; do
        ip link set "$nic" up
        if udhcpc -i "$nic" -n -q -t 8 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1; then
            . /run/metalcubed/dhcp.env
            say "DHCP on $nic: ip=$ip server=$serverid"
            return 0
        fi
    done
    return 1
}
