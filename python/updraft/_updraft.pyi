"""Type stubs for the native module (crates/updraft-python)."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__version__: str

class UpdateError(Exception):
    """An update failed. ``kind`` is the Rust error's class."""

    kind: str  # "network" | "verification" | "install" | "usage" | "other" | "cancelled"

class DownloadError(UpdateError):
    """The network or a server failed; nothing was installed."""

class VerificationError(UpdateError):
    """Something failed verification against the signed metadata; nothing was installed."""

class InstallError(UpdateError):
    """Installing failed; the previous version is intact."""

class UpdateCancelled(UpdateError):
    """``cancel()`` stopped the call; what was downloaded is kept for the next run."""

class UpdateInfo:
    """An update the install may take."""

    @property
    def version(self) -> str: ...
    @property
    def current_version(self) -> str: ...
    @property
    def update_type(self) -> str: ...  # "major" | "minor" | "patch"
    @property
    def force_update(self) -> bool: ...
    @property
    def file_size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def changelog(self) -> str: ...
    @property
    def changelogs(self) -> List[Tuple[str, str]]: ...
    @property
    def release_date(self) -> str: ...
    @property
    def min_supported_version(self) -> Optional[str]: ...
    @property
    def download_url(self) -> Optional[str]: ...
    def to_dict(self) -> Dict[str, Any]: ...

class ProgressInfo:
    """One progress event of the update workflow."""

    @property
    def phase(self) -> str: ...  # "downloading" | "installing" | "waiting" | "switching" | "restarting"
    @property
    def status(self) -> str: ...  # the step in words: "Downloading and verifying", ...
    @property
    def detail(self) -> str: ...  # "1.3 MB of 3.0 MB, 2.4 MB/s, 1 s left" while downloading
    @property
    def downloaded(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def rate(self) -> float: ...
    @property
    def eta_seconds(self) -> Optional[float]: ...  # the current step's time left
    @property
    def overall_eta_seconds(self) -> Optional[float]: ...  # the whole update's time left
    @property
    def step_fraction(self) -> float: ...
    @property
    def overall_fraction(self) -> float: ...
    @property
    def overall_percent(self) -> int: ...
    @property
    def current_percent(self) -> int: ...
    def to_dict(self) -> Dict[str, Any]: ...

ProgressCallback = Callable[[ProgressInfo], object]
# Every event of the workflow as a dict, as `updraft update --json` prints it:
# {"event": "phase" | "progress" | "ready" | "result", ...}
EventCallback = Callable[[Dict[str, Any]], object]

class UpdateManager:
    """Checks, downloads, installs, skips and rolls back the install in ``install_dir``."""

    def __init__(self, install_dir: Union[str, "PathLike[str]"]) -> None: ...
    @property
    def install_dir(self) -> str: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    def check(self) -> Optional[UpdateInfo]: ...
    def download(
        self,
        info: UpdateInfo,
        progress: Optional[ProgressCallback] = None,
        events: Optional[EventCallback] = None,
    ) -> Dict[str, Any]: ...
    def install(
        self,
        info: UpdateInfo,
        progress: Optional[ProgressCallback] = None,
        restart: Optional[List[str]] = None,
        events: Optional[EventCallback] = None,
    ) -> Dict[str, Any]: ...
    def install_on_exit(
        self,
        info: UpdateInfo,
        restart: bool = True,
        args: Optional[List[str]] = None,
        wait_pid: Optional[int] = None,
        wait_timeout: float = 60.0,
        progress: Optional[ProgressCallback] = None,
        events: Optional[EventCallback] = None,
    ) -> Dict[str, Any]: ...
    def cancel(self) -> None: ...
    def skip(self, info: UpdateInfo) -> None: ...
    def remind_later(self, info: Optional[UpdateInfo] = None) -> None: ...
    def confirm(self) -> None: ...
    def rollback(self) -> str: ...
    def status(self) -> Dict[str, Any]: ...

class EmbeddedServer:
    """`updraft serve` inside this process on an ephemeral loopback port (for updraft.fastapi)."""

    def __init__(self, store: Union[str, "PathLike[str]"], public_url: Optional[str] = None) -> None: ...
    @property
    def url(self) -> str: ...
    def stop(self) -> None: ...
