"""A compiled model saved by keras_sep loads where only keras_sep.models is imported."""
import os
import subprocess
import sys

import keras
import numpy as np

from keras_sep.losses import SpectralMSE
from keras_sep.models import OpenUnmix

LOAD = """
import sys, numpy as np, keras, keras_sep.models
model = keras.saving.load_model(sys.argv[1])
print(type(model.loss).__name__, float(np.asarray(model(np.load(sys.argv[2]))).sum()))
"""


def test_compiled_open_unmix_loads_with_its_loss_in_a_fresh_process(tmp_path):
    net = OpenUnmix(nb_bins=9, hidden_size=4, nb_layers=1, target="vocals")
    net.compile(optimizer="adam", loss=SpectralMSE())
    x = np.random.default_rng(0).uniform(size=(1, 5, 9, 2)).astype("float32")
    net.fit(x, x, epochs=1, verbose=0)
    path, data = tmp_path / "vocals.keras", tmp_path / "x.npy"
    net.save(path)
    np.save(data, x)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", LOAD, str(path), str(data)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    name, total = done.stdout.split()
    assert name == "SpectralMSE"
    np.testing.assert_allclose(float(total), float(np.asarray(net(x)).sum()), rtol=1e-5)
