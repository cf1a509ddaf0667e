"""A throwaway Kubernetes control plane: etcd + kube-apiserver on free loopback ports.

Real API semantics (RBAC, CRDs, watches, server-side apply) without a cluster, so tests
can talk to the real thing. There is no controller-manager: no garbage collection, no
namespace finalisation, no ServiceAccount token controller (tokens come from the
TokenRequest API instead).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from testbed.lifecycle import Lifecycle, terminate

log = logging.getLogger(__name__)

BINARIES = ("etcd", "kube-apiserver")
ASSETS_ENV_VARS = ("KUBEBUILDER_ASSETS", "DYNAMIC_PREFIX_ASSETS")
BUILD_SCRIPT = Path("scripts") / "build-kube-apiserver.sh"

_PORT_ATTEMPTS = 3
_POLL_INTERVAL = 0.05
_STOP_GRACE = 5.0
_LOG_TAIL_LINES = 30
_KUBECTL_TIMEOUT = 120.0
_TOKEN_SECONDS = 3600


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, built, started or asked something."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl run that failed; unlike its base class, its message shows kubectl's stderr."""

    def __str__(self) -> str:
        stderr = (self.stderr or "").strip()
        return f"{super().__str__()}\n{stderr}" if stderr else super().__str__()


class _PortTakenError(ControlPlaneError):
    """A daemon lost the race for a port we picked; another set of ports may work."""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """Status and raw body of one API call; error statuses are answers too, not exceptions."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON (Kubernetes answers JSON, also for errors)."""
        return json.loads(self.body)


def find_assets() -> Path:
    """The directory holding `etcd` and `kube-apiserver`, building them once if needed.

    An explicit directory (KUBEBUILDER_ASSETS, the ecosystem convention, then
    DYNAMIC_PREFIX_ASSETS) wins, so users with newer binaries can run the same suite.
    """
    for var in ASSETS_ENV_VARS:
        value = os.environ.get(var)
        if value:
            return _checked_assets(Path(value), origin=var)
    script = _find_build_script()
    log.info("finding or building kube-apiserver with %s", script)
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(
            f"{script} failed with exit status {result.returncode}:\n{_tail(result.stderr)}"
        )
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise ControlPlaneError(f"{script} printed no assets directory")
    return _checked_assets(Path(lines[-1]), origin=str(script))


def _checked_assets(path: Path, *, origin: str) -> Path:
    missing = [name for name in BINARIES if not os.access(path / name, os.X_OK)]
    if missing:
        raise ControlPlaneError(f"{path} (from {origin}) has no executable {' or '.join(missing)}")
    return path


def _find_build_script() -> Path:
    """The build script of the checkout this module lives in, found by walking up."""
    here = Path(__file__).resolve()
    for directory in here.parents:
        candidate = directory / BUILD_SCRIPT
        if candidate.is_file():
            return candidate
    raise ControlPlaneError(
        f"no {BUILD_SCRIPT} above {here} (installed outside a checkout?): "
        f"set {' or '.join(ASSETS_ENV_VARS)} to a directory holding {' and '.join(BINARIES)}"
    )


def _free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now; a daemon may still lose one in a race."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _insecure_tls() -> ssl.SSLContext:
    """The apiserver's certificate is self-signed and throwaway: nothing to verify it against."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _kubeconfig(*, server: str, user: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "testbed", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "testbed", "user": user}}],
        "current-context": user,
    }


def _write_private(path: Path, text: str) -> None:
    """Write a file that holds a credential, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def _flags(flags: dict[str, str]) -> list[str]:
    return [f"{flag}={value}" for flag, value in flags.items()]


@dataclass(frozen=True, slots=True)
class _Daemon:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        return _tail(self.log_path.read_text(errors="replace"))


class ControlPlane(Lifecycle):
    """etcd + kube-apiserver with RBAC and token auth, started and stopped by this object.

    Use as a context manager, or call start() and stop(); stop() is also registered with
    atexit so an interrupted run does not leave daemons behind.
    """

    def __init__(
        self,
        *,
        assets: Path | None = None,
        startup_timeout: float = 60.0,
        apiserver_flags: Mapping[str, str] | None = None,
    ) -> None:
        """``apiserver_flags``: more flags for kube-apiserver, or other values for ours."""
        self._assets = assets
        self._extra_apiserver_flags = dict(apiserver_flags or {})
        self._startup_timeout = startup_timeout
        self._tls = _insecure_tls()
        self._workdir: Path | None = None
        self._daemons: list[_Daemon] = []
        self._apiserver_launch: tuple[Path, dict[str, str], Path] | None = None
        self._server: str | None = None
        self._kubeconfig: Path | None = None
        self.admin_token = secrets.token_hex(32)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Start both daemons and return once /readyz answers 200; raise if they cannot."""
        if self._workdir is not None:
            raise ControlPlaneError("this control plane is already started")
        return super().start()

    def _start(self) -> None:
        if self._assets is None:
            assets = find_assets()
        else:
            assets = _checked_assets(self._assets, origin="ControlPlane(assets=...)")
        began = time.monotonic()
        deadline = began + self._startup_timeout
        self._workdir = Path(tempfile.mkdtemp(prefix="dynamic-prefix-controlplane-"))
        self._write_credentials(self._workdir)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                self._launch(assets, self._workdir / f"run{attempt}", deadline)
                break
            except _PortTakenError as err:
                log.info("port collision (attempt %s of %s): %s", attempt, _PORT_ATTEMPTS, err)
                self._stop_daemons()
                if attempt == _PORT_ATTEMPTS:
                    raise
        self._kubeconfig = self.kubeconfig_for_token(
            self.admin_token, self._workdir / "admin.kubeconfig", user="admin"
        )
        log.info("control plane ready at %s in %.1f s", self._server, time.monotonic() - began)

    def _stop(self) -> None:
        """Stop the daemons this object started (by PID) and remove its files."""
        self._stop_daemons()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._server = None
        self._kubeconfig = None

    def _write_credentials(self, workdir: Path) -> None:
        """Service-account signing keys (for TokenRequest) and the admin's static token."""
        key, pub = workdir / "sa.key", workdir / "sa.pub"
        for command in (
            ["openssl", "genrsa", "-out", str(key), "2048"],
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
        ):
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ControlPlaneError(f"{' '.join(command)} failed:\n{_tail(result.stderr)}")
        _write_private(workdir / "tokens.csv", f'{self.admin_token},admin,admin,"system:masters"\n')
        (workdir / "audit-policy.yaml").write_text(AUDIT_POLICY, encoding="utf-8")

    def _launch(self, assets: Path, rundir: Path, deadline: float) -> None:
        etcd_port, peer_port, api_port = _free_ports(3)
        rundir.mkdir()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = self._spawn(
            "etcd",
            assets / "etcd",
            {
                "--data-dir": str(rundir / "etcd"),
                "--listen-client-urls": etcd_url,
                "--advertise-client-urls": etcd_url,
                "--listen-peer-urls": f"http://127.0.0.1:{peer_port}",
            },
            rundir,
        )
        # Starting the apiserver only once etcd answers avoids its slow storage retries.
        self._wait_until("etcd", deadline, lambda: self._etcd_healthy(etcd_url), etcd)
        workdir = rundir.parent
        apiserver_flags = {
            "--etcd-servers": etcd_url,
            "--bind-address": "127.0.0.1",
            "--secure-port": str(api_port),
            "--insecure-port": "0",
            "--cert-dir": str(rundir / "certs"),
            "--token-auth-file": str(workdir / "tokens.csv"),
            "--authorization-mode": "RBAC",
            "--service-account-key-file": str(workdir / "sa.pub"),
            "--service-account-signing-key-file": str(workdir / "sa.key"),
            "--service-account-issuer": "https://kubernetes.default.svc",
            "--api-audiences": "https://kubernetes.default.svc",
            "--service-cluster-ip-range": "10.0.0.0/16",
            # Nothing could reach a loopback endpoint for the `kubernetes` Service anyway.
            "--endpoint-reconciler-type": "none",
            # Every write, as the server saw it: tests count the operator's requests here.
            "--audit-policy-file": str(workdir / "audit-policy.yaml"),
            "--audit-log-path": str(workdir / "audit.log"),
            "--audit-log-mode": "blocking",
            **self._extra_apiserver_flags,
        }
        self._apiserver_launch = (assets / "kube-apiserver", apiserver_flags, rundir)
        apiserver = self._spawn("kube-apiserver", assets / "kube-apiserver", apiserver_flags,
                                rundir)  # fmt: skip
        self._server = f"https://127.0.0.1:{api_port}"
        self._wait_until("kube-apiserver", deadline, self._ready, apiserver)

    def _spawn(self, name: str, binary: Path, flags: dict[str, str], rundir: Path) -> _Daemon:
        log_path = rundir / f"{name}.log"
        with log_path.open("wb") as log_file:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [str(binary), *_flags(flags)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        daemon = _Daemon(name, process, log_path)
        self._daemons.append(daemon)
        log.debug("started %s as pid %s, log %s", name, process.pid, log_path)
        return daemon

    def _wait_until(
        self, what: str, deadline: float, ready: Callable[[], bool], *watched: _Daemon
    ) -> None:
        """Poll `ready` until true, failing fast (with its log) if a daemon has died.

        Deaths are checked first: a port we lost may be answered by somebody else's daemon.
        """
        while True:
            for daemon in self._daemons:
                if daemon.process.poll() is not None:
                    tail = daemon.log_tail()
                    message = (
                        f"{daemon.name} exited with status {daemon.process.returncode}"
                        f" while waiting for {what}; last lines of {daemon.log_path}:\n{tail}"
                    )
                    if "address already in use" in tail:
                        raise _PortTakenError(message)
                    raise ControlPlaneError(message)
            if ready():
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {d.name}:\n{d.log_tail()}" for d in watched)
                raise ControlPlaneError(
                    f"{what} not ready after {self._startup_timeout:.0f} s\n{tails}"
                )
            time.sleep(_POLL_INTERVAL)

    def _etcd_healthy(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                answer = json.load(response)
        except (OSError, ValueError):
            return False
        return isinstance(answer, dict) and answer.get("health") == "true"

    def _ready(self) -> bool:
        try:
            return self.request("GET", "/readyz", timeout=2).status == 200
        except OSError:
            return False

    def stop_apiserver(self) -> None:
        """An outage: kube-apiserver stopped (by PID), etcd kept; `start_apiserver` ends it."""
        for daemon in [d for d in self._daemons if d.name == "kube-apiserver"]:
            terminate(daemon.process, name=daemon.name, grace=_STOP_GRACE)
            self._daemons.remove(daemon)

    def start_apiserver(self) -> None:
        """kube-apiserver started again on the same port and data, after `stop_apiserver`;
        returns once /readyz answers 200."""
        if self._apiserver_launch is None:
            raise ControlPlaneError("this control plane was never started")
        binary, flags, rundir = self._apiserver_launch
        apiserver = self._spawn("kube-apiserver", binary, flags, rundir)
        deadline = time.monotonic() + self._startup_timeout
        self._wait_until("kube-apiserver", deadline, self._ready, apiserver)

    def _stop_daemons(self) -> None:
        # Reverse order: the apiserver goes before the etcd it writes to.
        for daemon in reversed(self._daemons):
            terminate(daemon.process, name=daemon.name, grace=_STOP_GRACE)
        self._daemons.clear()

    # -- access ----------------------------------------------------------------------

    @property
    def pids(self) -> dict[str, int]:
        """The process id of each daemon (etcd, kube-apiserver), for benchmarks that
        measure what the control plane spends."""
        return {daemon.name: daemon.process.pid for daemon in self._daemons}

    @property
    def server(self) -> str:
        """The apiserver's URL, https://127.0.0.1:PORT."""
        if self._server is None:
            raise ControlPlaneError("the control plane is not running")
        return self._server

    @property
    def kubeconfig(self) -> Path:
        """An admin (system:masters) kubeconfig file, removed by stop()."""
        if self._kubeconfig is None:
            raise ControlPlaneError("the control plane is not running")
        return self._kubeconfig

    def env(self) -> dict[str, str]:
        """This process's environment plus KUBECONFIG, ready for subprocess's `env=`."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin (pass --kubeconfig to act as someone else)."""
        argv = [os.environ.get("KUBECTL", "kubectl"), *args]
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=_KUBECTL_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> ApiResponse:
        """One API call as admin, or as the holder of `token`; raises only if unreachable."""
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {token or self.admin_token}",
            "Accept": "application/json",
        }
        if data is not None:  # a PATCH is a JSON merge patch
            headers["Content-Type"] = (
                "application/merge-patch+json" if method == "PATCH" else "application/json"
            )
        request = urllib.request.Request(
            self.server + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, context=self._tls, timeout=timeout) as response:
                return ApiResponse(response.status, response.read())
        except urllib.error.HTTPError as err:
            with err:
                return ApiResponse(err.code, err.read())

    def audit_writes(self, *, user_agent_prefix: str = "") -> list[dict[str, Any]]:
        """Every write request the server has completed so far (from its audit log).

        ``user_agent_prefix`` keeps only requests whose User-Agent starts with it.
        """
        if self._workdir is None:
            raise ControlPlaneError("the control plane is not running")
        path = self._workdir / "audit.log"
        if not path.exists():
            return []
        events = []
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete":
                continue
            if event.get("userAgent", "").startswith(user_agent_prefix):
                events.append(event)
        return events

    def create_service_account_token(
        self, namespace: str, name: str, *, create: bool = True
    ) -> str:
        """A bearer token for ServiceAccount `namespace/name`, created first if `create`.

        Minted by the TokenRequest API: 1.20 has no token controller to fill Secrets, and
        kubectl 1.20 has no `create token`.
        """
        base = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        if create:
            manifest = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
            created = self.request("POST", base, body=manifest)
            if created.status not in (200, 201, 409):  # 409: it exists already, fine
                raise ControlPlaneError(
                    f"creating ServiceAccount {namespace}/{name}: HTTP {created.status} "
                    f"{created.body.decode(errors='replace')}"
                )
        token_request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": _TOKEN_SECONDS},
        }
        minted = self.request("POST", f"{base}/{name}/token", body=token_request)
        if minted.status not in (200, 201):
            raise ControlPlaneError(
                f"TokenRequest for {namespace}/{name}: HTTP {minted.status} "
                f"{minted.body.decode(errors='replace')}"
            )
        return str(minted.json()["status"]["token"])

    def kubeconfig_for_token(self, token: str, path: Path | str, *, user: str = "user") -> Path:
        """Write a kubeconfig that acts as the holder of `token`; returns its path."""
        path = Path(path)
        config = _kubeconfig(server=self.server, user=user, token=token)
        _write_private(path, json.dumps(config, indent=2) + "\n")
        return path
