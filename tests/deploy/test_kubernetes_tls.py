"""deploy/kubernetes-tls: the TLS variant (a kustomize overlay of deploy/kubernetes) renders to
valid objects whose files, Secrets, probes and ServiceMonitor agree with each other.

The overlay is applied here with the strategic-merge rules it uses (maps merge, lists of named
items merge by name, other lists are replaced); when ``kubectl`` is installed, its kustomize
must render the same objects.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import bcrypt
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from rotator.config import parse_settings
from rotator.web.config import parse_web_config
from tests.deploy.files import DEPLOY, KUBERNETES, load_yaml

TLS = DEPLOY / "kubernetes-tls"
KUSTOMIZATION = load_yaml(TLS / "kustomization.yaml")


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    named = isinstance(base, list) and all(isinstance(i, dict) and "name" in i for i in base)
    if named and isinstance(patch, list) and all("name" in i for i in patch):
        patches = {i["name"]: i for i in patch}
        merged_list = [_merge(i, patches[i["name"]]) if i["name"] in patches else i for i in base]
        known = {i["name"] for i in base}
        return merged_list + [copy.deepcopy(i) for i in patch if i["name"] not in known]
    return copy.deepcopy(patch)


def _ordered(value: Any) -> Any:
    """Named list items sorted by name: where a merge puts new ones is not a difference."""
    if isinstance(value, dict):
        return {k: _ordered(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_ordered(i) for i in value]
        if all(isinstance(i, dict) and "name" in i for i in items):
            return sorted(items, key=lambda i: str(i["name"]))
        return items
    return value


def _key(document: dict[str, Any]) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


def render() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in KUSTOMIZATION["resources"]:
        if resource == "../kubernetes":
            files = [
                KUBERNETES / f for f in load_yaml(KUBERNETES / "kustomization.yaml")["resources"]
            ]
        else:
            files = [TLS / resource]
        for path in files:
            document = load_yaml(path)
            objects[_key(document)] = document
    for patch in KUSTOMIZATION["patches"]:
        document = load_yaml(TLS / patch["path"])
        objects[_key(document)] = _merge(objects[_key(document)], document)
    return objects


OBJECTS = render()
POD = OBJECTS[("Deployment", "mistral-key-rotator")]["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]


def _secret(name: str) -> dict[str, str]:
    data: dict[str, str] = OBJECTS[("Secret", name)]["stringData"]
    return data


def _file_in_container(path: PurePosixPath) -> tuple[dict[str, Any], str]:
    """The volume ``path`` comes from, and the key inside it."""
    volumes = {v["name"]: v for v in POD["volumes"]}
    for mount in CONTAINER["volumeMounts"]:
        if path.parent == PurePosixPath(mount["mountPath"]):
            return volumes[mount["name"]], path.name
    raise AssertionError(f"{path} is not in a mounted volume")


@pytest.mark.parametrize("version", ["1.28.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize(
    "key", sorted(k for k in OBJECTS if k[0] not in {"ServiceMonitor", "PrometheusRule"})
)
def test_rendered_object_is_valid(key: tuple[str, str], version: str) -> None:
    kubernetes_validate.validate(OBJECTS[key], version, strict=True)


def test_kustomization_lists_every_file() -> None:
    listed = set(KUSTOMIZATION["resources"][1:]) | {p["path"] for p in KUSTOMIZATION["patches"]}
    assert listed == {p.name for p in TLS.glob("*.yaml")} - {"kustomization.yaml"}


def test_config_differs_from_the_base_by_the_web_config_file_only() -> None:
    tls = yaml.safe_load(OBJECTS[("ConfigMap", "mistral-key-rotator")]["data"]["rotator.yaml"])
    base = yaml.safe_load(load_yaml(KUBERNETES / "configmap.yaml")["data"]["rotator.yaml"])
    web_file = tls["server"].pop("web_config_file")
    assert tls == base
    settings = parse_settings({**base, "server": {**base["server"], "web_config_file": web_file}})
    assert settings.server.web_config_file == Path(web_file)


def _web_config() -> Any:
    tls = yaml.safe_load(OBJECTS[("ConfigMap", "mistral-key-rotator")]["data"]["rotator.yaml"])
    path = PurePosixPath(tls["server"]["web_config_file"])
    volume, name = _file_in_container(path)
    secret = volume["secret"]["secretName"]
    assert [i["path"] for i in volume["secret"]["items"]] == [name]
    text = _secret(secret)[name]
    return parse_web_config(yaml.safe_load(text), Path(path.parent))


def test_web_config_is_valid_and_its_certificate_comes_from_the_tls_secret() -> None:
    web = _web_config()
    tls = web.tls_server_config
    assert tls is not None
    for path in (tls.cert_file, tls.key_file):
        volume, name = _file_in_container(PurePosixPath(path))
        assert volume["secret"]["secretName"] == "mistral-key-rotator-tls"
        assert "items" not in volume["secret"], "a renewed Secret must reach every file"
        assert name in _secret("mistral-key-rotator-tls")
    # The kubelet's probes send no client certificate.
    assert tls.client_auth_type != "RequireAndVerifyClientCert"


def test_probes_speak_https() -> None:
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert CONTAINER[probe]["httpGet"]["scheme"] == "HTTPS"
        assert CONTAINER[probe]["periodSeconds"]  # the base's settings are kept


def test_servicemonitor_verifies_the_certificate_and_logs_in_as_a_configured_user() -> None:
    (endpoint,) = OBJECTS[("ServiceMonitor", "mistral-key-rotator")]["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    ca = endpoint["tlsConfig"]["ca"]["secret"]
    assert ca["key"] in _secret(ca["name"])
    assert "insecureSkipVerify" not in endpoint["tlsConfig"]
    auth = endpoint["basicAuth"]
    credentials = {
        part: _secret(auth[part]["name"])[auth[part]["key"]] for part in ("username", "password")
    }
    hashed = _web_config().basic_auth_users[credentials["username"]]
    assert bcrypt.checkpw(credentials["password"].encode(), hashed.encode())


def test_kubectl_kustomize_renders_the_same() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the overlay is checked with the merge above only")
    result = subprocess.run(
        [kubectl, "kustomize", str(TLS)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = {_key(d): d for d in yaml.safe_load_all(result.stdout) if d}
    assert set(rendered) == set(OBJECTS)
    for key, document in rendered.items():
        assert _ordered(document) == _ordered(OBJECTS[key]), key
