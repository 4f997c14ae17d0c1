"""``xreg translate`` and its Python API: one torch optimizer setting in every framework's terms.

    >>> t = translate("torch.adam", lr=1e-3, weight_decay=1e-4, no_decay=["bias"])
    >>> tx = eval(t.optax_code, {"optax": optax, "xreg": xreg})   # after ``import optax, xreg.twins``

Every line is either an exact equivalent (the tests run both sides and compare them to round-off) or
"no exact equivalent" with the reason. The optax chain is printed from the link objects the JAX backend
runs (:mod:`xreg.backends.jax.chain`), so the code cannot drift from what xreg itself verifies.
"""

from __future__ import annotations

import re

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from xreg.core.checks import XregInputError, check_float
from xreg.core.spec import ExperimentSpec
from xreg import optimizers
from xreg.semantics import conventions

@dataclass
class Translation:
    source: str
    optimizer: str
    lr: float
    weight_decay: float
    options: dict[str, Any]
    no_decay: list[str]
    decoupled: bool
    rows: int | None
    batch_size: int | None
    torch_code: str
    optax_code: str
    optax_alias: str
    optax_alias_exact: bool
    optax_alias_differs: str | None
    scratch: str
    l2_mean_loss: str
    l2_sum_loss: str
    decoupled_rate: str
    sklearn: str
    sum_loss_settings: dict[str, float] | None = None  # the torch settings of the sum-loss equivalent (weight_decay, lr, eps, ...)
    no_exact_equivalent: list[str] = field(default_factory=list)
    equivalent: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        o = self
        head = f"{o.source}: lr={o.lr:g}, weight_decay={o.weight_decay:g}" + (f", no decay on {', '.join(o.no_decay)}" if o.no_decay else "")
        lines = [head, "", "torch:", f"  {o.torch_code}", "optax (exact; `import optax, xreg.twins`):", f"  {o.optax_code}",
                 f"optax alias {'(exact)' if o.optax_alias_exact else '(not exact)'}:", f"  {o.optax_alias}"]  # fmt: skip
        if o.optax_alias_differs:
            lines.append(f"  differs: {o.optax_alias_differs}")
        lines += ["scratch loop:", f"  {o.scratch}", "L2 in the loss:", f"  mean loss: {o.l2_mean_loss}", f"  sum loss:  {o.l2_sum_loss}",
                  "decoupled decay:", f"  {o.decoupled_rate}", "scikit-learn:", f"  {o.sklearn}"]  # fmt: skip
        if o.no_exact_equivalent:
            lines.append("no exact equivalent:")
            lines += [f"  {x}" for x in o.no_exact_equivalent]
        return "\n".join(lines)


def _parse_source(source: str) -> str:
    m = re.fullmatch(r"(?:torch\.(?:optim\.)?)?([A-Za-z]+)", source.strip())
    name = optimizers.by_name(m.group(1)) if m else None
    if name is None:
        raise XregInputError(f"--from takes torch.<optimizer>, one of: {', '.join('torch.' + n for n in optimizers.OPTIMIZERS)}; "
                             f"a layer (torch.nn.Linear, torch.nn.BatchNorm1d, ...) or an lr scheduler (torch.StepLR, ...); got {source!r}.")
    return name


def _decay_test(patterns: Sequence[str]) -> str:
    """A torch-side condition on a parameter name ``n``: True where xreg's --no-decay rule excludes it."""
    if all(not re.search(r"[*?\[.]", p) for p in patterns):
        return f'n.rsplit(".", 1)[-1] in {tuple(patterns)!r}'
    return f'any(fnmatch.fnmatchcase(n, q) or ("." not in q and fnmatch.fnmatchcase(n.rsplit(".", 1)[-1], q)) for q in {tuple(patterns)!r})'


def _torch_code(opt: optimizers.Optimizer, lr: float, wd: float, options: Mapping[str, Any], no_decay: Sequence[str], decoupled: bool) -> str:
    """The torch optimizer as one expression; Muon as the list of its two optimizers (step both): Muon on
    the 2-D parameters, the paired class (``others``) with its torch defaults on the rest."""

    def params(where: str) -> str:
        cond = f" and {where}" if where else ""
        if no_decay:
            test = _decay_test(no_decay)
            return (f'[{{"params": [p for n, p in model.named_parameters() if not {test}{cond}]}}, '
                    f'{{"params": [p for n, p in model.named_parameters() if {test}{cond}], "weight_decay": 0.0}}]')  # fmt: skip
        return f"[p for p in model.parameters() if {where}]" if where else "model.parameters()"

    kw = [f"lr={lr!r}"] + ([f"weight_decay={wd!r}"] if opt.takes_weight_decay else []) + [
        f"{k}={v!r}" for k, v in options.items() if k not in opt.xreg_only]
    if decoupled and opt.decoupled_flag:
        kw.append("decoupled_weight_decay=True")
    if not opt.two_d_only:
        return f"torch.optim.{opt.torch_class}({params('')}, {', '.join(kw)})"
    other = optimizers.get(options.get("others", opt.defaults["others"]))
    okw = [f"lr={lr!r}", f"weight_decay={wd!r}"] + (["decoupled_weight_decay=True"] if other.decoupled_flag else [])
    cond_m, cond_o = ("p.ndim == 2", "p.ndim != 2")
    return (f"[torch.optim.{opt.torch_class}({params(cond_m)}, {', '.join(kw)}), "
            f"torch.optim.{other.torch_class}({params(cond_o)}, {', '.join(okw)})]")


def _optax(spec: ExperimentSpec, batch_size: int | None) -> tuple[str, str, str | None]:
    """(exact chain code, naive alias text, why the alias differs or None)."""
    from xreg.backends.jax import chain
    from xreg.core.structure import structure

    code, links, s, hp, arch = _chain(spec, tuple(spec.no_decay), batch_size)
    convention = optimizers.naive_convention(spec.optimizer, spec.convention)
    naive = structure(spec.replace(port="naive", convention=convention, no_decay=("bias",) if spec.no_decay else ()), arch, 1)
    cause = optimizers.naive_cause(spec.optimizer, spec.options, convention, s.decays_everything)
    return code, chain.chain_text(chain.links(naive, hp, hp["lr"], 1)), cause


def optax_chain_code(spec: ExperimentSpec, no_decay: Sequence[str] = (), batch_size: int | None = None) -> str:
    """The exact optax chain of ``spec`` as one expression over ``optax`` and ``xreg``, its decay leaving
    out the leaves ``no_decay`` names (patterns or the dotted paths of the user's own tree)."""
    return _chain(spec.replace(no_decay=()), tuple(no_decay), batch_size)[0]


def _chain(spec: ExperimentSpec, patterns: tuple[str, ...], batch_size: int | None):
    """(code, links, structure, hparams, arch): the chain built on xreg's logistic model (names weight,
    bias) with its masks written as ``patterns`` over the user's names, never checked against xreg's."""
    from xreg import models
    from xreg.backends.jax import chain
    from xreg.backends.jax.link import Link, Shown
    from xreg.core.structure import hparams, structure

    arch = models.architecture("logistic", 4, 2)
    s, hp = structure(spec.replace(no_decay=("bias",) if patterns else ()), arch, 1), hparams(spec)  # one row: one batch a step
    links = chain.links(s, hp, hp["lr"], batch_size or 1)
    fixed = []
    for link in links:
        if "mask" in link.kwargs:
            mask = link.kwargs["mask"]
            link = Link(link.name, link.fn, link.args, {**link.kwargs, "mask": Shown(mask.value, mask.text, f"xreg.twins.decay_mask({patterns!r})")})
        if "decoupled" in link.kwargs:  # a twin holding torch's own decay (Adafactor): lr*wd by name
            k = link.kwargs["decoupled"]
            link = Link(link.name, link.fn, link.args,
                        {**link.kwargs, "decoupled": Shown(k.value, k.text, f"xreg.twins.decay_rates({spec.lr * spec.lam!r}, {patterns!r})")})  # fmt: skip
        fixed.append(link)
    return chain.chain_code(fixed), links, s, hp, arch


def _sum_loss(opt: optimizers.Optimizer, o: Mapping[str, Any], lr: float, wd: float, M: int | None,
              none: list[str]) -> tuple[dict[str, float] | None, str]:
    """(the torch settings of the sum-loss equivalent, its line): a sum over M rows steps as the mean loss
    where the class's update follows the gradient's scale (its module's ``sum_loss``)."""
    if not M:
        return None, "sum(loss_i) + (weight_decay*m)/2*||w||^2, m the rows a step (give --batch-size for the numbers)"
    extra = opt.sum_loss(o, lr, M)
    if extra is None:
        none.append(f"sum loss: {opt.torch_class} is not invariant to the gradient's scale")
        return None, f"no exact equivalent: {opt.torch_class}'s update is not invariant to scaling the gradient by {M}"
    changed = [f"{k}={v:.6g}" for k, v in extra.items() if v != (lr if k == "lr" else o.get(k))]
    said = ", ".join(changed) or "the same settings"
    why = f"g and its moments scale by {M}" if set(extra) - {"lr"} else f"the gradient is {M}x the mean's"
    kept = "the same lr and " if changed and extra.get("lr") == lr else ""
    return {"weight_decay": wd * M, **extra}, f"sum(loss_i) + {wd * M:.6g}/2*||w||^2 with {kept}{said} ({why})"


def _check_values(opt: optimizers.Optimizer, lr: float, wd: float, rows: int | None, batch_size: int | None) -> None:
    """The values torch and the equivalents can hold (one clear line each)."""
    if wd and not opt.takes_weight_decay:
        raise XregInputError(f"torch.optim.{opt.torch_class} takes no weight_decay; give 0 (its decay is L2 in the loss, "
                             "or w <- w - lr*lam*w in the loop: xreg compare --convention l2-loss or decoupled).")
    for label, v in (("rows", rows), ("batch_size", batch_size)):
        if v is not None and (not isinstance(v, int) or v < 1):
            raise XregInputError(f"--{label.replace('_', '-')} takes a whole number >= 1; got {v!r}.")
    widest = wd * max(rows or 1, batch_size or 1) / lr
    if wd and not (1e-300 <= min(wd, wd * lr) and widest <= 1e300):  # lam = wd*m, C = 1/(wd*n), wd/lr stay finite
        raise XregInputError(f"--weight-decay {wd:g}: its equivalents (lam = weight_decay x rows, C = 1/(weight_decay x rows), "
                             "the decoupled rate) leave float64's range; give 0 or a weight decay between 1e-300 and 1e300.")  # fmt: skip
    if rows and batch_size and batch_size > rows:
        raise XregInputError(f"--batch-size {batch_size} is more than --rows {rows}.")


@dataclass
class _Lines:
    scratch: str
    l2_mean: str
    l2_sum: str
    decoupled: str
    sum_settings: dict[str, float] | None = None


def _coupled_lines(opt: optimizers.Optimizer, o: Mapping[str, Any], lr: float, wd: float, M: int | None, which: str,
                   none: list[str]) -> _Lines:  # fmt: skip
    """torch's coupled weight_decay as a scratch loop ((sum_i grad_i + lam*w)/m is g + (lam/m)*w), an L2 term
    of a mean or a sum loss, and a decoupled decay (the same only without momentum)."""
    lam = f"{wd * M:.6g}" if M else f"{wd:g}*m"
    scratch = (f"g = (sum_i grad_i + lam*w)/m with lam = {lam}" + (f" (m = {M} rows a step)" if M else " (m = the rows of each batch)")
               + f" on {which}; then " + ("w <- w - lr*g" if opt.plain(o) else f"torch's {opt.torch_class} update on g"))  # fmt: skip
    sum_settings, l2_sum = _sum_loss(opt, o, lr, wd, M, none)
    if not opt.takes_weight_decay:  # no decay to move (weight_decay is 0 here)
        dec = (f"torch.optim.{opt.torch_class} has no weight_decay: a decoupled decay is a line of the loop, "
               "w <- w - lr*lam*w before each step (xreg compare --convention decoupled)")  # fmt: skip
    elif opt.momentum_free(o):
        dec = (f"w <- w - lr*{wd:g}*w before the step: the same as the coupled decay for {opt.torch_class} without momentum "
               "(optax.add_decayed_weights after the direction)")  # fmt: skip
    else:
        dec = f"no exact equivalent: {opt.torch_class}'s coupled decay goes through its {opt.coupled_through}; a decoupled decay (AdamW) does not"
        none.append(f"decoupled: L2 inside {opt.torch_class} is rescaled by the optimizer; decoupled decay is not")
    mean = (f"mean(loss_i) + {wd:g}/2*||w||^2 (on {which}), no weight_decay; without the 1/2 (Keras's regularizers.L2(l2), "
            f"l2*sum(w^2): --convention l2-sum), l2 = {wd / 2:g}")  # fmt: skip
    return _Lines(scratch, mean, l2_sum, dec, sum_settings)


def _decoupled_lines(opt: optimizers.Optimizer, o: Mapping[str, Any], lr: float, wd: float, no_decay: Sequence[str], which: str,
                     none: list[str]) -> _Lines:  # fmt: skip
    """A decoupled decay as a line of the loop (inside the update where torch's reads w first); no L2 form."""
    scratch = f"w <- w - lr*{wd:g}*w on {which}, then torch's {opt.torch_class} update on the data gradient alone"
    if opt.decays_inside:
        scratch = (f"w <- w*(1 - lr*{wd:g}) on {which} inside {opt.torch_class}'s update, whose step size reads w "
                   "before the decay (decaying first, then calling the update, is another rule)")  # fmt: skip
    l2 = (f"no exact equivalent: decoupled decay is not an L2 term for {opt.torch_class} "
          "(an L2 gradient is rescaled by the optimizer, the decoupled decay is not)")  # fmt: skip
    stock = opt.decoupled_alias(lr, wd, o, f", mask=xreg.twins.decay_mask({tuple(no_decay)!r})" if no_decay else "")
    none.append(f"L2: {opt.torch_class} with decoupled decay has no L2 (coupled) equivalent")
    return _Lines(scratch, l2, l2, f"w <- w - lr*{wd:g}*w: rate {wd:g} times lr" + (f" ({stock})" if stock else ""))


def _sklearn(coupled: bool, wd: float, rows: int | None, no_decay: Sequence[str], none: list[str]) -> str:
    """scikit-learn: the same optimum for a logistic regression over ``rows`` rows, the intercept not penalised."""
    if coupled and rows and wd > 0:
        C = conventions.sklearn_C_from_torch_weight_decay(wd, rows)
        if no_decay:
            return (f"LogisticRegression(C={C:.6g}) (lbfgs; the intercept is not penalised, as your bias): the same minimiser "
                    f"of mean loss + {wd:g}/2*||w||^2 over {rows} rows, reached at convergence (a point, not a trajectory)")  # fmt: skip
        return (f"LogisticRegression(C={C:.6g}, solver='liblinear', intercept_scaling=1.0): liblinear penalises the intercept "
                f"as a weight, as your decayed bias (lbfgs does not: exclude the bias to use it); the same minimiser over {rows} rows, "
                "reached at convergence (a point, not a trajectory)")  # fmt: skip
    if coupled and wd > 0:
        return "LogisticRegression(C=1/(weight_decay*n)), n the training rows (give --rows for the number)"
    if wd == 0:
        return "LogisticRegression(penalty=None): no regularization"
    none.append("scikit-learn: decoupled decay has no C")
    return "no exact equivalent: decoupled decay minimises no L2-penalised objective scikit-learn could state"


def translate(source: str, lr: float | None = None, weight_decay: float | None = None, options: Mapping[str, Any] | None = None,
              no_decay: Sequence[str] = (), rows: int | None = None, batch_size: int | None = None) -> Translation:  # fmt: skip
    """Every equivalent of ``torch.optim.<X>(lr, weight_decay, **options)`` with ``no_decay`` patterns left
    out of the decay; ``rows`` (the training set) and ``batch_size`` (rows per step) give the scratch
    coefficient, the sum-loss values and scikit-learn's C."""
    name = _parse_source(source)
    opt = optimizers.get(name)
    options = dict(options or {})
    decoupled = bool(options.pop("decoupled_weight_decay", False))
    if decoupled and not opt.decoupled_flag:
        raise XregInputError(f"torch.optim.{opt.torch_class} has no decoupled_weight_decay option.")
    lr = opt.default_lr if lr is None else check_float("lr", lr, 0.0, closed="neither")
    wd = check_float("weight_decay", opt.default_weight_decay if weight_decay is None else weight_decay, 0.0)
    _check_values(opt, lr, wd, rows, batch_size)
    resolved = opt.resolve(options)
    convention = "decoupled" if decoupled else opt.native_convention  # Rprop's: coupled, at weight_decay 0 (no decay)
    spec = ExperimentSpec(optimizer=name, lr=lr, lam=wd, convention=convention, options=options, no_decay=tuple(no_decay))
    shown_options = optimizers.shown(resolved)
    optax_code, alias, differs = _optax(spec, batch_size)
    torch_code = _torch_code(opt, lr, wd, shown_options, no_decay, decoupled)
    coupled = convention == "coupled"
    which = "every parameter" if not no_decay else f"every parameter but {', '.join(no_decay)}"
    none: list[str] = []
    lines = (_coupled_lines(opt, resolved, lr, wd, batch_size or rows, which, none) if coupled
             else _decoupled_lines(opt, resolved, lr, wd, no_decay, which, none))  # fmt: skip
    sk = _sklearn(coupled, wd, rows, no_decay, none)
    none += opt.notes  # roundings a plain loop makes (NAdam's mu_product, ASGD's eta in torch's default dtype)
    return Translation(
        source=f"torch.{opt.torch_class}", optimizer=name, lr=lr, weight_decay=wd, options=shown_options, no_decay=list(no_decay),
        decoupled=not coupled, rows=rows, batch_size=batch_size, torch_code=torch_code, optax_code=optax_code, optax_alias=alias,
        optax_alias_exact=differs is None, optax_alias_differs=differs, scratch=lines.scratch, l2_mean_loss=lines.l2_mean,
        l2_sum_loss=lines.l2_sum, decoupled_rate=lines.decoupled, sklearn=sk, sum_loss_settings=lines.sum_settings,
        no_exact_equivalent=none, equivalent={"torch": torch_code, "optax": optax_code, "scratch": lines.scratch, "sklearn": sk},
    )  # fmt: skip
