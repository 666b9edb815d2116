#!/bin/sh
# Holds the local node's private mount namespace. local/kube_node/processes.py starts it inside
# the node's network namespace as `unshare --mount --propagation slave holder.sh RUN_DIR CNI_DIR`;
# containerd, its shims, runc, the CNI plugins and the kubelet then join it (nsenter -t PID -n -m),
# so what they mount is seen by each other and never by the host.
set -eu
run_dir=$1
cni_dir=$2

# A /run of the node's own: its containerd socket, shim sockets and pods' network namespaces.
mount -t tmpfs -o mode=0755 node-run /run
mkdir -p /run/netns /run/containerd /run/sysctl

# libcni keeps its cache in /var/lib/cni, a fixed path: the node's own copy (kube_node/processes.py
# made the mount point when the host had none, and kube_node/lifecycle.py removes it again).
mount --bind "$cni_dir" /var/lib/cni

# The kubelet (protectKernelDefaults) reads these tunables and refuses other values; it is shown
# the values it expects here, and the host's settings are never written.
for setting in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
    kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  file=/proc/sys/${setting%%=*}
  value=${setting#*=}
  if [ "$(cat "$file")" != "$value" ]; then
    shown=/run/sysctl/$(echo "${setting%%=*}" | tr / .)
    echo "$value" > "$shown"
    mount --bind "$shown" "$file"
  fi
done

# sysfs of this network namespace (the kubelet lists the node's interfaces there), with the
# host's cgroup hierarchies mounted on it again.
mkdir -p /run/cgroup
mount --rbind /sys/fs/cgroup /run/cgroup
mount -t sysfs node-sysfs /sys
mount --rbind /run/cgroup /sys/fs/cgroup
umount -l /run/cgroup

echo "node mount namespace ready (run: $run_dir)"
exec sleep infinity
