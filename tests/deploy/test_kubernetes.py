"""deploy/kubernetes: valid objects, hardened, wired to each other and to the daemon's config."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from rotator.config import Settings, parse_settings
from tests.deploy.files import ALERTS, JOB, KUBERNETES, ROOT, load_yaml

# Prometheus Operator kinds: kubernetes-validate has schemas for Kubernetes' own kinds only, so
# these are checked by the dedicated tests below instead (drift, selector, port).
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
# Every manifest but kustomization.yaml, which is kustomize's input, never sent to the API server
# (test_kustomization_lists_every_manifest keeps the list complete).
RESOURCE_FILES = load_yaml(KUBERNETES / "kustomization.yaml")["resources"]


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(KUBERNETES / name)
    return document


def _gen_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_prometheusrule.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEPLOYMENT = _load("deployment.yaml")
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]


def _config() -> Settings:
    return parse_settings(yaml.safe_load(_load("configmap.yaml")["data"]["rotator.yaml"]))


def test_kustomization_lists_every_manifest() -> None:
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(RESOURCE_FILES) == on_disk


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", RESOURCE_FILES)
def test_manifest_is_a_valid_kubernetes_object(name: str, version: str) -> None:
    document = _load(name)
    if document["kind"] in OPERATOR_KINDS:
        pytest.skip(f"{document['kind']} is a Prometheus Operator CRD: no schema here")
    kubernetes_validate.validate(document, version, strict=True)


def test_prometheusrule_is_generated_from_alerts_yml() -> None:
    """Edit alerts.yml, then run scripts/gen_prometheusrule.py."""
    gen = _gen_script()
    assert (KUBERNETES / "prometheusrule.yaml").read_text(encoding="utf-8") == gen.render()
    assert _load("prometheusrule.yaml")["spec"]["groups"] == load_yaml(ALERTS)["groups"]


def test_generator_can_make_runbook_links_absolute() -> None:
    gen = _gen_script()
    rule = yaml.safe_load(gen.render(runbook_base="https://git.example.com/mkr/blob/main/"))
    urls = {r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "https://git.example.com/mkr/blob/main/docs/runbook.md#rotatordown" in urls
    assert all(u.startswith("https://git.example.com/mkr/blob/main/docs/runbook.md#") for u in urls)


def test_service_name_is_the_job_the_alerts_expect() -> None:
    """With a ServiceMonitor, the series' job label is the Service's name."""
    service = _load("service.yaml")
    assert service["metadata"]["name"] == JOB
    assert "jobLabel" not in _load("servicemonitor.yaml")["spec"]


def test_servicemonitor_scrapes_the_metrics_port_of_the_service() -> None:
    service, monitor = _load("service.yaml"), _load("servicemonitor.yaml")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics"
    assert ports[endpoint["port"]]["targetPort"] == "metrics"


def test_service_selects_the_pods() -> None:
    service = _load("service.yaml")
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_container_ports_match_the_configured_listeners() -> None:
    server = _config().server
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert ports == {
        "metrics": int(server.metrics_listen.rpartition(":")[2]),
        "admin": int(server.admin_listen.rpartition(":")[2]),
    }
    # The kubelet probes the pod's IP, not its loopback.
    assert server.admin_listen.startswith("0.0.0.0:")


def test_probes() -> None:
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert CONTAINER["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_one_replica_hardened() -> None:
    assert DEPLOYMENT["spec"]["replicas"] == 1
    pod_security = POD["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = CONTAINER["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert CONTAINER["resources"]["requests"] and CONTAINER["resources"]["limits"]["memory"]


def test_service_account_for_vault_without_the_kubernetes_api_token() -> None:
    account = _load("serviceaccount.yaml")
    assert POD["serviceAccountName"] == account["metadata"]["name"]
    assert POD["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in POD["volumes"]}
    token = volumes["vault-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "vault"


def _mounted_file(path: Path) -> tuple[dict[str, Any], str]:
    """The volume and the file name inside it that ``path`` in the container comes from."""
    volumes = {v["name"]: v for v in POD["volumes"]}
    for mount in CONTAINER["volumeMounts"]:
        if path.parent == Path(mount["mountPath"]):
            return volumes[mount["name"]], path.name
    raise AssertionError(f"{path} is not inside a mounted volume")


def test_config_validates_and_its_files_are_mounted() -> None:
    assert CONTAINER["args"] == ["run", "--config", "/etc/rotator/rotator.yaml"]
    volume, name = _mounted_file(Path("/etc/rotator/rotator.yaml"))
    assert volume["configMap"]["name"] == _load("configmap.yaml")["metadata"]["name"]
    assert name in _load("configmap.yaml")["data"]

    config = _config()
    assert config.vault.auth.method == "kubernetes"
    volume, name = _mounted_file(Path(config.vault.auth.jwt_file))
    assert volume["projected"]["sources"][0]["serviceAccountToken"]["path"] == name
    assert config.server.admin_token_file is not None
    volume, name = _mounted_file(config.server.admin_token_file)
    assert [item["path"] for item in volume["secret"]["items"]] == [name]


def test_the_only_writable_path_is_a_small_tmp() -> None:
    writable = [m for m in CONTAINER["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/tmp"]
    volumes = {v["name"]: v for v in POD["volumes"]}
    assert volumes[writable[0]["name"]]["emptyDir"]["sizeLimit"]
