"""Which of torch's CPU kernels xreg reproduces bit for bit on this machine (probed once, cached).

Muon orthogonalizes in bfloat16 (``torch.optim._muon._zeropower_via_newtonschulz``), and xreg's JAX and
NumPy backends reproduce it by writing out where torch's kernels round (``newton_schulz`` of the NumPy
backend), as measured against torch 2.13 on an AVX2 CPU. On a CPU with AVX-512-BF16 torch sends the
bfloat16 matmuls to oneDNN (``vdpbf16ps``: products summed in pairs, its own blocking), whose float32
sums sit on other bfloat16 ties (measured on an AMD EPYC: with oneDNN off, the emulation is bit-identical
again). :func:`muon_probe` compares torch's products with the emulation's on fixed inputs, once per process:

* ``exact``: Muon pairs are judged by the match tolerance (and the chaotic triage), as every optimizer;
* not exact: a torch Muon run against an emulating backend is judged against the *kernel floor*
  (:mod:`xreg.analysis.floors`): the torch run against itself with Newton-Schulz computed by the
  emulation (:func:`newton_schulz_by`), the one thing that differs; the probe names the kernel where it
  can (oneDNN's, when turning oneDNN off makes the products agree).

``XREG_MUON_PROBE=exact|inexact`` forces the answer (tests take both branches on any machine).
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings

import numpy as np
import torch

from xreg.optimizers._kernels import addmm as _addmm, gram as _gram, newton_schulz
from xreg.core.spec import KernelProbe

COEF = (3.4445, -4.775, 2.0315)
# matrices wide enough that some of their float32 sums sit on a bfloat16 tie (on an AVX-512-BF16 CPU the
# second iterate of (64, 256) already parts); 4 starts of 5 iterates each, about 0.3 s
PROBE_SHAPES = ((32, 128), (64, 256))
PROBE_STARTS = 4
FORCE = "XREG_MUON_PROBE"
WHAT = "bfloat16 Newton-Schulz"  # the computation the probe is about
ONEDNN = "torch sends bfloat16 matmuls to oneDNN: this CPU has AVX-512-BF16"


@contextlib.contextmanager
def _onednn(enabled: bool):
    with warnings.catch_warnings():  # setting the flags warns about TF32 on Intel GPUs
        warnings.simplefilter("ignore")
        with torch.backends.mkldnn.flags(enabled=enabled):
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                yield


def _agrees(onednn: bool) -> bool:
    """Each bfloat16 product of Newton-Schulz, torch's against the emulation's, op by op on fixed random
    iterates (False at the first that differs)."""
    a, b, c = COEF
    rng = np.random.default_rng(20)
    with _onednn(onednn):
        for shape in PROBE_SHAPES:
            for _ in range(PROBE_STARTS):
                X = torch.tensor(rng.standard_normal(shape)).bfloat16()
                X = X / X.norm()
                for _ in range(5):
                    A = X @ X.T
                    B = torch.addmm(A, A, A, beta=b, alpha=c)
                    X2 = torch.addmm(X, B, X, beta=a)
                    Xf, Af, Bf = (t.float().numpy() for t in (X, A, B))
                    if not (np.array_equal(_gram(Xf, False), Af) and np.array_equal(_addmm(Af, Af, Af, b, c), Bf)
                            and np.array_equal(_addmm(Xf, Bf, Xf, a, 1.0), X2.float().numpy())):  # fmt: skip
                        return False
                    X = X2
    return True


@functools.cache
def _measured() -> KernelProbe:
    if _agrees(onednn=torch.backends.mkldnn.enabled):
        return KernelProbe(WHAT, True, "torch's own bfloat16 kernels", "probed on fixed inputs")
    if torch.backends.mkldnn.is_available() and _agrees(onednn=False):
        kernel = ONEDNN
    else:
        kernel = "an unidentified bfloat16 matmul kernel"
    return KernelProbe(WHAT, False, kernel, "probed on fixed inputs")


def muon_probe() -> KernelProbe:
    """Whether xreg's Newton-Schulz emulation is torch's own on this machine (probed once;
    ``XREG_MUON_PROBE=exact|inexact`` forces the answer)."""
    forced = os.environ.get(FORCE, "").strip().lower()
    if forced in ("exact", "inexact"):
        return KernelProbe(WHAT, forced == "exact", "forced", f"{FORCE}={forced}")
    return _measured()


def emulated_newton_schulz(grad: torch.Tensor, ns_coefficients, ns_steps: int, eps: float) -> torch.Tensor:
    """torch's ``_zeropower_via_newtonschulz`` computed by xreg's emulation (the same bfloat16 values where
    the probe holds): the perturbation of the kernel floor."""
    out = newton_schulz(grad.detach().cpu().numpy(), tuple(ns_coefficients), ns_steps, eps)
    return torch.from_numpy(np.ascontiguousarray(out)).to(grad.device).bfloat16()


@contextlib.contextmanager
def newton_schulz_by(kind: str):
    """Within it, torch's Muon orthogonalizes with ``kind``: 'native' (torch's kernel) or 'emulated'."""
    if kind == "native":
        yield
        return
    import torch.optim._muon as muon

    before = muon._zeropower_via_newtonschulz
    muon._zeropower_via_newtonschulz = emulated_newton_schulz
    try:
        yield
    finally:
        muon._zeropower_via_newtonschulz = before


@contextlib.contextmanager
def as_emulated():
    """A context in which torch runs the bfloat16 kernels xreg emulates: as it is where the probe holds,
    with oneDNN off where oneDNN is the difference (a test of the emulation against torch on any CPU).
    LookupError where this CPU's kernel is unidentified."""
    probe = _measured()
    if probe.exact:
        yield
    elif probe.kernel == ONEDNN:
        with _onednn(False):
            yield
    else:
        raise LookupError(f"{WHAT}: {probe.kernel}: no kernel here is the one xreg emulates")
