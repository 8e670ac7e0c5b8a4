"""Fast inference: plans that compute a model's function with faster
operators, their kernels, and the per-machine timing that picks them.

Not pure TensorFlow like :mod:`keras_sep.ops`: the timing keeps a cache
file per machine and reads the processor's flags. A plan reads the model's
configuration and is checked against the model when made
(:class:`UNetInference`); :func:`inference_plan` gives None for a model it
does not know, whose Keras layers then run.
"""
from keras_sep.inference.plan import UNetInference, has_inference_plan, inference_plan  # noqa: F401
