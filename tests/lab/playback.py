"""What a viewer checks on the browser's result (arnab_lab.browser): the picture's own clock went on."""
import os

# The rendered video's picture counts frames at 25 fps and loops (scripts/build-video.sh)
VIDEO_FPS = 25
VIDEO_LOOP_FRAMES = VIDEO_FPS * int(os.environ.get("ARNAB_VIDEO_SECONDS", "600"))


def assert_picture_went_on(first, last):
    """The frame counter read from the screenshots at two marks advanced about as much as the wall clock between
    them; returns (frames shown, seconds)."""
    assert first["picture_frame"] is not None and last["picture_frame"] is not None, (first, last)
    shown = (last["picture_frame"] - first["picture_frame"]) % VIDEO_LOOP_FRAMES
    elapsed = last["t"] - first["t"]
    assert 0.5 * elapsed * VIDEO_FPS < shown < 1.5 * elapsed * VIDEO_FPS, (first["label"], last["label"], shown, elapsed)
    return shown, elapsed
