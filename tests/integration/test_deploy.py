"""Deployment files and the log directory."""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import yaml

from hark.config import SecuritySettings, Settings, load_settings
from hark.drain import stop_within_s
from tests.servers import HarkProcess

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("HARK_")]:
        monkeypatch.delenv(key)
    settings = load_settings(ROOT / "deploy" / "config.yaml")
    assert settings.server.log_dir == Path("/var/log/hark")
    assert [p.kind for p in settings.tts.providers] == ["piper", "espeak"]
    assert settings.llm.chain()[0].kind == "ollama"


def test_systemd_unit_runs_hark_with_the_config() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "hark.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("hark serve")
    assert service["Environment"] == "HARK_CONFIG=/etc/hark/config.yaml"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= stop_within_s(SecuritySettings().drain_timeout_s)
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_compose_waits_for_the_drain() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "docker-compose.yml").read_text())
    grace = compose["services"]["hark"]["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) >= stop_within_s(SecuritySettings().drain_timeout_s)


def test_dockerfile_serves_hark() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["hark", "serve"]' in text and "/ready" in text and "silero-vad" in text


@pytest.mark.slow
def test_logs_go_to_log_dir_or_fall_back_to_stderr(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    with HarkProcess(env={"HARK_SERVER_LOG_DIR": str(log_dir)}, log_path=tmp_path / "stderr.txt") as server:
        assert httpx.get(server.base_url + "/health").status_code == 200
    assert "engines warm" in (log_dir / "hark.log").read_text()
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    with HarkProcess(
        env={"HARK_SERVER_LOG_DIR": str(blocked / "sub")}, log_path=tmp_path / "stderr2.txt"
    ) as server:
        assert httpx.get(server.base_url + "/health").status_code == 200
    stderr = (tmp_path / "stderr2.txt").read_text()
    assert "log_dir is not writable; logging to stderr" in stderr and "engines warm" in stderr


# -- Kubernetes (deploy/kubernetes/) ------------------------------------------------------------------

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"
"""The oldest Kubernetes the manifests are checked against (kubernetes-validate bundles its schemas)."""


def manifests() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def one(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_of(deployment: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    template = deployment["spec"]["template"]
    return template["metadata"]["labels"], template["spec"]


def container_port(pod: dict[str, Any], port: int | str) -> int:
    """The container port a Service or probe names (by name or number)."""
    ports = [p for c in pod["containers"] for p in c.get("ports", [])]
    [found] = [p["containerPort"] for p in ports if port in (p.get("name"), p["containerPort"])]
    return int(found)


def kubernetes_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """hark's settings as a pod reads them: the ConfigMap's config.yaml."""
    for key in [k for k in os.environ if k.startswith("HARK_")]:
        monkeypatch.delenv(key)
    path = tmp_path / "config.yaml"
    path.write_text(one("ConfigMap", "hark-config")["data"]["config.yaml"])
    return load_settings(path)


def test_kubernetes_manifests_match_the_schemas() -> None:
    import kubernetes_validate

    documents = manifests()
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in documents)
    assert kinds == [
        "ConfigMap/hark-config",
        "Deployment/hark",
        "Deployment/hark-redis",
        "HorizontalPodAutoscaler/hark",
        "NetworkPolicy/hark-redis",
        "PodDisruptionBudget/hark",
        "Secret/hark-secrets",
        "Service/hark",
        "Service/hark-redis",
    ]
    for document in documents:
        # strict: an unknown or misspelt field fails too, not only a wrong type.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kubernetes_manifests_refer_to_each_other() -> None:
    hark_labels, hark_pod = pod_of(one("Deployment", "hark"))
    redis_labels, redis_pod = pod_of(one("Deployment", "hark-redis"))
    for deployment in (one("Deployment", "hark"), one("Deployment", "hark-redis")):
        labels, _ = pod_of(deployment)
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    assert not selects(hark_labels, redis_labels), "the hark Service must not select Redis pods"
    # Services reach their pods' ports.
    for service, labels, pod in (
        (one("Service", "hark"), hark_labels, hark_pod),
        (one("Service", "hark-redis"), redis_labels, redis_pod),
    ):
        assert selects(service["spec"]["selector"], labels)
        for port in service["spec"]["ports"]:
            container_port(pod, port["targetPort"])
    # Disruption budget, autoscaler and spread all mean the hark pods.
    assert selects(one("PodDisruptionBudget", "hark")["spec"]["selector"]["matchLabels"], hark_labels)
    [spread] = hark_pod["topologySpreadConstraints"]
    assert selects(spread["labelSelector"]["matchLabels"], hark_labels)
    hpa = one("HorizontalPodAutoscaler", "hark")["spec"]
    assert (hpa["scaleTargetRef"]["kind"], hpa["scaleTargetRef"]["name"]) == ("Deployment", "hark")
    assert hpa["minReplicas"] >= 2, "with maxUnavailable 1, one pod stays up through a disruption"
    # Only hark reaches Redis, on Redis's port.
    policy = one("NetworkPolicy", "hark-redis")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], redis_labels)
    [rule] = policy["ingress"]
    assert selects(rule["from"][0]["podSelector"]["matchLabels"], hark_labels)
    assert rule["ports"][0]["port"] == container_port(redis_pod, "redis")
    # Config and secrets the pod names exist.
    [container] = hark_pod["containers"]
    [volume] = hark_pod["volumes"]
    assert one("ConfigMap", volume["configMap"]["name"])["data"]["config.yaml"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/etc/hark"}
    for env in container["env"]:
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref.get("optional") or ref["key"] in one("Secret", ref["name"])["stringData"]


def test_kubernetes_pods_agree_with_hark_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = kubernetes_settings(monkeypatch, tmp_path)
    _, pod = pod_of(one("Deployment", "hark"))
    [container] = pod["containers"]
    assert container["args"][-2:] == ["hark", "serve"]
    # The port hark listens on is the one the Service and the probes use.
    assert container_port(pod, "http") == settings.server.port
    assert settings.server.host == "0.0.0.0"
    probes = {"livenessProbe": "/health", "readinessProbe": "/ready", "startupProbe": "/health"}
    for probe, path in probes.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and container_port(pod, get["port"]) == settings.server.port
    # Redis is the Service of that name.
    redis_url = urlparse(settings.redis.url.get_secret_value() if settings.redis.url else "")
    redis_service = one("Service", "hark-redis")
    assert redis_url.hostname == redis_service["metadata"]["name"]
    assert redis_url.port == redis_service["spec"]["ports"][0]["port"]
    # SIGKILL comes only after the preStop pause and everything hark's drain may take.
    pause = float(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    budget = pause + stop_within_s(settings.security.drain_timeout_s)
    assert pod["terminationGracePeriodSeconds"] >= budget, budget
    # Pods are added before the existing ones refuse conversations.
    [metric] = one("HorizontalPodAutoscaler", "hark")["spec"]["metrics"]
    target = float(metric["pods"]["target"]["averageValue"])
    assert 0 < target < settings.admission.max_conversations <= settings.security.max_sessions
    # One worker per CPU the pod asks for.
    assert settings.workers.processes == int(container["resources"]["requests"]["cpu"])


def test_prometheus_adapter_serves_the_metric_the_autoscaler_reads() -> None:
    values = yaml.safe_load((KUBERNETES / "prometheus-adapter" / "values.yaml").read_text())
    [rule] = values["rules"]["custom"]
    [metric] = one("HorizontalPodAutoscaler", "hark")["spec"]["metrics"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"] == "hark_sessions_active"
    assert rule["seriesQuery"].startswith("hark_sessions_active{")
    assert '"hark_sessions_active"' in (ROOT / "src" / "hark" / "observability" / "metrics.py").read_text()
