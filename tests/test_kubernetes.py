"""Kubernetes up to the boundary (no cluster can run here): every resource daskhpo makes and every
manifest in deploy/kubernetes/ validates against the CRD schemas shipped in the installed dask-kubernetes;
the DaskJob's command runs a search; kubernetes:// fails fast and clearly without a cluster."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from daskhpo import ClusterError, InvalidSearchError, connect
from daskhpo.cli import main
from daskhpo.spec import load_spec

kube = pytest.importorskip("daskhpo.cluster.kubernetes")
pytest.importorskip("dask_kubernetes", reason="kubernetes:// needs daskhpo[kubernetes]")

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
IMAGE = "registry.example.com/daskhpo:0.1.0"


def test_crd_schemas_come_from_the_installed_operator_package():
    import dask_kubernetes

    schemas = kube.crd_schemas()
    assert {"DaskCluster", "DaskJob", "DaskWorkerGroup"} <= set(schemas)
    assert schemas["DaskCluster"][0] == "kubernetes.dask.org/v1"
    assert str(kube._crd_dir()).startswith(str(Path(dask_kubernetes.__file__).parent))


def test_cluster_spec_from_options_is_a_valid_daskcluster():
    spec = kube.cluster_spec(
        "hpo-1",
        image=IMAGE,
        namespace="research",
        n_workers=5,
        threads=2,
        resources={"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
        env={"OMP_NUM_THREADS": 1, "EXTRA": "x"},
        scheduler_service_type="LoadBalancer",
        idle_timeout=600,
    )
    kube.validate_resource(spec)
    assert (spec["kind"], spec["metadata"]["name"]) == ("DaskCluster", "hpo-1")
    assert spec["metadata"]["namespace"] == "research"
    worker = spec["spec"]["worker"]
    assert worker["replicas"] == 5
    container = worker["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["args"][:4] == ["dask", "worker", "--nthreads", "2"]
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    scheduler = spec["spec"]["scheduler"]
    assert scheduler["spec"]["containers"][0]["args"][:2] == ["dask", "scheduler"]
    assert scheduler["service"]["type"] == "LoadBalancer"
    assert spec["spec"]["idleTimeout"] == 600


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_every_deploy_manifest_validates(manifest):
    documents = [d for d in yaml.safe_load_all(manifest.read_text()) if d is not None]
    assert documents
    for document in documents:
        kube.validate_resource(document)


def test_deploy_manifests_hold_a_cluster_and_a_job_running_the_shipped_spec():
    kinds = {}
    for manifest in MANIFESTS:
        for document in yaml.safe_load_all(manifest.read_text()):
            kinds.setdefault(document["kind"], []).append(document)
    assert {"DaskCluster", "DaskJob", "ConfigMap"} <= set(kinds)
    config = kinds["ConfigMap"][0]
    assert config["data"]["search.yaml"] == (ROOT / "deploy" / "search.yaml").read_text()
    job = kinds["DaskJob"][0]["spec"]["job"]["spec"]
    assert job["containers"][0]["args"][:3] == ["daskhpo", "run", "/etc/daskhpo/search.yaml"]
    assert job["volumes"][0]["configMap"]["name"] == config["metadata"]["name"]


def test_validator_finds_what_the_operator_would_refuse():
    good = kube.cluster_spec("x", image=IMAGE)
    broken = copy.deepcopy(good)
    broken["spec"]["worker"]["replicas"] = "two"
    with pytest.raises(InvalidSearchError, match=r"spec\.worker\.replicas: 'two' is not of type"):
        kube.validate_resource(broken)
    broken = copy.deepcopy(good)
    del broken["spec"]["scheduler"]
    with pytest.raises(InvalidSearchError, match="'scheduler' is a required property"):
        kube.validate_resource(broken)
    broken = copy.deepcopy(good)
    broken["apiVersion"] = "kubernetes.dask.org/v2"
    with pytest.raises(InvalidSearchError, match="apiVersion"):
        kube.validate_resource(broken)
    broken = copy.deepcopy(good)
    broken["spec"]["worker"]["spec"]["containers"][0]["resources"] = None
    with pytest.raises(InvalidSearchError, match="resources: None is not of type 'object'"):
        kube.validate_resource(broken)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image": ""}, "image=''"),
        ({"image": IMAGE, "n_workers": -1}, "n_workers=-1"),
        ({"image": IMAGE, "threads": 0}, "threads=0"),
        ({"image": IMAGE, "resources": {"cpu": "1"}}, "keys 'requests' and/or 'limits'"),
        ({"image": IMAGE, "env": {"1BAD": "x"}}, "not a valid environment variable name"),
        ({"image": IMAGE, "scheduler_service_type": "Ingress"}, "scheduler_service_type='Ingress'"),
    ],
)
def test_bad_cluster_options_name_the_option(options, message):
    with pytest.raises(InvalidSearchError, match=message):
        kube.cluster_spec("x", **options)


def test_bad_names_are_refused():
    with pytest.raises(InvalidSearchError, match="name='My_Cluster'"):
        kube.cluster_spec("My_Cluster", image=IMAGE)
    with pytest.raises(InvalidSearchError, match="kubernetes://NAMESPACE/NAME"):
        connect("kubernetes://a/b/c", image=IMAGE)
    with pytest.raises(InvalidSearchError, match="pass image="):
        connect("kubernetes://research/hpo")
    with pytest.raises(InvalidSearchError, match="did you mean 'n_workers'"):
        connect("kubernetes://research/hpo", image=IMAGE, workers=3)


def test_options_of_a_new_cluster_are_refused_with_existing():
    # Refused before any Kubernetes call: nothing here could answer one.
    with pytest.raises(InvalidSearchError, match="image= apply to a new cluster only"):
        connect("kubernetes://research/hpo", existing=True, image=IMAGE)
    with pytest.raises(
        InvalidSearchError, match=r"'kubernetes://research/hpo': env=, n_workers= apply to a new"
    ):
        connect("kubernetes://research/hpo", existing=True, n_workers=4, env={"A": "1"})


def test_k8s_spec_command_prints_valid_resources(capsys):
    argv = ["k8s-spec", "--name", "hpo", "--image", IMAGE, "--workers", "3", "--cpu", "1"]
    argv += ["--memory", "2Gi", "--env", "A=1", "--namespace", "ml"]
    assert main(argv) == 0
    (cluster,) = list(yaml.safe_load_all(capsys.readouterr().out))
    kube.validate_resource(cluster)
    assert cluster["spec"]["worker"]["replicas"] == 3
    assert cluster["metadata"]["namespace"] == "ml"
    container = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert container["env"] == [{"name": "A", "value": "1"}]


def test_k8s_spec_job_with_storage_claim(capsys):
    spec = ROOT / "deploy" / "search.yaml"
    argv = ["k8s-spec", "--name", "iris", "--image", IMAGE, "--job", str(spec)]
    assert main([*argv, "--storage-claim", "trials"]) == 0
    config, job = list(yaml.safe_load_all(capsys.readouterr().out))
    for resource in (config, job):
        kube.validate_resource(resource)
    pod = job["spec"]["job"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--storage") + 1] == "sqlite:////var/lib/daskhpo/iris.db"
    assert {"name": "trials", "persistentVolumeClaim": {"claimName": "trials"}} in pod["volumes"]
    assert job["spec"]["cluster"]["spec"]["worker"]["replicas"] == 2


def test_k8s_spec_refuses_a_bad_search_spec_and_bad_flags(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("estimator: {class: sklearn.tree.DecisionTreeClassifier}\nserch: {}\n")
    assert main(["k8s-spec", "--name", "x", "--image", IMAGE, "--job", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "daskhpo k8s-spec:" in err and "serch" in err
    assert main(["k8s-spec", "--name", "x", "--image", IMAGE, "--storage-claim", "pvc"]) == 2
    assert "--storage-claim applies to --job only" in capsys.readouterr().err
    assert main(["k8s-spec", "--name", "x", "--image", IMAGE, "--env", "NOVALUE"]) == 2


def test_the_daskjob_command_runs_the_search(client, tmp_path):
    """Run the job pod's exact args here, with what Kubernetes would substitute: the ConfigMap's file
    at its mount path and $(DASK_SCHEDULER_ADDRESS), which the operator sets, as a real scheduler."""
    config, job = kube.job_resources(
        load_spec(ROOT / "deploy" / "search.yaml"), name="iris", image=IMAGE, n_workers=2
    )
    mount = tmp_path / "etc-daskhpo"
    mount.mkdir()
    for name, text in config["data"].items():
        (mount / name).write_text(text)
    args = job["spec"]["job"]["spec"]["containers"][0]["args"]
    args = [
        a.replace("$(DASK_SCHEDULER_ADDRESS)", client.scheduler.address).replace(
            kube.SPEC_MOUNT, str(mount)
        )
        for a in args
    ]
    assert args[0] == "daskhpo"
    done = subprocess.run(
        [sys.executable, "-m", "daskhpo", *args[1:]], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "search 'iris': best score" in done.stdout


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


@pytest.mark.timeout(120)  # a hang guard: each connect below ends on its own, as asserted
def test_without_a_cluster_connect_fails_fast_and_says_what_to_do(tmp_path, monkeypatch):
    from tests.integration._clusters import closed_port, no_contact, not_the_timeout

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    import dask_kubernetes.operator  # noqa: F401  (its import is not what the calls below test)

    # No credentials: refused before any connection attempt, not after the timeout.
    with no_contact(), pytest.raises(ClusterError, match="no Kubernetes credentials") as info:
        connect("kubernetes://research/hpo", image=IMAGE, timeout=10)
    text = not_the_timeout(info.value, 10)
    assert "kubernetes://research/hpo" in text and "k8s-spec" in text
    with no_contact(), pytest.raises(ClusterError, match="no Kubernetes credentials") as info:
        connect("kubernetes://research/hpo", existing=True, timeout=10)
    not_the_timeout(info.value, 10)
    # A refused port: the refusal itself is reported, without waiting the timeout out.
    with closed_port() as port:
        config = _kubeconfig(tmp_path / "config", f"https://127.0.0.1:{port}")
        monkeypatch.setenv("KUBECONFIG", str(config))
        with pytest.raises(ClusterError, match="Kubernetes API server did not answer") as info:
            connect("kubernetes://research/hpo", image=IMAGE, timeout=10)
        assert "ConnectError" in not_the_timeout(info.value, 10)
    # A server that accepts the connection and never answers: the call ends on its timeout, and
    # says so.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = _kubeconfig(tmp_path / "config", f"https://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("KUBECONFIG", str(config))
        with pytest.raises(ClusterError, match="Kubernetes did not answer within 2 s"):
            connect("kubernetes://research/hpo", image=IMAGE, timeout=2)
