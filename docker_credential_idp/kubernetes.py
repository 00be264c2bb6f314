"""Kubernetes: the kubelet's image credential provider protocol, the kubelet config that installs us, and
image pull secrets. Pure functions of their inputs: the caller resolves registrations and fetches credentials.

The kubelet protocol is kubernetes/kubelet pkg/apis/credentialprovider/v1: a CredentialProviderRequest with the
full image on stdin, a CredentialProviderResponse on stdout. kubelet drops a response whose apiVersion, kind or
cacheKeyType it does not expect, so every answer, even "no credentials", is a complete response.

Per-pod identity (KEP-4412, beta since 1.34): for a provider entry with `tokenAttributes` the request also carries the
pod's service-account token (for the entry's one audience) and the annotations of its service account that the entry
lists. A registration with `--oidc-token kubelet` exchanges that token; its answer is cached per service account
(`principal`), never shared with another one or with a `get`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from .cache_policy import seconds_to_refresh
from .errors import PROG, InvalidInput
from .jsontext import loads
from .matching import concrete, host_of, is_pattern, server_key
from .model import Credential

API_VERSIONS = ("credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1beta1")
CONFIG_API_VERSION = "kubelet.config.k8s.io/v1"
PROVIDER_NAME = PROG
MAX_REQUEST_BYTES = 1024 * 1024
MAX_TOKEN_CHARS = 64 * 1024  # identity.MAX_TOKEN_BYTES: a service-account token is a few kB
MAX_ANNOTATIONS = 64  # the request carries only the annotations the config lists
MAX_ANNOTATION_KEY = 317  # a qualified name: a 253-character DNS prefix, '/', a 63-character name
MAX_ANNOTATION_VALUE = 64 * 1024


class NoServiceAccountToken(InvalidInput):
    """A registration that exchanges the pod's token was asked for without one: the kubelet's entry lacks
    tokenAttributes. The kubelet is answered "no credentials" all the same (a complete response)."""


@dataclass(frozen=True)
class KubeletMatch:
    """The registration that serves an image, as far as kubelet needs to know it."""

    prefix: str
    username: str
    password: str
    # When the answer stops being fresh (cache_policy.refresh_at: at least the registration's --min-ttl before it
    # expires); None for a credential without expiry.
    refresh_at: Optional[float]
    # Other registrations live under the same host: kubelet must not reuse this answer for the whole registry.
    shares_host: bool


def match(prefix: str, request: str, credential: Credential, refresh_at: Optional[float], on_host: int) -> KubeletMatch:
    """What the kubelet gets for a request served by the registration with `prefix`, `on_host` registrations having
    their prefix on the request's host. A pattern's answer is keyed by the host it served, never by the pattern:
    the kubelet would otherwise hand one account's token to every host the pattern matches."""
    shares_host = on_host + (1 if is_pattern(prefix) else 0) > 1
    return KubeletMatch(concrete(prefix, host_of(request)), credential.username, credential.secret, refresh_at,
                        shares_host)


@dataclass(frozen=True)
class KubeletRequest:
    api_version: str
    image: str
    # KEP-4412: the pod's service-account token and its service account's annotations, when the kubelet's provider
    # entry has tokenAttributes; empty otherwise. The token is never printed.
    service_account_token: str = field(default="", repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)


def parse_request(stdin: bytes) -> KubeletRequest:
    """A CredentialProviderRequest: its apiVersion and image, and the service-account token and annotations when
    present (each bounded; a value is never quoted back, for the token may be in the wrong field)."""
    try:
        request = loads(stdin[: MAX_REQUEST_BYTES + 1].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("kubelet: stdin is not a JSON CredentialProviderRequest") from None
    if not isinstance(request, dict) or request.get("kind") != "CredentialProviderRequest":
        raise InvalidInput("kubelet: expected a CredentialProviderRequest object on stdin")
    if request.get("apiVersion") not in API_VERSIONS:
        raise InvalidInput(f"kubelet: unsupported apiVersion {str(request.get('apiVersion'))[:80]!r}; "
                           f"set apiVersion: {API_VERSIONS[0]} in the kubelet's CredentialProviderConfig")
    image = request.get("image")
    if not isinstance(image, str) or not image.strip():
        raise InvalidInput("kubelet: the request has no image")
    token = request.get("serviceAccountToken") or ""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidInput(f"kubelet: the request's serviceAccountToken is not a string of at most {MAX_TOKEN_CHARS} "
                           "characters; it is the pod's service-account token, set by the kubelet")
    return KubeletRequest(request["apiVersion"], image.strip(), token.strip(),
                          _annotations(request.get("serviceAccountAnnotations")))


def _annotations(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_ANNOTATIONS or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= MAX_ANNOTATION_KEY
            and len(v) <= MAX_ANNOTATION_VALUE for k, v in value.items()):
        raise InvalidInput(f"kubelet: the request's serviceAccountAnnotations is not a map of at most "
                           f"{MAX_ANNOTATIONS} annotation keys to strings")
    return dict(value)


_SERVICE_ACCOUNT_SUBJECT = re.compile(r"system:serviceaccount:([^:]+):([^:]+)")


def service_account(token: str) -> Optional[tuple[str, str, str]]:
    """(namespace, name, uid) of the service account a token was issued to, from its `kubernetes.io` claim (uid
    included), else its `sub` (system:serviceaccount:NS:NAME, no uid). Read unverified: the token came from the
    kubelet, and the exchange checks it."""
    from .identity import claims

    token_claims = claims(token)
    info = token_claims.get("kubernetes.io")
    if isinstance(info, dict) and isinstance(info.get("serviceaccount"), dict):
        account = info["serviceaccount"]
        namespace, name, uid = info.get("namespace"), account.get("name"), account.get("uid", "")
        if isinstance(namespace, str) and namespace and isinstance(name, str) and name and isinstance(uid, str):
            return namespace, name, uid
    subject = token_claims.get("sub")
    found = _SERVICE_ACCOUNT_SUBJECT.fullmatch(subject) if isinstance(subject, str) else None
    return (found.group(1), found.group(2), "") if found else None


def principal(token: str, annotations: Mapping[str, str]) -> str:
    """Whom an answer fetched with the pod's token is for, as a cache key: its service account (namespace, name,
    uid) and the annotations its registration used; a token naming no service account is its own principal. A
    digest: the answer cache's slot and fingerprint carry it, never the names in clear."""
    account = service_account(token)
    who = ("sa\0" + "\0".join(account)) if account else ("token\0" + hashlib.sha256(token.encode()).hexdigest())
    text = who + "".join(f"\0{key}={annotations[key]}" for key in sorted(annotations))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def response(api_version: str, match: Optional[KubeletMatch], now: float) -> dict[str, object]:
    """The CredentialProviderResponse for an image: its registration's credential under the registration's prefix.

    cacheKeyType is Image for a path-scoped registration (or a host shared with one), so that kubelet never serves
    team-a's credential for team-b's image from a per-registry cache; Registry otherwise. cacheDuration is what is
    left of the token before its refresh point (0s for one minted for this request alone, whose life is no longer than
    its --min-ttl); a static password leaves it to the kubelet's defaultCacheDuration.
    No match is an empty auth map that kubelet must not cache: a registration added later takes effect at once."""
    answer: dict[str, object] = {"apiVersion": api_version, "kind": "CredentialProviderResponse"}
    if match is None:
        return {**answer, "cacheKeyType": "Image", "cacheDuration": "0s", "auth": {}}
    path_scoped = "/" in match.prefix or match.shares_host
    answer["cacheKeyType"] = "Image" if path_scoped else "Registry"
    seconds = seconds_to_refresh(now, match.refresh_at)
    if seconds is not None:
        answer["cacheDuration"] = f"{seconds}s"
    answer["auth"] = {match.prefix: {"username": match.username, "password": match.password}}
    return answer


GO_DURATION = re.compile(r"(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+)")


def is_duration(text: str) -> bool:
    """A duration the kubelet's config parser (Go's time.ParseDuration) accepts and that is not negative."""
    return bool(GO_DURATION.fullmatch(text))


def _yaml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML string


@dataclass(frozen=True)
class TokenUse:
    """What a registration with --oidc-token kubelet asks of the kubelet's config: a token for `audience`, cached by
    the kubelet per service account unless the token itself is the password (`per_token`), and the annotations its
    provider reads."""

    audience: str
    per_token: bool
    annotation_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    images: tuple[str, ...]
    uses: tuple[TokenUse, ...] = ()  # empty: no tokenAttributes
    without_token: bool = True  # some of its images' registrations need no token


def plan_entries(registrations: Sequence[tuple[str, Optional[TokenUse]]]) -> tuple[list[ProviderEntry], Optional[str]]:
    """The provider entries for (prefix, token use or None) pairs, and a note when there is more than one. The
    kubelet gives each entry one token audience, and runs an entry by its name from its plugin directory, names
    unique: the registrations needing no token and those of the first audience share this binary's own name; each
    further audience needs an entry of its own, under a name the administrator links to this binary."""
    images = [prefix for prefix, use in registrations if use is None]
    audiences = sorted({use.audience for _, use in registrations if use is not None})
    entries: list[ProviderEntry] = []
    for index, audience in enumerate(audiences or [""]):
        uses = tuple(use for _, use in registrations if use is not None and use.audience == audience)
        mine = [prefix for prefix, use in registrations if use is not None and use.audience == audience]
        first = index == 0
        entries.append(ProviderEntry(PROVIDER_NAME if first else f"{PROVIDER_NAME}-{index + 1}",
                                     tuple(sorted(set(mine + (images if first else [])))), uses,
                                     without_token=first and bool(images)))
    note = None
    if len(entries) > 1:
        names = ", ".join(entry.name for entry in entries[1:])
        note = (f"{PROG}: note: the kubelet gives each provider entry one token audience and runs it by its name from "
                f"its --image-credential-provider-bin-dir, so the registrations of {len(audiences)} audiences need "
                f"entries named {names}: link {PROVIDER_NAME} under those names there (ln -s {PROVIDER_NAME} NAME)")
    return entries, note


def provider_config(entries: Sequence[ProviderEntry], home: Optional[str], default_cache_duration: str) -> str:
    """A CredentialProviderConfig (YAML) whose matchImages cover every registration. An entry whose registrations
    exchange the pod's token has tokenAttributes: the audience, requireServiceAccount (true unless the entry also
    serves registrations that need no token, which pods without a service account, static pods, still reach),
    cacheType (Token when the token itself is the password, which the kubelet refuses to cache per service account;
    else ServiceAccount), and the annotation keys the providers read (optional: the registration's own settings
    stand in for a missing one)."""
    if not any(entry.images for entry in entries):
        raise InvalidInput(f"no registrations yet, so no image to match; add one with: {PROG} registry add")
    lines = [f"apiVersion: {CONFIG_API_VERSION}", "kind: CredentialProviderConfig", "providers:"]
    for entry in entries:
        lines += [
            f"  - name: {entry.name}",
            f"    apiVersion: {API_VERSIONS[0]}",
            "    args: [kubelet]",
            f"    defaultCacheDuration: {_yaml_string(default_cache_duration)}",
            "    matchImages:",
            *(f"      - {_yaml_string(image)}" for image in entry.images),
        ]
        if entry.uses:
            keys = sorted({key for use in entry.uses for key in use.annotation_keys})
            lines += [
                "    tokenAttributes:",
                f"      serviceAccountTokenAudience: {_yaml_string(entry.uses[0].audience)}",
                f"      requireServiceAccount: {'false' if entry.without_token else 'true'}",
                f"      cacheType: {'Token' if any(use.per_token for use in entry.uses) else 'ServiceAccount'}",
            ]
            if keys:
                lines += ["      optionalServiceAccountAnnotationKeys:", *(f"        - {_yaml_string(k)}" for k in keys)]
        if home:
            lines += ["    env:", "      - name: DOCKER_CREDENTIAL_IDP_HOME", f"        value: {_yaml_string(home)}"]
    return "\n".join(lines) + "\n"


def docker_config_json(auths: Mapping[str, tuple[str, str]]) -> str:
    """A .dockerconfigjson: {"auths": {key: {username, password, auth}}}, keys as docker and containers/image read
    them (Docker Hub's bare host as docker's index URL; path-scoped keys kept, kubelet and skopeo honour them)."""
    entries = {
        server_key(prefix): {"username": username, "password": password,
                             "auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}
        for prefix, (username, password) in auths.items()
    }
    return json.dumps({"auths": entries}, sort_keys=True, separators=(",", ":"))


def pull_secret(auths: Mapping[str, tuple[str, str]], name: str, namespace: Optional[str], output: str) -> str:
    """A kubernetes.io/dockerconfigjson Secret holding `auths`, as YAML or JSON."""
    encoded = base64.b64encode(docker_config_json(auths).encode()).decode("ascii")
    metadata: dict[str, str] = {"name": name, **({"namespace": namespace} if namespace else {})}
    if output == "json":
        return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
                           "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": encoded}},
                          indent=2) + "\n"
    lines = ["apiVersion: v1", "kind: Secret", "metadata:"]
    lines += [f"  {key}: {_yaml_string(value)}" for key, value in metadata.items()]
    lines += ["type: kubernetes.io/dockerconfigjson", "data:", f"  .dockerconfigjson: {encoded}"]
    return "\n".join(lines) + "\n"

