"""Kubernetes: ``DaskCluster`` and ``DaskJob`` resources for the Dask operator, and ``kubernetes://``.

Every resource made here starts from the operator's own template
(:func:`dask_kubernetes.operator.make_cluster_spec`), is adjusted for a daskhpo image (the scheduler
runs ``dask scheduler``: current ``distributed`` has no ``dask-scheduler`` executable, which the template
names) and is checked against the operator's CRD schemas shipped inside the installed
``dask-kubernetes`` package before it is returned, so ``kubectl apply`` gets what the operator accepts.

- :func:`cluster_spec`: a ``DaskCluster`` (scheduler + a worker group).
- :func:`job_resources`: a ``ConfigMap`` holding a search spec and a ``DaskJob`` whose job pod runs
  ``daskhpo run /etc/daskhpo/search.yaml`` against the ``DaskCluster`` the operator starts for it.
- :func:`validate_resource`: the check itself (JSON Schema of the CRD, with :mod:`jsonschema`).
- :func:`to_yaml`: the resources as YAML for ``kubectl apply -f -`` (``daskhpo k8s-spec`` prints them).
- :func:`connect_kubernetes`: ``connect("kubernetes://namespace/name", ...)``.

Nothing here reads search specs: :func:`job_resources` takes a spec already loaded (and so validated)
by :func:`daskhpo.spec.load_spec`, which the command line does.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import InvalidSearchError, InvalidSearchTypeError
from .options import (
    check_options,
    non_negative_int,
    owning_client,
    positive_int,
    require_extra,
    run_bounded,
    timeout_option,
)

__all__ = [
    "cluster_spec",
    "job_resources",
    "validate_resource",
    "crd_schemas",
    "to_yaml",
    "connect_kubernetes",
    "parse_kubernetes_target",
]
API_VERSION = "kubernetes.dask.org/v1"
SPEC_MOUNT = "/etc/daskhpo"
STORE_MOUNT = "/var/lib/daskhpo"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KINDS = {"DaskCluster", "DaskJob", "DaskWorkerGroup", "DaskAutoscaler"}


def _crd_dir() -> Path:
    from importlib.resources import files

    return Path(
        str(files("dask_kubernetes") / "operator/deployment/helm/dask-kubernetes-operator/crds")
    )


@functools.lru_cache(maxsize=1)
def crd_schemas() -> dict[str, tuple[str, dict[str, Any]]]:
    """``{kind: (apiVersion, openAPIV3Schema)}`` from the CRDs of the installed dask-kubernetes."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are ~0.9 MB of YAML
    schemas: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(_crd_dir().glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True) and version.get("storage", True):
                schemas[kind] = (
                    f"{group}/{version['name']}",
                    version["schema"]["openAPIV3Schema"],
                )
    return schemas


def validate_resource(resource: Mapping[str, Any]) -> None:
    """Check a Dask operator resource (or a ConfigMap) against what the cluster would accept.

    Dask resources are validated with the CRD's ``openAPIV3Schema`` (:class:`jsonschema.Draft7Validator`)
    plus ``apiVersion``, ``kind`` and ``metadata.name`` (a lowercase RFC 1123 name).

    Raises
    ------
    InvalidSearchError
        Naming each bad field by its path, such as ``DaskCluster/x: spec.worker.replicas: -1 is less
        than the minimum of 0``.
    """
    import jsonschema

    if not isinstance(resource, Mapping):
        raise InvalidSearchTypeError(f"a Kubernetes resource must be a mapping, got {resource!r}")
    kind = resource.get("kind")
    meta = resource.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    where = f"{kind}/{name}"
    problems: list[str] = []
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        problems.append(
            f"metadata.name: {name!r} must be a lowercase RFC 1123 name (a-z, 0-9, '-', at most "
            "63 characters, starting and ending with a letter or digit)"
        )
    if kind == "ConfigMap":
        if resource.get("apiVersion") != "v1":
            problems.append(f"apiVersion: {resource.get('apiVersion')!r}, expected 'v1'")
        data = resource.get("data", {})
        if not isinstance(data, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            problems.append("data: must map file names to strings")
    elif kind in _KINDS:
        api_version, schema = crd_schemas()[str(kind)]
        if resource.get("apiVersion") != api_version:
            problems.append(f"apiVersion: {resource.get('apiVersion')!r}, expected {api_version!r}")
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(dict(resource)), key=lambda e: list(e.path)):
            path = ".".join(str(p) for p in error.absolute_path) or "(top)"
            problems.append(f"{path}: {error.message}")
    else:
        problems.append(
            f"kind: {kind!r} is not a resource daskhpo makes (DaskCluster, DaskJob, ConfigMap)"
        )
    if problems:
        raise InvalidSearchError(
            f"{where} does not validate against the Dask operator's CRD schema: "
            + "; ".join(problems[:10])
            + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        )


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or len(name) > 50 or not _NAME.match(name):
        raise InvalidSearchError(
            f"{what}={name!r}: use a lowercase RFC 1123 name (a-z, 0-9 and '-', starting and ending "
            "with a letter or digit, at most 50 characters so the operator's derived names fit)"
        )
    return name


def _env_list(env: Any) -> list[dict[str, str]]:
    if env is None:
        return []
    if isinstance(env, Mapping):
        items = list(env.items())
    elif isinstance(env, Sequence) and not isinstance(env, str):
        items = []
        for entry in env:
            if not (isinstance(entry, Mapping) and "name" in entry and "value" in entry):
                raise InvalidSearchError(
                    f"env={env!r}: give a mapping {{NAME: value}} or a list of "
                    "{'name': NAME, 'value': value} entries."
                )
            items.append((entry["name"], entry["value"]))
    else:
        raise InvalidSearchTypeError(
            f"env={env!r}: give a mapping of environment variable names to values."
        )
    out = []
    for key, value in items:
        if not isinstance(key, str) or not re.match(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", key):
            raise InvalidSearchError(f"env: {key!r} is not a valid environment variable name.")
        out.append({"name": key, "value": str(value)})
    return out


def _resources(resources: Any) -> dict[str, Any]:
    if resources is None:
        return {}
    if not isinstance(resources, Mapping) or not set(resources) <= {
        "limits",
        "requests",
    }:
        raise InvalidSearchError(
            f"resources={resources!r}: give {{'requests': {{'cpu': '1', 'memory': '2Gi'}}, "
            "'limits': {...}}} (keys 'requests' and/or 'limits')."
        )
    out: dict[str, Any] = {}
    for key, values in resources.items():
        if not isinstance(values, Mapping):
            raise InvalidSearchError(
                f"resources[{key!r}]={values!r}: give a mapping such as {{'cpu': '1', 'memory': '2Gi'}}."
            )
        out[key] = {str(k): str(v) for k, v in values.items()}
    return out


def cluster_spec(
    name: str,
    *,
    image: str,
    namespace: str | None = None,
    n_workers: int = 2,
    threads: int = 1,
    resources: Mapping[str, Any] | None = None,
    env: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    scheduler_service_type: str = "ClusterIP",
    idle_timeout: int = 0,
) -> dict[str, Any]:
    """A ``DaskCluster`` resource running ``dask scheduler`` and ``n_workers`` ``dask worker`` pods.

    Parameters
    ----------
    name : str
        The cluster's name (the scheduler service is ``NAME-scheduler``).
    image : str
        A container image with daskhpo installed, such as one built from ``deploy/docker/Dockerfile``:
        the workers import daskhpo and your estimators.
    namespace : str, optional
        Written into ``metadata.namespace`` when given.
    n_workers : int
        Replicas of the default worker group.
    threads : int
        Threads per worker (1 keeps BLAS from oversubscribing the pod's cores).
    resources : mapping, optional
        ``{"requests": {...}, "limits": {...}}`` for the scheduler and worker containers.
    env : mapping or list, optional
        Environment variables of every container.
    scheduler_service_type : str
        ``ClusterIP`` (default), ``NodePort`` or ``LoadBalancer``.
    idle_timeout : int
        Seconds of idleness after which the operator deletes the cluster (0: never).

    Returns
    -------
    dict
        The resource, already validated against the operator's CRD.
    """
    require_extra("", "kubernetes")
    from dask_kubernetes.operator import make_cluster_spec

    _check_name("name", name)
    if namespace is not None:
        _check_name("namespace", namespace)
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise InvalidSearchError(
            f"image={image!r}: give a container image with daskhpo installed (build "
            "deploy/docker/Dockerfile and push it to a registry the cluster can pull from)."
        )
    opts = {"n_workers": n_workers, "threads": threads, "idle_timeout": idle_timeout}
    n_workers = non_negative_int("", opts, "n_workers", 2)
    threads = positive_int("", opts, "threads", 1)
    idle_timeout = non_negative_int("", opts, "idle_timeout", 0)
    if scheduler_service_type not in ("ClusterIP", "NodePort", "LoadBalancer"):
        raise InvalidSearchError(
            f"scheduler_service_type={scheduler_service_type!r}: use 'ClusterIP', 'NodePort' or "
            "'LoadBalancer'."
        )
    # The template shares its env and resources objects between scheduler and workers: copy, so that
    # editing one container of the result does not change the other.
    spec: dict[str, Any] = copy.deepcopy(
        make_cluster_spec(
            name=name,
            image=image,
            n_workers=n_workers,
            resources=_resources(resources),
            env=_env_list(env),
            worker_command=["dask", "worker", "--nthreads", str(threads)],
            scheduler_service_type=scheduler_service_type,
            idle_timeout=idle_timeout,
        )
    )
    spec["metadata"]["labels"] = {"app.kubernetes.io/part-of": "daskhpo"}
    if namespace is not None:
        spec["metadata"]["namespace"] = namespace
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    scheduler["args"] = ["dask", "scheduler", "--host", "0.0.0.0"]
    validate_resource(spec)
    return spec


def job_resources(
    search_spec: Mapping[str, Any],
    *,
    name: str,
    image: str,
    namespace: str | None = None,
    storage_claim: str | None = None,
    spec_text: str | None = None,
    **cluster_options: Any,
) -> list[dict[str, Any]]:
    """A ``ConfigMap`` with the search spec and a ``DaskJob`` that runs it with ``daskhpo run``.

    The operator starts the DaskCluster described by ``cluster_options`` (see :func:`cluster_spec`),
    then the job pod, which mounts the spec at ``/etc/daskhpo/search.yaml`` and runs
    ``daskhpo run /etc/daskhpo/search.yaml --cluster $(DASK_SCHEDULER_ADDRESS)`` (the operator sets that
    variable in the job pod). With ``storage_claim`` (a PersistentVolumeClaim name) the trials are
    stored in ``/var/lib/daskhpo/NAME.db`` on it, so ``--resume`` can continue after a failed job.

    Parameters
    ----------
    search_spec : mapping
        The search spec as :func:`daskhpo.spec.load_spec` returns it: load (and so validate) it first,
        so that a bad spec fails here and not in the cluster. Relative data file paths in it must
        exist inside the image.
    name, image, namespace
        The job's (and its cluster's) name, container image and namespace.
    storage_claim : str, optional
        A PersistentVolumeClaim to keep the trial store on.
    spec_text : str, optional
        The spec file's own text, put in the ConfigMap as it is (comments and layout kept). By
        default ``search_spec`` is written as YAML there, without its private keys (``_base_dir``
        names a folder of this machine, not of the pod).
    **cluster_options
        The job's DaskCluster: the options of :func:`cluster_spec`.

    Returns
    -------
    list of dict
        ``[config_map, dask_job]``, each validated.
    """
    if not isinstance(search_spec, Mapping):
        raise InvalidSearchTypeError(
            f"search_spec={search_spec!r}: give the loaded spec, such as "
            "daskhpo.spec.load_spec('search.yaml'), not a path."
        )
    if spec_text is None:
        spec_text = to_yaml([{k: v for k, v in search_spec.items() if not str(k).startswith("_")}])
    elif not isinstance(spec_text, str):
        raise InvalidSearchTypeError(
            f"spec_text={spec_text!r}: give the spec file's text (a str), or None to write "
            "search_spec as YAML."
        )
    _check_name("name", name)
    if storage_claim is not None:
        _check_name("storage_claim", storage_claim)
    cluster = cluster_spec(name, image=image, namespace=namespace, **cluster_options)
    env = cluster["spec"]["worker"]["spec"]["containers"][0].get("env") or []
    config_name = f"{name}-search-spec"
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_name,
            "labels": {"app.kubernetes.io/part-of": "daskhpo"},
        },
        "data": {"search.yaml": spec_text},
    }
    args = ["daskhpo", "run", f"{SPEC_MOUNT}/search.yaml", "--name", name]
    args += ["--cluster", "$(DASK_SCHEDULER_ADDRESS)"]
    mounts = [{"name": "search-spec", "mountPath": SPEC_MOUNT, "readOnly": True}]
    volumes: list[dict[str, Any]] = [{"name": "search-spec", "configMap": {"name": config_name}}]
    if storage_claim is not None:
        args += ["--storage", f"sqlite:///{STORE_MOUNT}/{name}.db"]
        mounts.append({"name": "trials", "mountPath": STORE_MOUNT})
        volumes.append({"name": "trials", "persistentVolumeClaim": {"claimName": storage_claim}})
    job: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DaskJob",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "daskhpo"}},
        "spec": {
            "job": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "job",
                            "image": image,
                            "args": args,
                            "env": env,
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                }
            },
            "cluster": {"spec": cluster["spec"]},
        },
    }
    if namespace is not None:
        config_map["metadata"]["namespace"] = namespace
        job["metadata"]["namespace"] = namespace
    for resource in (config_map, job):
        validate_resource(resource)
    return [config_map, job]


def to_yaml(resources: Sequence[Mapping[str, Any]]) -> str:
    """The resources as one multi-document YAML text, for ``kubectl apply -f -`` (no anchors; text
    with line breaks, such as a search spec in a ConfigMap, as a literal block)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, value: str) -> Any:
        style = (
            "|"
            if "\n" in value and not any(line != line.rstrip() for line in value.splitlines())
            else None
        )
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all([dict(r) for r in resources], Dumper=Dumper, sort_keys=False)


# -- kubernetes:// ----------------------------------------------------------------------------------------

# Options of a new DaskCluster's spec besides image (refused with existing=True), then all it takes.
_SPEC_OPTIONS = (
    "n_workers",
    "threads",
    "resources",
    "env",
    "scheduler_service_type",
    "idle_timeout",
)
_K8S_OPTIONS = {
    "image",
    *_SPEC_OPTIONS,
    "existing",
    "shutdown_on_close",
    "port_forward_cluster_ip",
}


def parse_kubernetes_target(target: str, rest: str) -> tuple[str | None, str]:
    """``"namespace/name"`` or ``"name"`` into (namespace or None, name)."""
    parts = [p for p in rest.strip("/").split("/")]
    if len(parts) == 1 and parts[0]:
        namespace, name = None, parts[0]
    elif len(parts) == 2 and all(parts):
        namespace, name = parts[0], parts[1]
    else:
        raise InvalidSearchError(
            f"cluster={target!r}: write 'kubernetes://NAMESPACE/NAME' (or 'kubernetes://NAME' for "
            "the current namespace)."
        )
    if namespace is not None:
        _check_name(f"cluster={target!r}: namespace", namespace)
    _check_name(f"cluster={target!r}: name", name)
    return namespace, name


def _k8s_explain(target: str, namespace: str | None, name: str) -> Any:
    def explain(exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        where = f"DaskCluster {name!r}" + (f" in namespace {namespace!r}" if namespace else "")
        if "credentials" in text.lower() or "kubeconfig" in text.lower():
            return (
                "no Kubernetes credentials were found (no kubeconfig, not running in a pod): set "
                "KUBECONFIG or ~/.kube/config to a cluster where the Dask operator is installed "
                "(helm install dask-kubernetes-operator), or print the resources with "
                "'daskhpo k8s-spec' and kubectl apply them."
            )
        # Before the OSError test below: TimeoutError is an OSError.
        if isinstance(exc, TimeoutError):
            return (
                f"{where} did not become ready: check the operator's and the scheduler pod's logs "
                "(kubectl logs) and that the image can be pulled."
            )
        if "ConnectError" in text or "connection" in text.lower() or isinstance(exc, OSError):
            return (
                "the Kubernetes API server did not answer: check the kubeconfig's server address "
                "and that the cluster is up (kubectl cluster-info)."
            )
        if "doesn't already exist" in text:
            return f"there is no {where}: drop existing=True to create it, or check the name."
        if "Custom Resource Definitions" in text or "Operator running" in text:
            return (
                f"{where} was not started: install the Dask operator (helm install "
                "dask-kubernetes-operator) and check that it runs."
            )
        return f"{where} could not be created or reached."

    return explain


def connect_kubernetes(target: str, scheme: str, rest: str, options: dict[str, Any]) -> Any:
    """``connect("kubernetes://namespace/name", ...)``: see :func:`daskhpo.connect`."""
    check_options(target, options, _K8S_OPTIONS)
    namespace, name = parse_kubernetes_target(target, rest)
    timeout = timeout_option(target, options, 300.0)
    existing = bool(options.get("existing", False))
    require_extra(target, "kubernetes")
    spec = None
    if not existing:
        if "image" not in options:
            raise InvalidSearchError(
                f"cluster={target!r}: pass image=, a container image with daskhpo installed (build "
                "deploy/docker/Dockerfile and push it), or existing=True to connect to a running "
                "DaskCluster."
            )
        spec_options = {k: options[k] for k in _SPEC_OPTIONS if k in options}
        try:
            spec = cluster_spec(name, image=options["image"], **spec_options)
        except InvalidSearchError as exc:
            raise InvalidSearchError(f"cluster={target!r}: {exc}") from exc
    else:
        for_new = sorted(k for k in ("image", *_SPEC_OPTIONS) if k in options)
        if for_new:
            listed = ", ".join(f"{k}=" for k in for_new)
            raise InvalidSearchError(
                f"cluster={target!r}: {listed} apply to a new cluster only; drop existing=True to "
                "create one, or drop them to connect to the running DaskCluster."
            )

    def start() -> Any:
        from dask_kubernetes.operator import KubeCluster
        from dask_kubernetes.operator.kubecluster.kubecluster import CreateMode
        from distributed.core import Status

        kwargs: dict[str, Any] = {
            "namespace": namespace,
            "resource_timeout": int(timeout),
            "quiet": True,
        }
        if "shutdown_on_close" in options:
            kwargs["shutdown_on_close"] = bool(options["shutdown_on_close"])
        if "port_forward_cluster_ip" in options:
            kwargs["port_forward_cluster_ip"] = bool(options["port_forward_cluster_ip"])
        try:
            if existing:
                cluster = KubeCluster(name=name, create_mode=CreateMode.CONNECT_ONLY, **kwargs)
            else:
                cluster = KubeCluster(
                    custom_cluster_spec=spec,
                    create_mode=CreateMode.CREATE_OR_CONNECT,
                    **kwargs,
                )
        except BaseException:
            # A KubeCluster that failed to start stays in the operator's registry, whose exit hook
            # would then try (and fail, noisily) to delete it.
            for instance in list(KubeCluster._instances):
                if instance.status != Status.running:
                    KubeCluster._instances.discard(instance)
            raise
        try:
            return owning_client(cluster)
        except BaseException:
            cluster.close()
            raise

    return run_bounded(target, start, timeout, _k8s_explain(target, namespace, name), "Kubernetes")
