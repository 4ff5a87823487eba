"""Picture processing: `process()` on a 12-megapixel JPEG, and where its time goes; or,
with --video, on a 30 s 720p phone clip, and what its remux costs.

Makes a 4000 x 3000 JPEG as a phone would (gradients, shapes with edges, texture and
sensor-like noise; quality 92; EXIF with GPS and orientation 6, XMP, an ICC profile),
then runs services.media.processing.process() on it RUNS times, pinned to one core,
each into a fresh work directory.

    .venv/bin/python bench/media_thumbnails.py [--runs 30] [--quality 92] [--grain 0.12]
                                               [--cpu 0] [--video [--seconds 30]]

Prints the picture, process()'s p50 / p99 and images per second, then the same work
step by step, timed per stage (median over the runs): hashing, sniffing, the container
walk and write of the sanitized copy, the decode at draft scale, each resize, turn and
WebP encode, the blurhash, the thumbnails' writes. The stages run the modules' own
functions in process()'s order, so their sum should be close to process()'s p50.

--video makes an MP4 like a phone's (1280 x 720 H.264 at 30 fps and
8 Mbit/s, AAC stereo, a location tag, the index last) and prints process()'s p50, then
the median of the stream-copy remux alone (the sanitized copy, faststart) and of the
in-place fallback's plan and write.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import mmap
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream
from PIL import Image, ImageDraw, ImageFilter

from bench.servers import machine_pace
from services.media import pictures, processing, remux, sanitize
from services.media.sniff import sniff
from tests.media import samples

T = TypeVar("T")


def photo(width: int = 4000, height: int = 3000, grain: float = 0.12,
          seed: int = 7) -> Image.Image:
    """Something that compresses like a photograph: smooth gradients, shapes with hard
    edges, blurred, with mid-frequency texture and fine noise on top."""
    rng = random.Random(seed)
    gradient = Image.linear_gradient("L")
    image = Image.merge("RGB", (gradient.resize((width, height)),
                                Image.radial_gradient("L").resize((width, height)),
                                gradient.rotate(90).resize((width, height))))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y, side = rng.randrange(width), rng.randrange(height), rng.randrange(50, 900)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + side, y + side * rng.uniform(0.3, 1.5)),
              fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(3))
    texture = Image.merge("RGB", [Image.effect_noise((width // 8, height // 8), 40)
                                  for _ in range(3)])
    texture = texture.resize((width, height), Image.Resampling.BICUBIC)
    image = Image.blend(image, texture, 0.25)
    return Image.blend(image, Image.effect_noise((width, height), 10).convert("RGB"), grain)


def make_jpeg(path: Path, quality: int, grain: float = 0.12) -> Path:
    photo(grain=grain).save(path, "JPEG", quality=quality, exif=samples.exif(6).tobytes(),
                 xmp=samples.XMP, icc_profile=samples.srgb_profile())
    return path


class Stages:
    """Wall time per named stage, over many runs."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)

    def time(self, name: str, step: Callable[[], T]) -> T:
        started = time.perf_counter()
        value = step()
        self.times[name].append(time.perf_counter() - started)
        return value


def by_stage(source: Path, workdir: Path, stages: Stages) -> None:
    """process()'s work on a JPEG, stage by stage: the (partly private) functions of
    processing.py, sanitize.py and pictures.py, in process()'s order."""
    stages.time("sha256", lambda: processing._sha256(source))
    sniffed = stages.time("sniff", lambda: sniff(source))
    with source.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        plan = stages.time("sanitize: walk JPEG markers",
                           lambda: sanitize.plan_picture("JPEG", data))
        stages.time("sanitize: write copy", lambda: sanitize.write_plan(
            plan, data, workdir / processing.SANITIZED))
    with Image.open(source, formats=[sniffed.picture]) as im:
        sizes = pictures.thumbnail_sizes(*im.size)
        im.draft("RGB", sizes[-1][1])
        stages.time(f"decode at draft scale ({im.size[0]}x{im.size[1]})", im.load)
        current = stages.time("convert for resizing", lambda: pictures._displayable(im))
        icc = im.info.get("icc_profile")
        made = []
        for name, size, method in reversed(sizes):
            was = current.size
            current = stages.time(f"resize {name} ({was[0]}x{was[1]} -> {size[0]}x{size[1]})",
                                  partial(current.resize, size, Image.Resampling.LANCZOS))
            shown = stages.time(f"turn {name}",
                                partial(pictures._orient, current, plan.orientation))
            encoded = stages.time(f"encode {name} (WebP method {method})",
                                  partial(pictures._encode_webp, shown, method, icc))
            made.append((name, shown, encoded))
        stages.time("blurhash (from small, 32 px)", partial(pictures._blurhash_of, made[-1][1]))
        for name, _, encoded in made:
            stages.time("write thumbnails", partial((workdir / f"{name}.webp").write_bytes,
                                                    encoded))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--quality", type=int, default=92, help="of the generated JPEG")
    parser.add_argument("--grain", type=float, default=0.12,
                        help="how much noise: more makes a larger file, slower to decode")
    parser.add_argument("--cpu", type=int, default=0, help="the core to pin to")
    parser.add_argument("--video", action="store_true", help="a phone video instead")
    parser.add_argument("--seconds", type=float, default=30.0, help="of the video")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    print(machine_pace(), flush=True)
    if args.video:
        video_main(args.runs, args.seconds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = make_jpeg(root / "photo.jpg", args.quality, args.grain)
        print(f"picture: 4000x3000 JPEG q{args.quality}, {source.stat().st_size / 1e6:.2f} MB, "
              f"EXIF (GPS, orientation 6), XMP, ICC")
        processing.process(source, root)  # warm up: imports, libwebp, caches

        totals = []
        for run in range(args.runs):
            workdir = root / f"run{run}"
            workdir.mkdir()
            started = time.perf_counter()
            result = processing.process(source, workdir)
            totals.append(time.perf_counter() - started)
            shutil.rmtree(workdir)
        q = statistics.quantiles(totals, n=100, method="inclusive")
        print(f"process(): runs={args.runs} p50={q[49] * 1000:.1f}ms p99={q[98] * 1000:.1f}ms "
              f"min={min(totals) * 1000:.1f}ms  {1 / statistics.mean(totals):.2f} images/s "
              f"on one core")
        out = root / "last"
        out.mkdir()
        result = processing.process(source, out)
        made = ", ".join(f"{r.size} {r.width}x{r.height} {r.path.stat().st_size / 1000:.1f} kB"
                         for r in result.renditions)
        sanitized = result.sanitized.stat().st_size if result.sanitized else 0
        print(f"result: {result.kind} {result.width}x{result.height}; {made}; "
              f"sanitized {sanitized / 1e6:.2f} MB; blurhash {result.blurhash}")

        stages = Stages()
        for run in range(args.runs):
            workdir = root / f"stages{run}"
            workdir.mkdir()
            by_stage(source, workdir, stages)
            shutil.rmtree(workdir)
        total = 0.0
        print("stages (median of runs):")
        for name, times in stages.times.items():
            per_run = statistics.median(times) * len(times) / args.runs
            total += per_run
            print(f"  {name:<44} {per_run * 1000:7.2f} ms")
        print(f"  {'sum':<44} {total * 1000:7.2f} ms")

        reference = Stages()
        for _ in range(min(args.runs, 10)):
            def full() -> None:
                with Image.open(source) as im:
                    im.load()
            reference.time("full-scale decode", full)
            reference.time("Pillow's thumbnail() to 1280, from the file", lambda: thumbnail(source))
        print("for comparison (not done by process()):")
        for name, times in reference.times.items():
            print(f"  {name:<44} {statistics.median(times) * 1000:7.2f} ms")


def make_clip(path: Path, seconds: float, bit_rate: int = 8_000_000) -> Path:
    """An MP4 like a phone's: 1280 x 720 H.264 at 30 fps and `bit_rate`
    (a photo panning, with grain), AAC stereo, a location, the index (moov) last."""
    fps, size = 30, (1280, 720)
    scene = photo(1600, 900)
    grain = [Image.effect_noise(size, 30).convert("RGB") for _ in range(4)]
    with av.open(str(path), "w", format="mp4",
                 options={"movflags": "use_metadata_tags"}) as output:
        output.metadata.update(location="+52.3667+004.9000/", make="PhoneMaker")
        video = output.add_stream(samples.video_codec(), rate=fps, options={"preset": "veryfast"})
        assert isinstance(video, VideoStream)
        video.width, video.height = size
        video.pix_fmt, video.bit_rate = "yuv420p", bit_rate
        audio = output.add_stream("aac", rate=48000)
        assert isinstance(audio, AudioStream)
        audio.layout = "stereo"
        for index in range(round(seconds * fps)):
            x, y = index % 320, (index // 2) % 180
            picture = Image.blend(scene.crop((x, y, x + size[0], y + size[1])),
                                  grain[index % len(grain)], 0.08)
            output.mux(video.encode(av.VideoFrame.from_image(picture)))  # type: ignore[no-untyped-call]
        output.mux(video.encode(None))
        silence = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
        for plane in silence.planes:
            plane.update(bytes(plane.buffer_size))
        silence.sample_rate, silence.time_base = 48000, Fraction(1, 48000)
        for at in range(0, round(seconds * 48000), 1024):
            silence.pts = at
            output.mux(audio.encode(silence))
        output.mux(audio.encode(None))
    return path


def video_main(runs: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        source = make_clip(root / "clip.mp4", seconds)
        with av.open(str(source)) as clip:
            packets = sum(1 for p in clip.demux() if p.size)
        print(f"video: {seconds:.0f} s 1280x720 H.264 30 fps + AAC, "
              f"{source.stat().st_size / 1e6:.1f} MB, {packets} packets, location tag "
              f"(made in {time.perf_counter() - started:.1f} s)")
        processing.process(source, root)  # warm up
        totals, copies, fallbacks = [], [], []
        for run in range(runs):
            workdir = root / f"run{run}"
            workdir.mkdir()
            started = time.perf_counter()
            processing.process(source, workdir)
            totals.append(time.perf_counter() - started)
            started = time.perf_counter()
            remux.remux(source, "mov", "mp4", workdir / "copy")
            copies.append(time.perf_counter() - started)
            started = time.perf_counter()
            with source.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                sanitize.write_plan(remux.IN_PLACE["mov"](data), data, workdir / "in-place")
            fallbacks.append(time.perf_counter() - started)
            shutil.rmtree(workdir)
        q = statistics.quantiles(totals, n=100, method="inclusive")
        print(f"process(): runs={runs} p50={q[49] * 1000:.1f}ms p99={q[98] * 1000:.1f}ms "
              f"on one core")
        copy = statistics.median(copies)
        print(f"  remux (stream copy, faststart)    {copy * 1000:7.1f} ms  "
              f"{source.stat().st_size / 1e6 / copy:.0f} MB/s")
        print(f"  in-place fallback (plan, write)   {statistics.median(fallbacks) * 1000:7.1f} ms")


def thumbnail(source: Path) -> None:
    with Image.open(source) as im:
        im.thumbnail((1280, 1280), Image.Resampling.LANCZOS)
        im.save(io.BytesIO(), "WEBP", quality=pictures.WEBP_QUALITY, method=4)


if __name__ == "__main__":
    main()
