"""Audio files only FFmpeg reads (AAC/M4A, Matroska), written with PyAV for the tests."""
import numpy as np


def encode(path, wave, rate, codec, sample_format, container=None):
    """Write ``wave`` ((samples, channels), floats in [-1, 1]) with PyAV's
    ``codec`` in ``sample_format`` ("s16", "u8", "flt" packed; "fltp" planar),
    in frames of the codec's size."""
    import av

    channels = wave.shape[1]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.format = sample_format
        size = stream.codec_context.frame_size or 1024
        for start in range(0, len(wave), size):
            part = wave[start : start + size]
            if sample_format == "s16":
                data = np.round(part * 32767).astype(np.int16).reshape(1, -1)
            elif sample_format == "u8":
                data = np.round(part * 127 + 128).astype(np.uint8).reshape(1, -1)
            elif sample_format == "flt":
                data = part.astype(np.float32).reshape(1, -1)
            else:  # planar float
                data = np.ascontiguousarray(part.T.astype(np.float32))
            frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout=layout)
            frame.rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def reference_decode(path):
    """Every decoded sample of the file's first audio stream, straight from PyAV."""
    import av

    parts = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            data = frame.to_ndarray()
            parts.append(data.T if frame.format.is_planar else data.reshape(-1, len(frame.layout.channels)))
    return np.concatenate(parts)
