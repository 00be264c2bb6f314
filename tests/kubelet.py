"""What the kubelet does with an image credential provider, written out from kubernetes/kubernetes
(pkg/credentialprovider/plugin/plugin.go and keyring.go) so that tests can hold our answers to its rules: exec the
plugin with a CredentialProviderRequest, refuse a response with another apiVersion or kind or an unknown
cacheKeyType, parse cacheDuration as a Go duration, then match the auth keys against the image (same number of host
labels, globs per label, equal ports, the key's path a string prefix of the image's)."""

from __future__ import annotations

import fnmatch
import json
import re
import urllib.parse
from typing import Optional

from .conftest import call_helper

API_VERSION = "credentialprovider.kubelet.k8s.io/v1"
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$")


class Rejected(Exception):
    """kubelet would log an error and use no credentials."""


def _split(value: str) -> tuple[list[str], str, str]:
    parsed = urllib.parse.urlsplit("https://" + value)
    host, _, port = parsed.netloc.rpartition(":") if ":" in parsed.netloc else (parsed.netloc, "", "")
    return host.split("."), port, parsed.path


def urls_match(glob: str, target: str) -> bool:
    glob_parts, glob_port, glob_path = _split(glob)
    target_parts, target_port, target_path = _split(target)
    if glob_port != target_port or len(glob_parts) != len(target_parts) or not target_path.startswith(glob_path):
        return False
    return all(fnmatch.fnmatchcase(t, g) for g, t in zip(glob_parts, target_parts, strict=True))


def parse_duration(text: str) -> float:
    if not GO_DURATION.match(text):
        raise Rejected(f"cacheDuration {text!r} is not a Go duration")
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text))


class Answer:
    def __init__(self, response: dict, image: str) -> None:
        self.response = response
        self.cache_key_type: str = response["cacheKeyType"]
        self.cache_duration: Optional[float] = (parse_duration(response["cacheDuration"])
                                                if response.get("cacheDuration") is not None else None)
        self.auth: dict = response.get("auth") or {}
        self.cache_key = {"Image": image, "Registry": image.split("/")[0], "Global": "global"}[self.cache_key_type]

    def credential_for(self, image: str) -> Optional[tuple[str, str]]:
        """What kubelet's keyring would use for `image`: the entry of the longest matching key."""
        keys = sorted((k for k in self.auth if urls_match(k, image)), key=len, reverse=True)
        return (self.auth[keys[0]]["username"], self.auth[keys[0]]["password"]) if keys else None


def request_of(image: str, api_version: str = API_VERSION, token: Optional[str] = None,
               annotations: Optional[dict] = None) -> bytes:
    """A CredentialProviderRequest as the kubelet encodes it: with tokenAttributes, the pod's service-account token
    and the service account's annotations the entry lists (KEP-4412)."""
    request: dict = {"apiVersion": api_version, "kind": "CredentialProviderRequest", "image": image}
    if token is not None:
        request["serviceAccountToken"] = token
    if annotations is not None:
        request["serviceAccountAnnotations"] = annotations
    return json.dumps(request).encode()


def exec_plugin(image: str, env: Optional[dict] = None, api_version: str = API_VERSION, token: Optional[str] = None,
                annotations: Optional[dict] = None, cache_type: str = "ServiceAccount") -> Answer:
    """kubelet's request and its checks of the answer; the plugin's contract is the point, so it runs in this process
    (call_helper; the bundle itself under make test-binary). With a token, kubelet's rule for tokenAttributes: an
    answer whose password is the token itself is dropped unless the entry's cacheType is Token."""
    completed = call_helper("kubelet", stdin=request_of(image, api_version, token, annotations), env=env)
    if completed.code != 0:
        raise Rejected(f"plugin failed: {completed.err}")
    response = json.loads(completed.out)
    if response.get("apiVersion") != api_version:
        raise Rejected(f"apiVersion {response.get('apiVersion')!r} does not match {api_version!r}")
    if response.get("kind") != "CredentialProviderResponse":
        raise Rejected(f"kind {response.get('kind')!r}")
    if response.get("cacheKeyType") not in ("Image", "Registry", "Global"):
        raise Rejected(f"cacheKeyType {response.get('cacheKeyType')!r}")
    if token and cache_type != "Token" and any(a.get("password") == token for a in (response.get("auth") or {}).values()):
        raise Rejected("the service account token returned as the password with cacheType " + cache_type)
    return Answer(response, image)
