"""Files per minute of `keras-sep separate FOLDER` in one process.

    python benchmarks/folder_throughput.py [--files 20] [--seconds 180] [--engine auto]

Makes ``--files`` copies (hard links) of Spleeter's 10.9 s example tiled to
``--seconds``, as 16-bit WAV, in one folder, and separates the folder with
`python -m keras_sep.cli separate FOLDER -o OUT` in one fresh process
(start-up included). Prints wall time, CPU time (user + system of the
child, all threads), peak RSS and files per minute.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

EXAMPLE = "/work/shared/data/spleeter_2stems/audio_example.mp3"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--example", default=EXAMPLE)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="folder_throughput_")
    folder = os.path.join(scratch, "music")
    os.makedirs(folder)
    wave, rate = sf.read(args.example, dtype="float32", always_2d=True)
    n = int(round(args.seconds * rate))
    first = os.path.join(folder, "song_00.wav")
    sf.write(first, np.tile(wave, (n // len(wave) + 1, 1))[:n], rate, subtype="PCM_16")
    for i in range(1, args.files):
        os.link(first, os.path.join(folder, f"song_{i:02d}.wav"))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "keras_sep.cli", "separate", folder, "-o",
                              os.path.join(scratch, "out"), "--engine", args.engine],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stderr = child.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"separate failed:\n{stderr[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} / {os.getloadavg()[2]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{args.files} files of {args.seconds:g} s, --engine {args.engine}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"peak RSS {usage.ru_maxrss / 1024:.0f} MB; {60 * args.files / wall:.1f} files per minute "
          f"({60 * args.files / cpu:.1f} per CPU-minute)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
