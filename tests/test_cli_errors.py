"""Every command turns the project's errors into one clear line and a documented exit code
(cli.EXIT_CODES): a damaged index, a missing file, a file in the wrong format, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from index_testkit import BLUE, RED, draw_scene, write_png
from typer.testing import CliRunner

from personsearch.interfaces.cli import EXIT_CODES, app
from personsearch.models.bundle import save_component
from personsearch.models.detector import DetectorConfig, build_detector
from personsearch.models.reid import ReIDConfig, build_reid

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny bundle, two scene images and an index of them."""
    root = tmp_path_factory.mktemp("cli")
    bundle = root / "bundle"
    torch.manual_seed(0)
    det_cfg = DetectorConfig(
        backbone="mobilenet_v2_tiny",
        pretrained=False,
        min_size=128,
        max_size=160,
        score_thresh=0.0,
        detections_per_img=3,
    )
    save_component(bundle, "detector", build_detector(det_cfg), det_cfg, {})
    reid_cfg = ReIDConfig(
        num_classes=4, backbone="mobilenet_v2_tiny", pretrained=False, input_size=(64, 32), embed_dim=16
    )
    save_component(bundle, "reid", build_reid(reid_cfg), reid_cfg, {})
    scenes = [
        write_png(root / "scenes" / f"{k}.png", draw_scene([(10 + 20 * k, 20, RED, BLUE)])) for k in range(2)
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONSEARCH_ENGINE", "torch-fp32")
        result = runner.invoke(
            app, ["index", str(root / "scenes"), "--index", str(root / "index"), "--model", str(bundle)]
        )
    assert result.exit_code == 0, result.output
    return {"root": root, "bundle": bundle, "scene": scenes[0], "index": root / "index"}


def _one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, result.output)


def _damaged_copy(setup: dict[str, Path], tmp_path: Path, how: str) -> Path:
    import shutil

    index = tmp_path / "index"
    shutil.copytree(setup["index"], index)
    if how == "sqlite":
        (index / "index.sqlite").write_bytes(b"this is not a database" * 100)
    else:
        vectors = index / "vectors.f32"
        vectors.write_bytes(vectors.read_bytes()[:-7])
    return index


@pytest.mark.parametrize("how", ["sqlite", "vectors"])
def test_every_index_command_reports_a_damaged_index_in_one_line(
    setup: dict[str, Path], tmp_path: Path, how: str
) -> None:
    index = _damaged_copy(setup, tmp_path, how)
    box = "10,20,30,80"
    commands = {
        "search": [
            "search",
            "--index",
            str(index),
            "--query",
            str(setup["scene"]),
            "--box",
            box,
            "--model",
            str(setup["bundle"]),
        ],
        "index-info": ["index-info", str(index)],
        "index": ["index", str(setup["scene"]), "--index", str(index), "--model", str(setup["bundle"])],
    }
    for argv in commands.values():
        result = runner.invoke(app, argv)
        _one_line_error(result, EXIT_CODES["index"], str(index))


def test_missing_files_name_the_file(setup: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.jpg"
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(setup["index"]),
            "--query",
            str(missing),
            "--box",
            "1,2,30,60",
            "--model",
            str(setup["bundle"]),
        ],
    )
    _one_line_error(result, EXIT_CODES["missing file"], "nowhere.jpg")
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(setup["index"]),
            "--query",
            str(setup["scene"]),
            "--model",
            str(tmp_path / "no-model"),
        ],
    )
    _one_line_error(result, EXIT_CODES["missing file"], "no-model")
    result = runner.invoke(
        app, ["evaluate", "--dataset", str(tmp_path / "no-data"), "--model", str(setup["bundle"])]
    )
    assert (
        result.exit_code in (EXIT_CODES["missing file"], EXIT_CODES["bad data"])
        and "no-data" in result.output
        and "Traceback" not in result.output
    )


def test_a_gpu_this_machine_lacks_is_one_line(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for argv in (
        [
            "search",
            "--index",
            str(setup["index"]),
            "--query",
            str(setup["scene"]),
            "--box",
            "10,20,30,80",
            "--model",
            str(setup["bundle"]),
            "--device",
            "cuda",
        ],
        ["bench-engines", "--model", str(setup["bundle"]), "--device", "cuda"],
    ):
        _one_line_error(
            runner.invoke(app, argv),
            EXIT_CODES["bad input"],
            "'cuda': PyTorch sees no CUDA GPU on this machine",
        )
    _one_line_error(
        runner.invoke(app, ["bench-engines", "--model", str(setup["bundle"]), "--device", "gpu"]),
        EXIT_CODES["bad input"],
        "expected cpu, cuda or cuda:N",
    )


def test_wrong_formats_and_bad_input(setup: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\x00" * 50)
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(setup["index"]),
            "--query",
            str(junk),
            "--box",
            "1,2,30,60",
            "--model",
            str(setup["bundle"]),
        ],
    )
    _one_line_error(result, EXIT_CODES["bad data"], "junk.jpg")
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(setup["index"]),
            "--query",
            str(setup["scene"]),
            "--box",
            "1,2,3",
            "--model",
            str(setup["bundle"]),
        ],
    )
    assert result.exit_code == 2 and "x1,y1,x2,y2" in result.output
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(setup["index"]),
            "--query",
            str(setup["scene"]),
            "--box",
            "500,500,600,700",
            "--model",
            str(setup["bundle"]),
        ],
    )
    _one_line_error(result, EXIT_CODES["bad input"], "500")
    result = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(setup["index"]),
            "--query",
            str(setup["scene"]),
            "--box",
            "1,2,30,60",
            "--model",
            str(setup["bundle"]),
            "--engine",
            "fastest",
        ],
    )
    _one_line_error(result, EXIT_CODES["bad input"], "unknown engine 'fastest'")
    scores = tmp_path / "theirs.npz"
    np.savez(scores, wrong=np.zeros(3))
    result = runner.invoke(app, ["make-synthetic", str(tmp_path / "data"), "--preset", "tiny"])
    assert result.exit_code == 0
    result = runner.invoke(app, ["score", "--dataset", str(tmp_path / "data"), "--results", str(scores)])
    _one_line_error(result, EXIT_CODES["bad data"], "theirs.npz")


def test_search_by_sighting_and_per_frame_from_the_command_line(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    from index_testkit import GREEN, YELLOW, write_walkers

    from personsearch.index import PersonIndex

    footage = tmp_path / "footage"
    write_walkers(
        footage / "hall" / "walk.avi",
        [(RED, BLUE, 0, 11, 10, 10, 6, 0), (GREEN, YELLOW, 0, 11, 120, 70, -6, 0)],
        frames=12,
    )
    index = tmp_path / "index"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONSEARCH_ENGINE", "torch-fp32")
        assert (
            runner.invoke(
                app, ["index", str(footage), "--index", str(index), "--model", str(setup["bundle"])]
            ).exit_code
            == 0
        )
        with PersonIndex.open(index) as opened:
            summary = opened.store.summary()
            # frames were linked
            assert summary["sightings"] >= 1 and summary["people"] > summary["sightings"]
            ids = opened.store.video_boxes(opened.store.list_sources()[1][0].id)[0]
            sighting = opened.sighting_of(int(ids[0]))
        base = [
            "search",
            "--index",
            str(index),
            "--model",
            str(setup["bundle"]),
            "--json",
            "-",
            "--top-k",
            "50",
        ]
        by_sighting = json.loads(runner.invoke(app, [*base, "--sighting", str(sighting)]).output)
        assert by_sighting["schema_version"] == 2 and by_sighting["hits"]
        # the query's own sighting is left out
        assert all(h["sighting"]["id"] != sighting for h in by_sighting["hits"])
        # one hit per sighting
        assert len({h["sighting"]["id"] for h in by_sighting["hits"]}) == len(by_sighting["hits"])
        per_frame = json.loads(runner.invoke(app, [*base, "--sighting", str(sighting), "--per-frame"]).output)
        assert len(per_frame["hits"]) > len(by_sighting["hits"])
        table = runner.invoke(app, [*base[:-4], "--sighting", str(sighting)]).output
        header = next(line for line in table.splitlines() if "rank" in line)
        assert all(name in header for name in ("frame", "time (s)", "seen (s)"))  # video hits have them
        # every hit in the one video: its path heads the table instead of filling a column
        video = footage / "hall" / "walk.avi"
        assert f"every hit in {video}" in table.splitlines() and "source" not in header
        # a video as the query needs its frame: said so, rather than "not a readable image"
        _one_line_error(
            runner.invoke(app, [*base[:-4], "--query", str(video), "--box", "0,0,10,20"]),
            EXIT_CODES["bad input"],
            "a video",
            "--frame N",
        )
        _one_line_error(
            runner.invoke(app, [*base[:-4], "--sighting", "99999"]),
            EXIT_CODES["bad input"],
            "no sighting 99999",
        )
        result = runner.invoke(app, base[:-4])
        assert result.exit_code == 2 and "give exactly one query" in result.output


def test_the_results_table_shows_whole_paths_and_only_the_columns_hits_have(setup: dict[str, Path]) -> None:
    """Piped (80 columns), rich cut long cells with "...": the source path a user opens next. Image
    hits have no frame, time or sighting, so those columns are left out."""
    result = runner.invoke(
        app,
        ["search", "--index", str(setup["index"]), "--query", str(setup["scene"]), "--box", "1,2,30,60"]
        + ["--model", str(setup["bundle"]), "--top-k", "6"],  # hits in both scenes
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if "rank" in line).split("┃")
    assert [cell.strip() for cell in header[1:-1]] == ["rank", "score", "source", "camera", "box"]
    assert "…" not in result.output
    rows = [line.split("│") for line in lines if line.startswith("│")]
    column = [cell.strip() for cell in header].index("source")
    folded = "".join(row[column].strip() for row in rows)
    assert str(setup["scene"].parent) in folded  # every hit's path whole, over as many lines as it takes


def test_index_info_takes_the_index_as_every_command_does(setup: dict[str, Path]) -> None:
    """``--index DIR`` as the other commands take it, or the bare directory; not both, not neither."""
    by_option = runner.invoke(app, ["index-info", "--index", str(setup["index"])])
    by_argument = runner.invoke(app, ["index-info", str(setup["index"])])
    assert by_option.exit_code == by_argument.exit_code == 0, by_option.output
    assert json.loads(by_option.output) == json.loads(by_argument.output)
    assert json.loads(by_option.output)["people"] > 0
    for arguments in ([], [str(setup["index"]), "--index", str(setup["index"])]):
        result = runner.invoke(app, ["index-info", *arguments])
        assert result.exit_code == 2 and "give the index once" in result.output


def test_make_synthetic_replaces_its_own_benchmark_only_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    first = runner.invoke(app, ["make-synthetic", str(out), "--preset", "tiny", "--workers", "1"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["make-synthetic", str(out), "--preset", "tiny", "--seed", "1"])
    _one_line_error(again, EXIT_CODES["bad input"], "--overwrite")  # another folder: a wrong option
    replaced = runner.invoke(
        app, ["make-synthetic", str(out), "--preset", "tiny", "--seed", "1", "--workers", "1", "--overwrite"]
    )
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((out / "synthetic.json").read_text())["seed"] == 1


def test_a_wrong_benchmark_path_fails_before_the_model_loads(setup: dict[str, Path], tmp_path: Path) -> None:
    """A first use times the engines for 30-60 s: a typo in --dataset must not wait for it."""
    for command in ("evaluate", "evaluate-reid"):
        result = runner.invoke(
            app, [command, "--dataset", str(tmp_path / "typo"), "--model", str(setup["bundle"])]
        )
        _one_line_error(result, result.exit_code, "typo")
        assert result.exit_code in EXIT_CODES.values() and "engines:" not in result.output


def test_training_settings_from_the_command_line_are_checked_before_training(tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = runner.invoke(app, ["train-reid", "--out", str(out), "--set", "optim.learning_rate=0.1"])
    _one_line_error(result, EXIT_CODES["bad input"], "optim", "learning_rate")
    result = runner.invoke(app, ["train-detector", "--out", str(out), "--set", "epochs"])
    _one_line_error(result, EXIT_CODES["bad input"], "KEY=VALUE")
    assert not out.exists()  # nothing written for a command that could not start


@pytest.mark.parametrize("folder", ["cam[east]", "cam[/east]"])
def test_an_error_shows_bracketed_paths_as_they_are(
    setup: dict[str, Path], tmp_path: Path, folder: str
) -> None:
    """Rich markup would drop ``[east]`` from the path it names (so the message names another
    folder) and fail on ``[/east]`` with a traceback of its own."""
    missing = tmp_path / folder / "index"
    result = runner.invoke(
        app, ["search", "--index", str(missing), "--query", str(setup["scene"]), "--box", "1,2,30,60"]
    )
    _one_line_error(result, EXIT_CODES["missing file"], str(missing))


def _help_texts(command: Any, path: str) -> Iterator[tuple[str, str]]:
    yield path, command.help or ""
    for param in command.params:
        yield f"{path} {param.name}", getattr(param, "help", None) or ""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _help_texts(sub, f"{path} {name}")


def test_help_texts_show_every_bracket() -> None:
    """typer renders help as rich markup: an unescaped ``personsearch[ray]`` reads
    ``personsearch`` in ``--help``, an install hint that installs the wrong thing."""
    from rich.text import Text
    from typer.main import get_command

    texts = list(_help_texts(get_command(app), "personsearch"))
    assert any("personsearch\\[ray]" in text for _, text in texts)  # the scan sees option help
    lost = {where: text for where, text in texts if Text.from_markup(text).plain != text.replace("\\[", "[")}
    assert not lost, lost


def test_the_reembed_hint_after_adapting_never_names_the_model_folder(tmp_path: Path) -> None:
    from personsearch.interfaces.cli.adaptation import reembed_hint

    index = tmp_path / "cam"
    assert reembed_hint(index, tmp_path / "model", "bundle").endswith(f"--out {index}-adapted")
    hint = reembed_hint(index, tmp_path / "cam-adapted", "ssdlite")  # the model took the usual name
    assert hint.endswith(f"--out {index}-reembedded --detector ssdlite")


@pytest.mark.parametrize("command", ["index", "adapt"])
def test_the_default_video_frame_rate_is_in_the_help(command: str) -> None:
    from personsearch.index.sources import DEFAULT_VIDEO_FPS

    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and f"[default: ({DEFAULT_VIDEO_FPS:g})]" in result.output


def test_reembed_from_the_command_line(setup: dict[str, Path], tmp_path: Path) -> None:
    """``personsearch reembed``: the index's boxes under another model's features, searchable
    with that model; the same model again is refused in one line."""
    import shutil

    from personsearch.index import PersonIndex

    other = tmp_path / "other"
    shutil.copytree(setup["bundle"], other)
    torch.manual_seed(1)
    reid_cfg = ReIDConfig(
        num_classes=4, backbone="mobilenet_v2_tiny", pretrained=False, input_size=(64, 32), embed_dim=16
    )
    # an "adapted" re-id network, the same detector
    save_component(other, "reid", build_reid(reid_cfg), reid_cfg, {})
    out = tmp_path / "adapted-index"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONSEARCH_ENGINE", "torch-fp32")
        result = runner.invoke(
            app, ["reembed", "--index", str(setup["index"]), "--model", str(other), "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert "search it with --model" in result.output
        with PersonIndex.open(setup["index"]) as before, PersonIndex.open(out) as after:
            assert after.count() == before.count() > 0 and after.model_id != before.model_id
        search = runner.invoke(
            app,
            [
                "search",
                "--index",
                str(out),
                "--model",
                str(other),
                "--query",
                str(setup["scene"]),
                "--box",
                "10,20,30,60",
            ],
        )
        assert search.exit_code == 0, search.output
        _one_line_error(
            runner.invoke(
                app,
                [
                    "reembed",
                    "--index",
                    str(setup["index"]),
                    "--model",
                    str(setup["bundle"]),
                    "--out",
                    str(tmp_path / "same"),
                ],
            ),
            EXIT_CODES["bad input"],
            "nothing to re-embed",
        )
        assert not (tmp_path / "same").exists()
