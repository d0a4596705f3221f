"""The Automation API layer: the component's program run by the Pulumi engine from the CLI and from code.

Every entry point (the CLI, `RateLimiter(create_stack=True)`, the pytest plugin) goes through
`StackManager`, which builds one kind of workspace: the inline program `program_from_config` (the same
function Pulumi.yaml runs), a backend (a local file backend by default), the passphrase from the
environment, and the stack configuration from `stack_config` (a pure function, tested on its own).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from .transport.clients import check_endpoint
from .core.errors import StackError, ValidationError
from .stack_defaults import PROJECT, STACK_NAME_PREFIX, default_stack_name
from .stack_options import StackOptions, check_table_name
from .core.validation import check_region

DEFAULT_BACKEND_DIR = Path("~/.zae-limiter/pulumi")
WORKSPACES_DIR = Path("~/.zae-limiter/workspaces")
# Every AWS service the component touches, pointed at the emulator when --endpoint-url is given.
EMULATED_SERVICES = ("dynamodb", "lambda", "iam", "logs", "cloudwatch", "sns", "sts", "sqs")
INSTALL_HINT = (
    "the Pulumi CLI is not installed (no `pulumi` on PATH or in ~/.pulumi/bin). Install it with "
    "`curl -fsSL https://get.pulumi.com | sh` (or `brew install pulumi`, or see "
    "https://www.pulumi.com/docs/install/), then run the command again"
)

SDK_HINT = (
    "the Pulumi SDK is not installed in this Python environment; install the deploy extra: "
    "pip install 'zae-limiter[deploy]'"
)

OnEvent = Callable[[Any], None]


def default_backend_url() -> str:
    configured = os.environ.get("PULUMI_BACKEND_URL")
    if configured:
        return configured
    return "file://" + str(DEFAULT_BACKEND_DIR.expanduser())


# Pulumi's rule for project and stack names (tokens.IsName, ValidateProjectName): 1 to 100 of these.
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
# What `pulumi login` takes: Pulumi Cloud (https, or http for a self-hosted one) and the DIY backends.
BACKEND_SCHEMES = ("file", "s3", "azblob", "gs", "postgres", "https", "http")


def _check_pulumi_name(field: str, name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ValidationError(field, f"must be 1 to 100 characters, got {name!r}")
    if not set(name) <= _NAME_CHARACTERS:
        raise ValidationError(field, f"may hold letters, digits, '-', '_' and '.' only, got {name!r}")
    return name


def check_stack_name(stack_name: Any, field: str = "stack_name") -> str:
    return _check_pulumi_name(field, stack_name)


def check_project_name(project_name: Any, field: str = "project_name") -> str:
    return _check_pulumi_name(field, project_name)


def check_backend_url(url: Any, field: str = "backend_url") -> str:
    """The shape of a backend URL, checked before the engine runs (it would refuse it only then)."""
    scheme, separator, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
    if not separator or scheme not in BACKEND_SCHEMES or not rest.strip():
        kinds = ", ".join(f"{known}://" for known in BACKEND_SCHEMES)
        raise ValidationError(field, f"must be a Pulumi backend URL, one of {kinds}; got {url!r}")
    return url


def stack_config(
    table_name: str, region: str, options: StackOptions, endpoint_url: str | None = None, project: str = PROJECT
) -> dict[str, str]:
    """The stack configuration handed to the engine. Keys with a path (`aws:endpoints[0].dynamodb`) are
    set with `path=True`. The program reads its own keys from the project's namespace."""
    config = {"aws:region": region, f"{project}:tableName": table_name}
    config.update({f"{project}:{key}": value for key, value in options.as_config().items()})
    if endpoint_url:
        # An emulator has no account, no metadata service and no real credentials to validate.
        config.update(
            {
                "aws:skipCredentialsValidation": "true",
                "aws:skipRequestingAccountId": "true",
                "aws:skipMetadataApiCheck": "true",
                "aws:skipRegionValidation": "true",
                "aws:s3UsePathStyle": "true",
            }
        )
        config.update({f"aws:endpoints[0].{service}": endpoint_url for service in EMULATED_SERVICES})
    return config


def find_pulumi_command() -> Any:
    """The installed Pulumi CLI as an Automation API `PulumiCommand`, or StackError saying how to install it."""
    try:
        from pulumi.automation import PulumiCommand
    except ImportError as error:
        raise StackError(SDK_HINT) from error

    root: str | None = None
    if shutil.which("pulumi") is None:
        home = Path(os.environ.get("PULUMI_HOME", "~/.pulumi")).expanduser()
        if not (home / "bin" / "pulumi").exists():
            raise StackError(INSTALL_HINT)
        root = str(home)
    try:
        return PulumiCommand(root=root)
    except (FileNotFoundError, PermissionError) as error:
        raise StackError(INSTALL_HINT) from error
    except subprocess.CalledProcessError as error:
        raise StackError(f"the Pulumi CLI did not run (`pulumi version` exited {error.returncode})") from error
    except Exception as error:  # an unsupported CLI version, for one
        raise StackError(f"the Pulumi CLI cannot be used: {error}") from error


def engine_message(error: BaseException) -> str:
    """The engine's own words from a failed command: its error lines, else its stderr."""
    stderr = getattr(error, "stderr", "") or ""
    stdout = getattr(error, "stdout", "") or ""
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines()]
    errors = [line for line in lines if line.lower().startswith("error:") or "error:" in line.lower()]
    chosen = errors or [line for line in stderr.splitlines() if line.strip()] or [str(error)]
    return "\n".join(dict.fromkeys(chosen))[-4000:]


@dataclass(frozen=True)
class StackStatus:
    stack_name: str
    backend_url: str
    last_update: datetime | None
    update_in_progress: bool | None
    resource_count: int | None
    last_result: str | None
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreviewSummary:
    changes: dict[str, int]
    steps: list[tuple[str, str, str]]  # (operation, resource type, name)


class StackManager:
    """One stack of the component, driven through the Automation API."""

    def __init__(
        self,
        *,
        stack_name: str | None = None,
        table_name: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        backend_url: str | None = None,
        options: StackOptions | None = None,
        pulumi_command: Any = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if table_name is not None:
            check_table_name(table_name)
        if stack_name is None:
            if table_name is None:
                raise ValidationError("stack_name", f"give a stack name or a table name (the stack is {STACK_NAME_PREFIX}{{table}})")
            stack_name = default_stack_name(table_name)
        self.stack_name = check_stack_name(stack_name)
        self.table_name = table_name
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if self.region is not None:
            check_region("region", self.region)
        self.endpoint_url = check_endpoint(endpoint_url)
        self.backend_url = check_backend_url(backend_url or default_backend_url())
        self.options = options or StackOptions()
        self._pulumi_command = pulumi_command
        self.work_dir = Path(work_dir) if work_dir else WORKSPACES_DIR.expanduser() / self.stack_name

    # -- building the workspace -----------------------------------------------------------------
    def env_vars(self) -> dict[str, str]:
        env = {"PULUMI_SKIP_UPDATE_CHECK": "true"}
        if "PULUMI_CONFIG_PASSPHRASE" not in os.environ and "PULUMI_CONFIG_PASSPHRASE_FILE" not in os.environ:
            # The stack's configuration holds no secrets, so an empty passphrase protects nothing that needs it.
            env["PULUMI_CONFIG_PASSPHRASE"] = ""
        if self.endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
            env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        return env

    def workspace_options(self) -> Any:
        from pulumi.automation import LocalWorkspaceOptions, ProjectBackend, ProjectSettings

        if self.backend_url.startswith("file://"):
            Path(self.backend_url[len("file://"):]).expanduser().mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return LocalWorkspaceOptions(
            work_dir=str(self.work_dir),
            project_settings=ProjectSettings(name=PROJECT, runtime="python", backend=ProjectBackend(url=self.backend_url)),
            env_vars=self.env_vars(),
            pulumi_command=self.pulumi_command,
        )

    @property
    def pulumi_command(self) -> Any:
        """The engine's CLI; resolved once, so a missing CLI is reported before any work starts."""
        if self._pulumi_command is None:
            self._pulumi_command = find_pulumi_command()
        return self._pulumi_command

    def _require_deploy_settings(self) -> tuple[str, str]:
        if not self.table_name:
            raise ValidationError("table_name", "is needed to deploy or preview a stack")
        if not self.region:
            raise ValidationError("region", "no AWS region given (pass --region or set AWS_DEFAULT_REGION)")
        return self.table_name, self.region

    def _stack(self, create: bool) -> Any:
        from pulumi import automation as auto

        from pulumi_component.program import program_from_config

        options = self.workspace_options()
        try:
            if create:
                return auto.create_or_select_stack(self.stack_name, PROJECT, program_from_config, opts=options)
            return auto.select_stack(self.stack_name, PROJECT, program_from_config, opts=options)
        except auto.errors.StackNotFoundError as error:
            raise StackError(f"stack {self.stack_name!r} not found in backend {self.backend_url}") from error
        except auto.errors.CommandError as error:
            raise StackError(engine_message(error)) from error

    def _configured_stack(self) -> Any:
        table_name, region = self._require_deploy_settings()
        stack = self._stack(create=True)
        from pulumi.automation import ConfigValue

        config = stack_config(table_name, region, self.options, self.endpoint_url)
        self._engine(lambda: stack.set_all_config({k: ConfigValue(v) for k, v in config.items()}, path=True))
        return stack

    @staticmethod
    def _engine(operation: Callable[[], Any]) -> Any:
        from pulumi.automation import errors

        try:
            return operation()
        except errors.ConcurrentUpdateError as error:
            raise StackError("another update of this stack is running; wait for it, or run `pulumi cancel`") from error
        except errors.CommandError as error:
            raise StackError(engine_message(error)) from error

    # -- operations -----------------------------------------------------------------------------
    def deploy(self, on_event: OnEvent | None = None) -> dict[str, Any]:
        """Create or update the stack; returns its outputs."""
        stack = self._configured_stack()
        result = self._engine(lambda: stack.up(on_event=on_event, color="never"))
        return {key: output.value for key, output in result.outputs.items()}

    def preview(self, on_event: OnEvent | None = None) -> PreviewSummary:
        stack = self._configured_stack()
        steps: list[tuple[str, str, str]] = []

        def collect(event: Any) -> None:
            pre = getattr(event, "resource_pre_event", None)
            if pre is not None and pre.metadata is not None:
                meta = pre.metadata
                steps.append((str(getattr(meta.op, "value", meta.op)), meta.type, meta.urn.split("::")[-1]))
            if on_event is not None:
                on_event(event)

        result = self._engine(lambda: stack.preview(on_event=collect, color="never"))
        changes = {str(getattr(op, "value", op)): count for op, count in (result.change_summary or {}).items()}
        return PreviewSummary(changes=changes, steps=steps)

    def outputs(self) -> dict[str, Any]:
        stack = self._stack(create=False)
        return {key: output.value for key, output in self._engine(stack.outputs).items()}

    def status(self) -> StackStatus:
        stack = self._stack(create=False)
        summaries = self._engine(stack.workspace.list_stacks)
        summary = next((s for s in summaries if s.name == self.stack_name or s.name.endswith("/" + self.stack_name)), None)
        info = self._engine(stack.info)
        outputs = {key: output.value for key, output in self._engine(stack.outputs).items()}
        return StackStatus(
            stack_name=self.stack_name,
            backend_url=self.backend_url,
            last_update=summary.last_update if summary else None,
            update_in_progress=summary.update_in_progress if summary else None,
            resource_count=summary.resource_count if summary else None,
            last_result=info.result if info else None,
            outputs=outputs,
        )

    def destroy(self, on_event: OnEvent | None = None, remove: bool = True) -> None:
        """Delete every resource of the stack, then (by default) the stack itself from the backend.
        If the engine stops part way, the error says so and the stack stays, so running it again finishes."""
        stack = self._stack(create=False)
        try:
            self._engine(lambda: stack.destroy(on_event=on_event, color="never"))
        except StackError as error:
            raise StackError(
                f"{error}\nthe stack {self.stack_name!r} was only partly destroyed: some resources (possibly the "
                "table) still exist. Fix the cause and run delete again."
            ) from error
        if remove:
            self._engine(lambda: stack.workspace.remove_stack(self.stack_name))

