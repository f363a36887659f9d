"""Reading an OCI image layout (image-spec image-layout.md): `LAYOUT[:REF]` -> manifest, config, layers.

A layout is untrusted input: every blob is addressed by a digest checked to be `algorithm:hex` of
the right length before it becomes a path (no `sha256:../../x`), and every JSON blob read here is
verified against its digest. Layer blobs are verified while they are unpacked (ocirun/image/store.py).
"""
import hashlib
import os

from ocirun import fastjson
from ocirun.errors import OciError

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
REF_ANNOTATION = "org.opencontainers.image.ref.name"
DIGEST_HEX_LEN = {"sha256": 64, "sha512": 128}
# Layer media type -> compression; nondistributable types are the same formats (deprecated names).
LAYER_TYPES = {}
for _prefix in ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar"):
    LAYER_TYPES.update({_prefix: "none", _prefix + "+gzip": "gzip", _prefix + "+zstd": "zstd"})
LAYER_TYPES["application/vnd.docker.image.rootfs.diff.tar.gzip"] = "gzip"
LAYER_TYPES["application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"] = "gzip"
# os.uname().machine -> the GOARCH name images use
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
          "s390x": "s390x", "riscv64": "riscv64"}


class ImageError(OciError):
    pass


def check_digest(digest, where: str) -> tuple[str, str]:
    """(algorithm, hex) of a well-formed digest; anything else is refused before it names a file."""
    if not isinstance(digest, str):
        raise ImageError(f"{where}: digest must be a string")
    alg, _, hexpart = digest.partition(":")
    size = DIGEST_HEX_LEN.get(alg)
    if size is None:
        raise ImageError(f"{where}: unsupported digest algorithm in {digest!r}")
    if len(hexpart) != size or hexpart.strip("0123456789abcdef"):
        raise ImageError(f"{where}: malformed digest {digest!r}")
    return alg, hexpart


def host_platform() -> str:
    machine = os.uname().machine
    return f"linux/{GOARCH.get(machine, machine)}"


def split_image_arg(arg: str) -> tuple[str, str | None]:
    """`LAYOUT[:REF]`: a path that is a directory as written has no ref (paths may contain ':')."""
    if os.path.isdir(arg) or ":" not in arg:
        return arg, None
    layout, _, ref = arg.rpartition(":")
    return layout, ref or None


class Layer:
    def __init__(self, digest: str, size: int, media_type: str, compression: str, diff_id: str):
        self.digest = digest
        self.size = size
        self.media_type = media_type
        self.compression = compression
        self.diff_id = diff_id


class Image:
    """One platform's manifest of a layout: its config (parsed) and layers (bottom first)."""

    def __init__(self, layout: str, manifest_digest: str, config: dict, layers: list[Layer]):
        self.layout = layout
        self.manifest_digest = manifest_digest
        self.config = config
        self.layers = layers

    def blob_path(self, digest: str) -> str:
        return blob_path(self.layout, digest, "layer")


def blob_path(layout: str, digest: str, where: str) -> str:
    alg, hexpart = check_digest(digest, where)
    return os.path.join(layout, "blobs", alg, hexpart)


def read_blob_json(layout: str, descriptor: dict, where: str) -> dict:
    """A JSON blob, its size and digest verified against the descriptor."""
    if not isinstance(descriptor, dict):
        raise ImageError(f"{where}: descriptor must be an object")
    digest = descriptor.get("digest")
    path = blob_path(layout, digest, f"{where}.digest")
    try:
        with open(path, "rb") as f:
            data = f.read(64 << 20)
    except OSError as exc:
        raise ImageError(f"{where}: blob {digest}: {exc.strerror}") from None
    size = descriptor.get("size")
    if isinstance(size, int) and size != len(data):
        raise ImageError(f"{where}: blob {digest} has {len(data)} bytes, the descriptor says {size}")
    alg = digest.partition(":")[0]
    if f"{alg}:{hashlib.new(alg, data).hexdigest()}" != digest:
        raise ImageError(f"{where}: blob {digest} does not match its digest")
    try:
        doc = fastjson.loads(data)
    except ValueError as exc:
        raise ImageError(f"{where}: blob {digest} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{where}: blob {digest} is not a JSON object")
    return doc


def _read_index(layout: str) -> dict:
    try:
        with open(os.path.join(layout, "oci-layout"), "rb") as f:
            marker = fastjson.loads(f.read())
        with open(os.path.join(layout, "index.json"), "rb") as f:
            index = fastjson.loads(f.read())
    except FileNotFoundError as exc:
        raise ImageError(f"{layout}: not an OCI image layout ({os.path.basename(exc.filename)} missing)") from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"{layout}: cannot read the layout: {exc}") from None
    if not isinstance(marker, dict) or not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageError(f"{layout}: oci-layout or index.json is malformed")
    return index


def _matches_platform(descriptor: dict, platform: str) -> bool:
    p = descriptor.get("platform")
    if not isinstance(p, dict):
        return True          # not stated: cannot be ruled out
    parts = platform.split("/")
    want = {"os": parts[0], "architecture": parts[1] if len(parts) > 1 else None,
            "variant": parts[2] if len(parts) > 2 else None}
    return (p.get("os") == want["os"] and p.get("architecture") == want["architecture"]
            and (want["variant"] is None or p.get("variant") == want["variant"]))


def _pick(manifests: list, ref: str | None, where: str, layout: str) -> dict:
    if ref is not None:
        found = [d for d in manifests if isinstance(d, dict)
                 and (d.get("annotations") or {}).get(REF_ANNOTATION) == ref]
        if not found:
            names = sorted({(d.get("annotations") or {}).get(REF_ANNOTATION, "") for d in manifests
                            if isinstance(d, dict)} - {""})
            raise ImageError(f"{layout}: no image tagged {ref!r} (tags: {', '.join(names) or 'none'})")
        return found[0]
    if len(manifests) != 1:
        raise ImageError(f"{layout}: {where} lists {len(manifests)} images: name one as LAYOUT:REF")
    return manifests[0]


def open_image(arg: str, platform: str | None = None) -> Image:
    """The image `LAYOUT[:REF]` for `platform` (os/arch[/variant], default the host's)."""
    layout, ref = split_image_arg(arg)
    layout = os.path.abspath(layout)
    platform = platform or host_platform()
    index = _read_index(layout)
    descriptor = _pick(index["manifests"], ref, "index.json", layout)
    where = "index.json"
    for _ in range(8):      # an index may point at an index (nested, per platform)
        media = descriptor.get("mediaType")
        doc = read_blob_json(layout, descriptor, where)
        media = media or doc.get("mediaType")
        if media in INDEX_TYPES or (media is None and "manifests" in doc):
            candidates = [d for d in doc.get("manifests") or [] if isinstance(d, dict) and _matches_platform(d, platform)]
            if not candidates:
                raise ImageError(f"{layout}: no image for platform {platform}")
            descriptor = candidates[0]
            where = f"index {descriptor.get('digest')}"
            continue
        if media not in MANIFEST_TYPES and not (media is None and "layers" in doc):
            raise ImageError(f"{where}: unsupported manifest media type {media!r}")
        return _image_from_manifest(layout, descriptor["digest"], doc, platform)
    raise ImageError(f"{layout}: image indexes nested too deep")


def _image_from_manifest(layout: str, digest: str, manifest: dict, platform: str) -> Image:
    where = f"manifest {digest}"
    config = read_blob_json(layout, manifest.get("config"), f"{where}.config")
    if (config.get("rootfs") or {}).get("type") != "layers":
        raise ImageError(f"{where}.config: rootfs.type must be \"layers\"")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    layers_doc = manifest.get("layers")
    if not isinstance(layers_doc, list) or not isinstance(diff_ids, list) or len(diff_ids) != len(layers_doc):
        raise ImageError(f"{where}: the config's rootfs.diff_ids do not match the manifest's layers")
    have = [config.get("os"), config.get("architecture"), config.get("variant")]
    want = platform.split("/")
    for i, value in enumerate(want[:3]):
        if have[i] and have[i] != value:
            image_platform = "/".join(v for v in have if v)
            raise ImageError(f"{where}: the image is for {image_platform}, not {platform}")
    layers = []
    for i, (desc, diff_id) in enumerate(zip(layers_doc, diff_ids)):
        lw = f"{where}.layers[{i}]"
        if not isinstance(desc, dict):
            raise ImageError(f"{lw}: descriptor must be an object")
        media = desc.get("mediaType")
        if media not in LAYER_TYPES:
            raise ImageError(f"{lw}: unsupported layer media type {media!r}")
        check_digest(desc.get("digest"), f"{lw}.digest")
        alg, _ = check_digest(diff_id, f"{where}.config.rootfs.diff_ids[{i}]")
        if alg != "sha256":
            raise ImageError(f"{where}.config.rootfs.diff_ids[{i}]: only sha256 diff_ids are supported")
        size = desc.get("size")
        layers.append(Layer(desc["digest"], size if isinstance(size, int) else -1, media, LAYER_TYPES[media], diff_id))
    return Image(layout, digest, config, layers)
