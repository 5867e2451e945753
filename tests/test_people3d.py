"""Rendered 3D people: deterministic, identities that keep their clothes, a data set that re-id
training reads, and a network that learns from it.

Without the ``people3d`` extra or Mesa's EGL driver these tests are skipped, unless
``PERSONSEARCH_REQUIRE_RENDERER=1`` (CI sets it): there a missing renderer is a failure. The
first use on a machine builds Anny's caches (a minute or two); a handful of renders follow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image


def _need(reason: str) -> None:
    if os.environ.get("PERSONSEARCH_REQUIRE_RENDERER") == "1":
        pytest.fail(f"PERSONSEARCH_REQUIRE_RENDERER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def painter():
    try:
        import anny  # noqa: F401
        import moderngl  # noqa: F401
    except ImportError:
        _need("the people3d extra is not installed (pip install 'personsearch[people3d]')")
    from personsearch.data.people3d.dataset import PersonPainter

    try:
        return PersonPainter(seed=0, cameras=4)
    except RuntimeError as err:
        _need(str(err))


def test_the_same_seed_renders_the_same_person_byte_for_byte(painter) -> None:
    first = painter.identity_images(7, 3)
    again = painter.identity_images(7, 3)
    assert [cam for cam, _ in first] == [cam for cam, _ in again]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again))
    other = painter.identity_images(8, 3)
    assert not any(np.array_equal(a, b) for (_, a), (_, b) in zip(first, other))
    for _, image in first:
        assert image.shape == (256, 128, 3) and image.dtype == np.uint8 and image.std() > 10


def test_an_identity_keeps_its_body_and_clothes_across_poses_and_views(painter) -> None:
    """Materials and shape come from the identity alone; only pose, view, light and camera vary.
    Measured: the central torso colour of one person's images is closer to each other than to
    another person's."""
    from personsearch.data.people3d import body, outfit

    a, b = outfit.make_identity(11), outfit.make_identity(11)
    assert np.array_equal(a.phenotype, b.phenotype) and all(
        np.array_equal(x.base, y.base) for x, y in zip(a.materials, b.materials)
    )
    rest, _ = body.posed_vertices(
        np.repeat(a.phenotype[None], 2, 0), [body.walk_pose(a.gait, 0.1), body.walk_pose(a.gait, 0.6)]
    )
    region = body.topology().region
    assert np.array_equal(
        outfit.vertex_materials(a, rest[0], region), outfit.vertex_materials(a, rest[1], region)
    )
    assert np.allclose(rest[0], rest[1])  # the pose moves the vertices, not the rest shape

    def torso_colour(images: list[tuple[int, np.ndarray]]) -> np.ndarray:
        return np.stack([image[90:130, 52:76].reshape(-1, 3).mean(0) for _, image in images])

    ones = [torso_colour(painter.identity_images(pid, 4)) for pid in (3, 4, 5, 6)]
    within = np.mean(
        [np.linalg.norm(c[:, None] - c[None], axis=-1)[np.triu_indices(4, 1)].mean() for c in ones]
    )
    between = np.mean(
        [
            np.linalg.norm(ones[i][:, None] - ones[j][None], axis=-1).mean()
            for i in range(4)
            for j in range(i + 1, 4)
        ]
    )
    assert within < between


def test_a_backpack_sits_on_the_back_and_stands_off_it(painter) -> None:
    """Carried things change a person's outline: a backpack is a block of vertices behind the
    torso (the body faces -y), thicker than any garment; a person without a bag has none."""
    from personsearch.data.people3d import body, outfit

    people = [outfit.make_identity(seed) for seed in range(1, 40)]
    with_pack = next(p for p in people if p.bag == "backpack")
    without = next(p for p in people if p.bag == "none")
    region = body.topology().region
    bag = outfit.MATERIALS.index("bag")
    for person, expected in ((with_pack, True), (without, False)):
        rest, _ = body.posed_vertices(person.phenotype[None], [body.walk_pose(person.gait, 0.0)])
        materials = outfit.vertex_materials(person, rest[0], region)
        on_bag = materials == bag
        assert on_bag.any() == expected
        if expected:
            torso = rest[0][region == body.REGIONS.index("torso")]
            assert rest[0][on_bag, 1].min() > np.median(torso[:, 1])  # behind the torso's middle
            assert person.materials[bag].thickness > max(m.thickness for m in person.materials[:bag])


def test_skirts_coats_and_long_hair_hang_free_of_the_body(painter) -> None:
    """Loose pieces change the outline: in every phase of the walk a skirt's or coat's hem goes
    round both legs at its height (no leg vertex outside it), no ring of it is narrower than the
    one above, and long hair is a curtain behind the head's middle; a person in trousers with
    short hair wears no loose piece."""
    from personsearch.data.people3d import body, drape, outfit

    people = [outfit.make_identity(seed) for seed in range(1, 80)]
    skirted = next(p for p in people if p.skirt == "skirt")
    coated = next(p for p in people if p.coat)
    long_hair = next(p for p in people if p.hair_length > 0.2)
    plain = next(p for p in people if p.skirt == "none" and not p.coat and p.hair_length == 0)
    region = body.topology().region
    legs = np.isin(region, [body.REGIONS.index("thigh"), body.REGIONS.index("shin")])
    for person in (skirted, coated):
        phases = [0.0, 0.25, 0.5, 0.75]
        rest, posed = body.posed_vertices(
            np.repeat(person.phenotype[None], 4, 0), [body.walk_pose(person.gait, t) for t in phases]
        )
        piece = next(p for p in drape.pieces(person, rest[0], region) if p.tube)
        assert piece.material == outfit.MATERIALS.index("jacket" if person.coat else "bottom")
        for k in range(len(phases)):
            vertices, _, _, _, triangles = drape.mesh((piece,), rest[0], posed[k], len(posed[k]))
            assert triangles.min() == len(posed[k]) and triangles.max() == len(posed[k]) + len(vertices) - 1
            rings = vertices.reshape(drape.RINGS, drape.SEGMENTS, 3)
            half_widths = np.ptp(rings[..., 0], axis=1) / 2
            assert np.all(np.diff(half_widths) >= -1e-5)  # never narrower going down
            hem = rings[-1]
            centre, radii = (hem.max(0) + hem.min(0)) / 2, np.ptp(hem, axis=0) / 2
            band = legs & (np.abs(posed[k][:, 2] - hem[:, 2].mean()) < 0.02)
            inside = ((posed[k][band, :2] - centre[:2]) / radii[:2]) ** 2
            assert band.sum() > 10 and np.all(inside.sum(1) < 1.0)
    rest, posed = body.posed_vertices(long_hair.phenotype[None], [body.walk_pose(long_hair.gait, 0.3)])
    hair = next(p for p in drape.pieces(long_hair, rest[0], region) if not p.tube)
    vertices, normals, _, slots, _ = drape.mesh((hair,), rest[0], posed[0], len(posed[0]))
    head = posed[0][region == body.REGIONS.index("head")]
    assert set(slots) == {outfit.MATERIALS.index("hair")}
    assert np.median(vertices[:, 1]) > np.median(head[:, 1])  # behind: the body faces -y
    assert np.ptp(vertices[:, 2]) > long_hair.hair_length * 0.8  # it falls as long as the identity says
    assert np.all(normals[:, 1] > -1e-6)  # facing out of the back
    rest, _ = body.posed_vertices(plain.phenotype[None], [body.walk_pose(plain.gait, 0.0)])
    assert drape.pieces(plain, rest[0], region) == ()


def test_a_rendered_data_set_is_market_1501_and_resumes(painter, tmp_path: Path) -> None:
    from personsearch.data.people3d.dataset import RenderSpec, render_dataset
    from personsearch.data.reid_crops import GALLERY, QUERY, TRAIN, read_split, train_crop_set

    spec = RenderSpec(identities=3, test_identities=2, images_per_identity=4, cameras=4, seed=0)
    summary = render_dataset(tmp_path, spec)
    assert summary["complete"] and summary["images_rendered_now"] == 20
    train = sorted(p.name for p in (tmp_path / TRAIN).iterdir())
    assert (
        len(train) == 12 and train[0].startswith("0001_c") and all(name.endswith("_00.jpg") for name in train)
    )
    query, gallery = read_split(tmp_path, QUERY, (64, 32)), read_split(tmp_path, GALLERY, (64, 32))
    assert set(query.pids) == set(gallery.pids) == {4, 5}
    assert len(query.pids) + len(gallery.pids) == 8
    digest = hashlib.sha256((tmp_path / TRAIN / train[0]).read_bytes()).hexdigest()
    (tmp_path / TRAIN / train[-1]).unlink()  # a run killed before its last image
    again = render_dataset(tmp_path, spec)
    assert again["images_rendered_now"] == 4  # only that person is rendered again
    assert hashlib.sha256((tmp_path / TRAIN / train[0]).read_bytes()).hexdigest() == digest
    crops = train_crop_set(tmp_path, (64, 32))
    assert crops.num_classes == 3 and crops.crops.shape == (12, 3, 64, 32)
    with pytest.raises(ValueError, match="other settings"):
        render_dataset(
            tmp_path, RenderSpec(identities=4, test_identities=2, images_per_identity=4, cameras=4, seed=0)
        )


def test_a_network_trained_on_rendered_people_tells_them_apart(painter, tmp_path: Path) -> None:
    """180 steps of a small re-id network on 6 rendered people: images of one person end up
    closer to each other than to the other people's, by a margin in mean cosine (measured 0.55
    with 1 thread and 0.72 with 2; 0.0 untrained, whose features do not depend on the input;
    asserted 0.2). At 4x this learning rate the margin depends on the thread count (0.06-0.54)."""
    from personsearch.data.people3d.dataset import RenderSpec, render_dataset
    from personsearch.data.reid_crops import train_crop_set
    from personsearch.models.bundle import load_component
    from personsearch.models.reid import ReIDConfig
    from personsearch.training.config import OptimConfig, ReIDDataConfig, ReIDTrainConfig
    from personsearch.training.reid import train_reid

    render_dataset(
        tmp_path / "people",
        RenderSpec(identities=6, test_identities=0, images_per_identity=8, cameras=4, seed=3),
    )
    config = ReIDTrainConfig(
        model=ReIDConfig(backbone="mobilenet_v2_tiny", pretrained=False, variant="clsa", input_size=(64, 32)),
        data=ReIDDataConfig(dataset=str(tmp_path / "people"), downscale_prob=0.0),
        optim=OptimConfig(lr=0.005, backbone_lr=0.005, warmup_steps=5),
        epochs=60,
        batch_size=16,
        fast=False,
    )
    train_reid(config, tmp_path / "model", progress=False)
    model, _, _ = load_component(tmp_path / "model", "reid")
    crops = train_crop_set(tmp_path / "people", (64, 32))
    from personsearch.data.crops import normalize_crops

    with torch.no_grad():
        feats = torch.nn.functional.normalize(model(normalize_crops(crops.crops)).float(), dim=1)
    sim = feats @ feats.T
    same = crops.labels[:, None] == crops.labels[None]
    off_diagonal = ~torch.eye(len(sim), dtype=torch.bool)
    margin = float(sim[same & off_diagonal].mean() - sim[~same].mean())
    assert margin > 0.2, margin


def test_render_people_from_the_command_line(painter, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from personsearch.interfaces.cli import app

    out = tmp_path / "people"
    result = CliRunner().invoke(
        app,
        [
            "render-people",
            str(out),
            "--identities",
            "2",
            "--test-identities",
            "0",
            "--images",
            "2",
            "--cameras",
            "2",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and len(list((out / "bounding_box_train").glob("*.jpg"))) == 4


def test_a_person_search_benchmark_of_rendered_people_is_cuhk_sysu(
    painter, tmp_path: Path, monkeypatch
) -> None:
    """``make-synthetic --people 3d``: the CUHK-SYSU layout that every tool reads, queries with
    galleries, the same bytes from two processes as from one, and a labelled person's identity the
    same rendered person in every image they appear in."""
    from typer.testing import CliRunner

    from personsearch.data import load_dataset
    from personsearch.data.people3d.scenes import identity_seed, place_people
    from personsearch.data.synthetic.generate import image_names
    from personsearch.data.synthetic.plan import plan_benchmark, resolve_config
    from personsearch.data.synthetic.scenes import render_scene
    from personsearch.interfaces.cli import app

    out = tmp_path / "scenes"
    result = CliRunner().invoke(
        app, ["make-synthetic", str(out), "--preset", "tiny", "--people", "3d", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    dataset = load_dataset(out)
    assert dataset.protocol == "cuhk" and len(dataset.queries) == 6 and len(dataset.train) > 5
    assert all(len(q.galleries[50]) == 50 for q in dataset.queries)
    assert "contact sheet" in " ".join(result.output.split())  # (the console wraps long lines)
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.width > 200 and np.asarray(sheet).std() > 10

    plan = plan_benchmark(resolve_config("tiny"), 0)
    names = image_names(plan, "cuhk")
    scenes = {s.name: s for s in dataset.train + dataset.gallery}
    for index in (0, len(plan.images) - 1):  # one train image, one test image
        final, sprites = place_people(0, plan.config.num_cameras, index, plan.images[index])
        written = scenes[names[index]]
        assert np.array_equal(written.boxes, np.asarray([p.box for p in final.people], np.float32))
        buffer = tmp_path / "again.jpg"
        Image.fromarray(render_scene(final, sprites)).save(buffer, format="JPEG", quality=90)
        assert buffer.read_bytes() == written.path.read_bytes()  # the worker wrote the same bytes

    # who is rendered where: each labelled person one identity in all their images, each passer-by
    # their own, none shared
    from personsearch.data.people3d.dataset import PersonPainter

    calls: list[int] = []

    def record(self, identity, cam, rng) -> np.ndarray:  # no render: a plain person-shaped cutout
        calls.append(identity.seed)
        return np.full((40, 16, 4), 255.0, np.float32)

    monkeypatch.setattr(PersonPainter, "cutout", record)
    labelled: dict[tuple[str, int], set[int]] = {}
    passers_by: list[int] = []
    for index, image in enumerate(plan.images):
        calls.clear()
        place_people(0, plan.config.num_cameras, index, image)
        for person, seed in zip(image.scene.people, calls, strict=True):
            if person.pid >= 0:
                labelled.setdefault((image.split, person.pid), set()).add(seed)
            else:
                passers_by.append(seed)
    assert len(labelled) == 16 and all(len(seeds) == 1 for seeds in labelled.values())  # 10 + 6 people
    people = [next(iter(seeds)) for seeds in labelled.values()] + passers_by
    assert len(set(people)) == len(people) > 16
    assert labelled[("test", 2)] == {identity_seed(0, "test", 2)}


def test_a_rendered_person_s_box_hugs_them(painter) -> None:
    """Each box is the person's own extent: drawing a scene with and without one person differs
    inside their box (to within the camera's blur) and reaches its four sides."""
    from personsearch.data.people3d.scenes import place_people
    from personsearch.data.synthetic.plan import plan_benchmark, resolve_config
    from personsearch.data.synthetic.scenes import render_scene

    plan = plan_benchmark(resolve_config("tiny"), 1)
    checked = 0
    for index, planned in enumerate(plan.images[:8]):
        final, sprites = place_people(1, plan.config.num_cameras, index, planned)
        full = render_scene(final, sprites).astype(np.int16)
        for j, person in enumerate(final.people):
            if person.height < 40 or person.visible < 1.0:
                continue
            rest = dataclasses.replace(final, people=final.people[:j] + final.people[j + 1 :])
            without = render_scene(rest, sprites[:j] + sprites[j + 1 :]).astype(np.int16)
            changed = np.abs(full - without).max(axis=2) > 12
            # the contact shadow lies on the ground around the feet: look above it
            changed[int(person.foot - 0.05 * person.height) :] = False
            ys, xs = np.nonzero(changed)
            x1, y1, x2, y2 = person.box
            slack = 2 + 2 * final.camera.blur
            assert xs.min() >= x1 - slack and xs.max() < x2 + slack, (person.box, xs.min(), xs.max())
            assert ys.min() >= y1 - slack, (person.box, ys.min())
            assert xs.min() <= x1 + slack and xs.max() >= x2 - 1 - slack and ys.min() <= y1 + slack
            checked += 1
    assert checked >= 3


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Three small pictures (noise, a gradient, stripes) in a folder tree, and a file that is not
    one."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir()
    cv2.imwrite(str(folder / "a.jpg"), rng.integers(0, 255, (300, 500, 3), dtype=np.uint8))
    cv2.imwrite(
        str(folder / "b.png"), np.tile(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], (200, 1, 3))
    )
    stripes = np.zeros((240, 240, 3), np.uint8)
    stripes[::20] = (40, 200, 90)
    cv2.imwrite(str(folder / "sub" / "c.png"), stripes)
    (folder / "notes.txt").write_text("not a picture")
    return folder


def test_a_photo_bank_cuts_the_same_crops_for_the_same_seed(photo_folder: Path) -> None:
    from personsearch.data.people3d.photos import PhotoBank

    bank = PhotoBank.load(photo_folder)
    assert bank.names == ("a.jpg", "b.png", "sub/c.png")
    crops = [bank.crop(np.random.default_rng(5), (64, 32)) for _ in range(2)]
    assert crops[0].shape == (64, 32, 3) and crops[0].dtype == np.uint8
    assert np.array_equal(crops[0], crops[1])
    assert PhotoBank.load(photo_folder).digest == bank.digest
    seen = {bank.crop(np.random.default_rng(seed), (64, 32)).tobytes() for seed in range(8)}
    assert len(seen) == 8


def test_a_photo_bank_names_a_missing_or_empty_folder(tmp_path: Path) -> None:
    from personsearch.data.people3d.photos import PhotoBank

    with pytest.raises(FileNotFoundError, match="does not exist"):
        PhotoBank.load(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(ValueError, match=r"holds no photographs"):
        PhotoBank.load(tmp_path)


def test_an_identity_wears_the_same_photographs_in_every_image(photo_folder: Path) -> None:
    """Prints and weave are part of the identity: drawn from its seed and the bank alone; skin and
    hair stay drawn; a weave is light and shade around the garment's own colour (grey centred on
    128), a print the photograph's colours."""
    from personsearch.data.people3d import outfit
    from personsearch.data.people3d.photos import PhotoBank

    bank = PhotoBank.load(photo_folder)
    people = [outfit.photo_fabrics(outfit.make_identity(seed), bank) for seed in range(30)]
    again = outfit.photo_fabrics(outfit.make_identity(3), bank)
    assert np.array_equal(people[3].pixels, again.pixels) and np.array_equal(people[3].mode, again.mode)
    modes = np.stack([p.mode for p in people])
    for slot in ("skin", "hair"):
        assert (modes[:, outfit.MATERIALS.index(slot)] == 0).all()
    assert {0, 1, 2} <= set(modes[:, outfit.MATERIALS.index("top")].tolist())
    weave = outfit.FABRICS.index("weave")
    woven = [p.pixels[k] for p in people for k in np.flatnonzero(p.mode == weave)]
    assert woven and all(abs(float(w.mean()) - 128) < 12 and (w[..., 0] == w[..., 2]).all() for w in woven)


def test_photographs_and_passers_by_render_deterministically(photo_folder: Path, tmp_path: Path) -> None:
    """A set with photographs and a crowd is as reproducible as one without: the same spec writes
    the same bytes, and it records which photographs it used; every image differs from the same
    spec's without them."""
    try:
        import anny  # noqa: F401
        import moderngl  # noqa: F401
    except ImportError:
        _need("the people3d extra is not installed (pip install 'personsearch[people3d]')")
    from personsearch.data.people3d.dataset import RenderSpec, render_dataset
    from personsearch.data.people3d.photos import PhotoBank
    from personsearch.data.reid_crops import TRAIN

    def digests(root: Path) -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / TRAIN).glob("*.jpg"))
        }

    plain = RenderSpec(identities=2, test_identities=0, images_per_identity=3, cameras=3, seed=4)
    dressed = RenderSpec(**{**plain.__dict__, "photos": str(photo_folder), "crowd": 1.0})
    try:
        summary = render_dataset(tmp_path / "a", dressed)
    except RuntimeError as err:
        _need(str(err))
    render_dataset(tmp_path / "b", dressed)
    render_dataset(tmp_path / "plain", plain)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert summary["photos"]["sha256"] == PhotoBank.load(photo_folder).digest
    assert summary["photos"]["files"] == ["a.jpg", "b.png", "sub/c.png"]
    with_photos, without = digests(tmp_path / "a"), digests(tmp_path / "plain")
    assert with_photos.keys() == without.keys() and not set(with_photos.values()) & set(without.values())
