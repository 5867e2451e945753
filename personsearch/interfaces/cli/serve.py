"""``personsearch serve``: the web page and REST API for an index (``interfaces/server/``), bound
to this machine unless given an access token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personsearch.interfaces.cli import (
    EngineOption,
    IndexDetectorOption,
    _configure_logging,
    _say_engines,
    command,
    err_console,
)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


TOKEN_ENV = "PERSONSEARCH_TOKEN"


@command("serve")
def serve_cmd(
    index: Annotated[
        Path,
        typer.Option(
            help=(
                "Index directory to browse and search (it may not exist yet: "
                "index into it from the page with --allow-dir)."
            )
        ),
    ],
    model: Annotated[
        str, typer.Option(help="Model bundle for uploads and indexing (default: the shipped model).")
    ] = "default",
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but localhost needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(envvar=TOKEN_ENV, help=f"Access token required on every API request (or ${TOKEN_ENV})."),
    ] = None,
    allow_dir: Annotated[
        list[Path] | None,
        typer.Option(
            help=(
                "Folder the page may index files from (repeatable); without it, indexing from the web is off."
            )
        ),
    ] = None,
    allow_adapt: Annotated[
        bool,
        typer.Option(
            help=(
                "Let the page adapt the model to the index's footage (`personsearch adapt` as a job, "
                "saved under a name in the model home); off by default: it takes the CPU for as long "
                "as the footage lasts."
            )
        ),
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Threads running searches and uploads.")] = 2,
    queue: Annotated[
        int,
        typer.Option(
            min=0,
            help=(
                "Requests waiting for a worker before the server answers 503 (short: answered "
                "searches stay fast under overload)."
            ),
        ),
    ] = 2,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest upload, MB.")] = 20.0,
    max_upload_megapixels: Annotated[
        float,
        typer.Option(min=0.01, help="Largest decoded upload, megapixels (decompression bombs are refused)."),
    ] = 40.0,
    detector: IndexDetectorOption = "bundle",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    engine_name: EngineOption = None,
) -> None:
    """Serve the web page and REST API (OpenAPI at /openapi.json) for an index."""
    import uvicorn

    from personsearch.interfaces.api import PersonSearch
    from personsearch.interfaces.server import SearchService, create_app

    if not _is_loopback(host) and not token:
        raise ValueError(
            f"--host {host} exposes the server beyond this machine: give an access token with "
            f"--token or ${TOKEN_ENV}"
        )
    for folder in allow_dir or []:
        if not folder.is_dir():
            raise FileNotFoundError(f"--allow-dir {folder}: no such folder")
    _configure_logging()
    err_console.print("loading the model…")
    engine = PersonSearch.load(model, device=device, detector=detector, engine=engine_name).bundle
    _say_engines(engine)
    service = SearchService(index, engine, max_upload_pixels=int(max_upload_megapixels * 1e6))
    app = create_app(
        service,
        allow_dirs=list(allow_dir or []),
        token=token,
        workers=workers,
        queue=queue,
        max_upload_bytes=int(max_upload_mb * 2**20),
        adapt_from=engine.path if allow_adapt else None,
    )
    shown = f"[{host}]" if ":" in host else host
    err_console.print(
        f"serving {index} on http://{shown}:{port}/ (Ctrl-C stops)" + (" · token required" if token else "")
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
