"""docker-compose's optional `milvus` profile: Milvus standalone with its etcd and MinIO, and Kefu pointed at it."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = [name for name, service in SERVICES.items() if service.get("image") == "kefu:latest"]


def test_milvus_and_its_dependencies_run_only_with_the_profile():
    for name in ("milvus", "milvus-etcd", "milvus-minio"):
        assert SERVICES[name]["profiles"] == ["milvus"] and "healthcheck" in SERVICES[name]
    milvus = SERVICES["milvus"]
    assert milvus["environment"]["ETCD_ENDPOINTS"] == "milvus-etcd:2379"
    assert milvus["environment"]["MINIO_ADDRESS"] == "milvus-minio:9000"
    assert set(milvus["depends_on"]) == {"milvus-etcd", "milvus-minio"}


def test_app_services_take_the_search_backend_and_wait_for_milvus_when_it_runs():
    for name in APP_SERVICES:
        environment, depends = SERVICES[name]["environment"], SERVICES[name]["depends_on"]
        # the default stays local; KEFU_SEARCH_BACKEND=milvus with the profile reaches the profile's Milvus
        assert environment["KEFU_SEARCH_BACKEND"] == "${KEFU_SEARCH_BACKEND:-local}"
        assert environment["KEFU_MILVUS_URI"] == "${KEFU_MILVUS_URI:-http://milvus:19530}"
        assert depends["milvus"] == {"condition": "service_healthy", "required": False}
    assert {"milvus-etcd", "milvus-minio", "milvus-data"} <= set(COMPOSE["volumes"])
