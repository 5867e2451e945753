"""Persistent embedded person index: SQLite metadata + memory-mapped vectors + faiss search.

``PersonIndex.open(dir, engine, create=True).add_paths([...])`` indexes images and videos;
``.search(feature, top_k, source=..., time_range=..., camera=...)`` returns ``Hit`` records;
``hits_to_json`` gives their stable JSON form (docs/search-json.md).
"""

from personsearch.index.hits import Hit, SearchQuery, hits_from_json, hits_to_json
from personsearch.index.indexer import IndexSummary
from personsearch.index.person_index import PersonIndex, search_index
from personsearch.index.sources import Skipped
from personsearch.index.store import IndexBusyError, IndexCorruptError, ModelMismatchError, PersonIndexError
from personsearch.pipeline import PersonEngine

__all__ = [
    "Hit",
    "IndexBusyError",
    "IndexCorruptError",
    "IndexSummary",
    "ModelMismatchError",
    "PersonEngine",
    "PersonIndex",
    "PersonIndexError",
    "SearchQuery",
    "Skipped",
    "hits_from_json",
    "hits_to_json",
    "search_index",
]
