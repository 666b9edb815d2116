"""`local run`: the main job on one machine, the same steps in the same order as CI and release.

Stages: the stand-ins (local up, the sample model when the store holds none), CI (fetch-model,
build-image, push-image, verify-push, promote-image) and release (resolve-image; on kubernetes
staging first with its staging pass, the summary for the approval gate, then production through a
canary judged while traffic from the sample data set flows; on swarm a rolling deploy). Each step
calls the step function its command runs, and prints one line with its duration; a failing step
stops the pipeline where it stands.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from aiship.app.card import verify_model_dir

from ..support.errors import ConfigError, StepError
from ..support.git import git_branch, git_revision
from ..support.labels import default_tags
from ..support.paths import project_dir, project_manifests
from ..support.processes import spawn, stop
from .sample_model import train_module
from .server import HOST
from .stack import DEV_STORAGE, Cluster, Stack, locked, record_service, start_missing

if TYPE_CHECKING:
    from ..commands.deploy.release import DeployResult
    from ..commands.image_tags import ResolvedImage
    from ..commands.model_store import FetchedModel

log = logging.getLogger(__name__)

MODEL_NAME = "digits"
SAMPLE_VERSION = "1.0.0"
REPOSITORY = "aiship"
PROMOTED_TAG = "main"  # what CI moves after verify-push, and what the release resolves
TARGETS = ("swarm", "kubernetes")
K8S_STAGING = "aiship-staging"  # namespaces on the local cluster, one an environment
K8S_PRODUCTION = "aiship-production"
# Locally each canary step is watched this long (the analysis file's pauses are production's):
# the traffic below gives it enough samples in that time.
CANARY_PAUSE = 10.0
TRAFFIC_BATCH = 16  # rows a request: the prediction mix is judged on rows
SIGNING_KEY = "aiship"  # the local Notation key (.local/notation); CI signs with Key Vault's
# The first image of scikit-learn's digits data set (a 0), for the printed curl line.
SAMPLE_DIGIT = (
    "0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,"
    "0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0"
)


@dataclass(frozen=True)
class RunOptions:
    state_dir: Path | None = None
    approve: bool = False
    target: str = "kubernetes"
    service: str = "aiship"
    port: int = 8080
    base_image: str | None = None  # None: the local base image
    azurite_port: int | None = None
    registry_port: int | None = None
    timeout: float = 300.0
    terminal: bool = False  # whether the approval gate can ask on stdin


@dataclass
class RunState:
    """What the steps of one run hand on (as CI hands step outputs on), in the order they set
    it: each is None until its step has run."""

    model: FetchedModel | None = None  # fetch-model
    image: str | None = None  # build-image: REPOSITORY:TAG
    revision: str | None = None
    image_id: str | None = None
    digest: str | None = None  # push-image
    pinned: str | None = None  # REPOSITORY@DIGEST
    certificate: Path | None = None  # attest-image: the local signing certificate
    release: ResolvedImage | None = None  # resolve-image
    deploy: DeployResult | None = None  # the last deploy
    seconds: float | None = None  # the whole run


@dataclass
class Context:
    """One run: its options, the stack it runs on, and what its steps hand on."""

    options: RunOptions
    stack: Stack
    state: RunState = field(default_factory=RunState)

    def store(self):
        from ..clients.stores import ObjectModelStore, parse_store_url
        from ..clients.stores.azure_blob import AzureBlobStore

        blobs = AzureBlobStore(parse_store_url(self.stack.store_url), env=DEV_STORAGE)
        return ObjectModelStore(blobs)

    def login(self):
        from ..clients.registry import RegistryLogin

        return RegistryLogin(self.stack.registry_host)


@dataclass(frozen=True)
class Step:
    """One step; `command` is the `python -m aiship` command it is in the CI/release YAML."""

    name: str
    run: Callable[[Context], str]  # returns a short note for the flow line
    command: str | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    steps: tuple[Step, ...]


def stages(target: str = "kubernetes") -> tuple[Stage, ...]:
    """The pipeline, in order."""
    release = [
        Step("resolve-image", resolve, "resolve-image"),
        Step("verify-image", verify_release, "verify-image"),
    ]
    if target == "kubernetes":
        release += [
            Step("cluster up", cluster_up),  # where CI gets AKS credentials
            Step("deploy staging", deploy_staging, "deploy"),
            Step("release-summary", summarize_release, "release-summary"),
            Step("approve", approve),
            Step("deploy production", deploy_production, "deploy"),
        ]
    else:
        release += [Step("approve", approve), Step("deploy", deploy_swarm_service, "deploy")]
    return (
        Stage("stand-ins", (Step("local up", local_up), Step("sample model", sample_model))),
        Stage(
            "ci",
            (
                Step("fetch-model", fetch, "fetch-model"),
                Step("build-image", build, "build-image"),
                Step("push-image", push, "push-image"),
                Step("verify-push", verify, "verify-push"),
                Step("evaluate-model", evaluate, "evaluate-model"),
                Step("attest-image", attest, "attest-image"),
                Step("promote-image", promote, "promote-image"),
            ),
        ),
        Stage("release", tuple(release)),
    )


def step_commands(target: str = "kubernetes") -> list[str]:
    """The `python -m aiship` commands the pipeline runs, in order (compared with the YAML)."""
    return [step.command for stage in stages(target) for step in stage.steps if step.command]


def check_options(options: RunOptions) -> str:
    """What a run with these options would do, once they make sense together."""
    if options.target not in TARGETS:
        raise ConfigError(f"--target {options.target!r}: use one of {', '.join(TARGETS)}")
    if not (options.approve or options.terminal):
        raise ConfigError(
            "the release needs approval and there is no terminal to ask on: "
            "pass --approve to approve it in advance"
        )
    if options.target == "kubernetes":
        from .kube_node import check_prerequisites

        try:
            check_prerequisites()
        except ConfigError as exc:
            raise ConfigError(f"{exc} (or release to a local swarm: --target swarm)") from None
    return f"run {', '.join(step_commands(options.target))} against the local stand-ins"


def run_pipeline(options: RunOptions) -> RunSummary:
    """Every stage in order; the first failing step ends the run with its own error."""
    check_options(options)
    stack = Stack.load(options.state_dir)
    with locked(stack.state_dir):
        context = Context(options, Stack.load(stack.state_dir))
        started = time.monotonic()
        for stage in stages(options.target):
            begun = time.monotonic()
            for step in stage.steps:
                run_step(step, context)
            log.info("=== %s stage  %.1f s", stage.name, time.monotonic() - begun)
        context.state.seconds = round(time.monotonic() - started, 1)
    return summary(context)


def run_step(step: Step, context: Context) -> None:
    begun = time.monotonic()
    try:
        note = step.run(context)
    except BaseException:
        log.error("==> %-17s failed after %.1f s", step.name, time.monotonic() - begun)
        raise
    log.info("==> %-17s %5.1f s  %s", step.name, time.monotonic() - begun, note)


# The stand-ins


def local_up(context: Context) -> str:
    options = context.options
    started = start_missing(context.stack, options.azurite_port, options.registry_port)
    return f"started {', '.join(started)}" if started else "already running"


def sample_model(context: Context) -> str:
    """Publish model/train.py's sample model when the store holds no version of it."""
    from ..commands.model_store import publish_model, published_versions

    store = context.store()
    versions = published_versions(store, MODEL_NAME)
    if versions:
        return f"the store holds {MODEL_NAME} {', '.join(versions[-3:])}"
    with tempfile.TemporaryDirectory(prefix="aiship-sample-") as folder:
        train_module().write_model(Path(folder), name=MODEL_NAME, version=SAMPLE_VERSION)
        published = publish_model(store, Path(folder))
    return f"published the sample model {published.name} {published.version}"


# CI


def fetch(context: Context) -> str:
    from ..commands.model_store import LATEST, fetch_model

    dest = context.stack.state_dir / "run" / "model"
    fetched = fetch_model(context.store(), MODEL_NAME, dest, LATEST)
    context.state.model = fetched
    moved = f"placed {', '.join(fetched.placed)}" if fetched.placed else "verified, unchanged"
    return f"{fetched.name} {fetched.version} ({moved})"


def build(context: Context) -> str:
    from ..commands.build_image import ImageBuild, build_image
    from .base_image import image_id_of, usable_base_image

    model = context.state.model
    root = project_dir()
    revision = git_revision(root)
    repository = f"{context.stack.registry_host}/{REPOSITORY}"
    card = verify_model_dir(model.dest)
    tags = default_tags(repository, revision, card.version, git_branch(root))
    before = image_id_of(tags[0])
    built = build_image(
        ImageBuild(
            model_dir=model.dest,
            base_image=context.options.base_image or usable_base_image(),
            tags=tags,
            revision=revision,
        ),
        root=root,
    )
    context.state.image, context.state.revision = tags[0], revision
    context.state.image_id = built.image_id
    same = "the same image as before" if before == built.image_id else "a new image"
    return f"{tags[0]} ({same}, {built.image_id[:19]})"


def push(context: Context) -> str:
    from ..clients.registry import ImageRef
    from ..commands.push_image import push_image

    pushed = push_image(context.login(), ImageRef.parse(context.state.image))
    context.state.digest, context.state.pinned = pushed.digest, pushed.pinned
    return f"{pushed.layers_pushed} layers pushed, {pushed.layers_present} already there"


def verify(context: Context) -> str:
    from ..clients.registry import ImageRef
    from ..commands.verify_push import verify_push

    verify_push(
        context.login(),
        ImageRef.parse(context.state.image),
        context.state.digest,
        expect_revision=context.state.revision,
        expect_model_sha256=context.state.model.sha256,
    )
    return f"{context.state.digest} carries revision and model sha256"


def notation(context: Context):
    """Notation with the local signing key, made once under the state folder: what Key Vault
    holds in Azure."""
    from ..clients.notation import Notation

    tool = Notation(context.stack.state_dir / "notation", (context.stack.registry_host,))
    context.state.certificate = tool.generate_test_key(SIGNING_KEY)
    return tool


def attest(context: Context) -> str:
    from ..clients.registry import ImageRef
    from ..commands.attest import Signer, attest_image

    attested = attest_image(
        context.login(),
        ImageRef.parse(context.state.pinned),
        notation(context),
        Signer(key=SIGNING_KEY),
        revision=git_revision(project_dir()),
    )
    return f"SBOM, provenance and three signatures ({attested.bytes_pushed} bytes of documents)"


def evaluate(context: Context) -> str:
    """evaluate-model: the quality gate, on the pushed image, against production's image on the
    same rows; a first release (production runs nothing) needs no baseline."""
    from ..clients.records import Ledger
    from ..clients.registry import RegistryClient
    from ..commands.evaluate import evaluate_model, golden_card
    from ..commands.evaluate.gate import load_thresholds

    model_dir = context.state.model.dest
    evaluated = evaluate_model(
        Ledger(RegistryClient(context.login()), REPOSITORY),
        context.state.pinned,
        model_dir,
        golden_card(model_dir),
        load_thresholds(project_manifests() / "quality.yaml"),
    )
    versus = (
        f"vs production {evaluated.baseline[:19]}"
        if evaluated.baseline
        else evaluated.why_no_baseline
    )
    accuracy = evaluated.metrics.get("accuracy")
    figure = f"accuracy {accuracy:.4f}" if accuracy is not None else evaluated.reason
    return f"{figure}, {len(evaluated.checks)} checks passed ({versus})"


def promote(context: Context) -> str:
    from ..clients.registry import ImageRef
    from ..commands.image_tags import promote_image

    promoted = promote_image(context.login(), ImageRef.parse(context.state.pinned), PROMOTED_TAG)
    return f"{promoted.image} -> {promoted.digest[:19]}"


# Release


def resolve(context: Context) -> str:
    from ..clients.registry import ImageRef
    from ..commands.image_tags import resolve_image

    repository = f"{context.stack.registry_host}/{REPOSITORY}"
    resolved = resolve_image(context.login(), ImageRef.parse(f"{repository}:{PROMOTED_TAG}"))
    context.state.release = resolved
    return f"{repository}:{PROMOTED_TAG} is {resolved.digest[:19]}"


def verify_release(context: Context) -> str:
    """verify-image: the release trusts only the local key's certificate and identity."""
    from ..clients.notation import certificate_subject
    from ..clients.registry import ImageRef
    from ..commands.attest import verify_image

    tool = notation(context)
    certificate = context.state.certificate
    tool.trust("aiship", certificate, certificate_subject(certificate))
    verified = verify_image(context.login(), ImageRef.parse(context.state.release.image), tool)
    return f"{len(verified.checks)} proofs verified (signature, SBOM, provenance on main)"


def approve(context: Context) -> str:
    """The approval gate: --approve, or a yes on the terminal."""
    resolved, options = context.state.release, context.options
    if options.approve:
        return "approved in advance (--approve)"
    question = (
        f"Release {resolved.image} (model {resolved.model_version}, revision "
        f"{resolved.revision[:12]}) to {options.target}? [y/N] "
    )
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise StepError(f"the release was not approved: {options.target} production is untouched")
    return "approved"


def cluster_up(context: Context) -> str:
    """The local cluster, with a namespace for each environment (in CI: AKS credentials)."""
    from .kube_cluster import status, up

    cluster_dir = context.stack.state_dir / "cluster"
    registry = (context.stack.registry_port,)
    if not status(cluster_dir).running:
        try:
            up(cluster_dir, registry_ports=registry)
        except StepError as exc:
            raise StepError(
                f"the local Kubernetes cluster did not start ({exc}); nothing was deployed: "
                "release with --target swarm, or fix `python -m aiship local cluster up`"
            ) from None
        context.stack.record.cluster = Cluster(started=True, state_dir=str(cluster_dir))
        context.stack.save()
        note = f"started the local cluster and its node ({cluster_dir})"
    else:
        up(cluster_dir, registry_ports=registry)  # a no-op, but for a registry on a new port
        note = "the local cluster runs"
    make_namespaces(kubeconfig_of(context), (K8S_STAGING, K8S_PRODUCTION))
    return note


def make_namespaces(kubeconfig: Path, names: tuple[str, ...]) -> None:
    from ..clients.kubectl import Kubectl

    kubectl = Kubectl(kubeconfig)
    for name in names:
        if kubectl.get("namespace", name) is None:
            kubectl.run("create", "namespace", name)


def release_of(context: Context):
    from ..commands.deploy.release import Release

    resolved = context.state.release
    return Release(resolved.image, resolved.revision, resolved.model_version, resolved.model_sha256)


def recorded(context: Context, deploy, environment: str, strategy: str, where: str):
    """DEPLOY with its proof and records, as the deploy command runs it."""
    from ..clients.registry import RegistryClient
    from ..commands.deploy.proof import Ledger, proven_deploy

    result = proven_deploy(
        deploy,
        ledger=Ledger(RegistryClient(context.login()), REPOSITORY),
        release=release_of(context),
        environment=environment,
        strategy=strategy,
        where=where,
        smoke_tested=True,
    )
    context.state.deploy = result
    return result


def kubeconfig_of(context: Context) -> Path:
    return context.stack.state_dir / "cluster" / "kubeconfig"


def deploy_to(context: Context, namespace: str, overlay: str, canary=None):
    """deploy --target kubernetes into NAMESPACE, smoke-tested."""
    from ..commands.deploy.kubernetes import deploy_kubernetes
    from ..commands.deploy.release import KubernetesTarget

    return recorded(
        context,
        lambda: deploy_kubernetes(
            release_of(context),
            KubernetesTarget(kubeconfig_of(context), namespace, overlay=overlay),
            timeout=context.options.timeout,
            smoke_test=True,
            canary=canary,
        ),
        environment=overlay,
        strategy="canary" if canary else "rolling",
        where=f"namespace {namespace}",
    )


def deploy_staging(context: Context) -> str:
    result = deploy_to(context, K8S_STAGING, "staging")
    return f"{result.result} in {K8S_STAGING}, staging pass recorded"


def summarize_release(context: Context) -> str:
    from ..clients.registry import ImageRef
    from ..commands.release_summary import release_summary

    summary = release_summary(
        context.login(),
        ImageRef.parse(context.state.release.image),
        kubeconfig_of(context),
        K8S_PRODUCTION,
    )
    now = summary.production_image.rsplit("@", 1)[-1][:19] or "nothing"
    gate = summary.evaluation.split(":")[0]
    return f"staging {summary.staging_pass.split(' (')[0]}; gate {gate}; production runs {now}"


def deploy_production(context: Context) -> str:
    """Production through the canary, with traffic from the sample data set while it is judged,
    then served on the loopback address."""
    from dataclasses import replace as with_fields

    from ..clients.kubectl import Kubectl
    from ..commands.deploy.analysis import load_analysis
    from ..commands.deploy.rollout import APP
    from .traffic import digits_rows, service_traffic

    analysis = load_analysis(project_manifests() / "analysis.yaml")
    analysis = with_fields(
        analysis, steps=tuple(with_fields(s, pause=CANARY_PAUSE) for s in analysis.steps)
    )
    kubeconfig, options = kubeconfig_of(context), context.options
    traffic = contextlib.nullcontext()
    if Kubectl(kubeconfig, K8S_PRODUCTION).get("deployment", APP):  # a canary needs a stable
        traffic = service_traffic(
            kubeconfig,
            K8S_PRODUCTION,
            APP,
            MODEL_NAME,
            rows=digits_rows(),
            batch_size=TRAFFIC_BATCH,
            max_seconds=options.timeout + analysis.timeout,
        )
    with traffic:
        result = deploy_to(context, K8S_PRODUCTION, "production", canary=analysis)
    url = serve_on_loopback(context, kubeconfig, options.service, options.port)
    context.state.deploy = replace(result, url=url)
    return f"{result.result} in {K8S_PRODUCTION} ({result.digest[:19]})"


def deploy_swarm_service(context: Context) -> str:
    from ..commands.deploy.swarm import deploy_swarm

    options = context.options
    result = recorded(
        context,
        lambda: deploy_swarm(
            release_of(context),
            service=options.service,
            port=options.port,
            timeout=options.timeout,
            smoke_test=True,
        ),
        environment="local",
        strategy="rolling",
        where=f"swarm service {options.service}",
    )
    record_service(context.stack, options.service, options.port, result.url)
    return f"{result.result} ({result.digest[:19]})"


def serve_on_loopback(context: Context, kubeconfig: Path, service: str, port: int) -> str:
    """`kubectl port-forward` of the cluster's Service to 127.0.0.1:PORT, in the background until
    `local down` (as a load balancer would serve it); restarted by each run, since it holds on
    to one pod and a rollout replaces them."""
    from ..clients.kubectl import Kubectl
    from ..commands.deploy.rollout import APP
    from ..commands.smoke_test import smoke_test
    from .stack import process_is

    state = context.stack.state_dir
    recorded = context.stack.record.services.get(service)
    previous = recorded.pid if recorded else None
    if previous and process_is(previous, "port-forward"):
        stop(previous, "the previous port-forward", timeout=10)
    kubectl = Kubectl(kubeconfig, K8S_PRODUCTION)
    command = kubectl.command("port-forward", f"service/{APP}", f"{port}:80", "--address", HOST)
    log_path = state / "logs" / f"port-forward-{service}.log"
    process = spawn(command, log_path=log_path, pid_path=state / f"port-forward-{service}.pid")
    url = f"http://{HOST}:{port}"
    try:
        smoke_test(url, timeout=30)
    except StepError as exc:
        stop(process.pid, "the port-forward", timeout=10)
        raise StepError(
            f"the port-forward to service/{APP} did not serve ({exc}); log: {log_path}"
        ) from None
    record_service(context.stack, service, port, url, pid=process.pid)
    return url


@dataclass(frozen=True)
class RunSummary:
    """What one run released, and where (the steps' outputs: flat names, text values)."""

    result: str  # "deployed" or "unchanged"
    target: str
    url: str
    image: str
    image_id: str
    model_name: str
    model_version: str
    model_sha256: str
    revision: str
    seconds: float
    checks: tuple[str, ...] = ()  # the canary's step lines, when production went through one

    def outputs(self) -> dict[str, object]:
        return {**asdict(self), "digest": self.image.rsplit("@", 1)[1], "checks": list(self.checks)}

    def lines(self) -> list[str]:
        """What to print at the end: where it runs, what runs there, how to ask it something."""
        url = self.url
        lines = [
            "up to date: nothing changed since the last release"
            if self.result == "unchanged"
            else f"released to {self.target} in {self.seconds} s",
            f"  service   {url}",
            f"  image     {self.image}",
            f"  model     {self.model_name} {self.model_version} (sha256 {self.model_sha256})",
            f"  revision  {self.revision}",
            *(f"  canary    {line}" for line in self.checks),
        ]
        if self.url:
            body = '{"instances": [[' + SAMPLE_DIGIT + "]]}"
            lines.append(
                f"  try       curl -s -H 'Content-Type: application/json' -d '{body}' "
                f"{self.url}/predict"
            )
        return lines


def summary(context: Context) -> RunSummary:
    state = context.state
    result, resolved = state.deploy, state.release
    return RunSummary(
        result=result.result,
        target=result.target,
        url=result.url or "",
        image=result.image,
        image_id=state.image_id,
        model_name=MODEL_NAME,
        model_version=resolved.model_version,
        model_sha256=state.model.sha256,
        revision=resolved.revision,
        seconds=state.seconds,
        checks=result.checks,
    )
