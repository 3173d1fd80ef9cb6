"""Decoding: mp4 round trips, frame-accurate seeks, frame folders, and clear errors for every kind of bad file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smile_video.data.decode import (
    FrameFolderReader,
    PyAVReader,
    VideoDecodeError,
    check_video,
    count_frames,
    decode_frames,
    decoder_available,
    decord_available,
    installed_decoders,
    open_video,
    resolve_decoder,
)
from smile_video.data.video_io import available_codec, read_video, write_video

STEP = 4  # frame i is a flat grey of level i * STEP, so a decoded frame's mean tells its index


def numbered_frames(n: int, h: int = 32, w: int = 32) -> np.ndarray:
    """(n, h, w, 3) uint8, frame i a flat grey of i * STEP."""
    return np.repeat((np.arange(n, dtype=np.uint8) * STEP)[:, None, None, None], h * w * 3, 1).reshape(n, h, w, 3)


def frame_ids(frames: torch.Tensor) -> list[int]:
    """(N, H, W, 3) -> the index each frame encodes."""
    return (frames.float().mean(dim=(1, 2, 3)) / STEP).round().long().tolist()


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """60 frames, a keyframe every 8 frames, so reads must seek."""
    return write_video(tmp_path_factory.mktemp("v") / "long.mp4", numbered_frames(60), fps=30, gop=8)


@pytest.mark.parametrize("codec", sorted({available_codec(), "mpeg4"}))
def test_write_read_round_trip(tmp_path, codec):
    frames = numbered_frames(10, 32, 48)
    path = write_video(tmp_path / "v.mp4", torch.from_numpy(frames), fps=12.5, codec=codec)
    video, fps = read_video(path)
    assert video.dtype == torch.uint8 and video.shape == (10, 32, 48, 3)
    assert fps == pytest.approx(12.5)
    assert frame_ids(video) == list(range(10))
    assert (video.float() - torch.from_numpy(frames).float()).abs().mean() < 2.0


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"even H, W"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"uint8 \(T, H, W, 3\)"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 32, 32, 3), np.float32))


def test_selected_frames_match_a_sequential_decode(long_video):
    everything, _ = read_video(long_video)
    assert frame_ids(everything) == list(range(60))
    indices = [41, 3, 59, 41, 17, 0, 33]  # any order, repeats allowed
    got = decode_frames(long_video, indices)
    assert got.shape == (len(indices), 32, 32, 3)
    assert torch.equal(got, everything[indices])  # seeking gives bit-identical frames
    assert count_frames(long_video) == 60


def _record_decoded(reader: PyAVReader) -> list[int]:
    """Make `reader` append the index of every frame it decodes to the returned list."""
    decoded: list[int] = []
    inner = reader._decode_from

    def counting(seek_index, sequential=False, keep=None):
        for index, frame in inner(seek_index, sequential, keep):
            decoded.append(index)
            yield index, frame

    reader._decode_from = counting
    return decoded


def test_reader_seeks_instead_of_decoding_from_the_start(long_video):
    with PyAVReader(long_video) as reader:
        key = max(k for k in reader._key_indices if k <= 50)
        assert key >= 40  # the encoder was asked for a keyframe at least every 8 frames
        decoded = _record_decoded(reader)
        assert frame_ids(reader.get_frames([50, 52])) == [50, 52]
    assert min(decoded) == key and max(decoded) == 52  # from the keyframe before 50 to the last wanted frame


def _textured_video(path: Path, n: int = 48) -> Path:
    """n frames of grain drifting over a gradient: real motion, so x264 (preset veryfast, 3 B-frames) writes P- and
    B-frames that reference each other, and a wrong reference would show in the pixels."""
    g = np.random.default_rng(0)
    base = g.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, (t, 2 * t), axis=(0, 1)) // 2 + np.uint8(2 * t) for t in range(n)])
    return write_video(path, frames, fps=30, codec="libx264", gop=24)


@pytest.mark.skipif(available_codec() != "libx264", reason="needs x264 for B-frames")
def test_strided_reads_skip_unreferenced_frames_and_keep_the_pixels(tmp_path):
    path = _textured_video(tmp_path / "b.mp4")
    everything, _ = read_video(path)
    wanted = [26, 30, 34, 38, 42, 46]
    with PyAVReader(path) as reader:
        decoded = _record_decoded(reader)
        got = reader.get_frames(wanted)
    assert torch.equal(got, everything[wanted])  # bit-identical to decoding every frame
    span = range(24, 47)  # from the keyframe at 24 to the last wanted frame
    assert set(wanted) <= set(decoded) <= set(span)
    assert len(decoded) < len(span)  # some frames between were never decoded
    with PyAVReader(path) as reader:
        reader.skip_unreferenced = False
        decoded = _record_decoded(reader)
        assert torch.equal(reader.get_frames(wanted), everything[wanted])
    assert decoded == list(span)  # switched off: every frame of the span


def _collect_garbage() -> None:
    import gc

    gc.collect()


@pytest.mark.parametrize("closed", [False, True])
def test_a_forked_process_can_free_a_reader_of_its_parent(long_video, closed):
    # A DataLoader worker is a fork of the main process; its garbage collector may free a reader the parent left in
    # a reference cycle. With FFmpeg's decoder threads that hung the worker forever (their threads do not exist
    # after a fork), e.g. `pytest tests/test_decode.py tests/test_dataset.py` in test_worker_count_does_not_change_
    # batches.
    import gc
    import multiprocessing

    gc.disable()
    try:
        reader = PyAVReader(long_video)
        assert frame_ids(reader.get_frames([5, 30])) == [5, 30]
        if closed:
            reader.close()
        reader.cycle = reader  # freed only by a garbage collection
        del reader
        child = multiprocessing.get_context("fork").Process(target=_collect_garbage)
        child.start()
        child.join(60)
        hung = child.is_alive()
        if hung:
            child.kill()
            child.join()
    finally:
        gc.enable()
        gc.collect()
    assert not hung and child.exitcode == 0


def test_timestamp_mismatch_falls_back_to_counting_frames(long_video):
    with PyAVReader(long_video) as reader:
        reader._pts_to_index = {}  # as if no decoded timestamp matched the demuxed ones
        assert frame_ids(reader.get_frames([33, 2, 50])) == [33, 2, 50]


def test_frame_folder_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = numbered_frames(12, 16, 24)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"img_{i + 1}.png")  # img_10 must come after img_9
    (folder / "notes.txt").write_text("not a frame")
    with open_video(folder) as reader:
        assert isinstance(reader, FrameFolderReader) and reader.num_frames == 12
        got = reader.get_frames([9, 2, 11])
    assert torch.equal(got, torch.from_numpy(frames[[9, 2, 11]]))
    assert check_video(folder) == 12


def test_check_video_decodes_everything(long_video):
    assert check_video(long_video) == 60
    assert check_video(long_video, full=False) == 60


def _corrupt_middle(data: bytes) -> bytes:
    rng = np.random.default_rng(0)
    mid = len(data) // 3
    return data[:mid] + rng.integers(0, 256, len(data) // 3, dtype=np.uint8).tobytes() + data[2 * mid:]


@pytest.mark.parametrize("kind, reason", [
    ("missing", "missing: no such file"),
    ("random", "cannot open"),
    ("truncated", "truncated"),
    ("corrupt", "corrupt"),
    ("empty_folder", "no frames"),
])
def test_bad_files_raise_a_clear_error(tmp_path, long_video, kind, reason):
    data = long_video.read_bytes()
    path = tmp_path / f"{kind}.mp4"
    if kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt":
        path.write_bytes(_corrupt_middle(data))
    elif kind == "empty_folder":
        path.mkdir()
    with pytest.raises(VideoDecodeError, match=reason) as info:
        check_video(path)
    assert info.value.path == str(path) and str(info.value).startswith(str(path))


def test_index_past_the_end(long_video):
    with pytest.raises(VideoDecodeError, match=r"frame index 60 is outside \[0, 60\)"):
        decode_frames(long_video, [0, 60])


@pytest.mark.skipif(not decord_available(), reason="decord is not installed")
def test_decord_matches_pyav(long_video):
    indices = [5, 40, 12]
    assert torch.equal(decode_frames(long_video, indices, "decord"), decode_frames(long_video, indices, "pyav"))


needs_torchcodec = pytest.mark.skipif(
    not decoder_available("torchcodec"),
    reason="torchcodec is not installed or cannot load FFmpeg's shared libraries (pip install torchcodec; "
           "apt-get install ffmpeg)")


@needs_torchcodec
def test_torchcodec_matches_pyav(long_video):
    indices = [5, 40, 12, 5, 59]
    frames = decode_frames(long_video, indices, "torchcodec")
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == torch.uint8
    assert frame_ids(frames) == indices
    assert (frames.int() - decode_frames(long_video, indices, "pyav").int()).abs().max() <= 2  # RGB conversion
    with open_video(long_video, "torchcodec") as reader:
        assert reader.num_frames == 60 and reader.fps == 30


@needs_torchcodec
@pytest.mark.parametrize("kind, reason", [("missing", "missing"), ("corrupt", "cannot open"),
                                          ("truncated", "corrupt|truncated|cannot open")])
def test_torchcodec_bad_files_raise_a_clear_error(tmp_path, long_video, kind, reason):
    path = tmp_path / f"{kind}.mp4"
    if kind == "corrupt":
        path.write_bytes(os.urandom(4000))
    elif kind == "truncated":
        data = Path(long_video).read_bytes()
        path.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoDecodeError, match=reason) as info, open_video(path, "torchcodec") as reader:
        reader.get_frames(range(reader.num_frames))
    assert str(info.value).startswith(str(path))


def test_every_reader_knows_the_keyframes(long_video):
    with PyAVReader(long_video) as reader:
        keys = reader.key_frames
    assert keys[0] == 0 and len(keys) >= 60 // 8 and max(np.diff(keys)) <= 8  # gop=8
    for name in installed_decoders():
        with open_video(long_video, name) as reader:
            assert reader.key_frames == keys, name


def test_auto_picks_an_installed_decoder_and_cuda_needs_torchcodec(long_video):
    name = resolve_decoder("auto")
    assert name == installed_decoders()[0] and decoder_available(name)
    assert resolve_decoder("pyav") == "pyav"
    with pytest.raises(ValueError, match="decoding on 'cuda' needs decoder 'torchcodec'"):
        open_video(long_video, "pyav", device="cuda")


def test_unknown_decoder(long_video):
    with pytest.raises(ValueError, match="unknown decoder 'opencv'"):
        open_video(long_video, "opencv")


def test_pyav_reader_gives_the_pixels_of_pyavs_own_rgb_conversion(tmp_path):
    # The reader converts every frame through one VideoReformatter (a frame's own to_ndarray builds a converter per
    # frame, most of a decode's time); the pixels must be those of PyAV's per-frame conversion.
    import av

    g = np.random.default_rng(0)
    frames = g.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)
    path = write_video(tmp_path / "colour.mp4", frames, fps=10)
    with av.open(str(path)) as c:
        ref = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
    got = PyAVReader(path).get_frames(range(6)).numpy()
    assert got.shape == ref.shape and np.array_equal(got, ref)
    assert np.array_equal(np.stack(list(PyAVReader(path).iter_frames())), ref)


def test_torchcodec_is_available_exactly_when_it_can_decode(long_video):
    # torchcodec >= 0.10 imports without FFmpeg's libraries and fails only at the first video: `auto` must not pick
    # it then (every video of a run would be skipped as unreadable).
    from smile_video.data.torchcodec_reader import torchcodec_available

    try:
        from torchcodec.decoders import VideoDecoder

        VideoDecoder(str(long_video))
        decodes = True
    except Exception:  # not installed, or its FFmpeg libraries do not load
        decodes = False
    assert torchcodec_available() == decodes
    assert ("torchcodec" in installed_decoders()) == decodes
    if decodes:  # the one decoder that runs on the GPU
        assert resolve_decoder("auto", "cuda") == "torchcodec"
    else:
        with pytest.raises(ValueError, match="decoding on 'cuda' needs torchcodec"):
            resolve_decoder("auto", "cuda")
