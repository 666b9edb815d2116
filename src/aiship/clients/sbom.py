"""A CycloneDX 1.6 SBOM of an image, read from the image itself through the registry.

Nothing comes from our lock file or the build machine: the manifest, the config and the layer
blobs are read from the registry (each layer streamed, its digest checked as it arrives), the
layers are laid over one another as a container runtime would (later layers override earlier
ones, whiteouts delete), and the document lists what that file system holds: every Debian
package dpkg's database records (var/lib/dpkg/status, and status.d/ as distroless images keep
it), each CPython interpreter with the version compiled into it, every installed Python
distribution in every environment (the system's and any venv), the base image by the name and
digest build-image resolved, the operating system, and the model with its card. The schema
check uses the CycloneDX 1.6 JSON schema bundled with cyclonedx-python-lib (Apache-2.0; its
schema/_res/README.md names the specification commit). Package URLs are built with
packageurl-python, the purl specification's own library.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import re
import shlex
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from importlib import metadata

import urllib3
from packageurl import PackageURL

from aiship.app.card import CARD_FILE, MODEL_FILE, CardError, ModelCard, TensorSpec

from ..support.errors import IntegrityError, StepError, Unavailable
from ..support.labels import BASE_DIGEST, BASE_NAME, LABEL_MODEL_SHA256
from .registry import Manifest, RegistryClient

SPEC_VERSION = "1.6"
MODEL_TYPE = "machine-learning-model"
DEFAULT_MODEL_DIR = "/model"  # the Dockerfile's MODEL_DIR, when the config does not say
# Where the Dockerfile puts the app's packages and code: the first layer that adds anything
# here (or under the model folder) is the first of ours, so the layers below it are the base.
APP_ROOTS = ("opt/venv/", "opt/aiship/")
# An installed distribution's metadata (and RECORD) in a site folder; not the copies that
# some packages vendor inside themselves, which pip does not count as installed.
DISTRIBUTION = re.compile(
    r"^(?:.*/)?(?:site|dist)-packages/[^/]+\.(?:dist-info/(?:METADATA|RECORD)|egg-info(?:/PKG-INFO)?)$"
)
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
# dpkg's database: one file of paragraphs, or (distroless) one file per package; its .md5sums
# beside them are file lists, not packages.
DPKG_STATUS = re.compile(r"^var/lib/dpkg/(?:status|status\.d/[^/]+)$")
DPKG_LIMIT = 64 << 20  # a status file is read whole; a full Debian desktop's is about 10 MiB
# Statuses under which dpkg has no files of the package on disk.
DPKG_ABSENT = ("not-installed", "config-files")
# A CPython interpreter: its binary, or the libpython it links (where PY_VERSION is compiled
# in); (?P<minor>) is the version its name carries.
INTERPRETER = re.compile(
    r"^(?P<prefix>(?:.*/)?)(?:bin/python|lib/(?:[^/]+/)?libpython)(?P<minor>3\.\d+)"
    r"(?:\.so(?:\.[0-9]+)*)?$"
)
WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
READABLE_LAYERS = ("tar", "tar+gzip", "tar.gzip")  # media type endings tarfile can stream
TEXT_LIMIT = 1 << 20  # enough for any METADATA's headers, model.json or os-release
CHUNK = 1 << 20


@dataclass(frozen=True)
class _File:
    """A file of interest as a layer left it: where, its SHA-256, and its text when kept."""

    layer: int
    sha256: str
    text: bytes = b""  # the head of a file parsed, all of a dpkg database file
    version: str = ""  # the version compiled into an interpreter


@dataclass(frozen=True)
class _Image:
    """The image's file system, as far as the SBOM needs it, and where its base ends."""

    files: dict[str, _File]
    base_layers: int


def image_sbom(client: RegistryClient, repository: str, digest: str, *, name: str) -> dict:
    """CycloneDX 1.6 JSON of REPOSITORY@DIGEST; `name` is the image as people know it,
    REGISTRY/REPOSITORY (the component's name and the purl's repository_url)."""
    manifest = _image_manifest(client, repository, digest)
    config = client.image_configs(repository, manifest)[0]
    layers = manifest.json().get("layers") or []
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layers):
        raise IntegrityError(
            f"{name}@{digest} lists {len(layers)} layers but its config {len(diff_ids)}: "
            "the image is malformed; build and push it again"
        )
    settings = config.get("config") or {}
    labels = settings.get("Labels") or {}
    model_dir = _env(settings.get("Env") or [], "MODEL_DIR", DEFAULT_MODEL_DIR).strip("/")
    image = _read_layers(client, repository, layers, model_dir)
    release = _os_release(image)
    packages = _distributions(image, layers)
    model = _model(image, model_dir, labels, f"{name}@{digest}")
    base = _base(image, diff_ids, labels, manifest.json().get("annotations") or {})
    system = _operating_system(image, layers, release)
    components = [
        base,
        *([system] if system else []),
        model,
        *_interpreters(image, layers),
        *_debian_packages(image, layers, release),
        *packages,
    ]
    subject = _image_component(name, digest, labels)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": uuid.uuid4().urn,
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [_tool()]},
            "component": subject,
        },
        "components": components,
        "dependencies": [
            {"ref": subject["bom-ref"], "dependsOn": [c["bom-ref"] for c in components]}
        ],
    }


def validate_sbom(document: dict) -> None:
    """Hold DOCUMENT to the CycloneDX 1.6 JSON schema (strict: no unknown fields)."""
    # Imported here: only validating needs the schema machinery (jsonschema, referencing).
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    if not isinstance(document, dict) or document.get("specVersion") != SPEC_VERSION:
        raise IntegrityError(
            f"the SBOM is not a CycloneDX {SPEC_VERSION} JSON document (specVersion "
            f"{document.get('specVersion') if isinstance(document, dict) else None!r}): "
            "generate it again"
        )
    found = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    if found is not None:
        error = found.data  # jsonschema's ValidationError
        message = " ".join(str(error.message).split())
        raise IntegrityError(
            f"the SBOM breaks the CycloneDX {SPEC_VERSION} schema at {error.json_path}: "
            f"{message[:200]}: fix its generator or generate it again"
        )


def sbom_model(document: dict) -> tuple[str, str, str]:
    """(name, version, sha256) of the document's one machine-learning-model component."""
    models = [c for c in _all_components(document) if c.get("type") == MODEL_TYPE]
    if len(models) != 1:
        raise IntegrityError(
            f"the SBOM lists {len(models)} {MODEL_TYPE} components, not one: "
            "generate it from the image again"
        )
    model = models[0]
    sha256 = next(
        (h.get("content") for h in model.get("hashes") or [] if h.get("alg") == "SHA-256"), None
    )
    if not sha256 or not model.get("name") or not model.get("version"):
        raise IntegrityError(
            "the SBOM's model component lacks its name, version or SHA-256 hash: "
            "generate it from the image again"
        )
    return str(model["name"]), str(model["version"]), str(sha256)


# --- reading the image -------------------------------------------------------------------------


def _image_manifest(client: RegistryClient, repository: str, digest: str) -> Manifest:
    """The image manifest of DIGEST: itself, or an index's one image (attestations aside)."""
    manifest = client.manifest(repository, digest)
    if not manifest.is_index:
        return manifest
    children = [
        child
        for child in manifest.json().get("manifests") or []
        if (child.get("platform") or {}).get("os") != "unknown"
    ]
    if len(children) != 1:
        raise StepError(
            f"{repository}@{digest} is an index of {len(children)} images: give the digest of "
            "the one platform's image to describe"
        )
    return client.manifest(repository, children[0]["digest"])


def _read_layers(
    client: RegistryClient, repository: str, layers: list[dict], model_dir: str
) -> _Image:
    """Lay the layers over one another, keeping only the files the SBOM describes."""
    files: dict[str, _File] = {}
    base_layers = None
    ours = (*APP_ROOTS, model_dir + "/")
    for index, descriptor in enumerate(layers):
        with _layer(client, repository, descriptor) as tar:
            if _apply(files, index, tar, model_dir, ours) and base_layers is None:
                base_layers = index
    return _Image(files, len(layers) if base_layers is None else base_layers)


def _apply(
    files: dict[str, _File], index: int, tar: tarfile.TarFile, model_dir: str, ours: tuple[str, ...]
) -> bool:
    """Apply one layer to FILES (the layers below it); whether it adds anything of ours."""
    added: dict[str, _File] = {}
    adds_ours = False
    for member in tar:
        path = posixpath.normpath(member.name.lstrip("/")).removeprefix("./")
        folder, base = posixpath.split(path)
        if base == OPAQUE:  # whiteouts delete from the layers below, not from this one
            _drop(files, folder, keep_self=True)
            continue
        if base.startswith(WHITEOUT):
            _drop(files, posixpath.join(folder, base.removeprefix(WHITEOUT)))
            continue
        adds_ours = adds_ours or (path + "/").startswith(ours)
        if not member.isdir():  # a file, link or device hides what lay below at its path
            _drop(files, path)
        if not _wanted(path, model_dir) or not (member.isfile() or member.islnk()):
            continue
        if member.islnk():  # a hard link to a file earlier in this layer
            target = posixpath.normpath(member.linkname.lstrip("/")).removeprefix("./")
            if target not in added:
                raise StepError(
                    f"/{path} in layer {index} is a hard link to /{target}, which this reader "
                    "did not keep: report it with the image digest"
                )
            added[path] = added[target]
            continue
        added[path] = _read_member(tar, member, index, path)
    files.update(added)
    return adds_ours


def _wanted(path: str, model_dir: str) -> bool:
    return (
        bool(DISTRIBUTION.match(path))
        or _dpkg_file(path)
        or bool(INTERPRETER.match(path))
        or path in OS_RELEASE
        or path in (f"{model_dir}/{MODEL_FILE}", f"{model_dir}/{CARD_FILE}")
    )


def _drop(files: dict[str, _File], path: str, *, keep_self: bool = False) -> None:
    """Forget PATH and everything under it (an opaque directory keeps itself)."""
    for known in [k for k in files if k.startswith(path + "/") or (k == path and not keep_self)]:
        del files[known]


def _dpkg_file(path: str) -> bool:
    return bool(DPKG_STATUS.match(path)) and not path.endswith(".md5sums")


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, layer: int, path: str) -> _File:
    """Hash a file in chunks, keeping what the SBOM parses: the head of a small file, all of a
    dpkg database, the version string inside an interpreter."""
    whole = _dpkg_file(path)
    if whole and member.size > DPKG_LIMIT:
        raise IntegrityError(
            f"/{path} in layer {layer} is {member.size} bytes, more than the {DPKG_LIMIT} a dpkg "
            "database can plausibly be: the image is malformed; rebuild it"
        )
    interpreter = INTERPRETER.match(path)
    keep = 0 if path.endswith(("RECORD", ".onnx")) or interpreter else TEXT_LIMIT
    keep = DPKG_LIMIT if whole else keep
    # PY_VERSION as the C string it is compiled in as (syft's binary classifier reads it so).
    pattern = (
        re.compile(rb"\x00(" + re.escape(interpreter["minor"].encode()) + rb"\.\d+[a-z0-9+]*)\x00")
        if interpreter
        else None
    )
    digest, text, tail, version = hashlib.sha256(), b"", b"", ""
    source = tar.extractfile(member)
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        if len(text) < keep:
            text += chunk[: keep - len(text)]
        if pattern and not version:
            found = pattern.search(tail + chunk)  # a string may straddle two chunks
            version = found.group(1).decode() if found else ""
            tail = chunk[-64:]
    return _File(layer, digest.hexdigest(), text, version)


class _Verified:
    """A blob's bytes as they arrive, hashed on the way; `check()` reads the rest and compares."""

    def __init__(self, stream, digest: str, what: str) -> None:
        self.stream, self.digest, self.what = stream, digest, what
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.hash.update(data)
        return data

    def check(self) -> None:
        while self.read(CHUNK):
            pass
        if "sha256:" + self.hash.hexdigest() != self.digest:
            raise IntegrityError(f"{self.what} does not match its digest: push the image again")


@contextmanager
def _layer(client: RegistryClient, repository: str, descriptor: dict) -> Iterator[tarfile.TarFile]:
    """A layer as a tar stream, never whole in memory; its digest is checked when it ends."""
    digest, media_type = descriptor.get("digest", ""), descriptor.get("mediaType", "")
    if not media_type.endswith(READABLE_LAYERS):
        raise StepError(
            f"layer {digest} of {repository} is {media_type}, which this SBOM cannot read: "
            "build the image with gzip layers (Docker's default)"
        )
    response = client.call(
        "GET", f"/v2/{repository}/blobs/{digest}", repository, "pull", stream=True
    )
    with response:
        # Not ok: the client's own error for this answer (or, should a retry succeed, the bytes).
        stream = response.raw if response.ok else io.BytesIO(client.blob(repository, digest))
        blob = _Verified(stream, digest, f"layer {digest} of {repository}")
        try:
            with tarfile.open(fileobj=blob, mode="r|*") as tar:
                yield tar
            blob.check()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise IntegrityError(
                f"layer {digest} of {repository} is not a readable tar ({exc}): push it again"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(
                f"registry {client.login.host} broke off layer {digest} of {repository} "
                f"({type(exc).__name__}): try again"
            ) from None


# --- the components ----------------------------------------------------------------------------


def _image_component(name: str, digest: str, labels: dict) -> dict:
    purl = oci_purl(name, digest)
    return {
        "type": "container",
        "bom-ref": purl,
        "name": name,
        "version": digest,
        "hashes": [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}],
        "purl": purl,
        "properties": [{"name": k, "value": str(v)} for k, v in sorted(labels.items())],
    }


def _distributions(image: _Image, layers: list[dict]) -> list[dict]:
    """Each installed distribution: the metadata of a *.dist-info (or Debian's *.egg-info)."""
    found = []
    for path, file in sorted(image.files.items()):
        if not path.endswith(("/METADATA", "/PKG-INFO", ".egg-info")):
            continue
        # An .egg-info may be a file of its own (distutils wrote them so), not a folder.
        folder = path if path.endswith(".egg-info") else posixpath.dirname(path)
        headers = BytesHeaderParser().parsebytes(file.text)
        name, version = headers.get("Name"), headers.get("Version")
        if not name or not version:
            raise IntegrityError(
                f"/{path} in the image names no distribution (Name, Version): the "
                "package is broken; rebuild the image"
            )
        normalized = re.sub(r"[-_.]+", "-", name).lower()
        component = {
            "type": "library",
            "bom-ref": f"/{folder}",
            "name": name,
            "version": version,
            "purl": PackageURL(type="pypi", name=normalized, version=version).to_string(),
        }
        if headers.get("Summary"):
            component["description"] = " ".join(headers["Summary"].split())
        if licenses := _licenses(headers):
            component["licenses"] = licenses
        # RECORD lists every file pip installed with that file's own SHA-256, so its hash pins
        # the installed files as pip wrote them (files deleted after install, such as the test
        # suites the Dockerfile removes, stay listed). The wheel's hash cannot come from the
        # image: pip unpacks the wheel and keeps no copy of it. Debian's egg-info has no RECORD.
        record = image.files.get(f"{folder}/RECORD")
        if record:
            component["hashes"] = [{"alg": "SHA-256", "content": record.sha256}]
        component["evidence"] = {"occurrences": [{"location": f"/{folder}"}]}
        component["properties"] = [_layer_property(layers, file.layer)]
        found.append(component)
    return found


def _licenses(headers: Message) -> list[dict]:
    """License-Expression (PEP 639), else a one-line License field, else the classifiers."""
    if expression := headers.get("License-Expression"):
        return [{"expression": " ".join(expression.split())}]
    text = (headers.get("License") or "").strip()
    names = [text] if text and "\n" not in text and len(text) <= 100 else []
    names = names or [
        c.split("::")[-1].strip()
        for c in headers.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    return [{"license": {"name": n}} for n in dict.fromkeys(names)]


def _model(image: _Image, model_dir: str, labels: dict, where: str) -> dict:
    """The model as the layers hold it, checked against its card and the image's label."""
    onnx = image.files.get(f"{model_dir}/{MODEL_FILE}")
    card_file = image.files.get(f"{model_dir}/{CARD_FILE}")
    if onnx is None or card_file is None:
        raise IntegrityError(
            f"{where} has no /{model_dir}/{MODEL_FILE} and /{model_dir}/{CARD_FILE} in its "
            "layers: build it with build-image"
        )
    try:
        card = ModelCard.from_dict(json.loads(card_file.text))
    except (ValueError, CardError) as exc:
        raise IntegrityError(
            f"/{model_dir}/{CARD_FILE} in {where} is not a valid model card ({exc}): "
            "rebuild the image from a published model"
        ) from None
    if onnx.sha256 != card.sha256:
        raise IntegrityError(
            f"/{model_dir}/{MODEL_FILE} in {where} hashes to {onnx.sha256}, but its "
            f"{CARD_FILE} says {card.sha256}: a layer altered the model; rebuild the image"
        )
    label = labels.get(LABEL_MODEL_SHA256)
    if label != onnx.sha256:
        raise IntegrityError(
            f"{where} is labelled {LABEL_MODEL_SHA256}={label}, but the {MODEL_FILE} in its "
            f"layers hashes to {onnx.sha256}: the image was altered; rebuild it"
        )
    card_properties = [
        {"name": "aiship:model.framework", "value": card.framework},
        {"name": "aiship:model.created", "value": card.created},
    ]
    if card.labels is not None:
        card_properties.append({"name": "aiship:model.labels", "value": json.dumps(card.labels)})
    model_card: dict = {
        "modelParameters": {
            "inputs": [{"format": _tensor(t)} for t in card.inputs],
            "outputs": [{"format": _tensor(t)} for t in card.outputs],
        },
        "properties": card_properties,
    }
    if card.metrics:
        model_card["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {"type": k, "value": str(v)} for k, v in sorted(card.metrics.items())
            ]
        }
    return {
        "type": MODEL_TYPE,
        "bom-ref": f"model:{card.name}@{card.version}",
        "name": card.name,
        "version": card.version,
        "hashes": [{"alg": "SHA-256", "content": onnx.sha256}],
        "modelCard": model_card,
        "evidence": {"occurrences": [{"location": f"/{model_dir}/{MODEL_FILE}"}]},
    }


def _tensor(spec: TensorSpec) -> str:
    """`input: FP32 [-1, 64]`: name, Open Inference Protocol datatype, shape (-1 is free)."""
    return f"{spec.name}: {spec.datatype} {list(spec.shape)}"


def _base(image: _Image, diff_ids: list[str], labels: dict, annotations: dict) -> dict:
    """The base image: its name and digest as build-image resolved them, its layers always."""
    name = _recorded(labels, annotations, BASE_NAME)
    digest = _recorded(labels, annotations, BASE_DIGEST)
    component: dict = {"type": "container", "bom-ref": "base-image", "name": name or "base image"}
    if digest:
        component["version"] = digest
        component["hashes"] = [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]
        if name:
            component["purl"] = oci_purl(name, digest)
    else:
        component["description"] = (
            f"The build records no digest of its base image (no {BASE_DIGEST} label or "
            "annotation); it is identified by its layers' diff_ids, the layers below the "
            "first that adds the app, its packages or the model."
        )
    component["properties"] = [
        {"name": "aiship:layer.diff_id", "value": d} for d in diff_ids[: image.base_layers]
    ]
    return component


def _recorded(labels: dict, annotations: dict, key: str) -> str:
    """A label or annotation the build set; a Dockerfile built without build-image says
    "unknown", which is no value."""
    value = labels.get(key) or annotations.get(key) or ""
    return "" if value == "unknown" else value


def oci_purl(name: str, digest: str) -> str:
    """pkg:oci/NAME@DIGEST?repository_url=REGISTRY/REPOSITORY[&tag=TAG] of image NAME[:TAG]."""
    repository, tag = name.lower(), None
    if ":" in repository.rsplit("/", 1)[-1]:
        repository, tag = repository.rsplit(":", 1)
    qualifiers = {"repository_url": repository, **({"tag": tag} if tag else {})}
    return PackageURL(
        type="oci", name=repository.rsplit("/", 1)[-1], version=digest, qualifiers=qualifiers
    ).to_string()


def _os_release(image: _Image) -> tuple[dict[str, str], int] | None:
    """The fields of /etc/os-release (or /usr/lib/os-release) and its layer, when there is one."""
    file = next((image.files[p] for p in OS_RELEASE if p in image.files), None)
    if file is None:
        return None
    fields = {}
    for line in file.text.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            fields[key.strip()] = " ".join(shlex.split(value, comments=True))
    return fields, file.layer


def _operating_system(
    image: _Image, layers: list[dict], release: tuple[dict[str, str], int] | None
) -> dict | None:
    """The distribution os-release names, when there is one."""
    if release is None:
        return None
    fields, layer = release
    component = {
        "type": "operating-system",
        "bom-ref": "operating-system",
        "name": fields.get("ID", "linux"),
    }
    if fields.get("VERSION_ID"):
        component["version"] = fields["VERSION_ID"]
    if fields.get("PRETTY_NAME"):
        component["description"] = fields["PRETTY_NAME"]
    component["properties"] = [_layer_property(layers, layer)]
    return component


def _debian_packages(
    image: _Image, layers: list[dict], release: tuple[dict[str, str], int] | None
) -> list[dict]:
    """Every package dpkg's database holds with its files on disk, as a purl
    pkg:deb/<ID>/<name>@<version>?arch=<arch>&distro=<ID>-<VERSION_ID>."""
    fields = release[0] if release else {}
    namespace = fields.get("ID") or "debian"
    distro = f"{namespace}-{fields['VERSION_ID']}" if fields.get("VERSION_ID") else None
    found: dict[str, dict] = {}
    for path, file in sorted(image.files.items()):
        if not _dpkg_file(path):
            continue
        for package in _paragraphs(file.text.decode("utf-8", errors="replace")):
            status = package.get("Status", "install ok installed").split()
            if status[-1:] and status[-1] in DPKG_ABSENT:
                continue
            name, version = package.get("Package"), package.get("Version")
            if not name or not version:
                raise IntegrityError(
                    f"/{path} in the image holds a package without Package or Version: dpkg's "
                    "database is broken; rebuild the image"
                )
            arch = package.get("Architecture", "")
            qualifiers = {"arch": arch, **({"distro": distro} if distro else {})}
            purl = PackageURL(
                type="deb", namespace=namespace, name=name, version=version, qualifiers=qualifiers
            ).to_string()
            source, _, source_version = package.get("Source", name).partition(" ")
            properties = [
                {"name": "aiship:deb.architecture", "value": arch},
                {"name": "aiship:deb.source", "value": source},
                {
                    "name": "aiship:deb.source.version",
                    "value": source_version.strip("()") or version,
                },
                _layer_property(layers, file.layer),
            ]
            component = {"type": "library", "bom-ref": purl, "name": name, "version": version}
            if package.get("Maintainer"):
                component["publisher"] = package["Maintainer"]
            if package.get("Description"):
                component["description"] = package["Description"].split("\n", 1)[0]
            component |= {
                "purl": purl,
                "evidence": {"occurrences": [{"location": f"/{path}"}]},
                "properties": properties,
            }
            found[purl] = component
    return list(found.values())


def _paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a deb822 file (dpkg's status): fields, a continuation line each
    starting with a space, a blank line between paragraphs."""
    fields: dict[str, str] = {}
    key = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()


def _interpreters(image: _Image, layers: list[dict]) -> list[dict]:
    """Each CPython installation (a prefix such as /usr or /usr/local): the version compiled
    into its binary or libpython, else the one its file name carries."""
    found: dict[tuple[str, str], list[tuple[str, _File]]] = {}
    for path, file in sorted(image.files.items()):
        match = INTERPRETER.match(path)
        if match:
            found.setdefault((match["prefix"], match["minor"]), []).append((path, file))
    components = []
    for (prefix, minor), files in found.items():
        version = next((file.version for _, file in files if file.version), minor)
        components.append(
            {
                "type": "application",
                "bom-ref": f"cpython:/{prefix}",
                "name": "cpython",
                "version": version,
                "purl": PackageURL(type="generic", name="cpython", version=version).to_string(),
                "hashes": [{"alg": "SHA-256", "content": files[0][1].sha256}],
                "evidence": {"occurrences": [{"location": f"/{path}"} for path, _ in files]},
                "properties": [_layer_property(layers, files[0][1].layer)],
            }
        )
    return components


def _layer_property(layers: list[dict], index: int) -> dict:
    return {"name": "aiship:layer", "value": layers[index].get("digest", "")}


def _tool() -> dict:
    tool = {"type": "application", "name": "aiship", "description": "aiship.clients.sbom"}
    with suppress(metadata.PackageNotFoundError):  # a checkout that was never installed
        tool["version"] = metadata.version("aiship")
    return tool


def _env(entries: list[str], key: str, default: str) -> str:
    """A variable of the image config's Env (KEY=VALUE lines)."""
    for entry in entries:
        name, _, value = entry.partition("=")
        if name == key and value:
            return value
    return default


def _all_components(document: dict) -> Iterator[dict]:
    """Every component, nested ones too."""
    pending = list((document or {}).get("components") or [])
    while pending:
        component = pending.pop()
        if isinstance(component, dict):
            yield component
            pending += component.get("components") or []
