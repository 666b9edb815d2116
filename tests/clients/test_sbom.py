"""The SBOM of a real image of this app, built by the real Docker engine and pushed by push-image
to the real local registry; its contents checked against what the running image itself reports.
Tampered images are made by adding a layer through the registry API, as a later build would."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from packageurl import PackageURL

from aiship.app.card import file_sha256, read_card
from aiship.clients.docker import docker
from aiship.clients.registry import (
    DOCKER_MANIFEST,
    ImageRef,
    Manifest,
    RegistryClient,
    RegistryLogin,
    sha256_digest,
)
from aiship.clients.sbom import image_sbom, sbom_model, validate_sbom
from aiship.commands.push_image import push_image
from aiship.local.registry_server import LocalRegistry
from aiship.support.errors import IntegrityError
from aiship.support.labels import BASE_DIGEST, BASE_NAME
from tests.registries import put_image, tar_archive

pytestmark = pytest.mark.docker

REPOSITORY = "aiship/app"
# The site folders of the image, for the independent readings from inside the running image.
SITE_DIRS = ("/opt/venv/lib/python3.11/site-packages", "/usr/lib/python3/dist-packages")


@dataclass(frozen=True)
class Pushed:
    client: RegistryClient
    name: str  # REGISTRY/REPOSITORY
    digest: str
    local: str  # the local image, for `docker run`
    model_dir: Path


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, image_builder, trained_model_dir):
    """The app image with the sample model, built and pushed once for the module."""
    with LocalRegistry(tmp_path_factory.mktemp("sbom-registry")) as registry:
        tag = f"{registry.host}/{REPOSITORY}:sbom"
        image_builder(trained_model_dir, tag=tag)
        login = RegistryLogin(registry.host)
        digest = push_image(login, ImageRef.parse(tag)).digest
        yield Pushed(
            RegistryClient(login), f"{registry.host}/{REPOSITORY}", digest, tag, trained_model_dir
        )


@pytest.fixture(scope="module")
def sbom(pushed) -> dict:
    return image_sbom(pushed.client, REPOSITORY, pushed.digest, name=pushed.name)


def libraries(document: dict) -> dict[str, dict]:
    """The Python distributions of an SBOM by their normalised names."""
    return {
        normalise(c["name"]): c
        for c in document["components"]
        if c.get("purl", "").startswith("pkg:pypi/")
    }


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def in_image(image: str, *command: str, entrypoint: str = "") -> str:
    """COMMAND's output in a container of IMAGE (with ENTRYPOINT, if given), with no network."""
    options = ["--entrypoint", entrypoint] if entrypoint else []
    return docker(["run", "--rm", "--network", "none", *options, image, *command], timeout=120)


def test_the_sbom_of_a_real_image_validates_and_carries_the_model_and_its_card(pushed, sbom):
    validate_sbom(sbom)

    card = read_card(pushed.model_dir)
    onnx_sha256 = file_sha256(pushed.model_dir / "model.onnx")
    assert sbom_model(sbom) == (card.name, card.version, onnx_sha256)
    assert card.sha256 == onnx_sha256
    assert sbom["metadata"]["component"]["version"] == pushed.digest
    assert sbom["metadata"]["component"]["type"] == "container"
    (model,) = [c for c in sbom["components"] if c["type"] == "machine-learning-model"]
    parameters = model["modelCard"]["modelParameters"]
    assert parameters["inputs"] == [{"format": "input: FP32 [-1, 64]"}]
    assert parameters["outputs"] == [
        {"format": "label: INT64 [-1]"},
        {"format": "probabilities: FP32 [-1, 10]"},
    ]
    assert model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"] == [
        {"type": "accuracy", "value": str(card.metrics["accuracy"])}
    ]


def test_it_lists_what_pip_in_the_image_lists_with_the_versions_installed(pushed, sbom):
    paths = [arg for site in SITE_DIRS for arg in ("--path", site)]
    listed = json.loads(
        in_image(
            pushed.local,
            *("-m", "pip", "list", "--format", "json", "--disable-pip-version-check", *paths),
            entrypoint="/usr/bin/python3",  # the image's python, a venv without pip
        )
    )
    found = libraries(sbom)

    assert {normalise(p["name"]): p["version"] for p in listed} == {
        name: c["version"] for name, c in found.items()
    }
    assert {"flask", "onnxruntime", "numpy", "granian"} <= found.keys()
    assert found["flask"]["purl"] == f"pkg:pypi/flask@{found['flask']['version']}"


def test_each_wheel_installed_distribution_is_hashed_by_its_record(pushed, sbom):
    script = (
        "import glob, hashlib, json, os\n"
        f"records = [r for s in {list(SITE_DIRS)!r}\n"
        "           for r in glob.glob(s + '/*.dist-info/RECORD')]\n"
        "print(json.dumps({os.path.dirname(r): hashlib.sha256(open(r, 'rb').read()).hexdigest()"
        " for r in records}))\n"
    )
    hashed = json.loads(in_image(pushed.local, "python", "-c", script))

    recorded = {
        c["evidence"]["occurrences"][0]["location"]: c["hashes"][0]["content"]
        for c in libraries(sbom).values()
        if "hashes" in c
    }
    assert recorded == hashed
    assert len(hashed) >= 15


# What dpkg-query reports of each package in the image: status, name, version, arch, source.
DPKG_FORMAT = (
    "${db:Status-Status}\\t${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\n"
)
# Each environment's distributions as importlib.metadata finds them on its own sys.path.
DISTRIBUTIONS = (
    "import importlib.metadata as m, json\n"
    "print(json.dumps(sorted({(d.metadata['Name'], d.version) for d in m.distributions()})))\n"
)


def debian_packages(document: dict) -> dict[tuple[str, str], dict]:
    """The SBOM's Debian packages by (name, architecture)."""
    return {
        (c["name"], _property(c, "aiship:deb.architecture")): c
        for c in document["components"]
        if c.get("purl", "").startswith("pkg:deb/")
    }


def _property(component: dict, name: str) -> str:
    return next(p["value"] for p in component["properties"] if p["name"] == name)


def test_it_lists_every_debian_package_dpkg_in_the_image_reports(pushed, sbom):
    reported = [
        line.split("\t")
        for line in in_image(pushed.local, "dpkg-query", "-W", "-f", DPKG_FORMAT).splitlines()
    ]
    installed = {
        (name, arch): (version, source)
        for status, name, version, arch, source in reported
        if status not in ("not-installed", "config-files")
    }
    found = debian_packages(sbom)

    assert {
        key: (c["version"], _property(c, "aiship:deb.source")) for key, c in found.items()
    } == installed
    assert {"libc6", "python3.11-minimal", "libssl3"} <= {name for name, _ in installed}
    libc6 = found["libc6", "amd64"]
    assert (
        libc6["purl"]
        == PackageURL(
            type="deb",
            namespace="debian",
            name="libc6",
            version=libc6["version"],
            qualifiers={"arch": "amd64", "distro": "debian-12"},
        ).to_string()
    )
    assert _property(libc6, "aiship:deb.source") == "glibc"


def test_it_lists_the_distributions_of_every_python_environment_in_the_image(pushed, sbom):
    """The system's interpreter and the venv's, each asked for what it can import."""
    found = {(normalise(c["name"]), c["version"]) for c in libraries(sbom).values()}
    for python in ("/usr/bin/python3", "/opt/venv/bin/python"):
        listed = json.loads(in_image(pushed.local, "-c", DISTRIBUTIONS, entrypoint=python))
        assert listed, python
        assert {(normalise(name), version) for name, version in listed} <= found, python


def test_it_names_cpython_with_the_version_the_image_runs(pushed, sbom):
    version = in_image(
        pushed.local,
        "-c",
        "import platform; print(platform.python_version())",
        entrypoint="/usr/bin/python3",
    ).strip()

    (cpython,) = [c for c in sbom["components"] if c["name"] == "cpython"]
    assert cpython["version"] == version
    assert cpython["purl"] == f"pkg:generic/cpython@{version}"
    assert {"location": "/usr/bin/python3.11"} in cpython["evidence"]["occurrences"]


def test_it_names_the_base_image_by_the_digest_resolved_at_build_time(pushed, sbom, base_image):
    engine = json.loads(docker(["image", "inspect", base_image], timeout=60))[0]
    digests = [d.partition("@")[2] for d in engine.get("RepoDigests") or []]
    labels = json.loads(docker(["image", "inspect", pushed.local], timeout=60))[0]["Config"][
        "Labels"
    ]

    (base,) = [c for c in sbom["components"] if c["bom-ref"] == "base-image"]
    assert base["name"] == base_image == labels[BASE_NAME]
    assert base["version"] == labels[BASE_DIGEST] == (digests[0] if digests else engine["Id"])
    assert [p["value"] for p in base["properties"]] == engine["RootFS"]["Layers"]


# --- images changed by one more layer ----------------------------------------------------------


def add_layer(pushed: Pushed, files: dict[str, bytes], labels: dict | None = None) -> str:
    """Push the image with one more layer holding FILES (names starting `.wh.` are whiteouts),
    and LABELS changed; returns the new image's digest."""
    client = pushed.client
    manifest = client.manifest(REPOSITORY, pushed.digest).json()
    config = json.loads(client.blob(REPOSITORY, manifest["config"]["digest"]))
    tar = tar_archive(files)
    layer = gzip.compress(tar)
    config["rootfs"]["diff_ids"].append(sha256_digest(tar))
    config["history"].append({"created_by": "a test's layer"})
    config["config"]["Labels"].update(labels or {})
    body = json.dumps(config).encode()
    manifest["config"] |= {"digest": client.push_blob(REPOSITORY, body), "size": len(body)}
    manifest["layers"].append(
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "digest": client.push_blob(REPOSITORY, layer),
            "size": len(layer),
        }
    )
    data = json.dumps(manifest).encode()
    changed = Manifest(sha256_digest(data), DOCKER_MANIFEST, data)
    client.push_manifest(REPOSITORY, f"changed-{changed.digest[7:19]}", changed)
    return changed.digest


def sbom_of(pushed: Pushed, digest: str) -> dict:
    return image_sbom(pushed.client, REPOSITORY, digest, name=pushed.name)


def test_later_layers_override_and_whiteouts_delete(pushed, sbom):
    flask = libraries(sbom)["flask"]["evidence"]["occurrences"][0]["location"].lstrip("/")
    site = flask.rsplit("/", 1)[0]
    metadata = b"Metadata-Version: 2.1\nName: Flask\nVersion: 99.0\n"
    changed = add_layer(
        pushed,
        {
            f"{site}/.wh.{flask.rsplit('/', 1)[1]}": b"",  # Flask uninstalled ...
            f"{site}/flask-99.0.dist-info/METADATA": metadata,  # ... and another installed
            "usr/lib/python3/dist-packages/.wh..wh..opq": b"",  # the system's packages gone
        },
    )

    document = sbom_of(pushed, changed)
    found = libraries(document)

    flasks = [c for c in document["components"] if normalise(c["name"]) == "flask"]
    assert [(c["version"], "hashes" in c) for c in flasks] == [("99.0", False)]  # no RECORD
    assert {"pip", "setuptools", "wheel"} & libraries(sbom).keys()
    assert not {"pip", "setuptools", "wheel"} & found.keys()
    assert found.keys() == libraries(sbom).keys() - {"pip", "setuptools", "wheel"}


def test_a_layer_that_changes_the_model_is_refused(pushed):
    changed = add_layer(pushed, {"model/model.onnx": b"not the model the card describes"})
    altered = hashlib.sha256(b"not the model the card describes").hexdigest()

    with pytest.raises(IntegrityError, match=f"model.onnx in .* hashes to {altered}, but its"):
        sbom_of(pushed, changed)


def test_a_model_and_card_swapped_together_still_disagree_with_the_label(pushed):
    other = b"another model"
    card = json.loads((pushed.model_dir / "model.json").read_text())
    card["sha256"] = hashlib.sha256(other).hexdigest()
    changed = add_layer(
        pushed, {"model/model.onnx": other, "model/model.json": json.dumps(card).encode()}
    )

    with pytest.raises(IntegrityError, match=r"labelled aiship\.model\.sha256=[0-9a-f]{64}, but"):
        sbom_of(pushed, changed)


def test_the_label_is_held_to_the_model_in_the_layers(pushed):
    changed = add_layer(pushed, {}, labels={"aiship.model.sha256": "ab" * 32})

    with pytest.raises(IntegrityError, match=f"labelled aiship.model.sha256={'ab' * 32}, but"):
        sbom_of(pushed, changed)


def test_an_image_without_a_model_is_refused(registry):
    digest = put_image(registry, REPOSITORY, "no-model", {"aiship.model.sha256": "ab" * 32})
    client = RegistryClient(RegistryLogin(registry.host))

    with pytest.raises(IntegrityError, match=r"has no /model/model\.onnx and /model/model\.json"):
        image_sbom(client, REPOSITORY, digest, name=f"{registry.host}/{REPOSITORY}")


def test_a_layer_altered_in_the_registry_is_refused(registry):
    digest = put_image(registry, REPOSITORY, "altered", {}, content=b"as pushed\n")
    client = RegistryClient(RegistryLogin(registry.host))
    layer = client.manifest(REPOSITORY, digest).json()["layers"][0]["digest"]
    stored = next(registry.root.rglob(f"blobs/sha256/*/{layer[7:]}/data"))
    # A readable layer, just not the pushed one.
    stored.write_bytes(gzip.compress(tar_archive({"other.txt": b""})))

    with pytest.raises(IntegrityError, match=f"layer {layer} of {REPOSITORY} does not match"):
        image_sbom(client, REPOSITORY, digest, name=f"{registry.host}/{REPOSITORY}")


# --- validation and the model's identity -------------------------------------------------------


def test_validation_refuses_a_document_missing_a_required_field(sbom):
    broken = copy.deepcopy(sbom)
    del broken["bomFormat"]

    with pytest.raises(IntegrityError, match=r"at \$: 'bomFormat' is a required property"):
        validate_sbom(broken)


def test_validation_refuses_a_component_of_an_unknown_type(sbom):
    broken = copy.deepcopy(sbom)
    broken["components"][0]["type"] = "model"

    with pytest.raises(IntegrityError, match=r"at \$\.components\[0\]\.type: 'model' is not one"):
        validate_sbom(broken)


def test_validation_refuses_a_field_the_schema_does_not_know(sbom):
    broken = copy.deepcopy(sbom)
    broken["metadata"]["component"]["sha256"] = "ab" * 32

    with pytest.raises(IntegrityError, match=r"at \$\.metadata\.component: Additional properties"):
        validate_sbom(broken)


def test_validation_refuses_another_spec_version(sbom):
    with pytest.raises(IntegrityError, match=r"not a CycloneDX 1\.6 JSON document"):
        validate_sbom({**sbom, "specVersion": "1.5"})


def test_sbom_model_wants_exactly_one_model(sbom):
    (model,) = [c for c in sbom["components"] if c["type"] == "machine-learning-model"]
    others = [c for c in sbom["components"] if c is not model]

    with pytest.raises(IntegrityError, match="lists 0 machine-learning-model components"):
        sbom_model({**sbom, "components": others})
    nested = {**others[0], "components": [model]}  # a second one, nested in another component
    with pytest.raises(IntegrityError, match="lists 2 machine-learning-model components"):
        sbom_model({**sbom, "components": [model, nested]})
    unhashed = {**model, "hashes": []}
    with pytest.raises(IntegrityError, match="lacks its name, version or SHA-256"):
        sbom_model({**sbom, "components": [unhashed]})


# --- a layered image made by hand ---------------------------------------------------------------

DPKG_STATUS = b"""Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs.

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.17-1~deb12u2
Description: Secure Sockets Layer toolkit - cryptographic utility

Package: gone
Status: deinstall ok config-files
Architecture: all
Version: 1.0
"""
# distroless keeps one file per package, without a Status.
STATUS_D = b"Package: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all\n"


def push_layers(client: RegistryClient, layers: list[dict[str, bytes]], labels: dict) -> str:
    """An image of LAYERS (each a dict of files), pushed through the registry API; its digest."""
    tars = [tar_archive(files) for files in layers]
    blobs = [gzip.compress(tar) for tar in tars]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar) for tar in tars]},
    }
    body = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": client.push_blob(REPOSITORY, body),
            "size": len(body),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": client.push_blob(REPOSITORY, blob),
                "size": len(blob),
            }
            for blob in blobs
        ],
    }
    data = json.dumps(manifest).encode()
    pushed = Manifest(sha256_digest(data), DOCKER_MANIFEST, data)
    client.push_manifest(REPOSITORY, "layered", pushed)
    return pushed.digest


def test_a_layered_image_lists_its_debian_packages_cpython_venv_and_base(
    registry, trained_model_dir
):
    client = RegistryClient(RegistryLogin(registry.host))
    model = {
        f"model/{name}": (trained_model_dir / name).read_bytes()
        for name in ("model.onnx", "model.json")
    }
    site, dist = "opt/venv/lib/python3.11/site-packages", "usr/lib/python3/dist-packages"
    base = "sha256:" + "b" * 64
    digest = push_layers(
        client,
        [
            {
                "etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n',
                "var/lib/dpkg/status": DPKG_STATUS,
                # Debian's interpreter: PY_VERSION compiled in as a C string.
                "usr/bin/python3.11": b"\x7fELF...\x00loc_debug\x003.11.2\x00strict\x00...",
                f"{dist}/six-1.16.0.egg-info": b"Name: six\nVersion: 1.16.0\n",  # a file
            },
            {
                "var/lib/dpkg/status.d/tzdata": STATUS_D,
                "var/lib/dpkg/status.d/tzdata.md5sums": b"0123  usr/share/zoneinfo/UTC\n",
            },
            {
                f"{site}/flask-3.1.0.dist-info/METADATA": b"Name: Flask\nVersion: 3.1.0\n",
                "opt/venv/pyvenv.cfg": b"home = /usr/bin\nversion = 3.11.2\n",
                **model,
            },
        ],
        {
            "aiship.model.sha256": file_sha256(trained_model_dir / "model.onnx"),
            BASE_NAME: "python:3.11-slim",
            BASE_DIGEST: base,
        },
    )

    document = image_sbom(client, REPOSITORY, digest, name=f"{registry.host}/{REPOSITORY}")

    validate_sbom(document)
    assert {key: c["purl"] for key, c in debian_packages(document).items()} == {
        ("libc6", "amd64"): "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12",
        ("openssl", "amd64"): "pkg:deb/debian/openssl@3.0.17-1~deb12u2?arch=amd64&distro=debian-12",
        ("tzdata", "all"): "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all&distro=debian-12",
    }
    packages = debian_packages(document)
    assert _property(packages["libc6", "amd64"], "aiship:deb.source") == "glibc"
    assert _property(packages["openssl", "amd64"], "aiship:deb.source") == "openssl"
    assert packages["libc6", "amd64"]["description"] == "GNU C Library: Shared libraries"
    (cpython,) = [c for c in document["components"] if c["name"] == "cpython"]
    assert (cpython["version"], cpython["purl"]) == ("3.11.2", "pkg:generic/cpython@3.11.2")
    assert {(c["name"], c["version"], c["bom-ref"]) for c in libraries(document).values()} == {
        ("Flask", "3.1.0", f"/{site}/flask-3.1.0.dist-info"),
        ("six", "1.16.0", f"/{dist}/six-1.16.0.egg-info"),
    }
    (base_image,) = [c for c in document["components"] if c["bom-ref"] == "base-image"]
    assert (base_image["name"], base_image["version"]) == ("python:3.11-slim", base)
    assert base_image["purl"] == (
        f"pkg:oci/python@sha256:{'b' * 64}?repository_url=python&tag=3.11-slim"
    )
    assert len(base_image["properties"]) == 2  # the two layers below the first of ours
