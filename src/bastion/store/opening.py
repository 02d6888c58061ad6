"""Opening the results store: resolving where it lives and preparing it.

:func:`open_store` is the one way to get a :class:`~bastion.store.store.Store`. For a
SQLite store it creates the folder (the default ``.bastion/`` gets a ``.gitignore``
so results stay out of version control); for every store it creates missing tables
and checks the schema version.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from bastion.store import open_store
>>> root = Path(tempfile.mkdtemp())
>>> with open_store(root=root) as store:
...     store.dialect
'sqlite'
>>> sorted(p.name for p in (root / ".bastion").iterdir() if not p.name.endswith(("-wal", "-shm")))
['.gitignore', 'bastion.db']
"""

from __future__ import annotations

from pathlib import Path

from bastion.errors import StoreError
from bastion.store.engine import make_engine
from bastion.store.store import Store
from bastion.store.url import DEFAULT_STORE_DIR, default_store_path, resolve_url, sqlite_file

__all__ = ["open_store"]


def _prepare_sqlite_file(path: Path, *, default: bool, create: bool) -> None:
    if path.is_dir():
        raise StoreError(
            f"The store path {path} is a folder; give the path of a database file, "
            f"e.g. {path / 'bastion.db'}."
        )
    if path.exists():
        return
    if not create:
        raise StoreError(
            f"No results store at {path}; run an assessment first or pass --store with the "
            "URL of an existing store."
        )
    folder = path.parent
    try:
        fresh = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        if default and fresh and folder.name == DEFAULT_STORE_DIR:
            # Results are local state, not source: keep them out of version control.
            (folder / ".gitignore").write_text("# Created by Bastion.\n*\n", encoding="utf-8")
    except OSError as err:
        raise StoreError(
            f"Cannot create the folder {folder} for the results store ({err.strerror or err}); "
            "check its permissions or pass --store with another location."
        ) from err


def open_store(url: str | None = None, *, root: Path | None = None, create: bool = True) -> Store:
    """Open (and if needed create) the results store.

    Parameters
    ----------
    url : str or None
        A SQLAlchemy URL (``sqlite:///file.db``, ``sqlite://`` for memory,
        ``postgresql+psycopg://user:password@host:5432/db``), a path to a SQLite
        file, or None for ``(root or cwd)/.bastion/bastion.db``.
    root : Path or None
        Folder holding the default store; ignored when ``url`` is given.
    create : bool
        When False, a SQLite file that does not exist is an error instead of being
        created (use it for commands that only read).

    Returns
    -------
    Store
        An open store whose tables exist and whose schema is current.

    Raises
    ------
    StoreError
        If the URL is malformed, the server is unreachable, access is denied, the
        file is not a database, or the store was written by a newer Bastion.

    Examples
    --------
    >>> from bastion.store import open_store
    >>> store = open_store("sqlite://")
    >>> store.dialect
    'sqlite'
    >>> store.close()
    """
    resolved = resolve_url(url, root=root)
    path = sqlite_file(resolved)
    if path is not None:
        default = url is None or not url.strip()
        _prepare_sqlite_file(
            path, default=default and path == default_store_path(root), create=create
        )
    engine = make_engine(resolved)
    store = Store(engine, resolved)
    try:
        store._initialise()
    except BaseException:
        store.close()
        raise
    return store
