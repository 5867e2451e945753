"""Finding index sources and reading their frames: folders, cameras, video sampling and timestamps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index_testkit import BLUE, RED, draw_scene, write_png, write_video

from personsearch.data.images import ImageReadError
from personsearch.index.sources import (
    DEFAULT_VIDEO_FPS,
    Sampling,
    discover,
    iter_frames,
    planned_frames,
    read_frame,
    sampling_for,
    video_info,
)


def test_discover_walks_folders_in_order_and_reports_what_it_skips(tmp_path: Path) -> None:
    scene = draw_scene([(10, 10, RED, BLUE)])
    write_png(tmp_path / "site" / "camB" / "2.png", scene)
    write_png(tmp_path / "site" / "camA" / "1.PNG", scene)
    write_video(tmp_path / "site" / "camA" / "clip.avi", frames=2)
    (tmp_path / "site" / "camA" / "notes.txt").write_text("not an image")
    (tmp_path / "extra.txt").write_text("x")
    sources, skipped = discover(
        [tmp_path / "site", tmp_path / "site" / "camB" / "2.png", tmp_path / "extra.txt", tmp_path / "gone"]
    )
    assert [(s.path.relative_to(tmp_path).as_posix(), s.kind, s.camera) for s in sources] == [
        ("site/camA/1.PNG", "image", "camA"),
        ("site/camA/clip.avi", "video", "camA"),
        ("site/camB/2.png", "image", "camB"),  # named twice, listed once
    ]
    assert sources[0].path.is_absolute() and sources[0].size == (tmp_path / "site/camA/1.PNG").stat().st_size
    assert [(Path(s.path).name, s.reason.split(";")[0]) for s in skipped] == [
        ("extra.txt", "unsupported file extension '.txt'"),
        ("gone", "no such file or folder"),
    ]
    labelled, _ = discover([tmp_path / "site"], camera="lobby")
    assert {s.camera for s in labelled} == {"lobby"}


def test_video_sampling_by_stride_and_fps_gives_frame_numbers_and_times(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", frames=10, fps=10.0)
    (source,), _ = discover([video])
    info = video_info(video)
    assert (info.fps, info.frame_count, info.width, info.height) == (10.0, 10, 160, 120)

    def sampled(**kwargs: object) -> list[tuple[int | None, float | None]]:
        return [(f.frame, f.time) for f in iter_frames(source, **kwargs)]

    assert sampled(sampling=Sampling(stride=3)) == [(0, 0.0), (3, 0.3), (6, 0.6), (9, 0.9)]
    assert sampled(sampling=Sampling(fps=5.0)) == [(0, 0.0), (2, 0.2), (4, 0.4), (6, 0.6), (8, 0.8)]
    assert sampled(sampling=Sampling(stride=3), start_frame=4) == [(6, 0.6), (9, 0.9)]  # resume
    assert sampled(start_frame=10) == []
    assert planned_frames(source, start_frame=0, sampling=Sampling(stride=3)) == 4
    assert planned_frames(source, start_frame=4, sampling=Sampling(stride=3)) == 2
    frames = {f.frame: f.image for f in iter_frames(source)}
    assert frames[7].shape == (120, 160, 3) and frames[7].dtype == np.uint8
    # The person (red over blue) is at x = 10 + 4 * 7 = 38 in frame 7: RGB order, not BGR.
    assert frames[7][45, 48].tolist()[0] > 200 and frames[7][70, 48].tolist()[2] > 200
    np.testing.assert_array_equal(read_frame(video, 7), frames[7])


def test_videos_default_to_a_few_frames_a_second_and_stride_or_fps_is_one_choice() -> None:
    """An hour of 25 fps footage is not 90,000 frames to index unless asked: ``index`` and
    ``adapt`` take DEFAULT_VIDEO_FPS; --stride 1 asks for every frame; both at once is an error."""
    assert sampling_for() == Sampling(fps=DEFAULT_VIDEO_FPS) and sampling_for().step(25.0) == 5
    assert sampling_for(stride=1) == Sampling(stride=1) and sampling_for(fps=2.0).step(10.0) == 5
    with pytest.raises(ValueError, match="not both"):
        sampling_for(stride=2, fps=2.0)


def test_images_yield_one_frame_and_bad_files_raise_before_yielding(tmp_path: Path) -> None:
    image = write_png(tmp_path / "a.png", draw_scene([]))
    (source,), _ = discover([image])
    (frame,) = list(iter_frames(source))
    assert (frame.frame, frame.time, frame.image.shape) == (None, None, (120, 160, 3))
    (tmp_path / "bad.avi").write_bytes(b"RIFF" + b"\0" * 100)
    (bad,), _ = discover([tmp_path / "bad.avi"])
    with pytest.raises(ImageReadError, match=r"bad\.avi: OpenCV cannot open this video"):
        list(iter_frames(bad))
    big = write_video(tmp_path / "big.avi", frames=1)
    (big_source,), _ = discover([big])
    with pytest.raises(ImageReadError, match=r"big\.avi: image is 160x120"):
        list(iter_frames(big_source, max_pixels=1000))
    with pytest.raises(ValueError, match="is a video: give the frame number"):
        read_frame(big)
    with pytest.raises(ImageReadError, match="cannot decode frame 5"):
        read_frame(big, 5)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        Sampling(stride=0)
