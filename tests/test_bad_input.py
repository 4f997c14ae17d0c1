"""Issue 4: bad input through the CLI gives one `error: ...` line on stderr and exit 2, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import files_in
from xreg.cli import main

ROOT = Path(__file__).resolve().parents[1]
CSV_FILES = {  # name -> file text
    "empty.csv": "",
    "header.csv": "x1,x2,label\n",
    "text.csv": "x1,x2,label\n1,2,0\nabc,3,1\n",
    "ragged.csv": "x1,x2,label\n1,2,0\n1,1\n",
    "nan.csv": "x1,x2,label\n1,2,0\nnan,3,1\n",
    "inf.csv": "x1,x2,label\n1,2,0\n3,inf,1\n",
    "blank-cell.csv": "x1,x2,label\n1,2,0\n3,,1\n",
    "labels12.csv": "x1,label\n1,1\n2,2\n3,1\n4,2\n5,1\n",
    "labels-1+1.csv": "x1,label\n1,-1\n2,1\n3,-1\n4,1\n5,1\n",
    "labels3.csv": "x1,label\n1,0\n2,1\n3,2\n4,1\n5,0\n",
    "oneclass.csv": "x1,label\n1,1\n2,1\n3,1\n",
    "yesno.csv": "x1,label\n1,yes\n2,no\n",
    "wide.csv": ",".join(f"f{i}" for i in range(1001)) + ",label\n" + ",".join("1" for _ in range(1001)) + ",0\n"
                + ",".join("2" for _ in range(1001)) + ",1\n",
    "wide-then-text.csv": ",".join(f"f{i}" for i in range(1001)) + ",label\n" + "abc," * 1001 + "0\n",
    "dup.csv": "x1,x1,label\n1,2,0\n2,3,1\n",
    "bom.csv": "\ufeffx1,label\n1,0\n2,1\n3,0\n4,1\n",
    "underscore.csv": "x1,label\n1_00,0\n2,1\n3,0\n4,1\n",  # float('1_00') is 100.0: refused, not misread
    "arabic.csv": "x1,label\n\u0661,0\n2,1\n3,0\n4,1\n",  # float('\u0661') is 1.0
    "huge.csv": "x1,x2,label\n1,4e38,0\n2,1,1\n3,1,0\n4,1,1\n5,1,0\n",  # beyond float32
    "near-max.csv": "x1,x2,label\n1e308,1,0\n1.5e308,2,1\n1,3,0\n2,4,1\n5,1,0\n",  # its std overflows float64
}  # fmt: skip

CASES = [  # (id, argv, expected substring of the one stderr line)
    ("missing-csv", ["--data", "{dir}/nope.csv", "--target", "label"], "does not exist"),
    ("csv-is-a-folder", ["--data", "{dir}", "--target", "label"], "is not a regular file"),
    ("empty-csv", ["--data", "{dir}/empty.csv", "--target", "label"], "is empty"),
    ("header-only", ["--data", "{dir}/header.csv", "--target", "label"], "header but no data rows"),
    ("non-numeric", ["--data", "{dir}/text.csv", "--target", "label"], "Non-numeric value 'abc' in column 'x1' at line 3"),
    ("ragged", ["--data", "{dir}/ragged.csv", "--target", "label"], "Line 3 of"),
    ("nan", ["--data", "{dir}/nan.csv", "--target", "label"], "holds 'nan' at line 3"),
    ("inf", ["--data", "{dir}/inf.csv", "--target", "label"], "holds 'inf' at line 3"),
    ("blank-cell", ["--data", "{dir}/blank-cell.csv", "--target", "label"], "Non-numeric value '' in column 'x2'"),
    ("text-labels", ["--data", "{dir}/yesno.csv", "--target", "label"], "Non-numeric value 'yes'"),
    ("missing-target", ["--data", "{dir}/text.csv", "--target", "y"], "The target column 'y' is not in"),
    ("duplicate-column", ["--data", "{dir}/dup.csv", "--target", "label"], "repeats a column name"),
    ("labels-1-2", ["--data", "{dir}/labels12.csv", "--target", "label"], "Pass --map-labels to map 1 -> 0 and 2 -> 1"),
    ("labels-minus1-1", ["--data", "{dir}/labels-1+1.csv", "--target", "label"], "map -1 -> 0 and 1 -> 1"),
    ("three-classes", ["--data", "{dir}/labels3.csv", "--target", "label"], "needs two classes; the labels hold 3"),
    ("one-class", ["--data", "{dir}/oneclass.csv", "--target", "label"], "one class only"),
    ("too-many-features", ["--data", "{dir}/wide.csv", "--target", "label"], "pass --allow-many-features"),
    ("data-without-target", ["--data", "{dir}/text.csv"], "--data needs --target"),
    ("target-without-data", ["--target", "label"], "--target needs --data"),
    ("negative-lr", ["--lr", "-1"], "The 'lr' parameter must be a float in the range (0, inf). Got -1.0 instead."),
    ("zero-lr", ["--lr", "0"], "The 'lr' parameter must be a float in the range (0, inf). Got 0.0"),
    ("nan-lr", ["--lr", "nan"], "The 'lr' parameter must be a float"),
    ("text-lr", ["--lr", "abc"], "argument --lr: expected a number (digits 0-9, '.', an exponent); got 'abc'"),
    ("negative-lam", ["--lam", "-0.1"], "The 'lam' parameter must be a float in the range [0, inf). Got -0.1"),
    ("momentum-one", ["--momentum", "1"], "The 'momentum' parameter must be a float in the range [0, 1). Got 1.0"),
    ("momentum-negative", ["--momentum", "-0.5"], "The 'momentum' parameter must be a float in the range [0, 1)"),
    ("nesterov-without-momentum", ["--nesterov"], "'nesterov' parameter requires momentum > 0"),
    ("dampening-over-one", ["--momentum", "0.9", "--dampening", "1.5"], "The 'dampening' parameter must be a float in the range [0, 1]"),
    ("zero-epochs", ["--epochs", "0"], "The 'epochs' parameter must be an int in the range [1, 10000000]. Got 0"),
    ("zero-batch", ["--batch-size", "0"], "The 'batch_size' parameter must be an int in the range [1, inf]. Got 0"),
    ("negative-batch", ["--batch-size", "-5"], "The 'batch_size' parameter must be an int"),
    ("unknown-optimizer", ["--optimizer", "adamx"], "The 'optimizer' parameter must be one of 'sgd', 'adam'"),
    ("unknown-convention", ["--convention", "l3"], "The 'convention' parameter must be one of 'coupled', 'l2-loss'"),
    ("unknown-backend", ["--backend", "tensorflow"], "The 'backend' parameter must be one of 'torch', 'jax', 'numpy'"),
    ("unknown-dtype", ["--dtype", "float16"], "The 'dtype' parameter must be one of 'float64', 'float32'"),
    ("unknown-model", ["--model", "svm"], "The 'model' parameter must be one of 'logistic', 'linear'"),
    ("unknown-init", ["--init", "uniform"], "The 'init' parameter must be one of"),
    ("test-fraction-one", ["--test-fraction", "1"], "The 'test_fraction' parameter must be a float in the range [0, 1). Got 1.0"),
    ("test-fraction-negative", ["--test-fraction", "-0.1"], "The 'test_fraction' parameter must be a float in the range [0, 1)"),
    ("unknown-flag", ["--foo"], "unrecognized arguments: --foo"),
    ("unknown-option", ["--opt", "nosuch=1"], "Unknown option 'nosuch' for optimizer 'sgd'. Allowed options: 'momentum'"),
    ("betas-not-pair", ["--optimizer", "adam", "--opt", "betas=0.9"], "The 'betas' parameter must be a pair of floats"),
    ("beta-out-of-range", ["--optimizer", "adam", "--opt", "betas=0.9,1.5"], "The 'betas[1]' parameter must be a float in the range [0, 1)"),
    ("opt-without-equals", ["--opt", "momentum"], "--opt takes KEY=VALUE; got 'momentum'"),
    ("schedule-missing-option", ["--schedule", "step"], "The schedule 'StepLR' needs the option 'step_size'"),
    ("schedule-every", ["--schedule-every", "batch"], "The 'schedule_every' parameter must be one of 'epoch', 'step'"),
    ("schedule-every-constant", ["--schedule-every", "step"], "schedule_every='step' steps a scheduler; the schedule is 'constant'"),
    ("schedule-option-twice", ["--schedule", "StepLR", "--schedule-opt", "step_size=2", "--schedule-opt", "step_size=3"],
     "--schedule-opt step_size= is given twice"),
    ("schedule-inline-and-flag", ["--schedule", "StepLR(step_size=2)", "--schedule-opt", "step_size=3"],
     "StepLR(step_size=2) and --schedule-opt step_size=3 disagree"),
    ("schedule-inline-inf", ["--schedule", "StepLR(step_size=2, gamma=inf)"], "The 'gamma' parameter must be a float in the range (0, inf). Got inf"),
    ("schedule-inline-text", ["--schedule", "StepLR(step_size=abc)"], "The 'step_size' parameter must be an int"),
    ("plateau-per-step", ["--schedule", "ReduceLROnPlateau", "--schedule-every", "step"], "ReduceLROnPlateau reads the epoch's loss"),
    ("plateau-mode-max", ["--schedule", "ReduceLROnPlateau(mode='max')"], "mode must be 'min'"),
    ("plateau-mode-text", ["--schedule", "ReduceLROnPlateau(mode=lowest)"], "The 'mode' parameter must be one of 'min', 'max'"),
    ("plateau-factor-one", ["--schedule", "ReduceLROnPlateau(factor=1.0)"], "The 'factor' parameter must be a float in the range [0, 1)"),
    ("plateau-threshold-one", ["--schedule", "ReduceLROnPlateau(threshold=1)"], "relative threshold must be below 1"),
    ("plateau-patience-negative", ["--schedule", "ReduceLROnPlateau(patience=-1)"], "The 'patience' parameter must be an int"),
    ("plateau-min-lr-list", ["--schedule", "ReduceLROnPlateau(min_lr=[0.1, 0.2])"], "min_lr must be one number here"),
    ("plateau-naive-threshold-zero", ["--schedule", "ReduceLROnPlateau(threshold=0, patience=1)", "--epochs", "5", "--naive-schedule",
                                      "plateau-patience"], "optax.contrib.reduce_on_plateau refuses rtol = atol = 0"),
    ("plateau-naive-min-lr-above-lr", ["--schedule", "ReduceLROnPlateau(min_lr=1, patience=1)", "--lr", "0.5", "--epochs", "6",
                                       "--naive-schedule", "plateau-patience"], "min_lr 1 is above the lr 0.5"),
    ("hidden-negative-list", ["--model", "mlp", "--hidden", "-16,8"], "The 'hidden' parameter must be widths like 32 or 32,16"),
    ("plateau-epoch-count", ["--schedule", "ReduceLROnPlateau", "--naive-schedule", "epoch-count"], "reads the epoch's loss, not a count"),
    ("plateau-patience-not-acting", ["--schedule", "ReduceLROnPlateau(patience=30)", "--epochs", "20", "--naive-schedule",
                                     "plateau-patience"], "--naive-schedule plateau-patience: it changes nothing in this run"),
    ("milestone-beyond-int32", ["--schedule", "MultiStepLR", "--schedule-opt", "milestones=100000000000000000000"],
     "The 'milestones' parameter must be an int in the range [1, 2147483647]"),
    ("onecycle-pct-one", ["--schedule", "OneCycleLR(pct_start=1.0, cycle_momentum=false)", "--epochs", "10"],
     "torch's OneCycleLR fails on this run (10 calls): ZeroDivisionError"),
    ("schedule-call-syntax", ["--schedule", "StepLR(step_size="], "A scheduler must be written Name(key=value, ...)"),
    ("schedule-positional", ["--schedule", "StepLR(3)"], "A scheduler must be written Name(key=value, ...)"),
    ("schedule-unknown-torch-option", ["--schedule", "StepLR(step_size=3, last_epoch=4)"], "Unknown option 'last_epoch' for schedule 'StepLR'"),
    ("naive-schedule-code", ["--naive-schedule", "nope"], "The 'naive_schedule' parameter must be one of 'all', 'staircase'"),
    ("naive-schedule-other-class", ["--schedule", "ExponentialLR(gamma=0.9)", "--naive-schedule", "staircase"],
     "--naive-schedule staircase: it is StepLR's naive port, not ExponentialLR's"),
    ("naive-schedule-not-acting", ["--schedule", "StepLR(step_size=1)", "--naive-schedule", "staircase"],
     "--naive-schedule staircase: it changes nothing in this run"),
    ("naive-schedule-constant", ["--naive-schedule", "all"], "--naive-schedule all: no naive schedule difference acts on this constant run"),
    ("onecycle-cycle-momentum-adagrad", ["--schedule", "OneCycleLR", "--optimizer", "adagrad"],
     "torch.optim.Adagrad: torch: 'optimizer must support momentum or beta1 with `cycle_momentum` option enabled'"),
    ("onecycle-too-few-steps", ["--schedule", "OneCycleLR(total_steps=1, cycle_momentum=False)"], "total_steps=1 is fewer than the run's 2 scheduler calls"),
    ("onecycle-zero-phase", ["--schedule", "OneCycleLR(total_steps=10, pct_start=0.1, cycle_momentum=False)", "--epochs", "10"],
     "torch's OneCycleLR fails on this run (10 calls): ZeroDivisionError"),
    ("cyclic-mode", ["--schedule", "CyclicLR(max_lr=0.1, mode='up', cycle_momentum=False)"], "The 'mode' parameter must be one of 'triangular'"),
    ("cyclic-momentum-muon", ["--schedule", "CyclicLR(max_lr=0.1)", "--model", "mlp", "--optimizer", "muon", "--convention", "decoupled"],
     "torch.optim.Muon: Muon and its paired class would cycle two options"),
    ("cyclic-momentum-range", ["--schedule", "CyclicLR(max_lr=0.1, max_momentum=1.0)"], "The 'max_momentum' parameter must be a float in the range [0, 1)"),
    ("constantlr-zero-factor", ["--schedule", "ConstantLR(factor=0)"], "The 'factor' parameter must be a float in the range (0, 1]"),
    ("multistep-zero", ["--schedule", "MultiStepLR", "--schedule-opt", "milestones=0,3"], "The 'milestones' parameter must be an int in the range [1, 2147483647]"),
    ("multistep-text", ["--schedule", "MultiStepLR", "--schedule-opt", "milestones=a"], "The 'milestones' parameter must be an int"),
    ("sequential-no-milestones", ["--schedule", "SequentialLR", "--schedule-opt", "schedulers=LinearLR(), ExponentialLR(gamma=0.9)"],
     "The schedule 'SequentialLR' needs the option 'milestones'"),
    ("sequential-milestone-count", ["--schedule", "SequentialLR", "--schedule-opt", "schedulers=LinearLR(), ExponentialLR(gamma=0.9)",
                                    "--schedule-opt", "milestones=3,5"], "SequentialLR needs 1 increasing milestone(s) for 2 members"),
    ("sequential-onecycle-member", ["--schedule", "SequentialLR", "--schedule-opt", "schedulers=OneCycleLR(), ExponentialLR(gamma=0.9)",
                                    "--schedule-opt", "milestones=3"], "SequentialLR takes the members StepLR"),
    ("sequential-member-syntax", ["--schedule", "SequentialLR", "--schedule-opt", "schedulers=LinearLR(1), ExponentialLR(gamma=0.9)",
                                  "--schedule-opt", "milestones=3"], "A scheduler must be written Name(key=value, ...)"),
    ("sequential-member-option", ["--schedule", "SequentialLR", "--schedule-opt", "schedulers=LinearLR(gamma=2), ExponentialLR(gamma=0.9)",
                                  "--schedule-opt", "milestones=3"], "Unknown option 'gamma' for schedule 'LinearLR'"),
    ("chained-cosine-member", ["--schedule", "ChainedScheduler", "--schedule-opt", "schedulers=CosineAnnealingLR(T_max=4)"],
     "ChainedScheduler takes the members StepLR"),
    ("multiplicative-negative", ["--schedule", "MultiplicativeLR", "--schedule-opt", "expr=0.5 - epoch"],
     "The MultiplicativeLR expr '0.5 - epoch' makes the learning rate negative at epoch 1"),
    ("schedule-unknown", ["--schedule", "warmup"], "The 'schedule' parameter must be one of 'constant'"),
    ("lambda-schedule-code", ["--schedule", "lambda", "--schedule-opt", "expr=__import__('os')"], "arithmetic expression in 'epoch'"),
    ("adamw-coupled", ["--optimizer", "adamw", "--convention", "torch"], "The optimizer 'adamw' decays decoupled"),
    ("zero-clip", ["--clip-norm", "0"], "The 'clip_norm' parameter must be a float in the range [2.22507e-308, inf). Got 0.0"),
    ("resume-zero", ["--resume-at", "0"], "The 'resume_at' parameter must be an int in the range [1, inf]. Got 0"),
    ("resume-past-the-end", ["--resume-at", "2"], "--resume-at 2: the run has 2 optimizer steps; resume inside it (1 to 1)"),
    ("naive-resume-code", ["--naive-resume", "resume-all"], "The 'naive_resume' parameter must be one of 'resume-fresh-optimizer'"),
    ("naive-resume-unresumed", ["--naive-resume", "resume-schedule"], "--naive-resume resume-schedule: the run does not resume"),
    ("naive-resume-plain-sgd", ["--resume-at", "1", "--naive-resume", "resume-fresh-optimizer"],
     "--naive-resume resume-fresh-optimizer: the optimizer keeps no state here"),
    ("naive-resume-sgd-count", ["--resume-at", "1", "--momentum", "0.9", "--naive-resume", "resume-step-count"],
     "--naive-resume resume-step-count: the optimizer's update does not read its step count here"),
    ("naive-resume-no-schedule", ["--resume-at", "1", "--naive-resume", "resume-schedule"], "--naive-resume resume-schedule: the run has no lr schedule"),
    ("accumulate-zero", ["--accumulate", "0"], "The 'accumulate' parameter must be an int in the range [1, 1000]. Got 0"),
    ("accumulate-uneven", ["--accumulate", "3", "--batch-size", "110"], "--accumulate 3 groups an epoch's batches: its 10 batches"),
    ("accumulate-full-batch", ["--accumulate", "2"], "its 1 batches of 1096 rows do not split into groups of 2"),
    ("accumulate-scratch", ["--accumulate", "2", "--batch-size", "110", "--convention", "scratch"], "The scratch convention's lam/m has no one m"),
    ("naive-accumulate-code", ["--naive-accumulate", "sum"], "The 'naive_accumulate' parameter must be one of 'accumulate-sum'"),
    ("naive-accumulate-unaccumulated", ["--naive-accumulate", "accumulate-sum"], "--naive-accumulate accumulate-sum: the run does not accumulate"),
    ("naive-accumulate-equal", ["--accumulate", "2", "--batch-size", "137", "--naive-accumulate", "accumulate-global-mean"],
     "--naive-accumulate accumulate-global-mean: every micro-batch of a step has the same rows here"),
    ("loss-reduction", ["--loss-reduction", "none"], "The 'loss_reduction' parameter must be one of 'mean', 'sum'"),
    ("class-weight-logistic", ["--class-weight", "1,2"], "--class-weight is CrossEntropyLoss's: the softmax head"),
    ("class-weight-count", ["--model", "softmax", "--class-weight", "1,2,3"], "--class-weight gives 3 weights for the 2 classes"),
    ("class-weight-negative", ["--model", "softmax", "--class-weight", "1,-2"], "The 'class_weight[1]' parameter must be a float in the range [0, 1e+15]"),
    ("class-weight-zero", ["--model", "softmax", "--class-weight", "0,0"], "The 'class_weight' parameter needs a weight > 0"),
    ("class-weight-text", ["--model", "softmax", "--class-weight", "1,a"], "--class-weight takes one number per class"),
    ("class-weight-one", ["--model", "softmax", "--class-weight", "1"], "--class-weight takes one number per class, W0,W1,... (at least 2)"),
    ("label-smoothing-over-one", ["--model", "softmax", "--label-smoothing", "1.5"], "The 'label_smoothing' parameter must be a float in the range [0, 1]"),
    ("class-weight-huge", ["--model", "softmax", "--class-weight", "1e308,1e308"], "The 'class_weight[0]' parameter must be a float in the range [0, 1e+15]"),
    ("class-weight-tiny-float32", ["--model", "softmax", "--class-weight", "1e-45,1e-45", "--dtype", "float32"],
     "The 'class_weight' parameter's weights must be 0 or at least"),
    ("clip-norm-subnormal", ["--clip-norm", "1e-320"], "The 'clip_norm' parameter must be a float in the range [2.22507e-308, inf)"),
    ("clip-norm-type-huge", ["--clip-norm", "1", "--clip-norm-type", "1e10"], "The 'clip_norm_type' parameter must be a p in [1, 1e6) or inf"),
    ("label-smoothing-logistic", ["--label-smoothing", "0.1"], "--label-smoothing is CrossEntropyLoss's"),
    ("naive-loss-code", ["--naive-loss", "mean"], "The 'naive_loss' parameter must be one of 'class-weight-mean', 'smoothing-k-minus-1'"),
    ("naive-loss-unweighted", ["--model", "softmax", "--naive-loss", "class-weight-mean"], "--naive-loss class-weight-mean: the run has no class weights"),
    ("naive-loss-unsmoothed", ["--model", "softmax", "--naive-loss", "smoothing-k-minus-1"], "--naive-loss smoothing-k-minus-1: the run has no label smoothing"),
    ("naive-loss-bce", ["--naive-loss", "smoothing-k-minus-1"], "--naive-loss smoothing-k-minus-1: it is CrossEntropyLoss's"),
    ("naive-loss-sum", ["--model", "softmax", "--class-weight", "1,3", "--loss-reduction", "sum", "--naive-loss", "class-weight-mean"],
     "with reduction 'sum' and no label smoothing both are"),
    ("negative-clip-value", ["--clip-value", "-1"], "The 'clip_value' parameter must be a float in the range [2.22507e-308, inf)"),
    ("two-clippings", ["--clip-norm", "1", "--clip-value", "0.1"], "Give one clipping: clip_norm (clip_grad_norm_) or clip_value"),
    ("clip-norm-type-alone", ["--clip-norm-type", "inf"], "The 'clip_norm_type' parameter shapes the clip_norm clipping; set clip_norm"),
    ("clip-per-parameter-alone", ["--clip-per-parameter"], "The 'clip_per_parameter' parameter shapes the clip_norm clipping; set clip_norm"),
    ("clip-error-alone", ["--clip-error-if-nonfinite"], "The 'clip_error_if_nonfinite' parameter shapes the clip_norm clipping; set clip_norm"),
    ("clip-error-with-value", ["--clip-value", "0.1", "--clip-error-if-nonfinite"], "The 'clip_error_if_nonfinite' parameter shapes the clip_norm"),
    ("clip-norm-minus-inf", ["--clip-norm", "-inf"], "The 'clip_norm' parameter must be a float in the range [2.22507e-308, inf). Got -inf"),
    ("lr-minus-exponent", ["--lr", "-1e-3"], "The 'lr' parameter must be a float in the range (0, inf). Got -0.001"),
    ("clip-norm-type-half", ["--clip-norm", "1", "--clip-norm-type", "0.5"], "The 'clip_norm_type' parameter must be a p in [1, 1e6) or inf"),
    ("clip-norm-type-nan", ["--clip-norm", "1", "--clip-norm-type", "nan"], "The 'clip_norm_type' parameter must be a p in [1, 1e6) or inf"),
    ("naive-clip-code", ["--clip-norm", "1", "--naive-clip", "clip-all"], "The 'naive_clip' parameter must be one of 'clip-eps', 'clip-order'"),
    ("naive-clip-unclipped", ["--naive-clip", "clip-eps"], "--naive-clip clip-eps: the run does not clip"),
    ("naive-clip-eps-inf", ["--clip-norm", "1", "--clip-norm-type", "inf", "--naive-clip", "clip-eps"],
     "--naive-clip clip-eps: optax.clip_by_global_norm is the global 2-norm clipping"),
    ("naive-clip-order-no-decay", ["--clip-norm", "1", "--lam", "0", "--naive-clip", "clip-order"],
     "--naive-clip clip-order: no coupled decay is added to the gradient after the clipping here"),
    ("json-missing-folder", ["--json", "{dir}/no/such/out.json"], "The folder of"),
    ("json-is-folder", ["--json", "{dir}"], "is a folder"),
    ("decoupled-scale", ["--decoupled-scale", "epoch"], "The 'decoupled_scale' parameter must be one of 'lr', 'schedule'"),
    ("naive-scratch", ["--naive", "--convention", "scratch"], "use convention 'coupled'"),
    ("run-too-large", ["--epochs", "10000000", "--shuffle"], "The run is too large: 10000000 epochs x 1096 rows"),
    ("epochs-beyond-the-limit", ["--epochs", "1000000000000"], "The 'epochs' parameter must be an int in the range [1, 10000000]"),
    ("ten-classes-logistic", ["--data", "digits"], "The logistic model needs two classes; the labels hold 10"),
    ("init-from-missing", ["--model", "mlp", "--init-from", "{dir}/none.npz"], "The parameter file '{dir}/none.npz' does not exist"),
    ("no-decay-matches-nothing", ["--no-decay", "gamma"], "The pattern 'gamma' matches no parameter of the logistic model (weight, bias)"),
    ("group-decay-text", ["--group-decay", "bias=abc"], "--group-decay takes PATTERN=NUMBER"),
    ("group-decay-negative", ["--group-decay", "bias=-1"], "The 'group_decay[bias]' parameter must be a float in the range [0, inf)"),
    ("hidden-for-logistic", ["--hidden", "5"], "The 'hidden' parameter is for the mlp model (its hidden layers), not 'logistic'"),
    ("norm-for-logistic", ["--norm", "batch"], "The 'norm' parameter is for the mlp and cnn models"),
    ("dropout-for-softmax", ["--model", "softmax", "--dropout", "0.1"], "The 'dropout' parameter is for the mlp and cnn models"),
    ("norm-unknown", ["--model", "mlp", "--norm", "group"], "norm"),
    ("activation-unknown", ["--model", "mlp", "--activation", "swish"], "activation"),
    ("dropout-one", ["--model", "mlp", "--dropout", "1"], "The 'dropout' parameter must be a float in the range [0, 1)"),
    ("dropout-negative", ["--model", "mlp", "--dropout", "-0.1"], "The 'dropout' parameter must be a float in the range [0, 1)"),
    ("hidden-zero", ["--model", "mlp", "--hidden", "32,0"], "The 'hidden' parameter must be"),
    ("hidden-not-a-number", ["--model", "mlp", "--hidden", "32,x"], "The 'hidden' parameter must be widths like 32 or 32,16"),
    ("hidden-empty-part", ["--model", "mlp", "--hidden", "32,"], "The 'hidden' parameter must be widths like 32 or 32,16"),
    ("cnn-without-images", ["--model", "cnn"], "The cnn model reads each row as an image, and these rows have no image shape"),
    ("cnn-channels-zero", ["--data", "digits", "--model", "cnn", "--channels", "0"], "The 'channels' parameter must be"),
    ("cnn-pool-too-big", ["--data", "digits", "--model", "cnn", "--pool-size", "9"], "A 9x9 pooling does not fit the 8x8 map"),
    ("cnn-kernel-too-big", ["--data", "digits", "--model", "cnn", "--kernel-size", "11"], "A 11x11 kernel with padding 1 does not fit the 8x8 image"),
    ("cnn-pool-unknown", ["--data", "digits", "--model", "cnn", "--pool", "min"], "pool"),
    ("channels-for-mlp", ["--model", "mlp", "--channels", "4"], "The 'channels' parameter is for the cnn model, not 'mlp'"),
    ("norm-for-softmax", ["--model", "softmax", "--norm", "layer"], "The 'norm' parameter is for the mlp and cnn models"),
    ("cnn-activations-too-big", ["--data", "digits", "--model", "cnn", "--channels", "4096", "--kernel-size", "30",
                                 "--padding", "40"], "GiB of activations"),
    ("mlp-too-wide", ["--model", "mlp", "--hidden", "100000,100000"], "GiB of"),
    ("max-memory-zero", ["--max-memory", "0"], "The 'max_memory' parameter must be a float in the range (0, inf)"),
    ("max-memory-nan", ["--max-memory", "nan"], "max"),
    ("mlp-params-too-many", ["--model", "mlp", "--hidden", "30000,30000", "--batch-size", "1"], "The model is too large for --max-memory"),
    ("hidden-non-ascii", ["--model", "mlp", "--hidden", "\u0663\u0662"], "The 'hidden' parameter must be widths like 32"),
    ("hidden-too-deep", ["--model", "mlp", "--hidden", ",".join(["4"] * 65)], "xreg runs at most 64"),
    ("norm-empty", ["--model", "mlp", "--norm", ""], "norm"),
    ("activation-empty", ["--model", "mlp", "--activation", ""], "activation"),
    ("init-empty", ["--init", ""], "init"),
    ("naive-layer-not-acting", ["--model", "mlp", "--naive-layer", "bn-momentum"], "--naive-layer bn-momentum: it changes nothing"),
    ("naive-layer-same-padding-blocked", ["--data", "digits", "--model", "cnn", "--padding", "0", "--naive-layer", "same-padding"],
     "makes 8x8 maps where torch's padding=0 makes 6x6"),
    ("init-and-init-from", ["--init", "flax", "--init-from", "{dir}/nope.npz"], "both name the start: give one"),
    ("init-scale-unread", ["--model", "mlp", "--init-scale", "5"], "--init-scale is read by --init normal and constant only, not by --init torch (the mlp model's default)"),
    ("batch-norm-one-row-batch", ["--model", "mlp", "--norm", "batch", "--batch-size", "3"], "Batch norm needs at least 2 values per channel in every batch"),
    ("unknown-activation", ["--model", "mlp", "--activation", "sigmoid"], "The 'activation' parameter must be one of 'tanh', 'relu'"),
    ("target-with-shipped-data", ["--data", "iris", "--model", "softmax", "--target", "y"], "--target needs --data PATH.csv"),
    ("unknown-command", ["frobnicate"], "unknown command 'frobnicate'"),
    ("unknown-device", ["--device", "npu"], "The 'device' parameter must be one of 'cpu', 'gpu', 'tpu'"),
    ("record-every-zero", ["--record-every", "0"], "The 'record_every' parameter must be an int in the range [1, inf]"),
    # issue 11: read wrongly before, refused now
    ("too-many-features-from-the-header", ["--data", "{dir}/wide-then-text.csv", "--target", "label"],
     "has 1001 feature columns, more than the limit of 1000"),  # refused before the rows are read
    ("csv-underscore-digits", ["--data", "{dir}/underscore.csv", "--target", "label"], "Non-numeric value '1_00' in column 'x1' at line 2"),
    ("csv-non-ascii-digits", ["--data", "{dir}/arabic.csv", "--target", "label"], "Non-numeric value '\u0661' in column 'x1' at line 2"),
    ("standardize-overflow", ["--data", "{dir}/near-max.csv", "--target", "label", "--standardize"],
     "--standardize: the feature 'x1' holds values too large"),
    ("float32-overflow", ["--data", "{dir}/huge.csv", "--target", "label", "--dtype", "float32"], "The feature 'x2' holds values beyond 3.4e+38"),
    ("flag-underscore-digits", ["--epochs", "1_0"], "argument --epochs: expected a whole number (digits 0-9); got '1_0'"),
    ("flag-non-ascii-digits", ["--lr", "\u0660.\u0661"], "argument --lr: expected a number"),
    ("opt-underscore-digits", ["--opt", "momentum=0_9"], "The 'momentum' parameter must be a float"),
    ("test-fraction-one-class", ["--test-fraction", "0.999"], "The training split holds one class only (test fraction 0.999, 2 training rows)"),
    ("asgd-alpha-overflow", ["--optimizer", "asgd", "--opt", "alpha=1e308"], "torch.optim.ASGD cannot run lambd=0.0001, alpha=1e+308"),
    ("memory-budget", ["--max-memory", "0.0001", "--epochs", "1000"], "over the budget of 0.0001 GiB: keep every K-th step with --record-every"),
    ("json-empty", ["--json", ""], "an output path is empty"),
    ("json-proc", ["--json", "/proc/xreg.json"], "'/proc/xreg.json' is under /proc"),
    ("plot-sys", ["--plot", "/sys/xreg.png"], "'/sys/xreg.png' is under /sys"),
    ("json-trailing-slash", ["--json", "{dir}/out/"], "'{dir}/out/' ends with a slash"),
    ("json-name-too-long", ["--json", "{dir}/" + "n" * 300 + ".json"], "bytes; this filesystem takes at most"),
    ("json-and-plot-one-file", ["--json", "{dir}/o.json", "--plot", "{dir}/./o.json"], "--json and --plot both name"),
    ("json-over-the-data", ["--data", "{dir}/bom.csv", "--target", "label", "--json", "{dir}/bom.csv", "--force"],
     "is the input file '{dir}/bom.csv'; xreg never writes over an input, even with --force"),
    ("plot-to-stdout", ["--plot", "-"], "'-' (standard output) is for --json only"),
]  # fmt: skip


SUBCOMMAND_CASES = [  # (id, argv, expected substring): sweep, bench and reproduce
    ("sweep-no-axis", ["sweep", "--epochs", "2"], "A sweep needs at least one --sweep"),
    ("translate-scheduler-batches-zero", ["translate", "--from", "torch.StepLR", "--option", "step_size=3", "--batches", "0"],
     "The 'batches' parameter must be an int in the range [1, 1000000]. Got 0"),
    ("translate-scheduler-batches-per-step", ["translate", "--from", "torch.StepLR", "--option", "step_size=3", "--batches", "4",
                                              "--schedule-every", "step"], "--batches counts the optimizer steps of an epoch"),
    ("translate-scheduler-weight-decay", ["translate", "--from", "torch.StepLR", "--weight-decay", "0.1"], "--weight-decay is for a torch optimizer"),
    ("translate-scheduler-missing", ["translate", "--from", "torch.StepLR"], "The schedule 'StepLR' needs the option 'step_size'"),
    ("translate-calls-for-optimizer", ["translate", "--from", "torch.adam", "--calls", "4"], "--calls is for an lr scheduler"),
    ("translate-unknown-source", ["translate", "--from", "torch.nosuch"], "or an lr scheduler (torch.StepLR, ...); got 'torch.nosuch'"),
    ("translate-plateau-per-step", ["translate", "--from", "torch.optim.lr_scheduler.ReduceLROnPlateau", "--schedule-every", "step"],
     "ReduceLROnPlateau reads the epoch's loss"),
    ("sweep-axis-form", ["sweep", "--sweep", "lr=0.1:1"], "--sweep takes NAME=START:STOP:COUNT"),
    ("sweep-axis-text", ["sweep", "--sweep", "lr=a:b:3"], "(numbers in ASCII digits, COUNT an integer)"),
    ("sweep-axis-underscore", ["sweep", "--sweep", "lr=0.1:1:1_0"], "(numbers in ASCII digits, COUNT an integer); got 'lr=0.1:1:1_0'"),
    ("sweep-axis-arabic-digits", ["sweep", "--sweep", "lr=\u0660.1:1:3"], "(numbers in ASCII digits"),
    ("sweep-axis-count", ["sweep", "--sweep", "lr=0.1:1:0"], "COUNT must be at least 1"),
    ("sweep-log-nonpositive", ["sweep", "--sweep", "lam=log:0:1:3"], "a log-spaced axis needs START and STOP > 0"),
    ("sweep-unknown-name", ["sweep", "--sweep", "gamma=0.1:1:3"], "not a numeric hyperparameter of sgd; one of: lr, lam"),
    ("sweep-beta-for-sgd", ["sweep", "--sweep", "beta1=0.1:0.9:3"], "not a numeric hyperparameter of sgd"),
    ("sweep-twice", ["sweep", "--sweep", "lr=0.1:1:2", "--sweep", "lr=0.1:1:3"], "--sweep lr is given twice"),
    ("sweep-clip-without-clipping", ["sweep", "--sweep", "clip_norm=1:2:2"], "--sweep clip_norm needs --clip-norm"),
    ("sweep-too-big", ["sweep", "--sweep", "lr=0.1:1:1001", "--sweep", "lam=0:1:1001"], "The grid has 1e+06 points"),
    ("sweep-bad-point", ["sweep", "--sweep", "lr=-1:1:3"], "The 'lr' parameter must be a float in the range (0, inf)"),
    ("sweep-momentum-one", ["sweep", "--sweep", "momentum=0:1:3"], "The 'momentum' parameter must be a float in the range [0, 1)"),
    ("sweep-plot-three-axes", ["sweep", "--sweep", "lr=0.1:1:2", "--sweep", "lam=0:1:2", "--sweep", "momentum=0:0.5:2",
                               "--plot", "{dir}/p.png"], "--plot draws one or two axes"),  # fmt: skip
    ("sweep-two-conventions", ["sweep", "--sweep", "lr=0.1:1:2", "--convention", "torch", "--convention", "l2-loss"],
     "A sweep runs one convention"),
    ("sweep-jax-verifies", ["sweep", "--sweep", "lr=0.1:1:2", "--backend", "jax"], "a verifying backend: torch or numpy"),
    ("sweep-negative-verify", ["sweep", "--sweep", "lr=0.1:1:2", "--verify", "-1"], "--verify takes K >= 0"),
    ("sweep-unknown-device", ["sweep", "--sweep", "lr=0.1:1:2", "--device", "npu"], "The 'device' parameter must be one of 'cpu'"),
    ("sweep-unknown-rank", ["sweep", "--sweep", "lr=0.1:1:2", "--rank", "speed"], "The 'rank' parameter must be one of"),
    ("sweep-half-distributed", ["sweep", "--sweep", "lr=0.1:1:2", "--coordinator", "h:1"], "go together"),
    ("sweep-bad-coordinator", ["sweep", "--sweep", "lr=0.1:1:2", "--coordinator", "host", "--num-processes", "2",
                               "--process-id", "0"], "--coordinator takes HOST:PORT"),  # fmt: skip
    ("sweep-process-id", ["sweep", "--sweep", "lr=0.1:1:2", "--coordinator", "h:1", "--num-processes", "2",
                          "--process-id", "2"], "--process-id must be in 0..1"),  # fmt: skip
    ("sweep-naive-is-compare-only", ["sweep", "--sweep", "lr=0.1:1:2", "--naive"], "unrecognized arguments: --naive"),
    ("bench-size", ["bench", "--sizes", "10m"], "--sizes: unknown size '10m'"),
    ("bench-dtype", ["bench", "--dtypes", "float16"], "--dtypes: unknown dtype 'float16'"),
    ("bench-steps", ["bench", "--steps", "seed=0"], "--steps takes SIZE=N"),
    ("bench-repeat", ["bench", "--repeat", "0"], "--repeat takes N >= 1"),
    ("reproduce-unknown", ["reproduce", "grokking"], "unknown scenario 'grokking'; scenarios: decoupling"),
    ("reproduce-missing-out", ["reproduce", "decoupling", "--out", "{dir}/none"], "does not exist (make it first"),
    ("reproduce-out-is-a-file", ["reproduce", "decoupling", "--out", "{dir}/bom.csv"], "is not a folder"),
    ("reproduce-size", ["reproduce", "decoupling", "--size", "1", "--out", "{dir}"], "--size takes N >= 2"),
]  # fmt: skip


@pytest.mark.parametrize("argv, expected", [c[1:] for c in SUBCOMMAND_CASES], ids=[c[0] for c in SUBCOMMAND_CASES])
def test_subcommand_bad_input_one_line_exit_2(argv, expected, csv_dir, capsys):
    assert main([a.replace("{dir}", str(csv_dir)) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected.replace("{dir}", str(csv_dir)) in lines[0]
    assert captured.out == ""  # nothing ran


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory):
    return files_in(tmp_path_factory, "bad", CSV_FILES)


def test_table_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2(argv, expected, csv_dir, capsys):
    args = [a.replace("{dir}", str(csv_dir)) for a in argv] + ["--epochs", "2"] * ("--epochs" not in argv)
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected.replace("{dir}", str(csv_dir)) in lines[0]
    assert captured.out == ""  # nothing ran


@pytest.mark.parametrize("argv", [["--lr", "-1"], ["--data", "/nonexistent.csv", "--target", "y"], ["--bogus"]])
def test_no_traceback_from_python_m(argv):
    proc = subprocess.run([sys.executable, "-m", "xreg.compare", *argv], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")


def test_map_labels_maps_two_classes(csv_dir, capsys):
    assert main(["--data", str(csv_dir / "labels-1+1.csv"), "--target", "label", "--map-labels", "--epochs", "3",
                 "--test-fraction", "0", "--backend", "numpy"]) == 0  # fmt: skip


def test_spreadsheet_bom_is_ignored(csv_dir):
    assert main(["--data", str(csv_dir / "bom.csv"), "--target", "x1", "--model", "linear", "--epochs", "2",
                 "--test-fraction", "0", "--backend", "numpy"]) == 0  # fmt: skip


def test_allow_many_features(csv_dir):
    assert main(["--data", str(csv_dir / "wide.csv"), "--target", "label", "--allow-many-features",
                 "--epochs", "2", "--test-fraction", "0", "--backend", "numpy"]) == 0  # fmt: skip


def test_api_raises_value_error():
    from xreg.core.spec import ExperimentSpec

    with pytest.raises(ValueError, match=r"The 'lr' parameter must be a float in the range \(0, inf\). Got -1 instead."):
        ExperimentSpec(lr=-1)
