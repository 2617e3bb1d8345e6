#!/bin/bash
# PID 1 of a User-Mode Linux guest of the interop tests (lib/guests.py starts it), then the guest's command
# runner. The guest sees the host's files read-only (hostfs); this script puts a writable overlay on top (a
# tmpfs), mounts the UML kernel's modules and the guest's state directory (read-write, shared with the host),
# and then, as the runner, executes each DIR/cmd/ID.sh the host renames into place, writing ID.out and ID.rc.
# Kernel parameters the kernel does not know arrive here as variables: guest_stage, guest_name, guest_dir,
# guest_mac, guest_addresses (comma-separated prefixes), guest_routes (comma-separated "prefix@device").
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

mount_overlay_root() {
    local version root=/mnt/root
    version=$(uname -r)
    mount -n -t proc proc /proc
    mount -n -t sysfs sys /sys
    mountpoint -q /dev || mount -n -t devtmpfs dev /dev
    mount -n -t tmpfs -o mode=755 tmpfs /mnt && mkdir -p /mnt/upper /mnt/work $root
    # The host may have no /lib/modules to mount on: the modules go under the tmpfs, for `modprobe -d`.
    mkdir -p /mnt/modules/lib/modules/"$version" &&
        mount -n -t hostfs -o /usr/lib/uml/modules/"$version" hostfs /mnt/modules/lib/modules/"$version"
    if ! modprobe -d /mnt/modules overlay; then
        echo "guest $guest_name: modprobe overlay failed" > /dev/console
        echo o > /proc/sysrq-trigger
    fi
    mount -n -t overlay overlay -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work $root
    mount -n --move /proc $root/proc
    mount -n --move /sys $root/sys
    mount -n --move /dev $root/dev
    mount -n -t tmpfs -o mode=755 tmpfs $root/run
    mkdir -p $root/dev/pts $root/dev/shm
    mount -n -t devpts devpts $root/dev/pts
    mount -n -t tmpfs tmpfs $root/dev/shm
    mkdir -p $root/lib/modules/"$version"
    mount -n -t hostfs -o /usr/lib/uml/modules/"$version" hostfs $root/lib/modules/"$version"
    mkdir -p $root"$guest_dir"
    mount -n -t hostfs -o "$guest_dir" hostfs $root"$guest_dir"
    export guest_stage=runner
    exec chroot $root /bin/bash "$0"
}

configure_network() {
    local item
    hostname "$guest_name"
    modprobe ipv6
    modprobe tun && mkdir -p /dev/net && { [ -c /dev/net/tun ] || mknod /dev/net/tun c 10 200; }
    ip link set lo up
    ip link set vec0 address "$guest_mac"
    sysctl -qw net.ipv6.conf.vec0.accept_dad=0
    ip link set vec0 up
    for item in ${guest_addresses//,/ }; do ip address add "$item" dev vec0 nodad 2>/dev/null || ip address add "$item" dev vec0; done
    for item in ${guest_routes//,/ }; do ip route add "${item%@*}" dev "${item#*@}"; done
}

run_commands() {
    local file
    local -A started
    mkfifo /run/runner.fifo
    exec 3<> /run/runner.fifo
    read -r uptime _ < /proc/uptime
    echo "$uptime" > "$guest_dir/ready"
    while :; do
        for file in "$guest_dir"/cmd/*.sh; do
            [ -e "$file" ] && [ -z "${started[$file]:-}" ] || continue
            started[$file]=1
            { bash "$file" > "${file%.sh}.out" 2>&1 < /dev/null; echo $? > "${file%.sh}.rc"; } &
        done
        read -t 0.1 -u 3 || true   # a 0.1 s pause without starting a process
    done
}

if [ "${guest_stage:-}" = boot ] && [ $$ = 1 ]; then
    mount_overlay_root
fi
export HOME=/root
cd / || exit 1
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/mounts /etc/mtab
configure_network
run_commands
