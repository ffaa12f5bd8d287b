"""Kubernetes manifests: render every Kustomize overlay with `kubectl kustomize`, validate each object
against the Kubernetes OpenAPI schemas (kubernetes-validate, strict), and check what the issue
promises: restrictive security contexts, resources, probes, secrets referenced and never written
down, the worker Deployment, the migration Job, PDBs, NetworkPolicies, and the HPA in prod.

kubectl is required, not optional: on Debian, `apt-get install -y kubernetes-client`.
The kustomizations stay within kustomize v2.0.3, the version inside that package's kubectl 1.20.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.policy.model import load_policy
from app.settings import Settings, TargetSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("overlays/dev", "overlays/prod")
KUSTOMIZATIONS = ("base", *OVERLAYS)
#: The oldest Kubernetes we claim to support, and the newest schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
SECRET_NAMES = {"leaver-secrets", "leaver-targets"}


# --- rendering -----------------------------------------------------------------------------------


@functools.cache
def kubectl() -> str:
    found = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not found:
        pytest.fail(
            "kubectl not found: these tests render the manifests with `kubectl kustomize`. "
            "On Debian/Ubuntu: apt-get install -y kubernetes-client (or set KUBECTL=/path/to/kubectl)."
        )
    return found


@functools.cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / kustomization)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"kubectl kustomize deploy/{kustomization} failed:\n{proc.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    assert docs, f"deploy/{kustomization} rendered nothing"
    return docs


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "Pod":
        return {"metadata": workload["metadata"], "spec": spec}
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def workloads(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield f"{doc['kind']}/{doc['metadata']['name']}", pod_template(doc)


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    result: list[dict[str, Any]] = spec.get("initContainers", []) + spec["containers"]
    return result


def component(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (container,) = pod_template(named(docs, kind, name))["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are used here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from strings(value, f"{path}[{n}]")
    elif isinstance(node, str):
        yield path, node


# --- rendering and schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_matches_the_kubernetes_schema(kustomization: str, version: str) -> None:
    problems = []
    for doc in render(kustomization):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not problems, f"deploy/{kustomization} against Kubernetes {version}:\n" + "\n".join(problems)


def test_the_validator_rejects_a_bad_object() -> None:
    (deployment,) = [d for d in render("overlays/prod") if d["kind"] == "Deployment" and "api" in d["metadata"]["name"]]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomizations_stay_within_kustomize_v2_0_3(kustomization: str) -> None:
    """Debian's kubernetes-client (kubectl 1.20) embeds kustomize v2.0.3, which rejects newer fields
    (`patches`, `replicas`, `labels`, directories under `resources`)."""
    known = {
        "apiVersion",
        "kind",
        "namespace",
        "namePrefix",
        "nameSuffix",
        "commonLabels",
        "commonAnnotations",
        "bases",
        "resources",
        "images",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
        "patchesStrategicMerge",
        "patchesJson6902",
        "vars",
        "crds",
        "configurations",
    }
    path = DEPLOY / kustomization
    spec = yaml.safe_load((path / "kustomization.yaml").read_text())
    assert set(spec) <= known, f"not understood by kustomize v2.0.3: {sorted(set(spec) - known)}"
    for resource in spec.get("resources", []):
        assert (path / resource).is_file(), f"{resource}: v2.0.3 takes only files in `resources` (use `bases`)"


# --- security ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_container_is_locked_down(kustomization: str) -> None:
    docs = render(kustomization)
    assert list(workloads(docs))
    for where, pod in workloads(docs):
        spec = pod["spec"]
        pod_sc = spec.get("securityContext", {})
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), f"{where}: {key}"
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], f"{where}: hostPath volume"
        assert spec.get("automountServiceAccountToken") is False, f"{where}: mounts an API token"
        for c in containers(pod):
            sc = c.get("securityContext", {})
            who = f"{where} container {c['name']}"
            assert sc.get("privileged") is not True, f"{who} is privileged"
            assert (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))) is True, f"{who}: runAsNonRoot"
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            assert uid is not None and uid != 0, f"{who}: numeric non-root runAsUser"
            assert sc.get("readOnlyRootFilesystem") is True, f"{who}: readOnlyRootFilesystem"
            assert sc.get("allowPrivilegeEscalation") is False, f"{who}: allowPrivilegeEscalation"
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), f"{who}: capabilities.drop ALL"
            assert not sc.get("capabilities", {}).get("add"), f"{who}: adds capabilities"
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") in {"RuntimeDefault", "Localhost"}, f"{who}: seccompProfile"
            resources = c.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{who}: resources.{kind}"
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{who}: a writable /tmp (the root filesystem is read-only)"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_no_secret_is_written_down(kustomization: str) -> None:
    docs = render(kustomization)
    assert not of_kind(docs, "Secret"), "Secrets are created out of band (kubectl create secret), not shipped"
    leaks = [
        (r"whsec_", "a webhook secret"),
        (r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", "a URL with a password"),
        (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "a private key"),
        (r"(?i)\b(client_secret|password)\s*:\s*\S", "a credential in YAML"),
    ]
    for doc in docs:
        for path, value in strings(doc):
            for pattern, what in leaks:
                assert not re.search(pattern, value), f"{doc['kind']}/{doc['metadata']['name']}{path}: {what}"
    secretish = re.compile(r"SECRET|TOKEN|PASSWORD|DATABASE_URL|CREDENTIAL|TARGETS", re.IGNORECASE)
    for where, pod in workloads(docs):
        for c in containers(pod):
            for env in c.get("env", []):
                if secretish.search(env["name"]) and not env["name"].endswith("_FILE"):
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{where}: {env['name']} must come from a Secret"
    for cm in of_kind(docs, "ConfigMap"):
        for key in cm.get("data", {}):
            assert not secretish.search(key) or key.endswith("_FILE"), f"ConfigMap {cm['metadata']['name']}: {key}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_file_settings_point_at_mounted_files(kustomization: str) -> None:
    """Every `LEAVER_*_FILE` (and config/policy path) names a key of a mounted Secret or ConfigMap;
    secret values come from Secrets only."""
    docs = render(kustomization)
    configmaps = {cm["metadata"]["name"]: cm for cm in of_kind(docs, "ConfigMap")}
    for where, pod in workloads(docs):
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for c in containers(pod):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            for ref in c.get("envFrom", []):
                env.update(configmaps[ref["configMapRef"]["name"]]["data"])
            for name, value in env.items():
                if not (name.startswith("LEAVER_") and name.endswith("_FILE")):
                    continue
                file = PurePosixPath(value)
                (mount,) = [m for m in c["volumeMounts"] if PurePosixPath(m["mountPath"]) == file.parent] or [None]
                assert mount, f"{where}: {name}={value} is not on a mounted volume"
                volume = volumes[mount["name"]]
                source = volume.get("secret") or volume.get("configMap")
                assert source, f"{where}: {name} comes from neither a Secret nor a ConfigMap"
                keys = [item["path"] for item in source.get("items", [])]
                assert not keys or file.name in keys, f"{where}: {name}: no key {file.name} in {mount['name']}"
                if name != "LEAVER_POLICY_FILE":
                    assert volume.get("secret", {}).get("secretName") in SECRET_NAMES, f"{where}: {name}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_environment_names_are_real_settings(kustomization: str) -> None:
    fields = set(Settings.model_fields)
    docs = render(kustomization)
    names = {e["name"] for _, pod in workloads(docs) for c in containers(pod) for e in c.get("env", [])}
    names |= {key for cm in of_kind(docs, "ConfigMap") for key in cm.get("data", {}) if key.isupper()}
    for name in names:
        if not name.startswith("LEAVER_"):
            continue
        setting = name.removeprefix("LEAVER_").lower().split("__")[0]
        if setting not in fields and setting.endswith("_file"):
            setting = setting.removesuffix("_file")
        assert setting in fields, f"{name} is not a leaver setting"


# --- the application's shape ---------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_api_probes_and_service(kustomization: str) -> None:
    docs = render(kustomization)
    api = component(docs, "Deployment", "leaver-api")
    assert api["args"][0] == "serve"
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        port = api[probe]["httpGet"]["port"]
        assert port in ports or port in ports.values(), f"{probe} port {port}"
    assert str(ports["http"]) == api["args"][api["args"].index("--port") + 1]
    env = {e["name"]: e.get("value") for e in api["env"]}
    assert env["LEAVER_WORKERS"] == "0", "workers run in their own Deployment"

    pod_labels = pod_template(named(docs, "Deployment", "leaver-api"))["metadata"]["labels"]
    service = named(docs, "Service", "leaver-api")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels)
    assert all(p["targetPort"] in ports or p["targetPort"] in ports.values() for p in service["spec"]["ports"])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_workers_and_migration(kustomization: str) -> None:
    docs = render(kustomization)
    worker = component(docs, "Deployment", "leaver-worker")
    assert worker["args"][0] == "worker"
    # Workers expose their own counters: the port they serve is the one declared and scraped.
    metrics_port = int(worker["args"][worker["args"].index("--metrics-port") + 1])
    assert {"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"} in worker["ports"]
    annotations = pod_template(named(docs, "Deployment", "leaver-worker"))["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics_port)
    job = named(docs, "Job", "leaver-migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    assert job["spec"]["backoffLimit"] >= 1
    assert component(docs, "Job", "leaver-migrate")["args"] == ["migrate"]
    settings = {k: v for cm in of_kind(docs, "ConfigMap") for k, v in cm.get("data", {}).items()}
    assert settings["LEAVER_AUTO_MIGRATE"] == "false", "migrations belong to the Job"
    assert settings["LEAVER_LOG_FORMAT"] == "json"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_disruption_budgets_cover_api_and_workers(kustomization: str) -> None:
    docs = render(kustomization)
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for name in ("leaver-api", "leaver-worker"):
        labels = pod_template(named(docs, "Deployment", name))["metadata"]["labels"]
        assert [p for p in pdbs if selects(p["spec"]["selector"], labels)], f"no PodDisruptionBudget for {name}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_network_policies_deny_by_default(kustomization: str) -> None:
    docs = render(kustomization)
    policies = of_kind(docs, "NetworkPolicy")
    for where, pod in workloads(docs):
        labels = pod["metadata"]["labels"]
        mine = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        types = {t for p in mine for t in p["spec"].get("policyTypes", [])}
        assert {"Ingress", "Egress"} <= types, f"{where}: not covered by an Ingress+Egress NetworkPolicy"
        if "api" not in where:
            ingress = [rule for p in mine for rule in p["spec"].get("ingress", [])]
            simulator = labels.get("app.kubernetes.io/component") == "simulator"
            # Besides the API, a worker admits only the monitoring namespace, on its metrics port.
            scraping = all(
                [port["port"] for port in rule["ports"]] == ["metrics"]
                and [f["namespaceSelector"]["matchLabels"] for f in rule["from"]]
                == [{"kubernetes.io/metadata.name": "monitoring"}]
                for rule in ingress
            )
            assert simulator or not ingress or scraping, f"{where}: only the API accepts connections"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_policy_configmap_holds_a_valid_policy(kustomization: str, tmp_path: Path) -> None:
    docs = render(kustomization)
    (cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("leaver-policy")]
    path = tmp_path / "policy.yaml"
    path.write_text(cm["data"]["policy.yaml"])
    load_policy(path)  # raises PolicyError with the reason


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_pin_images_and_namespace(overlay: str) -> None:
    docs = render(overlay)
    (namespace,) = of_kind(docs, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace["metadata"]["name"], doc["metadata"]["name"]
    for where, pod in workloads(docs):
        for c in containers(pod):
            image = c["image"]
            assert "@sha256:" in image or re.search(r":[\w.-]+$", image.rsplit("/", 1)[-1]), f"{where}: {image}"
            assert not image.endswith(":latest"), f"{where}: {image}"


def test_prod_autoscales_the_api_and_terminates_tls() -> None:
    docs = render("overlays/prod")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    deployment = named(docs, target["kind"], target["name"])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert hpa["spec"]["minReplicas"] >= 2
    assert named(docs, "Deployment", "leaver-worker")["spec"]["replicas"] >= 2

    (ingress,) = of_kind(docs, "Ingress")
    assert ingress["spec"]["tls"] and all(t["secretName"] for t in ingress["spec"]["tls"])
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    published = set()
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            port_names = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
            assert backend["port"]["name"] in port_names
            published.add(path["path"])
    assert "/webhooks" in published
    assert not {"/metrics", "/healthz", "/readyz"} & published


def test_dev_simulators_serve_the_demo_targets() -> None:
    """The dev overlay runs the simulators under the compose names and ports, so the demo targets file
    (deploy/compose/leaver.yaml) is the dev `leaver-targets` Secret as is."""
    docs = render("overlays/dev")
    targets = yaml.safe_load((DEPLOY / "compose" / "leaver.yaml").read_text())["targets"]
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for raw in targets:
        target = TargetSettings.model_validate(raw)
        host, port = target.base_url.split("//")[1].split(":")
        assert host in services, f"no Service {host} in the dev overlay"
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
        sim = component(docs, "Deployment", host)
        assert sim["args"][:2] == ["simulate", target.system]
        assert sim["args"][sim["args"].index("--port") + 1] == port
