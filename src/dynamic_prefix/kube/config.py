"""Where the API server is and how to authenticate: a kubeconfig file or the pod's account."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(Exception):
    """No usable cluster credentials were found."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Enough to reach one API server as one identity."""

    server: str
    token: str | None = None
    token_file: Path | None = None  # re-read on use: projected tokens rotate
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    insecure_skip_tls_verify: bool = False

    def bearer_token(self) -> str | None:
        """The current token, re-read from its file if it has one."""
        if self.token_file is not None:
            return self.token_file.read_text(encoding="utf-8").strip()
        return self.token

    def ssl_context(self) -> ssl.SSLContext:
        """TLS settings for the server: its CA, our client certificate, or no checks."""
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file is not None:
            context.load_cert_chain(
                str(self.client_cert_file),
                str(self.client_key_file) if self.client_key_file is not None else None,
            )
        return context


def load_config(kubeconfig: str | None = None) -> ClusterConfig:
    """The cluster to talk to: ``kubeconfig`` or $KUBECONFIG, else the pod's service account."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return load_kubeconfig(Path(path.split(os.pathsep)[0]))
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_DIR.exists():
        return in_cluster_config()
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return load_kubeconfig(default)
    raise ConfigError(
        "no cluster credentials: set KUBECONFIG or --kubeconfig, or run in a pod with a "
        "service account"
    )


def in_cluster_config() -> ClusterConfig:
    """The pod's own service account (token re-read on use, cluster CA)."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    return ClusterConfig(
        server=f"https://{host}:{port}",
        token_file=SERVICE_ACCOUNT_DIR / "token",
        ca_file=SERVICE_ACCOUNT_DIR / "ca.crt",
    )


def load_kubeconfig(path: Path) -> ClusterConfig:
    """The current context of a kubeconfig file (token or client-certificate users)."""
    try:
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read kubeconfig {path}: {error}") from None
    context_name = data.get("current-context")
    context = _named(data, "contexts", context_name, "context")
    cluster = _named(data, "clusters", context.get("cluster"), "cluster")
    user = _named(data, "users", context.get("user"), "user") if context.get("user") else {}
    if "server" not in cluster:
        raise ConfigError(f"kubeconfig {path}: cluster of context {context_name!r} has no server")
    base = path.parent
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        token=user.get("token"),
        token_file=_path(base, user.get("tokenFile")),
        ca_file=_file_or_data(base, cluster, "certificate-authority"),
        client_cert_file=_file_or_data(base, user, "client-certificate"),
        client_key_file=_file_or_data(base, user, "client-key"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
    )


def _named(data: dict[str, Any], section: str, name: object, key: str) -> dict[str, Any]:
    for entry in data.get(section) or []:
        if entry.get("name") == name:
            value: dict[str, Any] = entry.get(key) or {}
            return value
    raise ConfigError(f"kubeconfig has no {section} entry named {name!r}")


def _path(base: Path, value: object) -> Path | None:
    if not value:
        return None
    path = Path(str(value))
    return path if path.is_absolute() else base / path


def _file_or_data(base: Path, section: dict[str, Any], key: str) -> Path | None:
    if section.get(f"{key}-data"):
        # ssl wants files; keep the decoded data in a private temporary one
        handle = tempfile.NamedTemporaryFile(prefix="dp-", suffix=".pem", delete=False)  # noqa: SIM115
        with handle:
            handle.write(base64.b64decode(section[f"{key}-data"]))
        os.chmod(handle.name, 0o600)
        return Path(handle.name)
    return _path(base, section.get(key))
