"""velocast's domain-agnostic generative core: tensors in, tensors out.

Flow-matching convention, used everywhere in this package::

    x_t = (1 - t) * x0 + t * x1,   x0 ~ N(0, I) (noise),  x1 ~ data,   target velocity u = x1 - x0,

and sampling integrates dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).
This package never imports ``pipeline`` or ``flows``.
"""
