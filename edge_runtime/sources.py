"""Frame sources. A corrupt frame raises FrameError (skip it); a camera that cannot be opened
or stops answering raises SourceUnavailable (retry later). Camera libraries are optional and
imported only when used: picamera2 on a Pi, OpenCV for USB cameras and RTSP streams."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class FrameError(RuntimeError):
    """This frame is unusable; the next one may be fine."""


class SourceUnavailable(RuntimeError):
    """No frames at all right now (camera missing, stream down)."""


class Exhausted(StopIteration):
    pass


def _decode(data: bytes, name: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise FrameError(f"{name}: cannot decode ({exc})") from None


class FolderSource:
    """Replays the images of a folder in name order (tests, demos, re-processing recordings)."""

    def __init__(self, path: str, loop: bool = True):
        self.path, self.loop, self.position = Path(path), loop, 0

    def read(self) -> Image.Image:
        if not self.path.is_dir():
            raise SourceUnavailable(f"{self.path}: no such folder")
        frames = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not frames:
            raise SourceUnavailable(f"{self.path}: no frames")
        if self.position >= len(frames):
            if not self.loop:
                raise Exhausted
            self.position = 0
        frame = frames[self.position]
        self.position += 1
        return _decode(frame.read_bytes(), frame.name)


class OpenCVSource:
    def __init__(self, target: str):
        self.target = int(target) if target.isdigit() else target
        self.capture = None

    def read(self) -> Image.Image:
        try:
            import cv2
        except ImportError:
            raise SourceUnavailable("OpenCV is not installed: pip install opencv-python-headless") from None
        if self.capture is None or not self.capture.isOpened():
            self.capture = cv2.VideoCapture(self.target)
            if not self.capture.isOpened():
                self.capture = None
                raise SourceUnavailable(f"cannot open camera {self.target!r}")
        ok, frame = self.capture.read()
        if not ok or frame is None:
            self.capture.release()
            self.capture = None
            raise SourceUnavailable(f"camera {self.target!r} gave no frame")
        return Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


class PiCameraSource:
    def __init__(self):
        self.camera = None

    def read(self) -> Image.Image:
        if self.camera is None:
            try:
                from picamera2 import Picamera2
            except ImportError:
                raise SourceUnavailable("picamera2 is not installed (apt install python3-picamera2)") from None
            try:
                self.camera = Picamera2()
                self.camera.configure(self.camera.create_still_configuration())
                self.camera.start()
            except Exception as exc:  # noqa: BLE001 - libcamera raises many kinds; all mean "not now"
                self.camera = None
                raise SourceUnavailable(f"camera: {exc}") from None
        return self.camera.capture_image("main").convert("RGB")


def open_source(kind: str, path: str, loop: bool = True):
    if kind == "folder":
        return FolderSource(path, loop)
    if kind in ("camera", "rtsp", "video"):  # OpenCV opens a device index, a stream URL or a video file
        return OpenCVSource(path or "0")
    return PiCameraSource()
