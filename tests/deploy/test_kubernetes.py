"""deploy/kubernetes: every manifest is valid Kubernetes and agrees with the services it deploys.

The Kustomize base is read without kubectl: the files its ``resources`` list, loaded with PyYAML.
Each manifest is validated against the Kubernetes schemas of :data:`KUBERNETES_VERSION` in strict
mode (kubernetes-validate: an unknown or misspelled field fails), and checked against the code: the
probes against the runtime's routes and port setting, every variable against the settings the
services declare, the security context against the Dockerfile's user, the images against
docker-compose.yml's.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from litestar.testing import TestClient

from ml_matching.contract.settings import variables
from ml_matching.runtime.app import create_app
from ml_matching.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
SECRET_EXAMPLE = "secret.example.yaml"
# The oldest version whose schemas every allowed kubernetes-validate ships (pyproject: >=1.30).
KUBERNETES_VERSION = "1.30.0"
Manifest = dict[str, Any]


def _load(name: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all((BASE / name).read_text(encoding="utf-8")) if doc]


def _trainer_settings_module() -> ModuleType:
    """``ml_matching.trainer.settings`` without running ``ml_matching.trainer``'s ``__init__``.

    The package imports the trainer app and with it scikit-learn (seconds, and absent from the
    runtime-only install); these tests need only the settings' declarations, which import the
    contract and the HTTP kit alone.
    """
    name = "ml_matching.trainer.settings"
    if name in sys.modules:
        return sys.modules[name]
    package = importlib.util.find_spec("ml_matching")
    assert package is not None and package.submodule_search_locations
    path = Path(next(iter(package.submodule_search_locations))) / "trainer" / "settings.py"
    private = "_deploy_test_trainer_settings"
    spec = importlib.util.spec_from_file_location(private, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    return module


TrainerSettings = _trainer_settings_module().TrainerSettings
KUSTOMIZATION = _load("kustomization.yaml")[0]
RESOURCES = [doc for name in KUSTOMIZATION["resources"] for doc in _load(name)]
# Every manifest of the folder, the Secret example too (not kustomization.yaml: no Kubernetes kind).
EVERY_MANIFEST = [
    (name, doc)
    for name in sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    for doc in _load(name)
]
RUNTIME_VARIABLES = {v.name for v, _ in variables(Settings)}
TRAINER_VARIABLES = {v.name for v, _ in variables(TrainerSettings)}
# The pods' containers, by component label, and the settings class of the service each runs.
COMPONENTS = {"runtime": (Settings, RUNTIME_VARIABLES), "trainer": (TrainerSettings, TRAINER_VARIABLES)}


def _one(kind: str, component: str | None = None) -> Manifest:
    found = [
        doc
        for doc in RESOURCES
        if doc["kind"] == kind
        and (component is None or doc["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    assert len(found) == 1, f"one {kind} {component or ''} in the base, found {len(found)}"
    return found[0]


def _container(component: str) -> Manifest:
    containers = _one("Deployment", component)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _config() -> dict[str, str]:
    return _one("ConfigMap")["data"]


def _environment(component: str) -> dict[str, str]:
    """The variables the component's container gets from the ConfigMap and its own ``env`` values."""
    container = _container(component)
    config = _one("ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == config["metadata"]["name"]
        env.update(config["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def _port(container: Manifest, port: int | str) -> int:
    """A container port given by number or by name."""
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in container["ports"]}
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def _dockerfile_uid() -> int:
    users = set(re.findall(r"useradd [^\n]*--uid (\d+)", (ROOT / "Dockerfile").read_text()))
    assert len(users) == 1, users
    return int(users.pop())


# --- the base and the schemas -------------------------------------------------------------------


def test_the_base_lists_every_manifest_but_the_secret_example() -> None:
    files = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert SECRET_EXAMPLE in files
    assert set(KUSTOMIZATION["resources"]) == files - {SECRET_EXAMPLE}
    assert not KUSTOMIZATION.get("secretGenerator")  # placeholders are never applied
    assert KUSTOMIZATION["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert KUSTOMIZATION["kind"] == "Kustomization"
    assert Counter(doc["kind"] for doc in RESOURCES) == {
        "ConfigMap": 1,
        "PersistentVolumeClaim": 1,
        "Deployment": 2,
        "Service": 2,
        "HorizontalPodAutoscaler": 1,
        "PodDisruptionBudget": 1,
    }


@pytest.fixture(scope="module")
def kubernetes_validate() -> ModuleType:
    return pytest.importorskip("kubernetes_validate", reason="the test group installs kubernetes-validate")


@pytest.mark.parametrize(
    ("file", "manifest"),
    EVERY_MANIFEST,
    ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in EVERY_MANIFEST],
)
def test_manifest_is_valid_kubernetes(file: str, manifest: Manifest, kubernetes_validate: ModuleType) -> None:
    checked = kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert checked == KUBERNETES_VERSION.rsplit(".", 1)[0], file


def test_a_misspelled_field_fails_validation(kubernetes_validate: ModuleType) -> None:
    broken = copy.deepcopy(_one("Deployment", "runtime"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_a_wrong_type_fails_validation(kubernetes_validate: ModuleType) -> None:
    broken = copy.deepcopy(_one("Deployment", "trainer"))
    broken["spec"]["replicas"] = "1"
    with pytest.raises(kubernetes_validate.ValidationError, match="'1' is not of type 'integer'"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# --- probes, ports and addresses ----------------------------------------------------------------


def test_runtime_probes_name_its_routes_on_its_port(tmp_path: Path) -> None:
    container = _container("runtime")
    port = int(_environment("runtime").get("ML_SERVICE_PORT", Settings().port))
    assert _port(container, "http") == port
    probes = {
        kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/health",
        "livenessProbe": "/health",
        "readinessProbe": "/health/ready",
    }
    assert {_port(container, probe["port"]) for probe in probes.values()} == {port}
    routes = {route.path: route.methods for route in create_app(Settings(models_dir=tmp_path)).routes}
    for probe in probes.values():
        assert "GET" in routes[probe["path"]], probe["path"]


def test_runtime_liveness_holds_while_no_model_is_ready(tmp_path: Path) -> None:
    # A new store is empty until the trainer promotes a version: the replicas must wait unready,
    # not be restarted by the liveness probe.
    with TestClient(create_app(Settings(models_dir=tmp_path, model_watch_seconds=0))) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health/ready").status_code == 503


def test_trainer_probes_are_on_its_port() -> None:
    container = _container("trainer")
    port = int(_environment("trainer").get("ML_TRAINER_PORT", TrainerSettings().port))
    assert _port(container, "http") == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert _port(container, container[kind]["httpGet"]["port"]) == port


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_each_service_reaches_its_pods(component: str) -> None:
    service = _one("Service", component)
    template = _one("Deployment", component)["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    other = "trainer" if component == "runtime" else "runtime"
    assert (
        not service["spec"]["selector"].items()
        <= _one("Deployment", other)["spec"]["template"]["metadata"]["labels"].items()
    )
    [port] = service["spec"]["ports"]
    settings_port = {"runtime": "ML_SERVICE_PORT", "trainer": "ML_TRAINER_PORT"}[component]
    assert _port(_container(component), port["targetPort"]) == int(_environment(component)[settings_port])


def test_the_runtime_sends_its_ledger_to_the_trainer_service() -> None:
    url = urlsplit(_environment("runtime")["ML_TRAINER_URL"])
    trainer = _one("Service", "trainer")
    [port] = trainer["spec"]["ports"]
    assert (url.scheme, url.hostname, url.port) == ("http", trainer["metadata"]["name"], port["port"])


# --- settings -----------------------------------------------------------------------------------


def _undeclared(names: Iterable[str], declared: set[str]) -> set[str]:
    return set(names) - declared


def test_every_configmap_key_is_a_declared_setting() -> None:
    unknown = _undeclared(_config(), RUNTIME_VARIABLES | TRAINER_VARIABLES)
    assert not unknown, f"no service reads {sorted(unknown)}"


def test_the_check_catches_a_misspelled_variable() -> None:
    misspelled = {**_config(), "MODEL_DIR": "/srv/store"}  # the setting is MODELS_DIR
    assert _undeclared(misspelled, RUNTIME_VARIABLES | TRAINER_VARIABLES) == {"MODEL_DIR"}
    assert _undeclared({"OUTCOMES_DB"}, RUNTIME_VARIABLES) == {"OUTCOMES_DB"}  # the trainer's alone


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_container_variable_is_one_its_service_reads(component: str) -> None:
    settings, declared = COMPONENTS[component]
    named = {e["name"] for e in _container(component).get("env", [])}
    assert not _undeclared(named, declared), f"{component} does not read {sorted(named - declared)}"
    # The ConfigMap's values are ones the service accepts (a typo in a number or a choice stops it).
    environment = _environment(component)
    settings.from_environ(environment)
    assert {"MODELS_DIR", "LOG_LEVEL", "MODEL_TYPE"} <= set(environment)


def _service_link_variables(service: Manifest) -> set[str]:
    """What Kubernetes sets in a pod for ``service`` when service links are on (Docker links' names)."""
    name = service["metadata"]["name"].upper().replace("-", "_")
    out = {f"{name}_SERVICE_HOST", f"{name}_SERVICE_PORT", f"{name}_PORT"}
    for port in service["spec"]["ports"]:
        out.add(f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}")
        base = f"{name}_PORT_{port['port']}_{port.get('protocol', 'TCP')}"
        out |= {base, f"{base}_PROTO", f"{base}_PORT", f"{base}_ADDR"}
    return out


def test_no_service_link_variable_can_shadow_a_setting() -> None:
    # Kubernetes gives every pod NAME_SERVICE_HOST, NAME_PORT=tcp://..., ... for each Service unless
    # enableServiceLinks is off: a Service named ml-service would set ML_SERVICE_PORT=tcp://... and
    # stop the runtime's start-up. Off, and the names are kept clear of the settings anyway.
    for component in COMPONENTS:
        assert _one("Deployment", component)["spec"]["template"]["spec"]["enableServiceLinks"] is False
    for service in (doc for doc in RESOURCES if doc["kind"] == "Service"):
        assert not _service_link_variables(service) & (RUNTIME_VARIABLES | TRAINER_VARIABLES)
    as_compose_names_it = {
        "metadata": {"name": "ml-service"},
        "spec": {"ports": [{"name": "http", "port": 8000}]},
    }
    assert "ML_SERVICE_PORT" in _service_link_variables(as_compose_names_it) & RUNTIME_VARIABLES


# --- security, the store, replicas, images, the secret ------------------------------------------


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_pods_run_as_the_image_user_with_a_read_only_root(component: str) -> None:
    pod = _one("Deployment", component)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _dockerfile_uid()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    container = _container(component)
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    # Python's tempfile (and prometheus-client's multiprocess folder, matplotlib's cache) need /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]


@pytest.mark.parametrize(("component", "read_only"), [("runtime", True), ("trainer", False)])
def test_both_mount_the_shared_store_at_models_dir(component: str, read_only: bool) -> None:
    claim = _one("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = _one("Deployment", component)["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    [mount] = [m for m in _container(component)["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == _environment(component)["MODELS_DIR"]
    assert mount.get("readOnly", False) is read_only


def test_the_trainer_is_one_replica_replaced_not_rolled() -> None:
    trainer = _one("Deployment", "trainer")
    assert trainer["spec"]["replicas"] == 1
    assert trainer["spec"]["strategy"] == {"type": "Recreate"}
    autoscaler = _one("HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    runtime = _one("Deployment", "runtime")
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": runtime["metadata"]["name"],
    }
    assert [m["resource"]["name"] for m in autoscaler["spec"]["metrics"]] == ["cpu"]
    assert "replicas" not in runtime["spec"]  # the autoscaler owns the count
    assert "cpu" in _container("runtime")["resources"]["requests"]  # utilization is of the request


def test_images_are_the_ones_compose_builds() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert _container("runtime")["image"] == compose["ml-service"]["image"]
    assert _container("trainer")["image"] == compose["ml-trainer"]["image"]
    for container in (_container("runtime"), _container("trainer")):
        assert "command" not in container and "args" not in container  # the image's CMD runs


def test_every_secret_reference_is_in_the_example_secret() -> None:
    [secret] = _load(SECRET_EXAMPLE)
    assert secret["kind"] == "Secret"
    values = secret["stringData"]
    for component in COMPONENTS:
        for e in _container(component).get("env", []):
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in values and ref["key"] == e["name"]
    assert urlsplit(values["OUTCOMES_DB"]).scheme == "postgresql"
    assert all("PLACEHOLDER" in value for value in values.values())
    trainer_env = {e["name"]: e for e in _container("trainer")["env"]}
    assert not trainer_env["OUTCOMES_DB"]["valueFrom"]["secretKeyRef"].get("optional", False)
