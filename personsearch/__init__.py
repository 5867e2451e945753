"""personsearch: find a given person in scene images and videos (CLSA, ECCV 2018, and beyond).

Data flow: ``data`` (benchmark loaders, synthetic benchmark) -> ``models`` (detector, pyramid
re-id) -> ``training`` / ``evaluation`` (protocols) -> ``index`` (persistent search index) ->
``interfaces`` (Python API, CLI, reports).
"""

__version__ = "0.1.0"
