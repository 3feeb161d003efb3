"""The Docker Compose stack, as far as this machine can check it without Docker: every file
parses, the services are wired to each other, hark's environment is valid hark configuration,
and the dashboard only queries metrics hark really exports."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hark.assembly import Engines
from hark.config import FallbackSettings, ProviderConfig, load_settings
from hark.engines.fallback import FallbackLLM, FallbackSTT, FallbackTTS
from hark.observability.metrics import STAGE_LATENCIES, Metrics
from hark.pipeline import events as ev
from hark.work_queue import WorkQueue
from tests.fakes import FakeLLM, FakeSTT, FakeTTS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
SERVICES = {"hark", "redis", "prometheus", "grafana", "traefik", "vllm"}
TEST_ENV = {
    "HARK_API_KEY": "compose-test-key",
    "GRAFANA_ADMIN_PASSWORD": "x",
    "HARK_DOMAIN": "voice.example.org",
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if name in env and env[name] != "":
            return env[name]
        if op == ":?":
            raise AssertionError(f"{name} is required: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load(COMPOSE_DIR / "docker-compose.yml")
    assert isinstance(data, dict)
    return data


def exported_names() -> set[str]:
    """Every sample name in an exposition with providers, a worker pool and one turn."""
    settings = FallbackSettings()
    engines = Engines(
        vad=None,  # type: ignore[arg-type]
        stt=FallbackSTT([(ProviderConfig(kind="faster-whisper"), FakeSTT())], settings),
        tts=FallbackTTS([(ProviderConfig(kind="piper"), FakeTTS())], settings),
        llm=FallbackLLM([(ProviderConfig(kind="vllm", name="vllm"), FakeLLM())], settings),
        pool=type(
            "Pool",
            (),
            {
                "size": 1,
                "processes": 1,
                "in_flight": 0,
                "ready": True,
                "queue_depth": 0,
                "queue_limit": 16,
                "restarts": 0,
                "queue": WorkQueue(16),
                "pressure": lambda self, window_s=10.0: 0.0,
            },
        )(),  # type: ignore[arg-type]
    )
    metrics = Metrics(lambda: engines)
    metrics.session_opened("realtime")
    metrics.turn(ev.Latency("resp_1", 300.0, 400.0, 200.0, 100.0, 800.0), "completed")
    metrics.error("invalid_json")
    body = metrics.render()[0].decode()
    return {sample.name for family in text_string_to_metric_families(body) for sample in family.samples}


def test_compose_has_the_services_and_the_model_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert services["vllm"]["profiles"] == ["model"]
    assert services["vllm"]["image"].startswith("vllm/vllm-openai:")
    assert [name for name, service in services.items() if "profiles" in service] == ["vllm"]
    assert services["redis"]["image"].startswith("redis:7")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services["traefik"]["image"].startswith("traefik:v3")
    build = services["hark"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert "redis" in services["hark"]["depends_on"]
    # Only Traefik is published to the world; the rest is internal or on loopback.
    assert "ports" not in services["hark"] and "ports" not in services["vllm"]
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"])


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (COMPOSE_DIR / source).exists(), source
            elif not source.startswith("/"):
                assert source in compose["volumes"], source


def test_hark_environment_is_valid_hark_configuration(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("HARK_")]:
        monkeypatch.delenv(key)
    for key, value in compose["services"]["hark"]["environment"].items():
        monkeypatch.setenv(key, interpolate(str(value), TEST_ENV))
    with pytest.raises(AssertionError, match="HARK_API_KEY is required"):
        interpolate(compose["services"]["hark"]["environment"]["HARK_SECURITY_API_KEYS"], {})
    # The image bakes deploy/config.yaml in as /etc/hark/config.yaml; the environment wins.
    settings = load_settings(ROOT / "deploy" / "config.yaml")
    assert settings.server.host == "0.0.0.0" and settings.server.port == 8000
    assert [k.get_secret_value() for k in settings.security.api_keys] == ["compose-test-key"]
    assert settings.security.allowed_origins == ["https://voice.example.org"]
    assert settings.redis.url is not None and settings.redis.url.get_secret_value() == "redis://redis:6379/0"
    assert settings.observability.log_format == "json"
    (provider,) = settings.llm.chain()
    assert provider.kind == "vllm" and provider.base_url == "http://vllm:8000/v1"
    vllm = compose["services"]["vllm"]["command"]
    assert vllm[vllm.index("--served-model-name") + 1] == provider.model
    assert "8000" in compose["services"]["vllm"]["expose"]


def test_prometheus_scrapes_hark(compose: dict[str, Any]) -> None:
    config = load(COMPOSE_DIR / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "hark"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["hark:8000"]
    assert "8000" in compose["services"]["hark"]["expose"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_is_provisioned_with_the_datasource_and_dashboard(compose: dict[str, Any]) -> None:
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    (source,) = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = load(provisioning / "dashboards" / "hark.yml")["providers"]
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboard = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "hark.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]


def test_dashboard_queries_only_metrics_hark_exports() -> None:
    dashboard = json.loads((COMPOSE_DIR / "grafana" / "dashboards" / "hark.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    exported = exported_names()
    used: set[str] = set()
    for expr in exprs:
        names = set(re.findall(r"\bhark_[a-z0-9_]+\b", expr))
        assert names, expr
        used |= names
    assert used <= exported, sorted(used - exported)
    # p50 and p95 of every per-stage latency histogram.
    for _, name, _ in STAGE_LATENCIES:
        for quantile in ("0.5", "0.95"):
            assert any(f"histogram_quantile({quantile}," in e and f"{name}_bucket" in e for e in exprs), name
    for name in (
        "hark_sessions_active",
        "hark_turns_total",
        "hark_errors_total",
        "hark_provider_circuit_open",
        "hark_worker_queue_depth",
    ):
        assert name in used


def test_traefik_terminates_tls_and_routes_websockets_to_hark(compose: dict[str, Any]) -> None:
    static = load(COMPOSE_DIR / "traefik" / "traefik.yml")
    websecure = static["entryPoints"]["websecure"]
    assert websecure["address"] == ":443" and "tls" in websecure["http"]
    redirect = static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"]
    assert redirect == {"to": "websecure", "scheme": "https"}
    assert static["providers"]["docker"]["exposedByDefault"] is False
    assert static["providers"]["file"]["directory"] == "/etc/traefik/dynamic"
    dynamic = load(COMPOSE_DIR / "traefik" / "dynamic" / "tls.yml")
    assert dynamic["tls"]["options"]["default"]["minVersion"] in ("VersionTLS12", "VersionTLS13")
    traefik = compose["services"]["traefik"]
    assert "443:443" in traefik["ports"]
    assert "./traefik:/etc/traefik:ro" in traefik["volumes"]
    labels = compose["services"]["hark"]["labels"]
    assert labels["traefik.enable"] == "true"
    assert labels["traefik.http.routers.hark.entrypoints"] == "websecure"
    assert labels["traefik.http.routers.hark.tls"] == "true"
    assert labels["traefik.http.services.hark.loadbalancer.server.port"] == "8000"
    rule = interpolate(labels["traefik.http.routers.hark.rule"], TEST_ENV)
    assert rule == "Host(`voice.example.org`) && !PathPrefix(`/metrics`)"
    # Let's Encrypt: the override names a resolver the static configuration defines.
    acme = load(COMPOSE_DIR / "docker-compose.acme.yml")
    resolver = acme["services"]["hark"]["labels"]["traefik.http.routers.hark.tls.certresolver"]
    assert "tlsChallenge" in static["certificatesResolvers"][resolver]["acme"]


def test_hark_trusts_forwarded_addresses_from_traefik_only(compose: dict[str, Any]) -> None:
    """With ``*`` any client could name the address its per-address limits are counted under."""
    import ipaddress

    trusted = compose["services"]["hark"]["environment"]["FORWARDED_ALLOW_IPS"]
    traefik = compose["services"]["traefik"]["networks"]["default"]["ipv4_address"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert "*" not in trusted
    assert trusted == traefik
    assert ipaddress.ip_address(traefik) in ipaddress.ip_network(subnet)
