"""The web service: ``personsearch serve`` (FastAPI + uvicorn) and its page.

``create_app(SearchService(index_dir, engine), allow_dirs=..., token=...)`` builds the app;
service.py holds what it does, app.py how HTTP reaches it, static/ the page.
"""

from personsearch.interfaces.server.app import create_app
from personsearch.interfaces.server.service import NotIndexedError, SearchRequest, SearchService

__all__ = ["NotIndexedError", "SearchRequest", "SearchService", "create_app"]
