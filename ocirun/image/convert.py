"""Image config -> runtime config, by image-spec conversion.md, on top of `ocirun spec`'s defaults.

Verbatim fields: Config.WorkingDir -> process.cwd, Config.Env -> process.env (the defaults' PATH and
TERM are added only when the image does not name them), Config.Entrypoint + Config.Cmd ->
process.args. Parsed: Config.User -> process.user (numbers verbatim; names looked up in the
image's /etc/passwd and /etc/group, read inside the mounted rootfs; additionalGids only for a user
given by name without a group; an unknown name is an error, as the spec requires). Annotations: os,
architecture, variant, os.version, os.features, author, created, Config.StopSignal and
Config.ExposedPorts under org.opencontainers.image.*, then Config.Labels, which win on a conflict.

Implementation-defined choices: root.readonly is false (the bundle's rootfs has its own writable
layer; umoci does the same), and an image with neither Entrypoint nor Cmd keeps the default `sh`.
Config.Volumes is not converted (no mounts are added; data written there stays in the container's
writable layer).
"""
from ocirun.defaultspec import example_spec
from ocirun.image.layout import ImageError

ANNOTATION_FIELDS = [("os", "org.opencontainers.image.os"),
                     ("architecture", "org.opencontainers.image.architecture"),
                     ("variant", "org.opencontainers.image.variant"),
                     ("os.version", "org.opencontainers.image.os.version"),
                     ("os.features", "org.opencontainers.image.os.features"),
                     ("author", "org.opencontainers.image.author"),
                     ("created", "org.opencontainers.image.created")]


def _strings(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImageError(f"image config {where}: must be a list of strings")
    return list(value)


def merge_env(image_env: list[str], defaults: list[str]) -> list[str]:
    names = {e.partition("=")[0] for e in image_env}
    return image_env + [d for d in defaults if d.partition("=")[0] not in names]


def annotations(image: dict) -> dict[str, str]:
    config = image.get("config") or {}
    out: dict[str, str] = {}
    for field, key in ANNOTATION_FIELDS:
        value = image.get(field)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if isinstance(value, str) and value:
            out[key] = value
    if isinstance(config.get("StopSignal"), str) and config["StopSignal"]:
        out["org.opencontainers.image.stopSignal"] = config["StopSignal"]
    ports = config.get("ExposedPorts")
    if isinstance(ports, dict) and ports:
        out["org.opencontainers.image.exposedPorts"] = ",".join(sorted(ports))
    labels = config.get("Labels")
    if isinstance(labels, dict):
        out.update({str(k): str(v) for k, v in labels.items()})
    return out


def _parse_db(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            parts = line.split(":")
            if len(parts) >= fields:
                rows.append(parts)
    return rows


def resolve_user(spec_user: str, passwd: str | None, group: str | None) -> dict:
    """Config.User (`user`, `uid`, `user:group`, `uid:gid`, ...) -> process.user.

    passwd / group: the text of the image's /etc/passwd and /etc/group (None when missing)."""
    name, _, grp = spec_user.partition(":")
    users = _parse_db(passwd or "", 4)
    groups = _parse_db(group or "", 4)
    user_row = None
    if name.isdigit():
        uid = int(name)
        user_row = next((r for r in users if r[2] == name), None)
    else:
        user_row = next((r for r in users if r[0] == name), None)
        if user_row is None:
            raise ImageError(f"image config Config.User: no user {name!r} in the image's /etc/passwd")
        uid = int(user_row[2])
    if grp:
        if grp.isdigit():
            gid = int(grp)
        else:
            row = next((r for r in groups if r[0] == grp), None)
            if row is None:
                raise ImageError(f"image config Config.User: no group {grp!r} in the image's /etc/group")
            gid = int(row[2])
    else:
        gid = int(user_row[3]) if user_row and user_row[3].isdigit() else 0
    out = {"uid": uid, "gid": gid}
    if not name.isdigit() and not grp:
        extra = sorted({int(r[2]) for r in groups if name in r[3].split(",") and r[2].isdigit()} - {gid})
        if extra:
            out["additionalGids"] = extra
    return out


def runtime_config(image: dict, read_rootfs_file=None) -> dict:
    """The config.json for `image` (the parsed image config). read_rootfs_file(path) -> text or None
    reads a file of the image's rootfs (for Config.User names)."""
    spec = example_spec()
    config = image.get("config") or {}
    if not isinstance(config, dict):
        raise ImageError("image config config: must be an object")
    process = spec["process"]
    args = _strings(config.get("Entrypoint"), "Config.Entrypoint") + _strings(config.get("Cmd"), "Config.Cmd")
    if args:
        process["args"] = args
    process["env"] = merge_env(_strings(config.get("Env"), "Config.Env"), process["env"])
    cwd = config.get("WorkingDir")
    if isinstance(cwd, str) and cwd:
        process["cwd"] = cwd if cwd.startswith("/") else "/" + cwd
    user = config.get("User")
    if isinstance(user, str) and user:
        read = read_rootfs_file or (lambda path: None)
        process["user"] = resolve_user(user, read("/etc/passwd"), read("/etc/group"))
    spec["root"]["readonly"] = False
    notes = annotations(image)
    if notes:
        spec["annotations"] = notes
    return spec
