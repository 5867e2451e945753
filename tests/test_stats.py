"""Dataset statistics: hand-counted splits, height buckets and the printed table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mat_fixtures import write_cuhk_fixture

from personsearch.data import load_cuhk_sysu
from personsearch.data.records import UNLABELED, PersonSearchDataset, Query, Scene
from personsearch.data.stats import dataset_statistics, format_statistics


def _scene(name: str, heights: list[float], pids: list[int]) -> Scene:
    boxes = np.array([[0, 0, 10, h] for h in heights], np.float32).reshape(-1, 4)
    return Scene(name, Path(name), boxes, pids)


def _dataset() -> PersonSearchDataset:
    train = [_scene("t1", [50, 59.5, 60], [1, 1, UNLABELED]), _scene("t2", [119, 240], [2, 3])]
    gallery = [_scene("g1", [300], [4]), _scene("g2", [], [])]
    queries = [Query("g1", Path("g1"), [0, 0, 10, 130], 4), Query("g1", Path("g1"), [0, 0, 10, 20], 5)]
    subsets = {"Occlusion": [queries[0]]}
    return PersonSearchDataset("toy", Path("/data/toy"), "cuhk", train, gallery, queries, subsets)


def test_counts_and_heights() -> None:
    stats = dataset_statistics(_dataset())
    train, gallery, query = (stats["splits"][k] for k in ("train", "gallery", "query"))
    assert {k: train[k] for k in ("images", "boxes", "labelled_boxes", "identities", "queries")} == {
        "images": 2,
        "boxes": 5,
        "labelled_boxes": 4,
        "identities": 3,
        "queries": 0,
    }
    # 50 and 59.5 < 60; 60 and 119 in [60, 120); 240 in [240, inf)
    assert train["heights"] == {
        "buckets": {"<60": 2, "60-120": 2, "120-240": 0, ">=240": 1},
        "min": 50.0,
        "median": 60.0,
        "max": 240.0,
    }
    assert (gallery["images"], gallery["boxes"], gallery["identities"]) == (2, 1, 1)
    assert {k: query[k] for k in ("images", "boxes", "labelled_boxes", "identities", "queries")} == {
        "images": 1,
        "boxes": 2,
        "labelled_boxes": 2,
        "identities": 2,
        "queries": 2,
    }
    assert query["heights"]["buckets"] == {"<60": 1, "60-120": 0, "120-240": 1, ">=240": 0}
    assert query["heights"]["median"] == 75.0
    assert stats["splits"]["query (Occlusion)"]["queries"] == 1
    assert json.loads(json.dumps(stats)) == stats  # the CLI writes it as JSON


def test_empty_split_and_table() -> None:
    ds = _dataset()
    ds.gallery = [_scene("g2", [], [])]
    stats = dataset_statistics(ds)
    assert stats["splits"]["gallery"]["heights"] == {
        "buckets": {"<60": 0, "60-120": 0, "120-240": 0, ">=240": 0},
        "min": None,
        "median": None,
        "max": None,
    }
    lines = format_statistics(stats).splitlines()
    assert lines[0] == "toy (cuhk protocol) at /data/toy"
    header = next(line for line in lines if line.startswith("split") and "images" in line)
    assert header.split() == ["split", "images", "boxes", "labelled", "boxes", "identities", "queries"]
    assert next(line for line in lines if line.startswith("train ")).split() == [
        "train",
        "2",
        "5",
        "4",
        "3",
        "0",
    ]
    heights = lines[lines.index("person height in pixels (boxes per bucket)") + 1 :]
    assert heights[0].split() == ["split", "<60", "60-120", "120-240", ">=240", "min", "median", "max"]
    assert heights[1].split() == ["train", "2", "2", "0", "1", "50", "60", "240"]
    assert heights[2].split() == ["gallery", "0", "0", "0", "0", "-", "-", "-"]
    assert heights[3].split() == ["query", "1", "0", "1", "0", "20", "75", "130"]


def test_statistics_of_loaded_fixture(tmp_path: Path) -> None:
    write_cuhk_fixture(tmp_path)
    stats = dataset_statistics(load_cuhk_sysu(tmp_path))
    assert stats["gallery_sizes"] == [50, 100]
    assert [stats["splits"]["train"][k] for k in ("images", "boxes", "labelled_boxes", "identities")] == [
        2,
        4,
        3,
        2,
    ]
    assert [stats["splits"]["gallery"][k] for k in ("images", "boxes", "labelled_boxes", "identities")] == [
        4,
        6,
        4,
        2,
    ]
    assert "protocol gallery sizes: 50, 100" in format_statistics(stats)
