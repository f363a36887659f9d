#!/bin/bash
# Build a small busybox root filesystem at DIR/rootfs (never committed: .gitignore has bundles/*/rootfs/).
#
#   bash bundles/build-rootfs.sh [--owner UID:GID] DIR
#
# DIR/rootfs gets a copy of the host's static busybox (Debian package busybox-static), a symlink for
# every applet at the path busybox itself reports (`busybox --list-full`: bin/sh, usr/bin/env, ...),
# a few /etc files (passwd with root, nobody and user 1000; group; hostname; hosts) and the usual
# empty directories (proc, sys, dev, tmp with mode 1777, ...).
#
# --owner UID:GID chowns the whole tree, e.g. to the host ids that a user-namespace bundle maps
# container root to (bundles/userns uses 100000:100000).
#
# Idempotent: a second run only checks what is there (no rewrite when nothing changed), so it is quick
# enough to call before every test or demo run.
set -euo pipefail

usage() {
    echo "usage: $0 [--owner UID:GID] DIR" >&2
    exit 2
}

owner=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --owner) [[ $# -ge 2 ]] || usage; owner="$2"; shift 2 ;;
        --owner=*) owner="${1#--owner=}"; shift ;;
        -h|--help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[[ $# -eq 1 ]] || usage
if [[ -n "$owner" && ! "$owner" =~ ^[0-9]+:[0-9]+$ ]]; then
    echo "$0: --owner wants numeric UID:GID, got '$owner'" >&2
    exit 2
fi

BUSYBOX=/bin/busybox
rootfs="$1/rootfs"

# A dynamically linked busybox (Debian package "busybox") would need the host's libc inside the
# rootfs; ldd prints "not a dynamic executable" (and fails) for the static one.
is_static() {
    [[ -x "$BUSYBOX" ]] && ! ldd "$BUSYBOX" >/dev/null 2>&1
}

if ! is_static; then
    echo "$0: $BUSYBOX missing or not static; installing busybox-static" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh the package lists when the plain install fails (they are usually current).
    if ! apt-get install -y busybox-static >&2; then
        apt-get update >&2
        apt-get install -y busybox-static >&2
    fi
    if ! is_static; then
        echo "$0: $BUSYBOX is still not a static binary" >&2
        exit 1
    fi
fi

mkdir -p "$rootfs"

# Directories: mode matters for tmp (sticky, world-writable) and root (private home).
for d in bin sbin usr/bin usr/sbin etc proc sys dev tmp var/tmp run root home/user mnt; do
    [[ -d "$rootfs/$d" ]] || mkdir -p "$rootfs/$d"
done
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 0700 "$rootfs/root"
chmod 0755 "$rootfs/home/user"

# busybox itself: copy (a hardlink would tie the rootfs to the host file), refresh only on change.
if ! cmp -s "$BUSYBOX" "$rootfs/bin/busybox"; then
    cp -f "$BUSYBOX" "$rootfs/bin/busybox.new"
    chmod 0755 "$rootfs/bin/busybox.new"
    mv -f "$rootfs/bin/busybox.new" "$rootfs/bin/busybox"
fi

# Applet symlinks, relative so that they resolve both inside the container and from the host.
# Only missing or wrong links are (re)made: on a second run this loop forks nothing.
while IFS= read -r applet; do
    [[ -n "$applet" && "$applet" != "bin/busybox" ]] || continue
    # One "../" per directory level of the applet's path (linuxrc sits at the top: bin/busybox).
    up="${applet//[!\/]/}"
    target="${up//\//../}bin/busybox"
    if [[ "$applet" == */* && ! -d "$rootfs/${applet%/*}" ]]; then
        mkdir -p "$rootfs/${applet%/*}"
    fi
    link="$rootfs/$applet"
    # -ef (same inode as our copy) is a builtin test: no readlink fork per applet.
    if [[ ! -L "$link" || ! "$link" -ef "$rootfs/bin/busybox" ]]; then
        ln -sfn "$target" "$link"
    fi
done < <("$rootfs/bin/busybox" --list-full)

# put FILE MODE: write stdin to FILE unless it already holds exactly that (keeps mtimes stable).
put() {
    local file="$rootfs/$1" mode="$2" content
    content="$(cat)"
    if [[ ! -f "$file" ]] || [[ "$(<"$file")" != "$content" ]]; then
        printf '%s\n' "$content" >"$file.new"
        mv -f "$file.new" "$file"
    fi
    chmod "$mode" "$file"
}

put etc/passwd 0644 <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
put etc/group 0644 <<'EOF'
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
EOF
put etc/hostname 0644 <<'EOF'
ocirun
EOF
put etc/hosts 0644 <<'EOF'
127.0.0.1	localhost
::1	localhost
EOF

# Ownership is always set (default 0:0), so a rootfs built earlier with another --owner is fixed up.
# -h: change the symlinks themselves, never what they point to. user's home is owned by the id that
# maps to container uid/gid 1000.
uid="${owner%:*}"; gid="${owner#*:}"
chown -hR "${uid:-0}:${gid:-0}" "$rootfs"
chown "$(( ${uid:-0} + 1000 )):$(( ${gid:-0} + 1000 ))" "$rootfs/home/user"

# Device nodes never belong in this rootfs: a container run on it without a /dev mount gets its
# default devices made here (as with runc). Left behind, a plain copy of the tree (a test's private
# rootfs) would read dev/zero or dev/full forever. -xdev: nothing mounted below is touched.
find "$rootfs" -xdev \( -type c -o -type b \) -delete
