"""deploy/k8s: every manifest is valid Kubernetes 1.33, checkov finds nothing it has not been told why to accept,
and the pieces fit together (probes, autoscalers, budgets and the inference queue name point at what exists)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"  # the version the manifests are written for (README: "Running on Kubernetes")
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}  # CRDs: no schema in kubernetes-validate


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[tuple[str, dict]]:
    return [(f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
            for path in manifest_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


DOCS = documents()


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCS if doc["kind"] == kind}


def containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=[name for name, _ in DOCS])
def test_every_manifest_is_valid_for_the_stated_kubernetes_version(doc):
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
        with pytest.raises(SchemaNotFoundError):  # known CRD: checked by the structural tests below
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return
    # strict: an unknown or misspelt field fails too
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def checkov_command() -> list[str]:
    """checkov from its own venv (`make install`: .venv/scan), else from this interpreter's packages."""
    own = ROOT / ".venv" / "scan" / "bin" / "checkov"
    if own.exists():
        return [str(own)]
    pytest.importorskip("checkov", reason="checkov is not installed: `make install` puts it in .venv/scan")
    return [sys.executable, "-m", "checkov.main"]


def test_checkov_finds_nothing_unjustified():
    # given the manifests / when checkov scans them (offline: no download of its online guidelines)
    result = subprocess.run([*checkov_command(), "-d", str(K8S), "--framework", "kubernetes",
                             "--skip-download", "-o", "json"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    # then nothing fails, and every skipped check is one an annotation accepts with its reason
    failed = [(c["check_id"], c["file_path"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed and summary["passed"] > 100, failed
    accepted = skip_annotations()
    assert {check["check_id"] for check in report["results"]["skipped_checks"]} == set(accepted)  # none stale
    assert all(len(reason) >= 30 for reason in accepted.values()), accepted


def skip_annotations() -> dict[str, str]:
    """check id → its reason, from every ``checkov.io/skip*`` annotation."""
    out = {}
    for _, doc in DOCS:
        for key, value in (doc["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                out[check] = reason
    return out


def test_kustomization_lists_every_manifest_and_renders():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [p.name for p in manifest_files()]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    rendered = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True)
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert len(kinds) == len(DOCS)


def test_web_is_probed_scaled_on_cpu_and_kept_available():
    web = of_kind("Deployment")["kefu-web"]
    (container,) = containers(web)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # probes carry an allowed host, else Django answers them 400
    config = of_kind("ConfigMap")["kefu-config"]["data"]
    hosts = {h["value"] for probe in ("livenessProbe", "readinessProbe")
             for h in container[probe]["httpGet"]["httpHeaders"] if h["name"] == "Host"}
    assert hosts <= set(config["ALLOWED_HOSTS"].split(","))
    hpa = of_kind("HorizontalPodAutoscaler")["kefu-web"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert of_kind("Service")["kefu-web"]["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]


def test_every_workload_requests_resources_and_reads_the_shared_config():
    for name, doc in {**of_kind("Deployment"), **of_kind("Job")}.items():
        for container in containers(doc):
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            refs = {next(iter(source.values()))["name"] for source in container["envFrom"]}
            assert refs == {"kefu-config", "kefu-secrets"}, name
    assert set(of_kind("ConfigMap")) == {"kefu-config"} and set(of_kind("Secret")) == {"kefu-secrets"}


def test_autoscalers_and_budgets_point_at_existing_deployments():
    deployments = of_kind("Deployment")
    for hpa in of_kind("HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    labels = [d["spec"]["selector"]["matchLabels"] for d in deployments.values()]
    for pdb in of_kind("PodDisruptionBudget").values():
        assert pdb["spec"]["selector"]["matchLabels"] in labels
    assert set(of_kind("PodDisruptionBudget")) == {"kefu-web", "kefu-worker-ingest", "kefu-worker-inference"}


def test_inference_runs_on_gpu_nodes_and_scales_on_its_queue(settings):
    inference = of_kind("Deployment")["kefu-worker-inference"]
    pod = inference["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    (scaled,) = of_kind("ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "kefu-worker-inference"
    assert scaled["spec"]["minReplicaCount"] >= 1  # the web's /readyz needs a live inference worker
    (trigger,) = scaled["spec"]["triggers"]
    # the Redis list KEDA measures is the queue Celery routes generation to
    queues = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == "inference" in queues
    assert "-Q" in container["command"] and container["command"][container["command"].index("-Q") + 1] == "inference"


def test_beat_is_a_single_replica_replaced_not_rolled():
    beat = of_kind("Deployment")["kefu-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    assert "kefu-beat" not in of_kind("HorizontalPodAutoscaler")


def test_search_runs_on_milvus_and_the_services_are_external():
    config = of_kind("ConfigMap")["kefu-config"]["data"]
    assert config["KEFU_SEARCH_BACKEND"] == "milvus" and config["KEFU_MILVUS_URI"] == "http://milvus:19530"
    services = of_kind("Service")
    assert {name for name, s in services.items() if s["spec"].get("type") == "ExternalName"} == {
        "redis", "postgres", "milvus"}
