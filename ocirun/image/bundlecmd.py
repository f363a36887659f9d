"""`ocirun bundle`: an OCI runtime bundle from an OCI image layout, its rootfs an overlay of shared layers.

    ocirun bundle --image LAYOUT[:REF] [--platform OS/ARCH[/VARIANT]] [--layers STORE] DIR
    ocirun bundle --remove DIR          unmount DIR/rootfs and delete DIR (never the shared layers)
    ocirun bundle --mount DIR           mount DIR/rootfs again (after a reboot), its upper layer kept
    ocirun bundle --list [--layers STORE]    every stored layer and the bundles that use it
    ocirun bundle --prune [--layers STORE]   remove the layers no bundle uses

DIR gets config.json (ocirun/image/convert.py), rootfs (overlay: the image's layers from the store
as lowerdir, topmost first; DIR/upper and DIR/work as the container's own writable layer) and
ocirun-bundle.json (which store and layers it uses). DIR is created mode 0700, as umoci does.

Root only: layers hold whiteout devices and files of any owner, and overlayfs with them as lower
layers needs real root. In a user namespace (rootless) the command refuses with a clear error: an
overlay mounted there (with `userxattr`) would exist only in that namespace, not for a later
`ocirun run`, and files of other owners could not be unpacked.
"""
import errno
import os
import sys

from ocirun import fastjson
from ocirun.cliparse import UsageError, parse
from ocirun.errors import OciError
from ocirun.image.layout import open_image
from ocirun.image.store import BUNDLE_MARKER, Store, write_json
from ocirun.linux import mountinfo, safepath, syscalls

FLAGS = {"image": "str", "platform": "str", "layers": "str", "remove": "bool", "mount": "bool", "list": "bool",
         "prune": "bool"}
OVERLAY_UNSAFE_CHARS = (",", ":", "\\", "\n")
PAGE = 4096


def bundle_cmd(g, argv: list[str]) -> int:
    opts, pos = parse(argv, FLAGS)
    modes = [m for m in ("image", "remove", "mount", "list", "prune") if opts[m]]
    if len(modes) != 1:
        raise UsageError('"bundle" needs exactly one of --image, --remove, --mount, --list, --prune')
    mode = modes[0]
    if mode in ("image", "remove", "mount"):
        if len(pos) != 1:
            raise UsageError(f'"bundle --{mode}" requires exactly 1 argument (the bundle directory)')
    elif pos:
        raise UsageError(f'"bundle --{mode}" takes no arguments')
    require_root()
    store = Store(opts["layers"])
    if mode == "image":
        create_bundle(store, opts["image"], pos[0], opts["platform"])
    elif mode == "remove":
        remove_bundle(g, pos[0])
    elif mode == "mount":
        remount_bundle(pos[0])
    elif mode == "list":
        list_layers(store)
    else:
        for diff_id in store.prune() if os.path.isdir(store.path) else []:
            sys.stdout.write(f"removed {diff_id}\n")
    return 0


def require_root() -> None:
    full = True
    try:
        with open("/proc/self/uid_map") as f:
            full = f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        pass
    if os.geteuid() != 0 or not full:
        raise OciError("bundle: rootless is not supported: layers need real root (whiteout devices, "
                       "file owners, overlayfs lower layers); run it as root")


def _check_overlay_path(path: str, what: str) -> None:
    bad = [c for c in OVERLAY_UNSAFE_CHARS if c in path]
    if bad:
        raise OciError(f"bundle: {what} {path!r} contains {bad[0]!r}, which overlayfs mount options cannot hold")


def create_bundle(store: Store, image_arg: str, bundle: str, platform: str | None) -> None:
    bundle = os.path.abspath(bundle)
    _check_overlay_path(bundle, "bundle directory")
    _check_overlay_path(store.path, "--layers directory")
    image = open_image(image_arg, platform)
    made_dir = False
    try:
        if os.listdir(bundle):
            raise OciError(f"bundle: {bundle} exists and is not empty")
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        raise OciError(f"bundle: {bundle} exists and is not a directory") from None
    store.create()
    lock = store.lock(exclusive=False)        # --prune waits until the bundle's ref is recorded
    mounted = False
    rootfs = os.path.join(bundle, "rootfs")
    try:
        lowers = [store.ensure(image, layer)[0] for layer in image.layers]
        if not os.path.isdir(bundle):
            os.mkdir(bundle, 0o700)
            made_dir = True
        for name in ("rootfs", "upper", "work"):
            os.mkdir(os.path.join(bundle, name), 0o755)
        lowers.reverse()                     # overlay wants the topmost layer first
        _copy_root_metadata(lowers[0] if lowers else store.sub("empty"), os.path.join(bundle, "upper"))
        mount_overlay(lowers or [store.sub("empty")], os.path.join(bundle, "upper"), os.path.join(bundle, "work"),
                      rootfs)
        mounted = True
        # fastjson rather than defaultspec.write_spec: the json package alone costs ~5 ms (it imports re)
        write_json(os.path.join(bundle, "config.json"), _convert(image.config, rootfs))
        diff_ids = [layer.diff_id for layer in image.layers]
        marker = {"store": store.path, "image": image_arg, "layout": image.layout,
                  "manifest": image.manifest_digest, "layers": diff_ids}
        write_json(os.path.join(bundle, BUNDLE_MARKER), marker)
        store.add_ref(bundle, {"bundle": bundle, "layers": diff_ids, "manifest": image.manifest_digest})
    except BaseException:
        import shutil
        if mounted:
            syscalls.umount2(rootfs, syscalls.MNT_DETACH)
        if made_dir:
            shutil.rmtree(bundle, ignore_errors=True)
        elif os.path.isdir(bundle):        # an empty dir the caller made: leave it empty again
            for name in os.listdir(bundle):
                path = os.path.join(bundle, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
        raise
    finally:
        os.close(lock)


def mount_overlay(lowers: list[str], upper: str, work: str, target: str) -> None:
    """Mount an overlay of `lowers` (topmost first) at target. With the new mount API and
    `lowerdir+` (kernel 6.8+) each layer is one fsconfig call, so an image may have more layers than
    fit in the one page of options mount(2) takes; older kernels get mount(2) with a lowerdir list."""
    try:
        fs = syscalls.fsopen("overlay")
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
        return _mount_overlay_legacy(lowers, upper, work, target)
    try:
        try:
            syscalls.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "lowerdir+", lowers[0])
        except OSError as exc:
            if exc.errno != errno.EINVAL:      # a kernel without lowerdir+
                raise
            return _mount_overlay_legacy(lowers, upper, work, target)
        for lower in lowers[1:]:
            syscalls.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "lowerdir+", lower)
        syscalls.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "upperdir", upper)
        syscalls.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "workdir", work)
        syscalls.fsconfig(fs, syscalls.FSCONFIG_SET_STRING, "source", "overlay")
        syscalls.fsconfig(fs, syscalls.FSCONFIG_CMD_CREATE, label=f"overlay for {target}")
        mnt = syscalls.fsmount(fs, syscalls.FSMOUNT_CLOEXEC, label=target)
    finally:
        os.close(fs)
    try:
        target_fd = os.open(target, safepath.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            syscalls.move_mount(mnt, "", target_fd, "", syscalls.MOVE_MOUNT_F_EMPTY_PATH
                                | syscalls.MOVE_MOUNT_T_EMPTY_PATH, label=target)
        finally:
            os.close(target_fd)
    finally:
        os.close(mnt)


def _mount_overlay_legacy(lowers: list[str], upper: str, work: str, target: str) -> None:
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if len(data) >= PAGE:
        raise OciError(f"bundle: the image has too many layers ({len(lowers)}) for one overlay mount's "
                       "options on this kernel (lowerdir+ needs Linux 6.8)")
    syscalls.mount("overlay", target, "overlay", 0, data)


def _copy_root_metadata(src: str, dst: str) -> None:
    """The merged root directory is the upper dir's inode: give it the image's root mode and owner."""
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, st.st_mode & 0o7777)


def _convert(image_config: dict, rootfs: str) -> dict:
    from ocirun.image.convert import runtime_config
    root_fd = safepath.open_root(rootfs)

    def read(path: str) -> str | None:
        try:
            fd = safepath.open_in_root(root_fd, path, os.O_RDONLY)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(1 << 20).decode(errors="replace")

    try:
        return runtime_config(image_config, read)
    finally:
        os.close(root_fd)


def _mounts_under(path: str) -> list[str]:
    return [m.mountpoint for m in mountinfo.read()
            if m.mountpoint == path or m.mountpoint.startswith(path + "/")]


def _read_marker(bundle: str) -> dict:
    try:
        with open(os.path.join(bundle, BUNDLE_MARKER), "rb") as f:
            return fastjson.loads(f.read())
    except FileNotFoundError:
        raise OciError(f"bundle: {bundle} is not a bundle made by `ocirun bundle` (no {BUNDLE_MARKER})") from None
    except (OSError, ValueError) as exc:
        raise OciError(f"bundle: {os.path.join(bundle, BUNDLE_MARKER)}: {exc}") from None


def remount_bundle(bundle: str) -> None:
    """The overlay of a bundle whose mount is gone (a reboot), with the same layers and upper dir."""
    bundle = os.path.abspath(bundle)
    marker = _read_marker(bundle)
    rootfs = os.path.join(bundle, "rootfs")
    if rootfs in _mounts_under(rootfs):
        raise OciError(f"bundle: {rootfs} is already mounted")
    store = Store(marker.get("store"))
    lock = store.lock(exclusive=False)
    try:
        lowers = []
        for diff_id in reversed(marker.get("layers") or []):
            path = store.layer_dir(diff_id)
            if not os.path.isdir(path):
                raise OciError(f"bundle: layer {diff_id} is no longer in {store.path}; --remove the bundle "
                               "and make it again")
            lowers.append(path)
        mount_overlay(lowers or [store.sub("empty")], os.path.join(bundle, "upper"), os.path.join(bundle, "work"),
                      rootfs)
        store.add_ref(bundle, {"bundle": bundle, "layers": marker.get("layers") or [],
                               "manifest": marker.get("manifest")})
    finally:
        os.close(lock)


def remove_bundle(g, bundle: str) -> None:
    bundle = os.path.abspath(bundle)
    marker = _read_marker(bundle)
    _refuse_if_in_use(g, bundle)
    rootfs = os.path.join(bundle, "rootfs")
    if rootfs in _mounts_under(rootfs):
        try:
            syscalls.umount2(rootfs, 0)
        except OSError as exc:
            raise OciError(f"bundle: cannot unmount {rootfs}: {os.strerror(exc.errno)}") from None
    left = _mounts_under(bundle)
    if left:
        raise OciError(f"bundle: {left[0]} is still mounted inside the bundle; not deleting it")
    Store(marker.get("store")).remove_ref(bundle)
    import shutil
    shutil.rmtree(bundle)


def _refuse_if_in_use(g, bundle: str) -> None:
    from ocirun import state
    for cid in state.list_ids(g.root):
        try:
            st = state.load(g.root, cid)
            in_use = os.path.abspath(st.bundle) == bundle and st.status != "stopped"
        except (OSError, KeyError, OciError):
            continue
        if in_use:
            raise OciError(f"bundle: container {cid} ({st.status}) uses {bundle}: delete it first")


def list_layers(store: Store) -> None:
    usage = store.usage() if os.path.isdir(store.path) else {}
    lines = ["DIFF_ID\tBUNDLES\n"]
    for diff_id, bundles in usage.items():
        lines.append(f"{diff_id}\t{','.join(bundles) if bundles else '-'}\n")
    sys.stdout.write("".join(lines))
