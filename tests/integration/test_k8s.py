"""The Kubernetes manifests (k8s/): every manifest and every rendered kustomization passes
`kubernetes-validate --strict`, and the pieces fit: each node class's Deployment, its profiling Job, the service's
settings, the torchrun Job and the Prometheus rules.

Rendering uses `kubectl kustomize` (or `kustomize build`); where neither is installed those tests skip, saying so.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
# The oldest Kubernetes the manifests target and the newest schema kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

NFD = "feature.node.kubernetes.io/cpu-cpuid."
CLASSES = {
    "cpu-small": {"cpu": "1", "backend": "onnxruntime", "selector": {NFD + "AVX2": "true"}, "gpu": None},
    "cpu-avx512": {"cpu": "4", "backend": "onnxruntime", "selector": {NFD + "AVX512F": "true"}, "gpu": None},
    "gpu": {"cpu": "4", "backend": "torch", "selector": {"nvidia.com/gpu.present": "true"}, "gpu": "1"},
}
CLASS_LABEL = "hat-serving/node-class"


def _kustomize() -> list[str]:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    pytest.skip("neither kubectl nor kustomize is installed: kustomizations not rendered")


def render(folder: Path) -> list[dict]:
    result = subprocess.run([*_kustomize(), str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{folder}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(docs: list[dict], where: str) -> None:
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']} (k8s {version}) {path}: {exc.message}")


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _kustomizations() -> list[Path]:
    folders = []
    for path in sorted(K8S.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind") != "Component":
            folders.append(path.parent)
    return folders


def _manifest_files() -> list[Path]:
    """YAML files holding Kubernetes objects (not kustomizations, JSON patches or Prometheus files)."""
    files = []
    for path in sorted([*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")]):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if docs and all(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in docs):
            if docs[0]["kind"] not in ("Kustomization", "Component"):
                files.append(path)
    return files


def test_the_tree_holds_what_the_readme_describes():
    names = {str(p.relative_to(K8S)) for p in _kustomizations()}
    assert {"base", "overlays/cpu-small", "overlays/cpu-avx512", "overlays/gpu", "monitoring", "training"} <= names
    assert {f"profiling/{c}" for c in CLASSES} | {"profiling/merge", "profiling/storage"} <= names
    assert len(_manifest_files()) >= 9


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_passes_strict_validation(path):
    validate([d for d in yaml.safe_load_all(path.read_text()) if d], str(path.relative_to(REPO)))


@pytest.mark.parametrize("folder", _kustomizations(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_kustomization_renders_and_passes_strict_validation(folder):
    docs = render(folder)
    assert docs, f"{folder} renders nothing"
    validate(docs, str(folder.relative_to(REPO)))


def test_offline_catalog_component_serves_the_merged_catalog(tmp_path):
    def rel(path: Path) -> str:  # kustomize takes only relative paths
        return os.path.relpath(path, tmp_path)

    overlay = {"resources": [rel(K8S / "overlays/cpu-small")], "components": [rel(K8S / "components/offline-catalog")]}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    docs = render(tmp_path)
    validate(docs, "overlays/cpu-small + components/offline-catalog")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["HAT_CATALOG"] == "/offline/catalog"
    assert {"name": "offline", "persistentVolumeClaim": {"claimName": "hat-offline", "readOnly": True}} in pod[
        "volumes"
    ]


def _config_map(docs: list[dict], container: dict) -> dict[str, str]:
    names = [src["configMapRef"]["name"] for src in container.get("envFrom", [])]
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] in names]
    assert len(maps) == 1, f"envFrom {names} must name exactly one rendered ConfigMap"
    return maps[0]["data"]


@pytest.mark.parametrize("node_class", CLASSES)
def test_each_node_class_deployment(node_class):
    want = CLASSES[node_class]
    docs = render(K8S / "overlays" / node_class)
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    # Probes: /livez alive, /readyz ready, and a startup window long enough for materialising and calibrating.
    http = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
    for probe, path in http.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert {"name": "http", "containerPort": 3000} in container["ports"]

    # requests == limits, so the cgroup quota the service detects is the class's real CPU budget.
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["cpu"] == want["cpu"]
    assert resources["limits"].get("nvidia.com/gpu") == want["gpu"]

    # Node selection of the class.
    assert want["selector"].items() <= pod["nodeSelector"].items()
    if node_class == "cpu-small":  # no AVX-512: a different ISA tier (profile) than cpu-avx512
        (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert {"key": NFD + "AVX512F", "operator": "DoesNotExist"} in term["matchExpressions"]
    if want["gpu"]:
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])

    # Non-root, read-only root filesystem with emptyDirs for scratch and the model cache, nothing extra.
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert mounts["/tmp"] in empty_dirs and mounts[env["HAT_CACHE_DIR"]] in empty_dirs
    assert env["BENTOML_HOME"].startswith("/tmp/")  # BentoML's Prometheus multiprocess folder lives there

    # The settings ConfigMap: threads = the CPU budget, the class's backend.
    config = _config_map(docs, container)
    assert config["HAT_THREADS"] == want["cpu"] and config["HAT_BACKEND"] == want["backend"]
    assert config["HAT_NODE_CLASS"] == node_class

    # Prometheus scrapes the port and path the service serves /metrics on.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "3000",
        "prometheus.io/path": "/metrics",
    }

    # Service, PDB and HPA select this class's pods (and only them), and the HPA scales this Deployment.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels[CLASS_LABEL] == node_class and deployment["metadata"]["name"].endswith(node_class)
    assert one(docs, "Service")["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"] == deployment["spec"]["selector"]
    assert CLASS_LABEL in deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"


@pytest.mark.parametrize("node_class", CLASSES)
def test_the_config_map_is_what_the_service_reads(node_class, tmp_path):
    from service.settings import load_settings

    docs = render(K8S / "overlays" / node_class)
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    config = _config_map(docs, container)
    env = {**config, **{e["name"]: e["value"] for e in container["env"]}}
    env["HAT_CACHE_DIR"] = str(tmp_path / "cache")  # the pod's emptyDir path does not exist here
    settings = load_settings(env, check_catalog=False)
    assert settings.serving.sla_ms == float(config["HAT_SLA_MS"])
    assert settings.threads == int(config["HAT_THREADS"])
    assert settings.serving.backend == config["HAT_BACKEND"]


def test_the_image_is_the_bento_that_bentofile_builds():
    bento = yaml.safe_load((REPO / "bentofile.yaml").read_text())["name"]
    base = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    assert [i["name"] for i in base["images"]] == [bento]
    (container,) = one(render(K8S / "base"), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"].split(":")[0] == bento


@pytest.mark.parametrize("node_class", CLASSES)
def test_the_profiling_job_runs_where_and_as_the_service_runs(node_class):
    serving = one(render(K8S / "overlays" / node_class), "Deployment")["spec"]["template"]["spec"]
    docs = render(K8S / "profiling" / node_class)
    job = one(docs, "Job")["spec"]["template"]["spec"]
    for key in ("nodeSelector", "affinity", "tolerations"):
        assert job.get(key) == serving.get(key), key
    (measure,), (server,) = job["containers"], serving["containers"]
    assert measure["resources"] == server["resources"]
    assert measure["image"] == server["image"]
    assert _config_map(docs, measure)["HAT_THREADS"] == CLASSES[node_class]["cpu"]
    assert _config_map(docs, measure)["HAT_BACKEND"] == CLASSES[node_class]["backend"]
    script = next(d for d in docs if d["kind"] == "ConfigMap" and "profile.sh" in d.get("data", {}))
    assert script["data"]["profile.sh"] == (K8S / "profiling/base/profile.sh").read_text()
    assert '--targets "$HAT_BACKEND:$HAT_THREADS"' in script["data"]["profile.sh"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in job["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"hat-offline"}


def test_profile_script_detects_the_profile_and_refuses_unknown_stages(tmp_path):
    script = K8S / "profiling/base/profile.sh"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HAT_STAGES": "measure bogus",
           "HAT_BACKEND": "onnxruntime", "HAT_THREADS": "1", "HAT_NODE_CLASS": "test", "HAT_OFFLINE": str(tmp_path),
           "HAT_SAMPLES": "1", "HAT_BUDGETS": "", "HAT_SUPERNET": str(tmp_path / "missing.pt")}  # fmt: skip
    # Stage `measure` must fail on the missing supernet before `bogus` is reached: `set -e` stops the script.
    result = subprocess.run(["sh", str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "unknown stage" not in result.stderr
    env["HAT_STAGES"] = "bogus"
    result = subprocess.run(["sh", str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown stage 'bogus'" in result.stderr
    detect = subprocess.run([sys.executable, "-m", "search_jobs.cli", "detect", "--backend", "onnxruntime",
                             "--threads", "1"], cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    profile_id = yaml.safe_load(detect.stdout)["profile_id"]
    assert f"hardware profile {profile_id}," in result.stdout


def test_the_training_job_launches_torchrun_consistently():
    from hat_engine.train.config import TrainConfig

    docs = render(K8S / "training")
    job, service = one(docs, "Job"), one(docs, "Service")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["torchrun"]
    args = dict(a.lstrip("-").split("=", 1) for a in container["args"] if a.startswith("--") and "=" in a)
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == int(args["nnodes"])
    assert args["node-rank"] == "$(JOB_COMPLETION_INDEX)"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == args["nproc-per-node"]
    assert container["resources"]["requests"] == container["resources"]["limits"]
    # Pod 0 of the Indexed Job is the rendezvous master, reached through the headless Service.
    name = job["metadata"]["name"]
    assert pod["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    assert args["master-addr"] == f"{name}-0.{pod['subdomain']}"
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": name}
    assert int(args["master-port"]) == service["spec"]["ports"][0]["port"]
    command = [a for a in container["args"] if not a.startswith("--")]
    assert command[:4] == ["-m", "search_jobs.cli", "supernet", "train"]
    # The mounted training config is one `hat supernet train` accepts (unknown keys would be an error).
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert args["config"].startswith(mounts[config_volume["name"]] + "/")
    config_map = next(d for d in docs if d["metadata"]["name"] == config_volume["configMap"]["name"])
    text = config_map["data"][Path(args["config"]).name]
    assert "space: /app/configs/space.yaml" in text  # the image holds the repository at /app
    cfg = TrainConfig.from_yaml(text.replace("/app/", f"{REPO}/"))
    assert cfg.data_dir.startswith("/offline/") and cfg.out_dir.startswith("/offline/")
    assert pod["securityContext"]["runAsNonRoot"] is True and container["securityContext"]["readOnlyRootFilesystem"]


def test_prometheus_scrapes_every_class_and_alerts_on_p95_above_the_sla():
    scrape = yaml.safe_load((K8S / "monitoring/prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    relabels = job["relabel_configs"]
    keep = next(r for r in relabels if r.get("action") == "keep")
    assert keep["regex"] == "hat-translator"
    class_source = "__meta_kubernetes_pod_label_" + CLASS_LABEL.replace("-", "_").replace("/", "_")
    assert {"source_labels": [class_source], "target_label": "node_class"} in relabels

    rules = yaml.safe_load((K8S / "monitoring/hat-rules.yml").read_text())["groups"][0]["rules"]
    alert = next(r for r in rules if r.get("alert") == "HatTranslationP95AboveSLA")
    expr = " ".join(alert["expr"].split())
    assert expr.startswith("histogram_quantile(0.95,") and "by (le, node_class)" in expr
    assert f'rate(hat_translation_latency_seconds_bucket{{job="{job["job_name"]}"}}[5m])' in expr
    assert alert["for"] == "5m"
    base = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    literals = dict(item.split("=", 1) for item in base["configMapGenerator"][0]["literals"])
    assert float(expr.rsplit(">", 1)[1]) == pytest.approx(float(literals["HAT_SLA_MS"]) / 1000)


def test_monitoring_renders_the_grafana_dashboard_for_the_sidecar():
    docs = render(K8S / "monitoring")
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    dashboard = maps["grafana-dashboard-hat"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (name,) = dashboard["data"]
    assert name.endswith(".json")
    assert json.loads(dashboard["data"][name]) == json.loads((K8S / "monitoring/grafana-dashboard.json").read_text())
    assert set(maps["prometheus-hat"]["data"]) == {"prometheus.yml", "hat-rules.yml"}
