"""CUHK-SYSU and PRW loaders on hand-written fixtures (tests/mat_fixtures.py), expected values by hand."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from mat_fixtures import (
    EMPTY,
    _gallery,
    _query,
    box,
    cell,
    save,
    struct,
    write_cuhk_fixture,
    write_images,
    write_prw_fixture,
)

from personsearch.data import DatasetFormatError, load_cuhk_sysu, load_dataset, load_prw
from personsearch.data.records import UNLABELED


@pytest.fixture(scope="module")
def cuhk_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cuhk")
    write_cuhk_fixture(root)
    return root


@pytest.fixture
def cuhk_copy(tmp_path: Path) -> Path:
    write_cuhk_fixture(tmp_path)
    return tmp_path


def _scene_map(scenes):
    return {s.name: s for s in scenes}


def _gallery_view(items):
    return [(item.name, None if item.box is None else item.box.tolist()) for item in items]


# ------------------------------------------------------------------------------------- CUHK-SYSU


def test_cuhk_splits_boxes_and_pids(cuhk_root: Path) -> None:
    ds = load_cuhk_sysu(cuhk_root)
    assert ds.protocol == "cuhk" and ds.name == "CUHK-SYSU"
    # train = Images.mat minus pool, sorted; gallery = pool order
    assert [s.name for s in ds.train] == ["s1.jpg", "s2.jpg"]
    assert [s.name for s in ds.gallery] == ["s5.jpg", "s3.jpg", "s4.jpg", "s6.jpg"]
    assert ds.train[0].path == cuhk_root.resolve() / "Image" / "SSM" / "s1.jpg"
    train, gallery = _scene_map(ds.train), _scene_map(ds.gallery)
    # s1: zero-width box dropped; x2 = x + w without +-1; Train{2} (pid 2) matches after int32 truncation
    assert train["s1.jpg"].boxes.tolist() == [[10, 20, 40, 80], [50, 10, 70, 50]]
    assert train["s1.jpg"].pids.tolist() == [2, UNLABELED]
    assert train["s1.jpg"].hard.tolist() == [False, True]
    assert train["s2.jpg"].boxes.tolist() == [[0, 0, 10, 20], [12, 3, 20, 19]]
    assert train["s2.jpg"].pids.tolist() == [1, 2]
    assert train["s1.jpg"].boxes.dtype == np.float32 and train["s1.jpg"].pids.dtype == np.int64
    # test pids come from TestG50 only: query i -> i + 1, targets up to the first empty idlocate
    assert gallery["s5.jpg"].pids.tolist() == [2]
    assert gallery["s3.jpg"].boxes.tolist() == [[1, 2, 11, 32], [20, 2, 30, 32]]
    assert gallery["s3.jpg"].pids.tolist() == [1, UNLABELED]  # listed after q2's first empty entry
    assert gallery["s4.jpg"].boxes.tolist() == [[3, 4, 13, 24], [15, 4, 25, 24]]  # h = -1 box dropped
    assert gallery["s4.jpg"].pids.tolist() == [1, 2]
    assert gallery["s6.jpg"].pids.tolist() == [UNLABELED]
    assert all(s.cam == 0 for s in ds.train + ds.gallery)


def test_cuhk_queries_and_protocol_galleries(cuhk_root: Path) -> None:
    ds = load_cuhk_sysu(cuhk_root)
    assert [(q.name, q.box.tolist(), q.pid) for q in ds.queries] == [
        ("s3.jpg", [1, 2, 11, 32], 1),
        ("s5.jpg", [2, 2, 12, 12], 2),
    ]
    assert ds.gallery_sizes == [50, 100]
    q1, q2 = ds.queries
    # every entry is kept in file order, including those after the first empty idlocate
    assert _gallery_view(q1.galleries[50]) == [("s4.jpg", [3, 4, 13, 24]), ("s6.jpg", None), ("s5.jpg", None)]
    assert _gallery_view(q2.galleries[50]) == [
        ("s4.jpg", [15, 4, 25, 24]),
        ("s6.jpg", None),
        ("s3.jpg", [20, 2, 30, 32]),
    ]
    assert _gallery_view(q1.galleries[100]) == [
        ("s4.jpg", [3, 4, 13, 24]),
        ("s5.jpg", None),
        ("s6.jpg", None),
    ]
    assert _gallery_view(q2.galleries[100]) == [("s4.jpg", [15, 4, 25, 24]), ("s3.jpg", None)]


def test_cuhk_gallery_size_selection(cuhk_root: Path) -> None:
    ds = load_dataset(cuhk_root, gallery_sizes=[50])
    assert ds.gallery_sizes == [50]
    with pytest.raises(ValueError, match="gallery sizes \\[70\\]"):
        load_cuhk_sysu(cuhk_root, gallery_sizes=[70])


def test_cuhk_subsets(cuhk_root: Path) -> None:
    ds = load_cuhk_sysu(cuhk_root)
    assert sorted(ds.subsets) == ["Occlusion", "Resolution"]
    (occ,) = ds.subsets["Occlusion"]
    # pid of the same TestG50 query
    assert (occ.name, occ.box.tolist(), occ.pid) == ("s5.jpg", [2, 2, 12, 12], 2)
    assert _gallery_view(occ.galleries[100]) == [("s4.jpg", [15, 4, 25, 24]), ("s6.jpg", None)]
    (res,) = ds.subsets["Resolution"]
    assert (res.name, res.pid) == ("s6.jpg", UNLABELED)  # not a TestG50 query
    assert list(res.galleries) == [100]


def test_cuhk_subsets_optional_and_validated(cuhk_copy: Path) -> None:
    (cuhk_copy / "annotation/test/subset/Resolution.mat").unlink()
    assert list(load_cuhk_sysu(cuhk_copy).subsets) == ["Occlusion"]
    save(
        cuhk_copy / "annotation/test/subset/Occlusion.mat",
        Occlusion1=cell(_query("s5.jpg", box(2, 2, 10, 10))),
    )
    pattern = "Occlusion.mat: expected Occlusion1 to be a struct array with field 'Query'"
    with pytest.raises(DatasetFormatError, match=pattern):
        load_cuhk_sysu(cuhk_copy)


def test_cuhk_train_must_be_cell_of_structs(cuhk_copy: Path) -> None:
    scene = struct(("imname", "idlocate", "ishard"), ("s2.jpg", box(0, 0, 10, 20), 0.0))
    # a struct array instead of a cell of 1x1 structs breaks the reference loaders' item[0, 0]
    identities = struct(("idname", "nAppear", "scene"), ("p", 1.0, scene))
    save(cuhk_copy / "annotation/test/train_test/Train.mat", Train=identities)
    with pytest.raises(DatasetFormatError) as err:
        load_cuhk_sysu(cuhk_copy)
    message = str(err.value)
    assert "Train.mat" in message and "expected Train to be a cell array" in message and "struct" in message
    assert "re-download/unpack CUHK-SYSU" in message


def test_cuhk_testg_must_be_struct_array(cuhk_copy: Path) -> None:
    save(
        cuhk_copy / "annotation/test/train_test/TestG50.mat",
        TestG50=cell(_query("s3.jpg", box(1, 2, 10, 30))),
    )
    pattern = "TestG50.mat: expected TestG50 to be a struct array with field 'Query', found a 1x1 cell"
    with pytest.raises(DatasetFormatError, match=pattern):
        load_cuhk_sysu(cuhk_copy)


def test_cuhk_query_order_must_agree(cuhk_copy: Path) -> None:
    swapped = struct(
        ("Query", "Gallery"),
        (_query("s5.jpg", box(2, 2, 10, 10)), _gallery(("s4.jpg", box(15, 4, 10, 20)))),
        (_query("s3.jpg", box(1, 2, 10, 30)), _gallery(("s4.jpg", box(3, 4, 10, 20)))),
    )
    save(cuhk_copy / "annotation/test/train_test/TestG100.mat", TestG100=swapped)
    with pytest.raises(
        DatasetFormatError, match=r"TestG100\(1\).Query to be the same query as TestG50\(1\): s3.jpg"
    ):
        load_cuhk_sysu(cuhk_copy)


def test_cuhk_bad_idlocate_named_precisely(cuhk_copy: Path) -> None:
    bad = struct(
        ("Query", "Gallery"), (_query("s3.jpg", box(1, 2, 10, 30)), _gallery(("s4.jpg", box(3, 4, 10))))
    )
    save(cuhk_copy / "annotation/test/train_test/TestG50.mat", TestG50=bad)
    with pytest.raises(DatasetFormatError, match=r"TestG50\(1\).Gallery\(1\).idlocate .*found a 1x3"):
        load_cuhk_sysu(cuhk_copy)


def test_cuhk_gallery_outside_pool(cuhk_copy: Path) -> None:
    bad = struct(("Query", "Gallery"), (_query("s3.jpg", box(1, 2, 10, 30)), _gallery(("s1.jpg", EMPTY))))
    save(cuhk_copy / "annotation/test/train_test/TestG50.mat", TestG50=bad)
    pattern = r"Gallery\(1\).imname to be a test image listed in annotation/pool.mat, found 's1.jpg'"
    with pytest.raises(DatasetFormatError, match=pattern):
        load_cuhk_sysu(cuhk_copy)


def test_cuhk_missing_file(cuhk_copy: Path) -> None:
    (cuhk_copy / "annotation/pool.mat").unlink()
    with pytest.raises(DatasetFormatError) as err:
        load_cuhk_sysu(cuhk_copy)
    message = str(err.value)
    assert str(cuhk_copy.resolve() / "annotation" / "pool.mat") in message
    assert "variable 'pool'" in message and "no such file" in message
    assert "re-download/unpack CUHK-SYSU so that" in message
    assert str(pickle.loads(pickle.dumps(err.value))) == message  # survives worker processes


def test_cuhk_corrupt_mat(cuhk_copy: Path) -> None:
    (cuhk_copy / "annotation/Images.mat").write_bytes(b"not a matlab file\x00\x01" * 20)
    with pytest.raises(
        DatasetFormatError, match="Images.mat: expected a MATLAB .mat file, found unreadable data"
    ):
        load_cuhk_sysu(cuhk_copy)


def test_cuhk_missing_variable(cuhk_copy: Path) -> None:
    save(cuhk_copy / "annotation/pool.mat", gallery=cell("s5.jpg"))
    with pytest.raises(
        DatasetFormatError, match=r"pool.mat: expected variable 'pool', found variables \['gallery'\]"
    ):
        load_cuhk_sysu(cuhk_copy)


def test_cuhk_missing_images_listed(cuhk_copy: Path) -> None:
    (cuhk_copy / "Image/SSM/s4.jpg").unlink()
    (cuhk_copy / "Image/SSM/s6.jpg").unlink()
    pattern = (
        r"SSM: expected the 6 files listed in annotation/Images.mat, found 2 missing \(s4.jpg, "
        r"s6.jpg\)"
    )
    with pytest.raises(DatasetFormatError, match=pattern):
        load_cuhk_sysu(cuhk_copy)


def test_cuhk_train_image_unknown(cuhk_copy: Path) -> None:
    scene = struct(("imname", "idlocate", "ishard"), ("s9.jpg", box(0, 0, 1, 1), 0.0))
    identity = struct(("idname", "nAppear", "scene"), ("p", 1.0, scene))
    save(cuhk_copy / "annotation/test/train_test/Train.mat", Train=cell(identity))
    pattern = (
        r"Train.mat: expected Train\{1\}.scene\(1\).imname to be an image listed in "
        r".*Images.mat, found 's9.jpg'"
    )
    with pytest.raises(DatasetFormatError, match=pattern):
        load_cuhk_sysu(cuhk_copy)


# ------------------------------------------------------------------------------------------- PRW


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_prw_loader(tmp_path: Path, newline: str) -> None:
    write_prw_fixture(tmp_path, newline)
    ds = load_prw(tmp_path)
    assert ds.protocol == "prw" and ds.name == "PRW"
    assert [s.name for s in ds.train] == ["c1s1_000001.jpg", "c2s1_000002.jpg"]
    assert [s.name for s in ds.gallery] == ["c1s2_000010.jpg", "c3s1_000020.jpg", "c6s4_000030.jpg"]
    got = {s.name: (s.boxes.tolist(), s.pids.tolist(), s.cam) for s in ds.train + ds.gallery}
    assert got == {
        # box_new; -2 -> UNLABELED
        "c1s1_000001.jpg": ([[10, 20, 40, 60], [5, 5, 15, 15]], [1, UNLABELED], 1),
        # anno_file: x = -5.5 clipped to 0 before x2 = x + w: [0, 3.7, 20.9, 33.9] truncated
        "c2s1_000002.jpg": ([[0, 3, 20, 33]], [2], 2),
        "c1s2_000010.jpg": ([[1, 2, 4, 6]], [3], 1),  # anno_previous
        # y = -2 and w = -4 clipped to 0: [10.6, 0, 10.6, 8] truncated
        "c3s1_000020.jpg": ([[10, 0, 10, 8], [0, 0, 5, 5]], [3, UNLABELED], 3),
        "c6s4_000030.jpg": ([], [], 6),
    }
    assert ds.gallery[0].path == tmp_path.resolve() / "frames" / "c1s2_000010.jpg"
    # int32([-3.7, 2.5, -3.7 + 10.2, 2.5 + 20.9]) = [-3, 2, 6, 23], then clipped
    assert [(q.name, q.box.tolist(), q.pid, q.cam, q.galleries) for q in ds.queries] == [
        ("c1s2_000010.jpg", [0, 2, 6, 23], 3, 1, {}),
        ("c3s1_000020.jpg", [10, 0, 15, 8], 3, 3, {}),
    ]


def test_prw_query_info_bad_line(tmp_path: Path) -> None:
    write_prw_fixture(tmp_path)
    (tmp_path / "query_info.txt").write_bytes(b"3 1 2 3 4 c1s2_000010\r\n3 1 2 3 c1s2_000010\r\n")
    pattern = r"query_info.txt: expected 6 space-separated fields .* found 5 fields on line 2"
    with pytest.raises(DatasetFormatError, match=pattern):
        load_prw(tmp_path)


def test_prw_annotation_errors(tmp_path: Path) -> None:
    write_prw_fixture(tmp_path)
    save(tmp_path / "annotations/c1s2_000010.jpg.mat", boxes=np.zeros((1, 5)))
    pattern = (
        r"c1s2_000010.jpg.mat: expected variable 'box_new' or 'anno_file' or 'anno_previous', found "
        r"variables \['boxes'\]"
    )
    with pytest.raises(DatasetFormatError, match=pattern):
        load_prw(tmp_path)
    save(tmp_path / "annotations/c1s2_000010.jpg.mat", box_new=np.zeros((1, 4)))
    pattern = r"expected box_new \(\[id x y w h\] rows\) to be a numeric n x 5 matrix, found a 1x4"
    with pytest.raises(DatasetFormatError, match=pattern):
        load_prw(tmp_path)
    (tmp_path / "annotations/c1s2_000010.jpg.mat").unlink()
    pattern = (
        r"annotations: expected the 5 files .* found 1 missing "
        r"\(c1s2_000010.jpg.mat\).*PRW-v16.04.20"
    )
    with pytest.raises(DatasetFormatError, match=pattern):
        load_prw(tmp_path)


def test_prw_frame_list_must_be_cell(tmp_path: Path) -> None:
    write_prw_fixture(tmp_path)
    save(tmp_path / "frame_train.mat", img_index_train=np.zeros((2, 1)))
    pattern = "frame_train.mat: expected img_index_train to be a cell array, found a 2x1 float64"
    with pytest.raises(DatasetFormatError, match=pattern):
        load_prw(tmp_path)


def test_prw_frame_without_camera(tmp_path: Path) -> None:
    write_prw_fixture(tmp_path)
    save(tmp_path / "frame_train.mat", img_index_train=cell("frame1"))
    save(tmp_path / "annotations/frame1.jpg.mat", box_new=np.zeros((0, 5)))
    write_images(tmp_path / "frames", ["frame1.jpg"])
    pattern = r"frame1.jpg.mat: expected frame names like c\{cam\}s\{seq\}.*found 'frame1.jpg'"
    with pytest.raises(DatasetFormatError, match=pattern):
        load_prw(tmp_path)


def test_prw_missing_query_frame(tmp_path: Path) -> None:
    write_prw_fixture(tmp_path)
    (tmp_path / "query_info.txt").write_bytes(b"3 1 2 3 4 c4s1_000099\r\n")
    pattern = r"frames: expected .* query_info.txt, found 1 missing \(c4s1_000099.jpg\)"
    with pytest.raises(DatasetFormatError, match=pattern):
        load_prw(tmp_path)


# ---------------------------------------------------------------------------------- load_dataset


def test_load_dataset_detects_layout(cuhk_root: Path, tmp_path: Path) -> None:
    assert load_dataset(cuhk_root).protocol == "cuhk"
    write_prw_fixture(tmp_path / "prw")
    assert load_dataset(tmp_path / "prw").protocol == "prw"
    assert load_dataset(tmp_path / "prw", "PRW").protocol == "prw"
    with pytest.raises(DatasetFormatError, match="annotation/Images.mat.*frame_test.mat.*found neither"):
        load_dataset(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset kind 'market'"):
        load_dataset(cuhk_root, "market")
