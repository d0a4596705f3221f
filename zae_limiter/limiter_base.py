"""What the sync and async limiters share besides the flows: settings, validation, counters."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping

from botocore.config import Config
from botocore.exceptions import NoRegionError

from .transport import clients
from .core.errors import ValidationError
from .transport.dataplane import DataPlane
from .state.limiter_core import LimiterCore
from .state.reservoirs import FLUSH_SECONDS
from .stats import RequestStats
from .stack_options import StackOptions
from .transport.boto3_path import Boto3Transport
from .core.validation import check_region

log = logging.getLogger("zae_limiter")
ON_UNAVAILABLE = ("block", "allow")


def _checked_cache_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValidationError("bucket_cache_size", f"must be a whole number of keys, at least 1, got {size!r}")
    return size


def _checked_metrics(metrics: Any) -> Any:
    if metrics is not None and not (hasattr(metrics, "on_acquire") and hasattr(metrics, "on_acquire_error")):
        raise ValidationError("metrics", "must be a zae_limiter.metrics.LimiterMetrics (or an object with its methods)")
    return metrics


def _stack_to_ensure(
    stack_options: StackOptions | None, create_stack: Any, stack_parameters: Mapping[str, Any] | None
) -> StackOptions | None:
    """The stack options a limiter ensures on entering, from its three stack arguments (None: no Pulumi)."""
    if stack_options is not None and not isinstance(stack_options, StackOptions):
        raise ValidationError("stack_options", "must be a zae_limiter.StackOptions")
    if not isinstance(create_stack, bool):
        raise ValidationError("create_stack", f"must be True or False, got {create_stack!r}")
    if stack_options is None and (create_stack or stack_parameters):
        stack_options = StackOptions()
    return StackOptions.from_parameters(stack_parameters, stack_options) if stack_options else None


class LimiterBase:
    def __init__(
        self,
        table_name: str = "rate_limits",
        region: str | None = None,
        endpoint_url: str | None = None,
        *,
        on_unavailable: str = "block",
        boto_config: Config | None = None,
        config_cache_seconds: float = 10.0,
        bucket_cache_size: int = 100_000,
        reject_cache_seconds: float = 0.0,
        clock: Callable[[], int] | None = None,
        stack_options: StackOptions | None = None,
        create_stack: bool = False,
        stack_parameters: Mapping[str, Any] | None = None,
        stack_name: str | None = None,
        backend_url: str | None = None,
        pulumi_command: Any = None,
        track_capacity: bool = False,
        lean_hot_path: bool = True,
        metrics: Any = None,
        reservoir_seconds: float = 0.0,
    ) -> None:
        if on_unavailable not in ON_UNAVAILABLE:
            raise ValidationError("on_unavailable", f"must be one of {ON_UNAVAILABLE}, got {on_unavailable!r}")
        if region is not None:
            check_region("region", region)
        if boto_config is not None and not isinstance(boto_config, Config):
            raise ValidationError("boto_config", "must be a botocore.config.Config")
        self.table_name = table_name
        self.region = region
        self.endpoint_url = clients.check_endpoint(endpoint_url)
        self.on_unavailable = on_unavailable
        self.boto_config = boto_config
        #: Send the hot requests on the lean data plane (see dataplane.py); False sends everything via boto3.
        self.lean_hot_path = bool(lean_hot_path)
        self._core = LimiterCore(
            table_name,
            clock=clock or time.time_ns,
            config_cache_seconds=config_cache_seconds,
            bucket_cache_size=_checked_cache_size(bucket_cache_size),
            reject_cache_seconds=reject_cache_seconds,
            reservoir_seconds=reservoir_seconds,
        )
        self._open_lock = threading.Lock()
        #: Requests sent, per operation, and (with track_capacity=True) the capacity units they consumed.
        self.stats = RequestStats(track_capacity=bool(track_capacity), reservoirs=self._core.reservoirs,
                                  views=self._core.views)
        # With reservoirs: one thread per limiter (never one per bucket) gives expired reserves back.
        self._returner: threading.Thread | None = None
        self._returner_stop = threading.Event()
        #: Calls let through by on_unavailable="allow", per phase (acquire, adjust, refund).
        self.unavailable_allowed: dict[str, int] = {"acquire": 0, "adjust": 0, "refund": 0}
        #: Told of every acquire's outcome and latency (zae_limiter.metrics.LimiterMetrics), or None.
        self.metrics = _checked_metrics(metrics)
        #: The stack entering the limiter ensures (None: the limiter never touches Pulumi).
        self.stack_options = _stack_to_ensure(stack_options, create_stack, stack_parameters)
        self._stack_settings = {**_checked_stack_target(stack_name, backend_url), "pulumi_command": pulumi_command}
        #: The stack outputs after entering the limiter ensured the stack.
        self.stack_outputs: dict[str, Any] = {}

    # -- infrastructure (only when asked: the runtime itself never goes through Pulumi) ----------
    def stack_manager(self) -> Any:
        from .stack import StackManager

        return StackManager(
            table_name=self.table_name,
            region=self.region,
            endpoint_url=self.endpoint_url,
            options=self.stack_options or StackOptions(),
            **self._stack_settings,
        )

    def _ensure_stack(self) -> None:
        """Create or update the stack when the limiter was asked to (blocking: the engine runs)."""
        if self.stack_options is not None:
            self.stack_outputs = self.stack_manager().deploy()

    def _delete_stack(self) -> None:
        self.stack_manager().destroy(remove=True)

    # -- reservoirs (reservoirs.py) -----------------------------------------------------------------
    def _run_blocking(self, flow: Any) -> Any:  # pragma: no cover - each limiter defines it
        raise NotImplementedError

    def _start_returner(self) -> None:
        if not self._core.reservoirs.enabled or self._returner is not None:
            return
        with self._open_lock:
            if self._returner is None:
                self._returner_stop.clear()
                self._returner = threading.Thread(target=self._return_reserves_loop, name="zae-limiter-reserves",
                                                  daemon=True)
                self._returner.start()

    def _return_reserves_loop(self) -> None:
        while not self._returner_stop.wait(FLUSH_SECONDS):
            try:
                self._run_blocking(self._core.return_reserves())
            except Exception as error:  # the next round tries again; acquires never wait for this
                log.warning("zae-limiter: giving reserves back failed: %s", error)

    def _return_all_reserves(self) -> None:
        """On close: stop the thread, give every reserve back and count all usage admitted from them."""
        returner, self._returner = self._returner, None
        if returner is not None:
            self._returner_stop.set()
            returner.join(timeout=10)
        if self._core.reservoirs.enabled:
            try:
                self._run_blocking(self._core.return_reserves(everything=True))
            except Exception as error:
                log.warning("zae-limiter: giving reserves back on close failed: %s", error)

    def _count_overdrawn(self, resource: str, names: tuple[str, ...]) -> None:
        """An admitted acquire went past soft limits: counted in `stats`, and reported to the metrics."""
        self.stats.count_overdrawn(names)
        if self.metrics is not None:
            self.metrics.on_soft_overdraw(resource, names)

    def _count_unavailable(self, phase: str) -> None:
        with self._open_lock:
            self.unavailable_allowed[phase] += 1

    def _new_transport(self) -> Boto3Transport:
        try:
            client, credentials, verify = clients.make_client_with_credentials(
                "dynamodb", self.region, self.endpoint_url, self.boto_config
            )
        except NoRegionError:
            raise ValidationError(
                "region", "no AWS region given and none configured (pass region= or set AWS_DEFAULT_REGION)"
            ) from None
        dataplane = (DataPlane.for_client(client, credentials, self.stats, table=self.table_name, verify=verify)
                     if self.lean_hot_path else None)
        return Boto3Transport(client, self.table_name, self.stats, dataplane)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(table_name={self.table_name!r}, region={self.region!r}, endpoint_url={self.endpoint_url!r})"


def _checked_stack_target(stack_name: str | None, backend_url: str | None) -> dict[str, str | None]:
    """The stack's name and backend, checked now rather than when entering the limiter makes the stack."""
    if stack_name is not None or backend_url is not None:
        from .stack import check_backend_url, check_stack_name

        stack_name = stack_name if stack_name is None else check_stack_name(stack_name)
        backend_url = backend_url if backend_url is None else check_backend_url(backend_url)
    return {"stack_name": stack_name, "backend_url": backend_url}
