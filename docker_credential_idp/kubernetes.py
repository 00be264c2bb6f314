"""Kubernetes: the kubelet's image credential provider protocol, the kubelet config that installs us, and
image pull secrets. Pure functions of their inputs: the caller resolves registrations and fetches credentials.

The kubelet protocol is kubernetes/kubelet pkg/apis/credentialprovider/v1: a CredentialProviderRequest with the
full image on stdin, a CredentialProviderResponse on stdout. kubelet drops a response whose apiVersion, kind or
cacheKeyType it does not expect, so every answer, even "no credentials", is a complete response.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from .cache_policy import seconds_to_refresh
from .errors import PROG, InvalidInput
from .jsontext import loads
from .matching import concrete, host_of, is_pattern, server_key
from .model import Credential

API_VERSIONS = ("credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1beta1")
CONFIG_API_VERSION = "kubelet.config.k8s.io/v1"
PROVIDER_NAME = PROG
MAX_REQUEST_BYTES = 1024 * 1024


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


def parse_request(stdin: bytes) -> tuple[str, str]:
    """(apiVersion, image) from a CredentialProviderRequest."""
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
    return request["apiVersion"], image.strip()


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


def provider_config(prefixes: Iterable[str], home: Optional[str], default_cache_duration: str) -> str:
    """A CredentialProviderConfig (YAML) whose matchImages covers every registration."""
    images = sorted({prefix for prefix in prefixes})
    if not images:
        raise InvalidInput(f"no registrations yet, so no image to match; add one with: {PROG} registry add")
    lines = [
        f"apiVersion: {CONFIG_API_VERSION}",
        "kind: CredentialProviderConfig",
        "providers:",
        f"  - name: {PROVIDER_NAME}",
        f"    apiVersion: {API_VERSIONS[0]}",
        "    args: [kubelet]",
        f"    defaultCacheDuration: {_yaml_string(default_cache_duration)}",
        "    matchImages:",
        *(f"      - {_yaml_string(image)}" for image in images),
    ]
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

