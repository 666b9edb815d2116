"""The pause image as an OCI image layout (a tar), made from our own pause binary, and the
reproducible tars it is made of."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile

PAUSE_IMAGE = "aiship.local/pause:1"  # imported, never pulled
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def pause_image_layout(pause: bytes) -> bytes:
    """An OCI image layout (as a tar) of one layer holding /pause, named PAUSE_IMAGE."""
    layer_tar = tar_bytes({"pause": (pause, 0o755)})
    layer = gzip.compress(layer_tar, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    config = _json(
        {
            "architecture": GOARCH,
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
        }
    )
    index = _json(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    **_descriptor("application/vnd.oci.image.manifest.v1+json", manifest),
                    "platform": {"architecture": GOARCH, "os": "linux"},
                    "annotations": {"io.containerd.image.name": PAUSE_IMAGE},
                }
            ],
        }
    )
    files = {
        "oci-layout": (_json({"imageLayoutVersion": "1.0.0"}), 0o644),
        "index.json": (index, 0o644),
    }
    for blob in (layer, config, manifest):
        files[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = (blob, 0o644)
    return tar_bytes(files)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _descriptor(media_type: str, blob: bytes) -> dict:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
    }


def tar_bytes(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A tar of FILES (name -> (bytes, mode)), reproducible: no owners, no times."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
