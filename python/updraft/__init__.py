"""updraft: signed, resumable, rollback-safe updates for desktop apps.

The classes here wrap the Rust client (``updraft-client``) one to one; every
blocking call releases the GIL and can be stopped with
:meth:`UpdateManager.cancel`. ``updraft.qt`` adds PyQt5 signals, the update
dialog and the progress widget; ``updraft.fastapi`` mounts the update server's
endpoints in a FastAPI app.

>>> import updraft
>>> manager = updraft.UpdateManager("/opt/kuzflow")     # doctest: +SKIP
>>> info = manager.check()                              # doctest: +SKIP
>>> if info: manager.install_on_exit(info, restart=True)  # doctest: +SKIP
"""

from updraft._updraft import (
    DownloadError,
    EmbeddedServer,
    InstallError,
    ProgressInfo,
    UpdateCancelled,
    UpdateError,
    UpdateInfo,
    UpdateManager,
    VerificationError,
    __version__,
)

__all__ = [
    "DownloadError",
    "EmbeddedServer",
    "InstallError",
    "ProgressInfo",
    "UpdateCancelled",
    "UpdateError",
    "UpdateInfo",
    "UpdateManager",
    "VerificationError",
    "__version__",
]
