#!/bin/busybox sh
# /init of metalcubed's tiny OS image: find the config drive, take the hostname from its
# meta_data, say it on the console and report it over HTTP until someone answers 2xx.
PREFIX=METALCUBED-OS
. /etc/common.sh
drive=""
i=0
while [ -z "$drive" ] && [ $i -lt 50 ]; do
    for b in /sys/class/block/*; do
        dev=/dev/${b##*/}
        [ "$(dd if="$dev" bs=1 skip=32769 count=5 2>/dev/null)" = CD001 ] || continue
        label=$(dd if="$dev" bs=1 skip=32808 count=32 2>/dev/null | tr -d ' ')
        [ "$label" = config-2 ] && drive=$dev && break
    done
    [ -z "$drive" ] && sleep 0.2
    i=$((i + 1))
done
get() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$meta" | head -n 1; }
name="" uuid=""
if [ -n "$drive" ]; then
    mkdir -p /mnt/config
    mount -t iso9660 -o ro "$drive" /mnt/config
    meta=/mnt/config/openstack/latest/meta_data.json
    name=$(get local-hostname); [ -z "$name" ] && name=$(get hostname)
    [ -z "$name" ] && name=$(get name)
    uuid=$(get uuid)
    hostname "${name:-localhost}"
    say "config drive $drive"
else
    say "no config drive found"
fi
say "hostname=${name:-none} uuid=${uuid:-none}"
url=""
for word in $(cat /proc/cmdline); do
    case "$word" in mc.report=*) url=${word#mc.report=} ;; esac
done
until dhcp; do say "no DHCP lease yet"; sleep 3; done
[ -z "$url" ] && url="http://{server}:8089/booted"
hostport=${url#http://}; path="/${hostport#*/}"; hostport=${hostport%%/*}
host=${hostport%:*}; port=${hostport##*:}; [ "$port" = "$hostport" ] && port=80
[ "$host" = "{server}" ] && host=$serverid
query="hostname=${name}&uuid=${uuid}&mac=${mac}&ip=${ip}&uptime=$(cut -d' ' -f1 /proc/uptime)"
while true; do
    answer=$(printf 'GET %s?%s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$query" "$hostport" \
             | nc -w 5 "$host" "$port" 2>/dev/null | head -n 1)
    case "$answer" in
        "HTTP/1."?" 2"*) say "reported to http://$host:$port$path"; break ;;
    esac
    sleep 5
done
while true; do sleep 3600; done
