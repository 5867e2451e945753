"""Writers: the exact official file structures, reference-loader access patterns, and round trips."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from mat_fixtures import write_images

from personsearch.data import load_cuhk_sysu, load_prw
from personsearch.data.records import UNLABELED, GalleryItem, PersonSearchDataset, Query, Scene
from personsearch.data.writers import write_cuhk_sysu, write_prw


def _scene(name: str, boxes: list, pids: list, cam: int = 0, hard: list | None = None) -> Scene:
    hard = [False] * len(pids) if hard is None and cam == 0 else hard
    return Scene(name, Path(name), np.array(boxes, np.float32).reshape(-1, 4), pids, cam, hard)


def _item(name: str, box: list | None = None) -> GalleryItem:
    return GalleryItem(name, None if box is None else np.array(box, np.float32))


def _cuhk_dataset() -> PersonSearchDataset:
    """Pids already in the format's numbering (train 1..N, query i -> i + 1), galleries targets-first."""
    train = [
        _scene("a1.jpg", [[0, 0, 10, 20], [5, 5, 15, 40]], [1, UNLABELED], hard=[False, True]),
        _scene("a2.jpg", [[1, 1, 11, 31]], [2]),
    ]
    gallery = [
        _scene("g3.jpg", [[2, 2, 12, 32], [20, 2, 30, 42]], [1, UNLABELED]),
        _scene("g1.jpg", [[0, 0, 8, 24], [10, 0, 20, 30]], [2, 1]),
        _scene("g2.jpg", [[4, 4, 14, 44]], [2]),
    ]
    q0 = Query(
        "g3.jpg",
        Path("g3.jpg"),
        [2, 2, 12, 32],
        1,
        galleries={
            50: [_item("g1.jpg", [10, 0, 20, 30]), _item("g2.jpg")],
            100: [_item("g1.jpg", [10, 0, 20, 30]), _item("g2.jpg"), _item("g3.jpg")],
        },
    )
    q1 = Query(
        "g1.jpg",
        Path("g1.jpg"),
        [0, 0, 8, 24],
        2,
        galleries={
            50: [_item("g2.jpg", [4, 4, 14, 44]), _item("g3.jpg")],
            100: [_item("g2.jpg", [4, 4, 14, 44]), _item("g3.jpg"), _item("g1.jpg")],
        },
    )
    subsets = {
        "Occlusion": [Query(q1.name, q1.path, q1.box, 2, galleries={100: q1.galleries[100]})],
        "Resolution": [Query(q0.name, q0.path, q0.box, 1, galleries={100: q0.galleries[100]})],
    }
    return PersonSearchDataset("CUHK-SYSU", Path("."), "cuhk", train, gallery, [q0, q1], subsets)


def _scenes_view(scenes: list[Scene]) -> list:
    return [
        (s.name, s.boxes.tolist(), s.pids.tolist(), s.cam, None if s.hard is None else s.hard.tolist())
        for s in scenes
    ]


def _queries_view(queries: list[Query]) -> list:
    return [
        (
            q.name,
            q.box.tolist(),
            q.pid,
            q.cam,
            {
                g: [(i.name, None if i.box is None else i.box.tolist()) for i in items]
                for g, items in q.galleries.items()
            },
        )
        for q in queries
    ]


def _write_cuhk(ds: PersonSearchDataset, root: Path) -> None:
    write_cuhk_sysu(ds, root)
    write_images(root / "Image" / "SSM", [s.name for s in ds.train + ds.gallery])


def test_cuhk_round_trip(tmp_path: Path) -> None:
    ds = _cuhk_dataset()
    _write_cuhk(ds, tmp_path)
    back = load_cuhk_sysu(tmp_path)
    assert _scenes_view(back.train) == _scenes_view(ds.train)
    assert _scenes_view(back.gallery) == _scenes_view(ds.gallery)
    assert _queries_view(back.queries) == _queries_view(ds.queries)
    assert {k: _queries_view(v) for k, v in back.subsets.items()} == {
        k: _queries_view(v) for k, v in ds.subsets.items()
    }
    assert back.train[0].path == tmp_path.resolve() / "Image" / "SSM" / "a1.jpg"


def test_cuhk_file_structures_match_reference_access(tmp_path: Path) -> None:
    write_cuhk_sysu(_cuhk_dataset(), tmp_path)
    ann = tmp_path / "annotation"
    img = scipy.io.loadmat(ann / "Images.mat")["Img"]
    assert img.shape == (1, 5) and img.dtype.names == ("imname", "nAppear", "box")
    # SeqNet: for img_name, _, boxes in Img.squeeze(): [b[0] for b in boxes[0]]
    first_name, n_appear, boxes = img.squeeze()[0]
    assert str(first_name[0]) == "a1.jpg" and n_appear.tolist() == [[2.0]]
    assert boxes.shape == (1, 2) and boxes.dtype.names == ("idlocate", "ishard")
    assert np.asarray([b[0] for b in boxes[0]]).reshape(-1, 4).tolist() == [[0, 0, 10, 20], [5, 5, 10, 35]]
    assert boxes[0, 1]["ishard"].tolist() == [[1.0]]

    pool = scipy.io.loadmat(ann / "pool.mat")["pool"]
    assert pool.shape == (3, 1) and [str(a[0]) for a in pool.squeeze()] == ["g3.jpg", "g1.jpg", "g2.jpg"]

    train = scipy.io.loadmat(ann / "test/train_test/Train.mat")["Train"]
    assert train.shape == (2, 1) and train.dtype == object  # a cell, each holding a 1x1 struct
    assert train[0, 0].shape == (1, 1) and train[0, 0].dtype.names == ("idname", "nAppear", "scene")
    scenes = train.squeeze()[1][0, 0][2].squeeze()  # identity pid 2: item[0, 0][2].squeeze()
    assert [(str(n[0]), b.squeeze().tolist()) for n, b, _ in np.atleast_1d(scenes)] == [
        ("a2.jpg", [1, 1, 10, 30])
    ]

    protoc = scipy.io.loadmat(ann / "test/train_test/TestG50.mat")["TestG50"]
    assert protoc.shape == (1, 2) and protoc.dtype.names == ("Query", "Gallery")
    item = protoc.squeeze()[0]
    assert item["Query"].shape == (1, 1) and str(item["Query"][0, 0][0][0]) == "g3.jpg"
    assert item["Query"][0, 0][1].squeeze().tolist() == [2, 2, 10, 30]
    gallery = item["Gallery"]
    assert gallery.shape == (1, 2) and gallery.dtype.names == ("imname", "idlocate", "ishard")
    assert gallery[0, 0]["idlocate"].tolist() == [[10, 0, 10, 30]]
    assert gallery[0, 1]["idlocate"].shape == (1, 0)  # 1x0, so eval's item[1][0] exists and is empty
    assert scipy.io.loadmat(ann / "test/train_test/TestG100.mat")["TestG100"]["Gallery"][0, 0].shape == (1, 3)
    occlusion = scipy.io.loadmat(ann / "test/subset/Occlusion.mat")["Occlusion1"]
    resolution = scipy.io.loadmat(ann / "test/subset/Resolution.mat")["Test_Size"]
    assert occlusion.dtype.names == resolution.dtype.names == ("Query", "Gallery")


def test_cuhk_targets_written_first(tmp_path: Path) -> None:
    ds = _cuhk_dataset()
    q0 = ds.queries[0]
    q0.galleries[50] = [_item("g2.jpg"), _item("g1.jpg", [10, 0, 20, 30])]
    _write_cuhk(ds, tmp_path)
    back = load_cuhk_sysu(tmp_path)
    assert [(i.name, i.box is None) for i in back.queries[0].galleries[50]] == [
        ("g1.jpg", False),
        ("g2.jpg", True),
    ]
    # the target behind a non-target is still labelled
    assert _scenes_view(back.gallery) == _scenes_view(ds.gallery)


def test_cuhk_pids_renumbered(tmp_path: Path) -> None:
    ds = _cuhk_dataset()
    ds.train[0].pids[0], ds.train[1].pids[0] = 7, 3  # train ids 7 and 3 -> Train.mat order 3, 7 -> pids 1, 2
    ds.queries[0].pid, ds.queries[1].pid = 40, 41
    ds.gallery[0].pids[1] = 99  # not a TestG50 target: the format cannot store it
    _write_cuhk(ds, tmp_path)
    back = load_cuhk_sysu(tmp_path)
    assert [s.pids.tolist() for s in back.train] == [[2, UNLABELED], [1]]
    assert [q.pid for q in back.queries] == [1, 2]
    assert back.gallery[0].pids.tolist() == [1, UNLABELED]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda ds: ds.gallery[2].boxes.__setitem__((0, 0), 4.5), "g2.jpg: boxes must be integral"),
        (lambda ds: ds.train[1].boxes.__setitem__((0, 2), 1.0), "a2.jpg: every box needs x2 > x1"),
        (lambda ds: ds.queries[1].galleries.pop(50), "galleries\\[50\\]"),
        (lambda ds: ds.queries[0].galleries.__setitem__(50, [_item("a1.jpg")]), "outside dataset.gallery"),
        (lambda ds: ds.subsets.__setitem__("Blur", []), "subsets \\['Blur'\\] have no CUHK-SYSU file"),
        (lambda ds: setattr(ds.gallery[2], "name", "g3.jpg"), "g3.jpg appears twice"),
        (
            lambda ds: setattr(ds.queries[0], "name", "a1.jpg"),
            "query images \\['a1.jpg'\\] are not test scenes",
        ),
        (
            lambda ds: (
                setattr(ds.gallery[2], "boxes", np.array([[4, 4, 14, 44]] * 2, np.float32))
                or setattr(ds.gallery[2], "pids", np.array([2, 2]))
            ),
            "two identical boxes",
        ),
    ],
)
def test_cuhk_writer_refuses_what_cannot_round_trip(tmp_path: Path, mutate, message: str) -> None:
    ds = copy.deepcopy(_cuhk_dataset())
    mutate(ds)
    with pytest.raises(ValueError, match=message):
        write_cuhk_sysu(ds, tmp_path)


def _prw_dataset() -> PersonSearchDataset:
    train = [
        _scene("c1s1_000001.jpg", [[10, 20, 40, 60], [5, 5, 15, 15]], [1, UNLABELED], cam=1),
        _scene("c2s1_000002.jpg", [[0, 3, 20, 33]], [2], cam=2),
    ]
    gallery = [
        _scene("c1s2_000010.jpg", [[1, 2, 4, 6]], [3], cam=1),
        _scene("c6s4_000030.jpg", [], [], cam=6),
    ]
    queries = [Query("c1s2_000010.jpg", Path("q"), [0, 2, 6, 23], 3, 1)]
    return PersonSearchDataset("PRW", Path("."), "prw", train, gallery, queries)


def test_prw_round_trip_and_structures(tmp_path: Path) -> None:
    ds = _prw_dataset()
    write_prw(ds, tmp_path)
    write_images(tmp_path / "frames", [s.name for s in ds.train + ds.gallery])
    back = load_prw(tmp_path)
    assert _scenes_view(back.train) == _scenes_view(ds.train)
    assert _scenes_view(back.gallery) == _scenes_view(ds.gallery)
    assert _queries_view(back.queries) == _queries_view(ds.queries)

    anno = scipy.io.loadmat(tmp_path / "annotations" / "c1s1_000001.jpg.mat")
    assert anno["box_new"].tolist() == [[1, 10, 20, 30, 40], [-2, 5, 5, 10, 10]]
    assert scipy.io.loadmat(tmp_path / "annotations" / "c6s4_000030.jpg.mat")["box_new"].size == 0
    imgs = scipy.io.loadmat(tmp_path / "frame_train.mat")["img_index_train"]
    assert imgs.shape == (2, 1) and [img[0][0] + ".jpg" for img in imgs] == [
        "c1s1_000001.jpg",
        "c2s1_000002.jpg",
    ]
    assert scipy.io.loadmat(tmp_path / "frame_test.mat")["img_index_test"].shape == (2, 1)
    raw = (tmp_path / "query_info.txt").read_bytes()
    assert raw == b"3 0 2 6 21 c1s2_000010\r\n"
    # the reference loaders' name slice, which needs CRLF
    assert str(raw.splitlines(keepends=True)[0], "utf-8").split(" ")[5][:-2] == "c1s2_000010"
    assert scipy.io.loadmat(tmp_path / "ID_train.mat")["ID_train"].tolist() == [[1, 2]]
    assert scipy.io.loadmat(tmp_path / "ID_test.mat")["ID_test"].tolist() == [[3]]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda ds: setattr(ds.train[0], "name", "frame1.jpg"), "must be named c\\{cam\\}s\\{seq\\}"),
        (lambda ds: setattr(ds.train[1], "cam", 5), "camera 2 by name but has cam=5"),
        (lambda ds: ds.gallery[0].boxes.__setitem__((0, 0), -1.0), "boxes must be non-negative"),
        (lambda ds: ds.train[0].pids.__setitem__(0, -2), "pids must be >= 0 or UNLABELED"),
        (
            lambda ds: ds.queries[0].box.__setitem__(1, 2.5),
            "query in c1s2_000010.jpg: boxes must be integral",
        ),
    ],
)
def test_prw_writer_refuses_what_cannot_round_trip(tmp_path: Path, mutate, message: str) -> None:
    ds = _prw_dataset()
    mutate(ds)
    with pytest.raises(ValueError, match=message):
        write_prw(ds, tmp_path)
