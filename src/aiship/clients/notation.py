"""Notation, the Notary Project's signing tool: sign an image digest, verify it against a trust
policy. The binary is the one pinned in tools/notation (tools/README.md), run with a folder of
its own for keys, certificates, trust store and trust policy, never the user's ~/.config.

Where signatures go: an OCI artifact (artifactType application/vnd.cncf.notary.signature) whose
`subject` is the signed digest. `sign` passes --force-referrers-tag=false, so notation pushes it
with its subject and, when the registry does not answer OCI-Subject (Debian's docker-registry
2.8), adds it to the referrers tag schema's index at tag sha256-<hex> — the rule and the index
records.py follows, so records and signatures share one list. Read in notaryproject/notation
v1.3.2 (001cc919603c1dc16c6aad387c94b4209cb9c901): cmd/notation/sign.go (the flag, default true,
which always writes the tag index) and cmd/notation/registry.go getRemoteRepository; and in its
oras-go v2.5.0, registry/remote/repository.go updateReferrersIndex: read the index, add the
descriptor, push it at the tag, delete the old index. Each writer keeps the other's entries;
`verify` asks the referrers API first, then reads that tag.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..support.errors import (
    AuthError,
    ConfigError,
    IntegrityError,
    StepError,
    Unavailable,
    Unproven,
)
from ..support.logs import redact
from ..support.processes import last_line, run
from .go import notation_root
from .registry import LOCAL_HOSTS, Credentials, credentials_from_env

TIMEOUT = 120.0
SIGNATURE_TYPE = "application/vnd.cncf.notary.signature"
DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")  # what notation allows for key and store names
# A local test key lives long: an image signed today is still verified in a later release.
TEST_KEY_VALIDITY = timedelta(days=3650)
PROCESSING = re.compile(r"Processing signature with .* digest: (sha256:[0-9a-f]{64})")
FAILED = re.compile(r"Signature (sha256:[0-9a-f]{64}) failed verification with error: (.*)")
# notation's per-signature errors (notation-go v1.3.2 verifier/verifier.go) in plain words.
REASONS = (
    ("does not contain any trusted certificate", "signed by an untrusted key"),
    ("does not match the X.509 trusted identities", "signed by an untrusted identity"),
    ("content descriptor mismatch", "signature invalid: it signs another image"),
    ("expired", "signature or its certificate expired"),
    ("validity period", "signature or its certificate expired"),
)
INVALID = "signature invalid: altered or corrupt"


def notation_path() -> str:
    """The pinned build from the cache, else PATH's `notation`."""
    built = notation_root() / "bin" / "notation"
    if os.access(built, os.X_OK):
        return str(built)
    found = shutil.which("notation")
    if found is None:
        raise ConfigError(f"notation is not built ({built} is missing): run ./dev setup")
    return found


def check_identity(identity: str) -> str:
    """IDENTITY (an X.509 subject, RFC 4514, `x509.subject:` prefix optional) as a trust policy
    names it, or ConfigError: Notation refuses a trusted identity without C, ST (or S) and O,
    with a repeated or multi-valued attribute, or with a `=#` value (notation-go's
    ParseDistinguishedName; tests/clients/test_notation.py holds this to the pinned build)."""
    subject = identity.removeprefix("x509.subject:").strip()
    example = "e.g. C=US,ST=WA,O=Example,CN=aiship"
    if "=#" in subject:
        raise ConfigError(f"identity {subject!r}: Notation takes no '=#' (hex) values; {example}")
    rdns = _split_subject(subject)
    if rdns is None:
        raise ConfigError(f"identity {subject!r} is not an X.509 subject (RFC 4514); {example}")
    types = [kind.upper() for rdn in rdns for kind in rdn]
    if any(len(rdn) > 1 for rdn in rdns) or len(types) != len(set(types)):
        raise ConfigError(
            f"identity {subject!r}: Notation takes each attribute once and no multi-valued "
            f"(+) attributes; {example}"
        )
    missing = [name for name in ("C", "ST", "O") if name not in types]
    if "S" in types and "ST" in missing:
        missing.remove("ST")
    if missing:
        raise ConfigError(
            f"identity {subject!r} lacks {', '.join(missing)}: Notation trusts only a subject "
            f"with C, ST and O (give the certificate's full subject, {example})"
        )
    return subject


def trust_policy(store: str, subject: str) -> dict:
    """Notation's trust policy document: every registry, strict verification, only the
    certificates of trust store ca:STORE, only the signer SUBJECT."""
    statement = {
        "name": store,
        "registryScopes": ["*"],
        "signatureVerification": {"level": "strict"},
        "trustStores": [f"ca:{store}"],
        "trustedIdentities": [f"x509.subject: {subject}"],
    }
    return {"version": "1.0", "trustPolicies": [statement]}


def _split_subject(subject: str) -> list[list[str]] | None:
    """The attribute types of each RDN of SUBJECT (`,` or `;` between RDNs, `+` within one,
    backslash escapes as RFC 4514 and go-ldap read them; no quoted values); None when it is not
    a list of TYPE=VALUE."""
    rdns: list[list[str]] = [[]]
    pair, escaped = "", False
    for char in subject + ",":
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",;+":
            kind, equals, value = pair.partition("=")
            if not (kind.strip() and equals and value.strip()):
                return None
            rdns[-1].append(kind.strip())
            if char != "+":
                rdns.append([])
            pair = ""
            continue
        pair += char
    return rdns[:-1] if not pair else None  # an escape left open at the end


def certificate_subject(certificate: Path) -> str:
    """The certificate's x509 subject (RFC 4514), the identity a trust policy names."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(_read(certificate)).subject.rfc4514_string()


@dataclass(frozen=True)
class Notation:
    home: Path  # notation's XDG_CONFIG_HOME: keys, certificates, trust store, trust policy
    insecure_registries: tuple[str, ...] = ()  # HOST:PORT spoken to over http
    credentials: Credentials | None = None  # else REGISTRY_USERNAME/REGISTRY_PASSWORD, else none

    @property
    def config_dir(self) -> Path:
        return self.home / "notation"

    def generate_test_key(self, name: str) -> Path:
        """A local RSA key and self-signed code-signing certificate, made once under home and
        listed in signingkeys.json; returns the certificate's path. notation's own
        `cert generate-test` makes a certificate that expires in a day, hence ours."""
        _check_name(name, "key")
        keys = self.config_dir / "localkeys"
        key, certificate = keys / f"{name}.key", keys / f"{name}.crt"
        if not (key.is_file() and certificate.is_file()):
            _write_test_key(name, key, certificate)
        self._list_signing_key(name, key, certificate)
        return certificate

    def _list_signing_key(self, name: str, key: Path, certificate: Path) -> None:
        """signingkeys.json names the key, in notation-go v1.3.2's format (config/keys.go):
        notation's `key add` takes plugin keys only."""
        path = self.config_dir / "signingkeys.json"
        try:
            listed = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            keys = [entry for entry in listed.get("keys") or [] if entry.get("name") != name]
        except (ValueError, AttributeError):
            raise ConfigError(f"{path} is not notation's signing key list: remove it") from None
        entry = {"name": name, "keyPath": str(key), "certPath": str(certificate)}
        if entry not in (listed.get("keys") or []):
            listed["keys"] = [*keys, entry]
            _write(path, json.dumps(listed, indent=2).encode(), 0o600)

    def sign(
        self,
        reference: str,
        *,
        key: str | None = None,
        key_id: str | None = None,
        plugin: str | None = None,
        plugin_config: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> str:
        """Sign REPO@sha256:... with a local key by name, or with key_id through a plugin
        (Azure Key Vault: key_id the key's URL, plugin "azure-kv", plugin_config e.g.
        {"self_signed": "true"}; ENVIRONMENT the plugin's extra variables); returns the
        signature manifest's digest."""
        _check_reference(reference)
        if bool(key) == bool(key_id or plugin) or bool(key_id) != bool(plugin):
            raise ConfigError(
                "sign with a key name, or with a key id and its plugin: one of the two"
            )
        signer = ["--key", key] if key else ["--id", key_id, "--plugin", plugin]
        for name, value in (plugin_config or {}).items():
            signer += ["--plugin-config", f"{name}={value}"]
        before = self._signatures(reference)
        sign = ["sign", *signer, "--force-referrers-tag=false"]
        self._notation(sign, reference, "sign", environment=environment)
        added = [digest for digest in self._signatures(reference) if digest not in before]
        if len(added) != 1:
            raise StepError(
                f"notation signed {reference}, but {len(added)} new signatures are listed: "
                "another signer ran at the same time; sign again"
            )
        return added[0]

    def install_plugin(self, url: str, sha256: str) -> None:
        """Install a signing plugin (e.g. Azure Key Vault's, from its release page) into home,
        refused unless its archive has that sha256; already installed: nothing to do."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
            raise ConfigError(
                f"--plugin-sha256 {sha256!r} is not a sha256: copy it from the release"
            )
        try:
            self._notation(["plugin", "install", "--url", url, "--sha256sum", sha256, "--force"])
        except StepError as exc:
            if "checksum does not match" not in str(exc):
                raise
            raise IntegrityError(
                f"the plugin archive at {url} does not have --plugin-sha256 {sha256}: copy the "
                "sha256 and the URL from the same release page"
            ) from None

    def trust(self, name: str, certificate: Path, identity: str) -> None:
        """Trust only `certificate` (trust store ca:NAME holds it alone) and only the signer
        `identity` (its x509 subject, e.g. "C=US, ST=WA, O=Example, CN=release"), for every
        registry scope: the whole trust policy is replaced."""
        _check_name(name, "trust store")
        subject = check_identity(identity)
        _read(certificate)
        if (self.config_dir / "truststore" / "x509" / "ca" / name).exists():
            self._notation(["cert", "delete", "--type", "ca", "--store", name, "--all", "--yes"])
        self._notation(["cert", "add", "--type", "ca", "--store", name, str(certificate)])
        policy = self.config_dir / f".trustpolicy-{os.getpid()}.json"
        policy.write_text(json.dumps(trust_policy(name, subject)))
        try:
            self._notation(["policy", "import", "--force", str(policy)])
        finally:
            policy.unlink(missing_ok=True)

    def verify(self, reference: str) -> str:
        """The digest of the signature that verifies REPO@sha256:... under the trust policy;
        Unproven, saying why in plain words, when none does."""
        _check_reference(reference)
        done = self._run(["verify", "-v", *self._registry_flags(reference), reference])
        checked = PROCESSING.findall(done.stderr)
        if done.returncode == 0 and checked:
            return checked[-1]
        raise self._refusal(reference, done.stderr)

    # --- running notation ------------------------------------------------------------------

    def _signatures(self, reference: str) -> list[str]:
        listed = self._notation(["list"], reference, "list the signatures of")
        subject = reference.rsplit("@", 1)[1]
        return [d for d in re.findall(r"sha256:[0-9a-f]{64}", listed) if d != subject]

    def _notation(
        self,
        args: Sequence[str],
        reference: str = "",
        what: str = "",
        environment: Mapping[str, str] | None = None,
    ) -> str:
        """Run notation (against REFERENCE, if given); its stdout, or the error it names."""
        command = [*args, *self._registry_flags(reference), reference] if reference else args
        done = self._run(command, environment)
        if done.returncode != 0:
            said = self._redact(last_line(done.stderr)).removeprefix("Error: ")
            doing = f"notation could not {what} {reference}" if reference else f"notation {args[0]}"
            raise _known_error(said) or StepError(f"{doing}: {said}")
        return done.stdout

    def _run(self, args: Sequence[str], environment: Mapping[str, str] | None = None):
        return run(
            [notation_path(), *args],
            what=f"notation {args[0]}",
            timeout=TIMEOUT,
            env={**self._env(), **(environment or {})},
            hint="is the registry answering?",
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTATION_")}
        env["XDG_CONFIG_HOME"] = str(self.home)
        credentials = self._credentials()
        if credentials:  # notation's own variables: the password never is on a command line
            env["NOTATION_USERNAME"] = credentials.username
            env["NOTATION_PASSWORD"] = credentials.password
        return env

    def _credentials(self) -> Credentials | None:
        return self.credentials or credentials_from_env()

    def _registry_flags(self, reference: str) -> list[str]:
        host = reference.split("/", 1)[0]
        local = host.rsplit(":", 1)[0] in LOCAL_HOSTS
        return ["--insecure-registry"] if local or host in self.insecure_registries else []

    def _redact(self, text: str) -> str:
        credentials = self._credentials()
        return redact(text, (credentials.password,) if credentials else ())

    def _refusal(self, reference: str, stderr: str) -> StepError:
        """One line: why no signature of REFERENCE verified, and what to do."""
        failures = dict(FAILED.findall(stderr))  # signature digest -> notation's error
        said = self._redact(last_line(stderr)).removeprefix("Error: ")
        if not failures:
            if "no signature is associated" in said:
                return Unproven(f"{reference} has no signature: sign it first (attest-image)")
            if "unable to retrieve digital signature" in said and "mismatch" in said:
                return Unproven(f"{reference}: {INVALID} (its bytes do not match its digest)")
            if "trust policy is not present" in said or "trust store" in said:
                return ConfigError(f"notation in {self.home} trusts no key yet: call trust()")
            if "skip signature verification" in stderr:
                return Unproven(f"{reference}: the trust policy skips verification; replace it")
            return _known_error(said) or StepError(f"notation verify {reference}: {said}")
        reasons = dict.fromkeys(_reason(error) for error in failures.values())
        signatures = ", ".join(digest[:19] for digest in failures)
        return Unproven(
            f"{reference} has no trusted signature: {'; '.join(reasons)} ({signatures}): "
            "sign it with the release key"
        )


def _reason(error: str) -> str:
    return next((plain for said, plain in REASONS if said in error), INVALID)


def _known_error(said: str) -> StepError | None:
    """notation's failures to reach or log in to the registry, or to find a plugin, as the
    steps' error types; None for anything else."""
    plugin = re.search(r"stat (\S+/plugins/([^/\s]+)/)\S*: no such file", said)
    if plugin:
        return ConfigError(
            f"notation plugin {plugin.group(2)} is not installed: put its executable in "
            f"{plugin.group(1)} (notation plugin install)"
        )
    if "connection refused" in said or "no such host" in said or "timeout" in said:
        return Unavailable(f"the registry did not answer notation: {said}")
    if "401" in said or "403" in said or "unauthorized" in said.lower():
        return AuthError(
            f"the registry refused notation's login ({said}): check REGISTRY_USERNAME and "
            "REGISTRY_PASSWORD, and the identity's push and pull rights"
        )
    return None


def _check_reference(reference: str) -> None:
    if not DIGEST_REFERENCE.match(reference):
        raise ConfigError(f"{reference!r} is not REPOSITORY@sha256:<64 hex>: sign digests only")


def _check_name(name: str, what: str) -> None:
    if not NAME.match(name):
        raise ConfigError(f"{what} name {name!r} is not valid: use letters, digits, '_', '.', '-'")


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; give an existing file") from None


def _write_test_key(name: str, key_path: Path, certificate_path: Path) -> None:
    """RSA 3072 and a self-signed certificate fit for notation's code-signing checks
    (notation-core-go x509/codesigning_cert_validations.go: critical digitalSignature key
    usage, no CA, code-signing EKU; a subject with C, ST and O for trust policies)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "local"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aiship"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = datetime.now(UTC)
    others = ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement")
    others += ("key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + TEST_KEY_VALIDITY)
        .add_extension(
            x509.KeyUsage(digital_signature=True, **dict.fromkeys(others, False)), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(key_path, pem, 0o600)
    _write(certificate_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Whole or not at all: a killed run leaves no half a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(partial, path)
